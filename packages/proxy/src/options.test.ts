import { describe, expect, it } from 'vitest';
import { OptionsError } from '@reborn/coordinator';
import { parseProxyOptions } from './options.js';

function problems(argv: string[], env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseProxyOptions(argv, env);
  } catch (err) {
    expect(err).toBeInstanceOf(OptionsError);
    return (err as OptionsError).problems;
  }
  throw new Error('the options were accepted');
}

describe('parseProxyOptions', () => {
  it('defaults for the migration grace and the WAIT cap; flags win over env', () => {
    expect(parseProxyOptions(['--id', 'p1'], {})).toMatchObject({ watchGraceMs: 1000, maxWaitTimeoutMs: 1000, backendTimeoutMs: 5000 });
    const env = { REBORN_PROXY_WATCH_GRACE_MS: '250', REBORN_PROXY_MAX_WAIT_TIMEOUT_MS: '300' };
    expect(parseProxyOptions(['--id', 'p1'], env)).toMatchObject({ watchGraceMs: 250, maxWaitTimeoutMs: 300 });
    expect(parseProxyOptions(['--id', 'p1', '--watch-grace', '0', '--max-wait-timeout', '2000'], env)).toMatchObject({ watchGraceMs: 0, maxWaitTimeoutMs: 2000 });
  });

  it('a WAIT cap or durable timeout that would outlast the backend watchdog is refused, with both values', () => {
    expect(problems(['--id', 'p1', '--max-wait-timeout', '5000'])).toEqual(['--max-wait-timeout (5000 ms) must be below --backend-timeout (5000 ms)']);
    expect(problems(['--id', 'p1', '--durable', '--durable-timeout', '9000', '--backend-timeout', '8000'])).toEqual([
      '--durable-timeout (9000 ms) must be below --backend-timeout (8000 ms)',
    ]);
    expect(parseProxyOptions(['--id', 'p1', '--max-wait-timeout', '7000', '--backend-timeout', '8000'], {}).maxWaitTimeoutMs).toBe(7000);
    // Not given: it follows a short --backend-timeout down instead of refusing it.
    expect(parseProxyOptions(['--id', 'p1', '--backend-timeout', '500'], {}).maxWaitTimeoutMs).toBe(250);
  });

  it('rejects a negative grace and a zero WAIT cap', () => {
    expect(problems(['--id', 'p1', '--watch-grace=-1', '--max-wait-timeout', '0'])).toEqual([
      '--watch-grace must be an integer ≥ 0, got "-1"',
      '--max-wait-timeout must be an integer ≥ 1, got "0"',
    ]);
  });

  it('takes IPv6 listen addresses in brackets and refuses them bare (the last colon would be ambiguous)', () => {
    expect(parseProxyOptions(['--id', 'p1', '--addr', '[::1]:0', '--admin-addr', '[::1]:0'], {}).addr).toBe('[::1]:0');
    expect(problems(['--id', 'p1', '--addr', '::1:0'])).toEqual(['--addr must be host:port (IPv6 as [addr]:port), got "::1:0"']);
    expect(problems(['--id', 'p1', '--admin-addr', 'host:99999'])).toEqual(['--admin-addr must be host:port (IPv6 as [addr]:port), got "host:99999"']);
  });

  it('refuses a timeout a Node timer cannot wait (it would fire after 1 ms) and a mistyped boolean env', () => {
    expect(problems(['--id', 'p1', '--backend-connect-timeout', '3000000000'])).toEqual([
      '--backend-connect-timeout must be at most 2147483647 (the longest a timer can wait, in ms), got "3000000000"',
    ]);
    expect(problems(['--id', 'p1'], { REBORN_PROXY_DURABLE: 'ture' })).toEqual([
      'REBORN_PROXY_DURABLE (--durable) must be one of 1/0, true/false, yes/no, on/off, got "ture"',
    ]);
    expect(parseProxyOptions(['--id', 'p1'], { REBORN_PROXY_DURABLE: 'off' }).durable).toBe(false);
    expect(parseProxyOptions(['--id', 'p1'], { REBORN_PROXY_DURABLE: 'YES' }).durable).toBe(true);
    expect(problems(['--id', 'p1', '--auth', ''])).toEqual(['--auth must not be empty (leave it out for no password)']);
    expect(parseProxyOptions(['--id', 'p1'], { REBORN_PROXY_AUTH: '' }).auth).toBeNull();
  });

  it('--allow-host: repeatable or comma separated, env REBORN_PROXY_ALLOW_HOST, names only', () => {
    expect(parseProxyOptions(['--id', 'p1'], {}).allowHosts).toEqual([]);
    expect(parseProxyOptions(['--id', 'p1', '--allow-host', 'a.example', '--allow-host', 'b,c'], {}).allowHosts).toEqual(['a.example', 'b', 'c']);
    expect(parseProxyOptions(['--id', 'p1'], { REBORN_PROXY_ALLOW_HOST: 'env.example' }).allowHosts).toEqual(['env.example']);
    expect(problems(['--id', 'p1', '--allow-host', 'https://x.example'])).toEqual([
      '--allow-host wants host names without port or scheme (like dash.example.com), got "https://x.example"',
    ]);
  });

  it('--cluster-addr (env REBORN_PROXY_CLUSTER_ADDR) turns the cluster face on; --cluster-announce overrides what is announced', () => {
    expect(parseProxyOptions(['--id', 'p1'], {})).toMatchObject({ clusterAddr: null, clusterAnnounce: null });
    expect(parseProxyOptions(['--id', 'p1', '--cluster-addr', '127.0.0.1:7000'], {})).toMatchObject({ clusterAddr: '127.0.0.1:7000', clusterAnnounce: null });
    const env = { REBORN_PROXY_CLUSTER_ADDR: '0.0.0.0:7000', REBORN_PROXY_CLUSTER_ANNOUNCE: 'proxy-1.example:17000' };
    expect(parseProxyOptions(['--id', 'p1'], env)).toMatchObject({ clusterAddr: '0.0.0.0:7000', clusterAnnounce: 'proxy-1.example:17000' });
    expect(parseProxyOptions(['--id', 'p1', '--cluster-addr', '[::1]:0'], env)).toMatchObject({ clusterAddr: '[::1]:0' });
  });

  it('refuses a cluster face clients could not reach, and an announce without a face', () => {
    expect(problems(['--id', 'p1', '--cluster-announce', 'h:1'])).toEqual(['--cluster-announce needs --cluster-addr (the cluster face is off without it)']);
    expect(problems(['--id', 'p1', '--cluster-addr', '0.0.0.0:7000'])).toEqual([
      '--cluster-addr 0.0.0.0:7000 listens on every interface, which clients cannot connect to: give --cluster-announce host:port',
    ]);
    expect(problems(['--id', 'p1', '--cluster-addr', '[::]:7000'])).toHaveLength(1);
    expect(problems(['--id', 'p1', '--cluster-addr', '7000', '--cluster-announce', 'h:0'])).toEqual([
      '--cluster-addr must be host:port (IPv6 as [addr]:port), got "7000"',
      '--cluster-announce must be host:port with a port 1..65535 (IPv6 as [addr]:port), got "h:0"',
    ]);
    expect(problems(['--id', 'p1', '--addr', '127.0.0.1:7000', '--cluster-addr', '127.0.0.1:7000'])).toEqual([
      '--cluster-addr must differ from --addr (both are 127.0.0.1:7000)',
    ]);
  });
});
