/**
 * The agent's whitelist of proxy arguments: what an API caller may pass to a reborn-proxy the
 * agent starts (the redis side is exercised end to end in test/agent-lockdown.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { checkProxyArgs } from './app-options.js';

describe('checkProxyArgs', () => {
  it('takes the cluster face and tracking options with well-formed values', () => {
    const args = ['--cluster-addr', '127.0.0.1:7000', '--cluster-announce', '[::1]:7001', '--tracking-max-keys', '50000', '--tracking-max-prefixes', '10', '--durable'];
    expect(() => checkProxyArgs(args)).not.toThrow();
    expect(() => checkProxyArgs(['--cluster-announce', 'proxy-1.example.com:7000'])).not.toThrow();
  });

  it('refuses values that are not what the option wants, and options off the list, saying why', () => {
    for (const bad of [
      ['--cluster-addr', '127.0.0.1'],
      ['--cluster-addr', '/tmp/sock:1'],
      ['--cluster-announce', 'a b:1'],
      ['--cluster-announce', 'host:7000\nmaxclients 1'],
      ['--tracking-max-keys', '-1'],
      ['--tracking-max-prefixes', 'lots'],
    ]) {
      expect(() => checkProxyArgs(bad), bad.join(' ')).toThrow(new RegExp(bad[0]!.replace(/^--/, '--')));
    }
    expect(() => checkProxyArgs(['--etcd', 'http://evil:2379'])).toThrow(/--etcd/);
  });
});
