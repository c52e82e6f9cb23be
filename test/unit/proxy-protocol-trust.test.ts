import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../core/config/load.js';
import { proxyProtocolSchema, TrustedPeers } from '../../lib/proxy-protocol-trust.js';

/*
 * gateway.proxyProtocol.trusted: which peers must (and alone may) send a PROXY header. Checked
 * when the config loads; matched against the address a socket reports (dual stack included).
 */

function problems(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

describe('gateway.proxyProtocol', () => {
  it('is off unless configured, and parses addresses and CIDR blocks of both families', () => {
    assert.equal(parseConfig({}).gateway.proxyProtocol, undefined);
    const c = parseConfig({ gateway: { proxyProtocol: { trusted: ['10.0.0.0/8', '192.0.2.7', '2001:db8::/64', '::1'] } } });
    assert.deepEqual(c.gateway.proxyProtocol?.trusted, [
      { address: '10.0.0.0', prefix: 8, family: 'ipv4' },
      { address: '192.0.2.7', prefix: 32, family: 'ipv4' },
      { address: '2001:db8::', prefix: 64, family: 'ipv6' },
      { address: '::1', prefix: 128, family: 'ipv6' },
    ]);
  });

  it('refuses what is not an address or a block, naming the entry; an empty list; unknown keys', () => {
    for (const bad of ['10.0.0.0/33', '::/129', 'proxy.example.org', '10.0.0.0/', '10.0.0.0/8/8', '']) {
      const p = problems({ gateway: { proxyProtocol: { trusted: [bad] } } });
      assert.equal(p.length, 1, bad);
      assert.match(p[0] ?? '', /gateway\.proxyProtocol\.trusted\.0.*CIDR/, p[0]);
    }
    assert.match(problems({ gateway: { proxyProtocol: { trusted: [] } } })[0] ?? '', /gateway\.proxyProtocol\.trusted/);
    assert.match(problems({ gateway: { proxyProtocol: { trusted: ['::1'], v1: false } } })[0] ?? '', /v1/);
  });

  it('matches peers as sockets report them: IPv4-mapped IPv6 as IPv4, any IPv6 spelling, zones ignored', () => {
    const peers = new TrustedPeers(proxyProtocolSchema.parse({ trusted: ['10.1.0.0/16', '2001:db8:aa::/48', '::1'] }).trusted);
    for (const yes of ['10.1.2.3', '::ffff:10.1.255.255', '::FFFF:a01:203', '2001:DB8:AA:0:0:0:0:1', '2001:db8:aa:ffff::9', '::1', '0:0:0:0:0:0:0:1', '::1%lo']) {
      assert.ok(peers.has(yes), yes);
    }
    for (const no of ['10.2.0.1', '::ffff:10.2.0.1', '2001:db8:ab::1', '::2', '127.0.0.1', 'unknown', '']) assert.ok(!peers.has(no), no);
  });
});
