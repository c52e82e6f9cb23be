import { readFileSync } from 'node:fs';
import { definePlugin } from '../../core/plugin/contract.js';
import { optionsSchema, type LdapOptions } from './options.js';
import { createLdapProvider } from './provider.js';

/**
 * LDAP / Active Directory logins: finds the user (bind DN template or a search), binds as
 * them with their password over LDAPS or StartTLS, maps groups to a role, and answers an
 * external identity (source `ldap`) that core provisions just in time. One connection per
 * attempt; the directory down or slow denies (fail closed). See docs/auth-ldap.md.
 */
export default definePlugin({
  name: 'auth-ldap',
  version: '0.1.0',
  contract: 2,
  configSchema: optionsSchema,
  // An Active Directory over LDAPS: users bind as their UPN and read their own entry.
  exampleConfig: {
    url: 'ldaps://dc1.corp.example.com',
    userDn: '{username}@corp.example.com',
    search: { base: 'DC=corp,DC=example,DC=com', filter: '(&(objectClass=user)(sAMAccountName={username}))' },
    usernameAttribute: 'sAMAccountName',
    subjectAttribute: 'objectGUID',
    groups: { admin: ['CN=HackStream Admins,OU=Groups,DC=corp,DC=example,DC=com'] },
    requireGroup: ['CN=HackStream Users,OU=Groups,DC=corp,DC=example,DC=com', 'CN=HackStream Admins,OU=Groups,DC=corp,DC=example,DC=com'],
  },
  async init({ config, logger, register }) {
    const provider = createLdapProvider({ options: config, ca: readCa(config), bindPassword: readBindPassword(config), logger });
    register.authProvider({ authenticate: (attempt) => provider.authenticate(attempt) });
    if (new URL(config.url).protocol === 'ldap:' && !config.startTls) {
      logger.warn({ url: config.url }, 'plain LDAP allowed (allowInsecure): passwords cross the network unencrypted');
    }
    return {
      async close() {
        provider.closeAll();
      },
    };
  },
});

function readCa(config: LdapOptions): Buffer | undefined {
  if (config.caFile === undefined) return undefined;
  const pem = readFile(config.caFile, 'caFile');
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`auth-ldap: caFile ${config.caFile} holds no PEM certificate`);
  return Buffer.from(pem);
}

function readBindPassword(config: LdapOptions): string | undefined {
  const s = config.search;
  if (s?.bindPasswordFile === undefined) return s?.bindPassword;
  const password = readFile(s.bindPasswordFile, 'search.bindPasswordFile').replace(/\r?\n$/, '');
  if (password === '') throw new Error(`auth-ldap: search.bindPasswordFile ${s.bindPasswordFile} is empty`);
  return password;
}

function readFile(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : 'error';
    throw new Error(`auth-ldap: ${option} ${path} cannot be read (${code})`, { cause: err });
  }
}
