/**
 * Per-session certificate issuing speed.
 *   node --import tsx bench/certs/issue.ts [count=50] [parallel=8]
 * Prints ms per cert (p50/p99/mean) for the whole issueSessionCert() path and for its two
 * halves (node:crypto RSA-2048 keygen, forge build + node:crypto RSA-3072 signature), plus
 * forge's own pure-JS signature for comparison, and the throughput of `parallel` concurrent issues.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { silentLogger } from '../../lib/log.js';
import { BACKDATE_MS, loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey, KeyPool } from '../../core/certs/keys.js';
import { issueSessionCert } from '../../core/certs/session-cert.js';

const count = Number(process.argv[2] ?? 50);
const parallel = Number(process.argv[3] ?? 8);

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
  const mean = sorted.reduce((s, x) => s + x, 0) / sorted.length;
  return `p50 ${at(0.5).toFixed(1)} ms  p99 ${at(0.99).toFixed(1)} ms  mean ${mean.toFixed(1)} ms  (n=${sorted.length})`;
}

async function time(n: number, fn: (i: number) => Promise<unknown> | unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'hs-bench-certs-'));
try {
  const ca = await loadOrCreateCa(dir, silentLogger());
  await time(3, (i) => issueSessionCert(ca, `warmup-${i}.sessions.bench`, 24));

  const endToEnd = await time(count, (i) => issueSessionCert(ca, `s${i}.sessions.bench`, 24));
  const keys = await Promise.all(Array.from({ length: count }, () => generateRsaKey(2048)));
  const keygen = await time(count, () => generateRsaKey(2048));
  const now = Date.now();
  const spec = (i: number) => ({
    hostname: `s${i}.sessions.bench`,
    publicKeyPem: keys[i]?.publicKeyPem ?? '',
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + 86_400_000),
  });
  const sign = await time(count, (i) => signServerCert(ca, spec(i)));
  const forgeKey = forge.pki.privateKeyFromPem(ca.key.export({ type: 'pkcs1', format: 'pem' }).toString());
  const forgeSign = await time(Math.min(count, 20), () => {
    const md = forge.md.sha256.create();
    md.update('x'.repeat(1000));
    forgeKey.sign(md);
  });
  // As the gateway issues them: from a pool of 4 ready keys, launches 300 ms apart.
  const pool = new KeyPool(4, () => generateRsaKey(2048));
  await pool.take();
  await new Promise((r) => setTimeout(r, 1500));
  const pooled = await time(Math.min(count, 20), async (i) => {
    await issueSessionCert(ca, `pool${i}.sessions.bench`, 24, () => pool.take());
    await new Promise((r) => setTimeout(r, 300));
  });
  pool.close();
  const t = performance.now();
  await Promise.all(Array.from({ length: parallel }, (_, i) => issueSessionCert(ca, `p${i}.sessions.bench`, 24)));
  const batchMs = performance.now() - t;

  console.log(`session cert issuing (RSA-2048 session key, RSA-3072 CA), node ${process.version}`);
  console.log(`  issueSessionCert end to end    ${stats(endToEnd)}`);
  console.log(`  issued from the key pool       ${stats(pooled.map((ms) => ms - 300))}  (launches 300 ms apart)`);
  console.log(`  keygen (node:crypto, async)    ${stats(keygen)}`);
  console.log(`  build + sign (event-loop time) ${stats(sign)}`);
  console.log(`  forge pure-JS RSA-3072 sign    ${stats(forgeSign)}  [reference, not used]`);
  console.log(`  ${parallel} concurrent issues         ${batchMs.toFixed(0)} ms total, ${(batchMs / parallel).toFixed(1)} ms per cert`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
