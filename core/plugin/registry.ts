/**
 * The static registry: the built-in plugins, by name (= config key). Folders are never
 * scanned; a new built-in is added here. Other plugins are named in the config by npm
 * package or path (resolve.ts). Modules are imported only when the plugin is enabled.
 */

/** Loads a plugin module and returns its default export (checked by the loader). */
export type PluginModuleLoader = () => Promise<unknown>;

/** Plugin name (config key) → its loader. */
export type PluginCatalogue = Readonly<Record<string, PluginModuleLoader>>;

export const KNOWN_PLUGINS: PluginCatalogue = Object.freeze({
  'auth-ldap': async () => (await import('../../plugins/auth-ldap/index.js')).default,
  'auth-local': async () => (await import('../../plugins/auth-local/index.js')).default,
  'auth-oidc': async () => (await import('../../plugins/auth-oidc/index.js')).default,
  'mfa-totp': async () => (await import('../../plugins/mfa-totp/index.js')).default,
  'quota-default': async () => (await import('../../plugins/quota-default/index.js')).default,
});
