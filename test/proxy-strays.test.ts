/**
 * `--watch-strays`: the proxy notices a key written in a group that does not own its slot as
 * it appears. The finding it answers: `EVAL` writing a key it did not declare puts that key in
 * the declared key's group; through the proxy it reads as nil, yet DBSIZE counts it, and
 * nothing said so. Real etcd, two groups, a proxy with the watch on:
 *   - ordinary writes in both groups, and keys a request on a migrating slot moves to the
 *     target, are never counted;
 *   - the script's undeclared key is: in reborn_proxy_stray_keys_total{group} and in
 *     /api/proxy's recent strays, with its slot, group and owner.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { Stats } from '@reborn/config';
import { keysOfGroup, parsePrometheus } from './helpers.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1, proxyArgs: ['--watch-strays'] });
}, 60_000);

afterAll(async () => {
  await stopAll();
});

interface StrayReport {
  watching: boolean;
  byGroup: Record<string, number>;
  recent: { key: string; slot: number; group: number; owner: number | null }[];
}

async function strays(): Promise<StrayReport> {
  return (JSON.parse(await cluster.proxies[0]!.adminGet('/api/proxy')) as { strays: StrayReport }).strays;
}

async function strayMetric(group: number): Promise<number> {
  const m = parsePrometheus(await cluster.proxies[0]!.adminGet('/metrics'));
  return m.get(`reborn_proxy_stray_keys_total{group="${group}"}`) ?? 0;
}

describe('the stray watch', () => {
  it('turns on new-key events on every master', async () => {
    for (const g of cluster.groups) {
      await waitFor(async () => /E/.test(String((await g.master.client().config('GET', 'notify-keyspace-events'))[1])) && /n/.test(String((await g.master.client().config('GET', 'notify-keyspace-events'))[1])), {
        what: `new-key events on group ${g.id}'s master`,
      });
    }
    expect((await strays()).watching).toBe(true);
  });

  it('counts a key a script wrote in the wrong group, and nothing else', async () => {
    const c = cluster.proxies[0]!.client();
    // Ordinary writes to both groups first: at home, never counted.
    for (const k of [...keysOfGroup('home:a:', 1, 20), ...keysOfGroup('home:b:', 2, 20)]) await c.set(k, 'v');
    // A key of a migrating slot, moved to the target by the request: at home there too.
    const moved = '{strayhome}k';
    const slot = keySlot(Buffer.from(moved));
    const from = (await cluster.store.getSlot(slot)).group;
    const to = from === 1 ? 2 : 1;
    await cluster.groups.find((g) => g.id === from)!.master.client().set(moved, 'x');
    await cluster.store.putSlots([{ id: slot, state: 'migrating', group: to, from, to }]);
    await waitFor(async () => (JSON.parse(await cluster.proxies[0]!.adminGet('/api/proxy')) as { slots: Record<string, number> }).slots['migrating'] === 1, {
      what: 'the proxy to see the slot migrating',
    });
    expect(await c.get(moved)).toBe('x');
    await cluster.store.putSlots([{ id: slot, state: 'online', group: to }]);

    // The script declares a key of group 1 and writes one of group 2 besides.
    const declared = keysOfGroup('decl:', 1, 1)[0]!;
    const undeclared = keysOfGroup('undecl:', 2, 1)[0]!;
    await c.eval("redis.call('SET', KEYS[1], 'a') redis.call('SET', ARGV[1], 'b') return 1", 1, declared, undeclared);
    // The bug as users see it: the proxy looks in the owner (group 2) and finds nothing.
    expect(await c.get(undeclared)).toBeNull();

    await waitFor(async () => (await strayMetric(1)) === 1, { what: 'the stray counted for group 1' });
    expect(await strayMetric(2)).toBe(0);
    const report = await strays();
    expect(report.byGroup).toEqual({ '1': 1 });
    expect(report.recent).toEqual([expect.objectContaining({ key: undeclared, slot: keySlot(Buffer.from(undeclared)), group: 1, owner: 2 })]);
    // The dashboard's proxy table shows the count (GET /api/stats reads each proxy's /api/proxy).
    const stats = await new Stats(cluster.store).proxies();
    expect(stats.proxies.map((p) => p.strays)).toEqual([1]);
    // One warning line (pino writes asynchronously: wait for it).
    await waitFor(() => cluster.proxies[0]!.logs.some((l) => l.includes('"msg":"stray key') && l.includes(undeclared)), { what: 'the stray logged' });
  });
});
