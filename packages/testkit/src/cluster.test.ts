import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { SLOT_COUNT } from '@reborn/coordinator';
import { liveChildPids, stopAll } from './cleanup.js';
import { slotRange, startCluster } from './cluster.js';
import { waitFor } from './wait.js';

afterAll(stopAll);

describe('slotRange', () => {
  it('covers all slots contiguously, as evenly as possible', () => {
    for (const n of [1, 2, 3, 7, 1024]) {
      const ranges = Array.from({ length: n }, (_, i) => slotRange(i, n));
      expect(ranges[0]?.[0]).toBe(0);
      expect(ranges.at(-1)?.[1]).toBe(SLOT_COUNT - 1);
      for (let i = 1; i < n; i++) expect(ranges[i]?.[0]).toBe((ranges[i - 1]?.[1] ?? NaN) + 1);
      const sizes = ranges.map(([a, b]) => b - a + 1);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
  });
});

describe('startCluster', () => {
  it('starts etcd and replicated groups, assigns every slot, stops it all', async () => {
    const c = await startCluster({ groups: 3, replicas: 1, proxies: 0 });
    const t = await c.store.loadTopology();
    expect([...t.groups.keys()]).toEqual([1, 2, 3]);
    expect(t.groups.get(2)?.servers).toEqual([
      { addr: c.groups[1]?.master.addr, role: 'master' },
      { addr: c.groups[1]?.replicas[0]?.addr, role: 'replica' },
    ]);
    expect(t.slots.every((s) => s.state === 'online')).toBe(true);
    expect(t.slots.filter((s) => s.group === 1)).toHaveLength(341);
    expect(t.slots[0]?.group).toBe(1);
    expect(t.slots[1023]?.group).toBe(3);

    const g = c.groups[0]!;
    await g.master.client().set('k', 'v');
    const replica: Redis = g.replicas[0]!.client();
    await waitFor(async () => (await replica.get('k')) === 'v', { what: 'replication' });

    const pids = [c.etcd.pid, ...c.groups.flatMap((x) => [x.master.pid, ...x.replicas.map((r) => r.pid)])];
    await c.stop();
    expect(liveChildPids().filter((p) => pids.includes(p))).toEqual([]);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(); // stop() waited: reaped
  });
});
