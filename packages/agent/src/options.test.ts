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

  it('the stall window and the in-sync lag bound: defaults, env, bounds', () => {
    expect(parseAgentOptions([], {})).toMatchObject({ stallDownAfterMs: 15000, inSyncMaxLagMs: 2000 });
    expect(parseAgentOptions(['--stall-down-after-ms', '6000'], { REBORN_AGENT_IN_SYNC_MAX_LAG_MS: '5000' })).toMatchObject({ stallDownAfterMs: 6000, inSyncMaxLagMs: 5000 });
    expect(() => parseAgentOptions(['--in-sync-max-lag-ms', '1000'], {})).toThrow(/--in-sync-max-lag-ms must be an integer ≥ 2000, got "1000"/);
    expect(() => parseAgentOptions(['--stall-down-after-ms', '2000'], {})).toThrow(/--stall-down-after-ms \(2000\) must not be below --down-after-ms \(3000\)/);
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

  it('--token and --allow-host: flags over env, lists add up, bad values are named', () => {
    expect(parseAgentOptions([], {})).toMatchObject({ token: null, allowHosts: [] });
    expect(parseAgentOptions(['--token', 'flag-token-1'], { REBORN_AGENT_TOKEN: 'env-token-12' }).token).toBe('flag-token-1');
    expect(parseAgentOptions([], { REBORN_AGENT_TOKEN: 'env-token-12' }).token).toBe('env-token-12');
    expect(parseAgentOptions(['--allow-host', 'a.example', '--allow-host', 'b.example,c'], {}).allowHosts).toEqual(['a.example', 'b.example', 'c']);
    expect(parseAgentOptions([], { REBORN_AGENT_ALLOW_HOST: 'env.example, two' }).allowHosts).toEqual(['env.example', 'two']);
    expect(parseAgentOptions(['--allow-host', 'flag.example'], { REBORN_AGENT_ALLOW_HOST: 'env.example' }).allowHosts).toEqual(['flag.example']);
    try {
      parseAgentOptions(['--token', 'short', '--allow-host', 'x.example:80'], {});
      expect.unreachable();
    } catch (err) {
      expect((err as OptionsError).problems).toEqual([
        '--token must be at least 8 characters',
        '--allow-host wants host names without port or scheme (like dash.example.com), got "x.example:80"',
      ]);
    }
  });

  it('refuses a non-loopback --http-addr without a token, like the dashboard', () => {
    for (const addr of ['0.0.0.0:18090', '10.0.0.11:18090', '[::]:18090', 'agent-1.internal:18090']) {
      try {
        parseAgentOptions(['--http-addr', addr], {});
        expect.unreachable();
      } catch (err) {
        expect((err as OptionsError).problems).toEqual([
          `refusing to serve the API on non-loopback address ${addr} without a token: set --token (or REBORN_AGENT_TOKEN), or listen on 127.0.0.1`,
        ]);
      }
    }
    expect(parseAgentOptions(['--http-addr', '0.0.0.0:18090'], { REBORN_AGENT_TOKEN: 'env-token-12' })).toMatchObject({ httpAddr: '0.0.0.0:18090', token: 'env-token-12' });
    for (const addr of ['127.0.0.1:18090', '[::1]:18090', 'localhost:18090']) expect(parseAgentOptions(['--http-addr', addr], {}).token).toBeNull();
  });
});
