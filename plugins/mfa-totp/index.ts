import { isAbsolute, resolve } from 'node:path';
import { definePlugin } from '../../core/plugin/contract.js';
import { migrations } from './migrations.js';
import { totpOptions } from './options.js';
import { totpRoutes } from './routes.js';
import { loadOrCreateKey, secretBox } from './secret-box.js';
import { factorStore } from './store.js';
import { TotpService } from './totp.js';

/**
 * TOTP (RFC 6238) as a second factor: users enrol an authenticator app through
 * /v1/plugins/mfa-totp/, and a login of an enrolled user then needs a current code or a
 * recovery code. Secrets are kept AES-256-GCM encrypted with a key file outside the
 * database. See docs/auth-totp.md.
 */
export default definePlugin({
  name: 'mfa-totp',
  version: '0.1.0',
  contract: 2,
  migrations,
  configSchema: totpOptions,
  exampleConfig: { issuer: 'HackStream', providers: ['auth-local', 'auth-ldap'] },
  async init({ config, logger, register, services, storage }) {
    if (!isAbsolute(config.keyFile) && storage.dir === null) throw new Error('keyFile must be an absolute path where the host gives plugins no folder');
    const keyFile = resolve(storage.dir ?? '/', config.keyFile);
    const box = secretBox(await loadOrCreateKey(keyFile));
    const store = factorStore(storage.sql);
    if (await store.hasOtherKey(box.keyId)) {
      throw new Error(`the key file ${keyFile} is not the key the stored TOTP secrets were encrypted with (restore the original file)`);
    }
    const service = new TotpService({ store, box, options: config, accounts: services.accounts, audit: services.audit, logger });
    register.secondFactor(service.secondFactor());
    register.httpRoutes(totpRoutes(service));
    logger.info({ keyId: box.keyId, providers: config.providers }, 'totp second factor ready');
  },
});
