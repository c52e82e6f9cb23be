import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../lib/log.js';
import type { PluginAuditEntry, PluginServices } from '../../core/plugin/contract.js';
import { PluginError } from '../../core/plugin/errors.js';
import { startPluginHost } from '../../core/plugin/host.js';
import { fakeServices, inline } from '../fixtures/plugins/harness.js';

const entry = (action: string): PluginAuditEntry => ({ action, actor: 'u-alice', target: null, ip: '203.0.113.9', result: 'success' });

/** Starts one plugin named `name` and returns the services its init received. */
async function servicesOf(name: string, audited: PluginAuditEntry[]): Promise<{ services: PluginServices; close(): Promise<void> }> {
  let services: PluginServices | undefined;
  const plugin = inline(name, (_r, ctx) => {
    services = ctx.services;
  });
  const host = await startPluginHost([{ plugin, options: {} }], { logger: silentLogger(), services: fakeServices({}, audited) });
  assert.ok(services);
  return { services, close: () => host.close() };
}

describe('plugin audit actions: a plugin writes only under its own prefix', () => {
  const cases: { desc: string; action: string; ok: boolean }[] = [
    { desc: 'its own event', action: 'mfa_totp.reset', ok: true },
    { desc: 'a dotted event', action: 'mfa_totp.secret.rotated', ok: true },
    { desc: "core's action", action: 'auth.login', ok: false },
    { desc: "another plugin's action", action: 'auth_ldap.bind', ok: false },
    { desc: 'its name with hyphens', action: 'mfa-totp.reset', ok: false },
    { desc: 'a prefix without an event', action: 'mfa_totp.', ok: false },
    { desc: 'a longer name sharing the start', action: 'mfa_totpx.reset', ok: false },
    { desc: 'upper case', action: 'mfa_totp.Reset', ok: false },
  ];
  for (const c of cases) {
    it(`${c.ok ? 'accepts' : 'refuses'} ${c.desc} (${c.action})`, async () => {
      const audited: PluginAuditEntry[] = [];
      const { services, close } = await servicesOf('mfa-totp', audited);
      const write = services.audit.record(entry(c.action));
      if (c.ok) {
        await write;
        assert.deepEqual(audited.map((e) => e.action), [c.action]);
      } else {
        await assert.rejects(write, (err: unknown) => err instanceof PluginError && /plugin "mfa-totp" may write only audit actions "mfa_totp\.<event>"/.test(err.message));
        assert.deepEqual(audited, [], 'nothing reached the audit');
      }
      await close();
    });
  }
});
