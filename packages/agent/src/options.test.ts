import { describe, expect, it } from 'vitest';
import { OptionsError, parseAgentOptions } from './options.js';

describe('parseAgentOptions', () => {
  it('defaults, env, flags: flags win over env, env over defaults', () => {
    const d = parseAgentOptions([], {});
    expect(d).toMatchObject({ httpAddr: '127.0.0.1:18090', etcd: ['http://127.0.0.1:2379'], product: 'default', ha: false, downAfterMs: 3000, checkIntervalMs: 1000, checkTimeoutMs: 500, leaseTtl: 5 });
    const env = { REBORN_PRODUCT: 'envp', REBORN_AGENT_HA: 'true', REBORN_AGENT_DOWN_AFTER_MS: '2000', REBORN_ETCD: 'http://a:1,http://b:2' };
    expect(parseAgentOptions([], env)).toMatchObject({ product: 'envp', ha: true, downAfterMs: 2000, etcd: ['http://a:1', 'http://b:2'] });
    expect(parseAgentOptions(['--product', 'flag', '--down-after-ms', '1500', '--id', 'a1', '--data-dir', '/tmp/x'], env)).toMatchObject({
      product: 'flag',
      downAfterMs: 1500,
      id: 'a1',
      dataDir: '/tmp/x',
    });
  });

  it('reports every problem in one message', () => {
    try {
      parseAgentOptions(['--http-addr', 'nope', '--down-after-ms', 'soon', '--product', 'a b', '--id', 'events', '--lease-ttl', '1'], {});
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(OptionsError);
      expect((err as OptionsError).problems).toEqual([
        '--http-addr must be host:port (IPv6 as [addr]:port), got "nope"',
        '--product must match [A-Za-z0-9_-]{1,64}, got "a b"',
        '--id must match [A-Za-z0-9_.:-]{1,128} and not be election/events/servers/event-seq, got "events"',
        '--down-after-ms must be an integer ≥ 100, got "soon"',
        '--lease-ttl must be an integer 2..3600, got "1"',
      ]);
    }
    expect(() => parseAgentOptions(['--bogus'], {})).toThrow(OptionsError);
    // mkdir under /proc never returns on Node 20: refused up front.
    expect(() => parseAgentOptions(['--data-dir', '/proc/nope'], {})).toThrow(/--data-dir must not be under \/proc, \/sys or \/dev/);
    expect(() => parseAgentOptions(['--lease-ttl', '2', '--etcd-timeout-ms', '1500'], {})).toThrow(/must be below half of --lease-ttl/);
  });
});
