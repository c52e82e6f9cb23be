const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * The one normal form of a hostname used for routing, certificates and logs: ASCII
 * lowercase, one trailing dot stripped, LDH labels, at most 253 characters. Returns null
 * for anything else (including IPv4 literals, which are not valid server names).
 */
export function normalizeHostname(name: string): string | null {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x21-\x7e]{1,254}$/.test(name)) return null;
  let h = name.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.length === 0 || h.length > 253) return null;
  const labels = h.split('.');
  if (!labels.every((l) => LABEL.test(l))) return null;
  if (labels.every((l) => /^\d+$/.test(l))) return null;
  return h;
}
