/**
 * When a group's master changes in etcd (what reborn-agent writes after a failover), the
 * proxy lets go of the connections of its own to the old master: a command blocked there
 * (BLPOP) fails at once instead of waiting on a frozen server, and a WATCH pinned there is
 * aborted (EXEC answers nil; the retry runs on the new master). The old master is frozen with
 * SIGSTOP, as a host that hangs without resetting its connections; the switch is written by
 * hand, as the agent would write it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitFor, type Cluster } from '@reborn/testkit';
import { RawClient, cmd, plain, promoteReplica } from './helpers.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 1, replicas: 1, proxies: 1 });
}, 60_000);

afterAll(async () => {
  for (const g of cluster?.groups ?? []) g.master.resume();
  await cluster?.stop();
});

describe('keyspace notifications with a replica', () => {
  it('are delivered from the master only: the replica\'s own events (del for an expiry) never reach a subscriber', async () => {
    const g = cluster.groups[0]!;
    for (const s of [g.master, g.replicas[0]!]) await s.client().config('SET', 'notify-keyspace-events', 'KEA');
    const sub = cluster.proxies[0]!.client();
    const c = cluster.proxies[0]!.client();
    const events: string[] = [];
    sub.on('pmessage', (_pattern: string, channel: string, key: string) => events.push(`${channel.slice(channel.indexOf(':') + 1)} ${key}`));
    try {
      await sub.psubscribe('__keyevent@0__:*');
      await c.set('{ks}k1', 'v', 'PX', 50);
      await new Promise((r) => setTimeout(r, 200));
      expect(await c.get('{ks}k1')).toBeNull(); // expired on the master: `expired` there, `del` on the replica
      await c.set('{ks}k2', 'v');
      await waitFor(() => events.includes('set {ks}k2'), { what: 'the event of the second SET' });
      await new Promise((r) => setTimeout(r, 200)); // anything recovered from the replica would come now
      expect(events.filter((e) => e.endsWith('{ks}k1'))).toEqual(['set {ks}k1', 'expire {ks}k1', 'expired {ks}k1']);
      expect(events.filter((e) => e === 'set {ks}k2')).toHaveLength(1);
    } finally {
      sub.disconnect();
      c.disconnect();
      for (const s of [g.master, g.replicas[0]!]) await s.client().config('SET', 'notify-keyspace-events', '');
    }
  });
});

describe('a group master replaced under a blocked command and a WATCH', () => {
  it('BLPOP on the frozen old master fails at once; EXEC under a WATCH pinned there answers nil; both work on the new master', async () => {
    const g = cluster.groups[0]!;
    const [oldMaster, replica] = [g.master, g.replicas[0]!];
    const proxy = cluster.proxies[0]!;
    const setup = proxy.client();
    await setup.set('{mc}w', '1');
    await waitFor(async () => (await replica.client().get('{mc}w')) === '1', { what: 'the replica in sync' });

    const blocked = await RawClient.connect(proxy.port);
    blocked.write(cmd('BLPOP', '{mc}q', '0'));
    const watcher = await RawClient.connect(proxy.port);
    expect(plain(await watcher.call('WATCH', '{mc}w'))).toBe('OK');
    await waitFor(async () => Number(/blocked_clients:(\d+)/.exec(await oldMaster.client().info('clients'))![1]) >= 1, { what: 'BLPOP blocked in redis' });

    await oldMaster.pause();
    try {
      await promoteReplica(cluster, 1, replica, oldMaster);
      // The BLPOP answers an error now, with its master still frozen.
      const [reply] = await blocked.next(1, 5000);
      expect(plain(reply!)).toEqual({ err: expect.stringMatching(/failed over to another master/) });
      // The WATCH was on the old master: its EXEC is aborted, the retry runs on the new one.
      expect(plain(await watcher.call('MULTI'))).toBe('OK');
      expect(plain(await watcher.call('INCR', '{mc}w'))).toBe('QUEUED');
      expect(plain(await watcher.call('EXEC'))).toBeNull();
      expect(plain(await watcher.call('WATCH', '{mc}w'))).toBe('OK');
      expect(plain(await watcher.call('MULTI'))).toBe('OK');
      expect(plain(await watcher.call('INCR', '{mc}w'))).toBe('QUEUED');
      expect(plain(await watcher.call('EXEC'))).toEqual([2]);
      // A new BLPOP blocks on the new master and is woken there.
      blocked.write(cmd('BLPOP', '{mc}q', '0'));
      await new Promise((r) => setTimeout(r, 100));
      await setup.rpush('{mc}q', 'job');
      expect(plain((await blocked.next(1, 5000))[0]!)).toEqual(['{mc}q', 'job']);
    } finally {
      oldMaster.resume();
      blocked.destroy();
      watcher.destroy();
    }
  });
});
