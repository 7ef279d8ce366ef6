/**
 * How the supervisor brings back a crashed redis-server, decided from etcd's groups: in place,
 * as a replica of the master etcd names, or not yet (waiting for the failover of a master
 * with replicas, or when etcd is unclear).
 */
import { describe, expect, it } from 'vitest';
import type { GroupInfo } from '@reborn/coordinator';
import { planRedisRestart, selfMatcher } from './restart-plan.js';

const group = (id: number, master: string | null, ...replicas: string[]): GroupInfo => ({
  id,
  servers: [...(master ? [{ addr: master, role: 'master' as const }] : []), ...replicas.map((addr) => ({ addr, role: 'replica' as const }))],
});
const is = (me: string) => (addr: string) => addr === me;

describe('planRedisRestart', () => {
  const groups = [group(1, 'h:1', 'h:2'), group(2, 'h:3'), group(3, null, 'h:4')];

  it('waits for the failover of a master whose group has replicas', () => {
    expect(planRedisRestart(groups, is('h:1'))).toMatchObject({ kind: 'wait', hold: 'failover', group: 1, why: expect.stringMatching(/^waiting for failover before restart: .*h:2/) });
  });

  it('restarts in place a master without replicas, and a server in no group', () => {
    expect(planRedisRestart(groups, is('h:3'))).toMatchObject({ kind: 'in-place', why: 'master of group 2, which has no replica' });
    expect(planRedisRestart(groups, is('h:9'))).toMatchObject({ kind: 'in-place', why: 'in no group' });
    expect(planRedisRestart([], is('h:1'))).toMatchObject({ kind: 'in-place' });
  });

  it('restarts a replica as a replica of the master etcd names — the old master too, once failed over', () => {
    expect(planRedisRestart(groups, is('h:2'))).toEqual({ kind: 'replica', group: 1, master: 'h:1', why: 'replica of group 1, whose master is h:1' });
    const failedOver = [group(1, 'h:2', 'h:1')];
    expect(planRedisRestart(failedOver, is('h:1'))).toMatchObject({ kind: 'replica', master: 'h:2' });
  });

  it('waits when etcd is unclear: a group without master, a server named twice', () => {
    expect(planRedisRestart(groups, is('h:4'))).toMatchObject({ kind: 'wait', hold: 'unclear', group: 3 });
    expect(planRedisRestart([group(1, 'h:1'), group(2, 'h:5', 'h:1')], is('h:1'))).toMatchObject({ kind: 'wait', hold: 'unclear', group: null, why: expect.stringMatching(/more than once/) });
  });
});

describe('selfMatcher', () => {
  it('matches the bind address and port; a loopback bind also answers to localhost', async () => {
    const self = await selfMatcher('127.0.0.1', 7000, [group(1, 'localhost:7000', '127.0.0.1:7001')]);
    expect(self('127.0.0.1:7000')).toBe(true);
    expect(self('localhost:7000')).toBe(true);
    expect(self('127.0.0.1:7001')).toBe(false);
    expect(self('10.9.9.9:7000')).toBe(false);
  });

  it('a wildcard bind matches the local addresses; IPv6 in brackets', async () => {
    const any = await selfMatcher('0.0.0.0', 7000, []);
    expect(any('127.0.0.1:7000')).toBe(true);
    expect(any('192.0.2.1:7000')).toBe(false);
    const v6 = await selfMatcher('::1', 7000, []);
    expect(v6('[::1]:7000')).toBe(true);
  });

  it('a name in etcd that does not resolve is not guessed: it throws', async () => {
    await expect(selfMatcher('127.0.0.1', 7000, [group(1, 'no-such-host.invalid:7000')])).rejects.toThrow(/cannot tell whether etcd's no-such-host.invalid/);
    // Another port: not a candidate, nothing to resolve.
    await expect(selfMatcher('127.0.0.1', 7000, [group(1, 'no-such-host.invalid:7001')])).resolves.toBeTypeOf('function');
  });
});
