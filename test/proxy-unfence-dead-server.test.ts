/**
 * A fenced proxy is not held hostage by a dead server (issue 19, finding 1), and a server
 * that comes back still carrying the proxy's user disabled does not fence it again.
 *
 * One group: a master and two replicas, real processes. Replica `stale` is listed in etcd at
 * the address of a TCP relay (Partitionable), so it can be cut off without losing its state.
 * Replica `dead` is killed (connections to it are refused); the proxy is frozen (SIGSTOP) and
 * fenced the way reborn-config fences it (fenceProxy: record first, then `ACL SETUSER … off`
 * and `CLIENT KILL USER`), which disables its user on the master and on `stale`; then the relay
 * to `stale` is cut (every connection to it closes at once, nothing reaches it), with the user
 * still disabled there. Resumed, the proxy must re-register, reload, re-enable its user on the
 * one server that answers and serve again while both replicas stay unreachable. Then the relay
 * heals and `stale` is promoted to master: the proxy meets its user disabled there, finds no
 * fence record for itself in etcd, re-enables the user on that server and goes on serving,
 * without a second fence.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { fenceProxy } from '@reborn/config';
import { Barrier } from '@reborn/coordinator';
import { startCluster, stopAll, waitFor, type ProxyProcess } from '@reborn/testkit';
import { parsePrometheus } from './helpers.js';
import { Partitionable, Writers, aclFlags, strictClient } from './migration-helpers.js';

afterAll(async () => {
  await stopAll();
});

interface Health {
  status: number;
  body: { ready?: boolean; fenced?: boolean; fencedReason?: string | null };
}

async function healthz(p: ProxyProcess): Promise<Health> {
  const res = await fetch(`http://${p.adminAddr}/healthz`, { signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: (await res.json()) as Health['body'] };
}

async function fencings(p: ProxyProcess): Promise<number> {
  return parsePrometheus(await p.metrics()).get('reborn_proxy_fenced_total') ?? 0;
}

describe('a fenced proxy and its dead servers', () => {
  it('unfences while a replica is dead and another frozen; a server back with the user disabled is re-enabled, not a new fence', { timeout: 180_000 }, async () => {
    const cluster = await startCluster({ groups: 1, replicas: 2, proxies: 0 });
    const id = 'uf-a';
    const g = cluster.groups[0]!;
    const [dead, stale] = g.replicas as [typeof g.master, typeof g.master];
    const relay = await Partitionable.start(stale.host, stale.port);
    const staleAddr = `127.0.0.1:${relay.port}`;
    try {
      await cluster.store.putGroup({
        id: 1,
        servers: [
          { addr: g.master.addr, role: 'master' },
          { addr: dead.addr, role: 'replica' },
          { addr: staleAddr, role: 'replica' },
        ],
      });
      const proxy = await cluster.addProxy(['--id', id]);
      const user = `reborn:${cluster.product}:${id}`;
      const writers = new Writers([strictClient(proxy), strictClient(proxy)], { keysPerKind: 200, prefix: 'uf' });
      // The writers of after the promotion (a stopped Writers cannot start again).
      const after = new Writers([strictClient(proxy), strictClient(proxy)], { keysPerKind: 200, prefix: 'uf2' });
      writers.start();
      try {
        await writers.waitForAcks(500);

        // The old master every failover leaves listed: down, its port refuses connections.
        await dead.kill();
        await proxy.pause();
        const fence = await fenceProxy(cluster.store, { proxyId: id, groups: [1], reason: 'test: fenced while a replica is down' });
        expect(fence.servers).toEqual(expect.arrayContaining([g.master.addr, staleAddr]));
        expect(await aclFlags(stale.host, stale.port, user)).toContain('off');
        // Reachable during the fence, cut off during the recovery: it keeps the user disabled.
        relay.partition();
        proxy.resume();

        const recovered = await waitFor(
          async () => {
            const h = await healthz(proxy);
            return h.status === 200 && h.body.fenced === false && (await new Barrier(cluster.store).listFences()).length === 0 ? h : null;
          },
          { timeoutMs: 60_000, what: 'the proxy to recover from its fence with a replica dead and one frozen' },
        );
        expect(recovered.body.fencedReason ?? null).toBeNull();
        expect(await aclFlags(g.master.host, g.master.port, user)).toContain('on');
        await writers.waitForAcks(500);
        expect(dead.running).toBe(false);
        const fencedOnce = await fencings(proxy);
        expect(fencedOnce).toBeGreaterThanOrEqual(1);

        // The cut-off replica comes back still carrying the disabled user, and becomes master
        // (by hand, so writes stop first and it catches up: nothing acknowledged is lost).
        relay.heal();
        expect(await aclFlags(stale.host, stale.port, user)).toContain('off');
        await writers.stop();
        expect(await g.master.client().call('WAIT', '1', '10000')).toBe(1);
        await stale.client().replicaof('NO', 'ONE');
        await cluster.store.putGroup({
          id: 1,
          servers: [
            { addr: staleAddr, role: 'master' },
            { addr: g.master.addr, role: 'replica' },
            { addr: dead.addr, role: 'replica' },
          ],
        });
        await g.master.client().replicaof(stale.host, stale.port);

        // Writes go to it and are acknowledged: the proxy re-enabled its user there.
        after.start();
        const probe = strictClient(proxy);
        await waitFor(async () => (await probe.set('uf:probe', 'on-the-new-master').catch(() => null)) === 'OK', {
          timeoutMs: 30_000,
          what: 'a write through the proxy to the promoted server',
        });
        expect(await stale.client().get('uf:probe')).toBe('on-the-new-master');
        await after.waitForAcks(500);
        expect(await aclFlags(stale.host, stale.port, user)).toContain('on');
        const health = await healthz(proxy);
        expect(health.status).toBe(200);
        expect(health.body.fenced).toBe(false);
        expect(await fencings(proxy)).toBe(fencedOnce);
        expect(await new Barrier(cluster.store).listFences()).toEqual([]);
        expect(proxy.logRecords().some((r) => r.msg === 'a server refused our user but etcd has no fence for us: re-enabled it there')).toBe(true);
      } finally {
        relay.heal();
        await writers.stop();
        await after.stop();
      }
      console.log(`[proxy-unfence-dead-server] before the promotion: ${writers.summary()}; after: ${after.summary()}`);
      expect((await writers.verify(strictClient(proxy))).slice(0, 20)).toEqual([]);
      expect((await after.verify(strictClient(proxy))).slice(0, 20)).toEqual([]);
    } finally {
      await cluster.stop();
      await relay.close();
    }
  });
});
