import { definePlugin } from '../../core/plugin/contract.js';
import { deviceFlow, redirectFlow } from './flows.js';
import { Issuer, readSecrets } from './issuer.js';
import { exampleConfig, optionsSchema } from './options.js';

/**
 * OpenID Connect sign-in, for any number of providers at once (Keycloak, Entra ID, Google…).
 * Each entry under `issuers` registers a redirect flow (browser: Authorization Code + PKCE)
 * and a device flow (the CLI: Device Authorization Grant), both with the entry's key as the
 * flow id. A provider that cannot be discovered at start-up does not stop start-up: its
 * flows fail closed (logged) until it answers.
 */
export default definePlugin({
  name: 'auth-oidc',
  version: '0.1.0',
  contract: 2,
  configSchema: optionsSchema,
  exampleConfig,
  async init({ config, logger, register, services }) {
    const issuers = Object.entries(config.issuers).map(([key, o]) => new Issuer(key, o, readSecrets(key, o), logger));
    for (const issuer of issuers) {
      const d = { issuer, logger, audit: services.audit };
      const label = issuer.options.label ?? issuer.key;
      register.redirectFlow(redirectFlow(d, label));
      register.deviceFlow(deviceFlow(d, label));
    }
    // In parallel, each bounded by its discoveryTimeoutMs (at most 8 s, under the host's init timeout).
    await Promise.all(issuers.map((i) => i.warmUp()));
  },
});
