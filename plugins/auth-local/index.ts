import { z } from 'zod';
import { definePlugin } from '../../core/plugin/contract.js';

const options = z.object({}).strict();

/**
 * Local accounts: username and password checked against the accounts store. An unknown
 * username is skipped (a later provider may know it; if none does, the chain denies), a
 * wrong password or a disabled account is denied.
 */
export default definePlugin({
  name: 'auth-local',
  version: '0.1.0',
  contract: 2,
  configSchema: options,
  exampleConfig: {},
  async init({ register, services }) {
    register.authProvider({
      async authenticate({ username, password }) {
        const check = await services.accounts.verifyPassword(username, password);
        if (check.ok) return { result: 'ok', userId: check.userId };
        if (check.reason === 'unknown-user') return { result: 'skip' };
        return { result: 'deny', reason: check.reason };
      },
    });
  },
});
