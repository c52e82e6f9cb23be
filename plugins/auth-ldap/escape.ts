/**
 * Escaping of user input into LDAP strings, so a username is always a value and never
 * syntax: `*)(uid=*` must find nobody, not everybody.
 */

/** A value inside a search filter (RFC 4515 §3): `\ * ( )` and NUL become `\xx`. */
export function escapeFilterValue(value: string): string {
  return value.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * An attribute value inside a DN (RFC 4514 §2.4): the special characters get a backslash,
 * NUL becomes `\00`, and a leading space or `#` and a trailing space are escaped.
 */
export function escapeDnValue(value: string): string {
  const last = value.length - 1;
  return Array.from(value, (c, i) => {
    if (c === '\0') return '\\00';
    if ('\\"+,;<>='.includes(c)) return `\\${c}`;
    if ((i === 0 && (c === ' ' || c === '#')) || (i === last && c === ' ')) return `\\${c}`;
    return c;
  }).join('');
}

/** Fills `{name}` placeholders with values escaped by `escape`; other braces stay as written. */
export function fillTemplate(template: string, values: Readonly<Record<string, string>>, escape: (v: string) => string): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (Object.hasOwn(values, name) ? escape(values[name] ?? '') : whole));
}

/**
 * A DN in a form to compare group DNs by: attribute names and values lower-cased, spaces
 * around `,` `=` `+` dropped. Good for the DNs directories hand back (memberOf, group
 * searches) against the ones operators write; not a full RFC 4514 canonicalisation.
 */
export function normalizeDn(dn: string): string {
  return dn
    .trim()
    .toLowerCase()
    .replace(/\s*(?<!\\)([,=+])\s*/g, '$1');
}
