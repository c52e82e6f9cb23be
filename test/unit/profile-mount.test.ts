import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sessionContainerConfig } from '../../agent/container-config.js';
import type { SessionSpec } from '../../core/sessions/runtime.js';

const spec: SessionSpec = {
  sessionId: '6f1c1f52-7d0e-4a43-9a55-2f0c4b1b8e11',
  userId: '0b6f2a3e-51c4-4a8e-9f61-0c7c5a0e2d10',
  limits: { memoryMb: 1024, cpus: 1, pids: 256 },
  policy: { clipboard: true, fileTransfer: false, printing: false, audio: false, webcam: false, downloads: true, fileUrls: false },
  tls: { certPem: 'cert', keyPem: 'key' },
};
const ctx = { image: 'img', networkName: 'net', xpraPort: 14500, instanceId: 'i' };

describe('a session container with and without a persistent profile', () => {
  const cases = [
    { desc: 'ephemeral: no host mount, the one tmpfs /tmp', profileSource: undefined },
    { desc: 'persist: the volume at /tmp/hs/profile, /tmp/hs a tmpfs of the session user', profileSource: '/data/profiles/mnt/0b6f2a3e-51c4-4a8e-9f61-0c7c5a0e2d10' },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const h = sessionContainerConfig(spec, { ...ctx, ...(c.profileSource ? { profileSource: c.profileSource } : {}) }).HostConfig ?? {};
      // The hardening is the same either way.
      assert.equal(h.ReadonlyRootfs, true);
      assert.deepEqual(h.CapDrop, ['ALL']);
      assert.deepEqual(h.Binds, []);
      assert.match(h.Tmpfs?.['/tmp'] ?? '', /^rw,nosuid,nodev,mode=1777,size=512m$/);
      if (!c.profileSource) {
        assert.equal(h.Mounts, undefined);
        assert.deepEqual(Object.keys(h.Tmpfs ?? {}), ['/tmp']);
        return;
      }
      assert.deepEqual(h.Mounts, [{ Type: 'bind', Source: c.profileSource, Target: '/tmp/hs/profile', ReadOnly: false, BindOptions: { Propagation: 'rprivate' } }]);
      assert.equal(h.Tmpfs?.['/tmp/hs'], 'rw,nosuid,nodev,mode=0700,uid=1000,gid=1000,size=512m');
    });
  }
});
