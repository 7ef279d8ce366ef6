/**
 * Requests on a migrating slot move every key they touch from the source group to the target
 * before they run there (MIGRATE … KEYS, never REPLACE) — against real etcd, redis and
 * reborn-proxy processes, with the slot put in `migrating` by hand and its keys written
 * straight into the source master:
 * - an EXEC under WATCH moves its queued commands' keys, not only the watched ones;
 * - a key named twice in one request (LMOVE q q, INCR k … EXPIRE k, SUNIONSTORE s s t) moves
 *   on the first touch instead of failing with BUSYKEY;
 * - a key found in both groups is refused and logged (redis wraps the target's BUSYKEY).
 */
import type Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { startCluster, waitFor, type Cluster } from '@reborn/testkit';
import { busyScript } from './helpers.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1 });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

interface Migrating {
  source: Redis;
  target: Redis;
  /** Puts the slot online in the target (its keys are there by then). */
  finish(): Promise<void>;
}

/** Seeds the source master through `seed`, then puts the hash tag's slot in migrating. */
async function migratingSlot(tag: string, seed: (source: Redis) => Promise<unknown>): Promise<Migrating> {
  const slot = keySlot(Buffer.from(tag));
  const src = (await cluster.store.getSlot(slot)).group;
  const dst = src === 1 ? 2 : 1;
  const source = cluster.groups.find((g) => g.id === src)!.master.client();
  const target = cluster.groups.find((g) => g.id === dst)!.master.client();
  await seed(source);
  await cluster.store.putSlots([{ id: slot, state: 'migrating', group: dst, from: src, to: dst }]);
  // The proxy follows the table by its etcd watch: wait until it routes the slot as migrating.
  await waitFor(async () => (await migratingSlots()) === 1, { what: 'the proxy to see the slot migrating' });
  return {
    source,
    target,
    finish: async () => {
      await cluster.store.putSlots([{ id: slot, state: 'online', group: dst }]);
      await waitFor(async () => (await migratingSlots()) === 0, { what: 'the proxy to see the slot online' });
      source.disconnect();
      target.disconnect();
    },
  };
}

/** How many slots the proxy currently routes as migrating. */
async function migratingSlots(): Promise<number> {
  const states = (JSON.parse(await cluster.proxies[0]!.adminGet('/api/proxy')) as { slots: Record<string, number> }).slots;
  return states['migrating'] ?? 0;
}

describe('keys of a migrating slot', () => {
  it('EXEC under WATCH moves the queued commands\' keys to the target before it runs', async () => {
    const m = await migratingSlot('t', (a) => a.mset('{t}k', 'watched', '{t}other', 'old-in-A'));
    const r = cluster.proxies[0]!.client();
    try {
      expect(await r.watch('{t}k')).toBe('OK');
      const res = await r.multi().get('{t}other').set('{t}other', 'new').exec();
      expect(res).toEqual([
        [null, 'old-in-A'],
        [null, 'OK'],
      ]);
      expect(await m.source.exists('{t}k', '{t}other')).toBe(0);
      expect(await m.target.mget('{t}k', '{t}other')).toEqual(['watched', 'new']);
      // And every later access through the proxy works (no copy left behind in A).
      expect(await r.get('{t}other')).toBe('new');
    } finally {
      r.disconnect();
      await m.finish();
    }
  });

  it('a key named twice in one request moves on its first touch', async () => {
    const m = await migratingSlot('d', async (a) => {
      await a.rpush('{d}q', 'a', 'b');
      await a.set('{d}n', '5');
      await a.sadd('{d}s', 'x');
      await a.sadd('{d}t', 'y');
    });
    const r = cluster.proxies[0]!.client();
    try {
      expect(await r.lmove('{d}q', '{d}q', 'LEFT', 'RIGHT')).toBe('a');
      expect(await r.multi().incr('{d}n').expire('{d}n', 100).exec()).toEqual([
        [null, 6],
        [null, 1],
      ]);
      expect(await r.sunionstore('{d}s', '{d}s', '{d}t')).toBe(2);
      expect(await m.target.lrange('{d}q', 0, -1)).toEqual(['b', 'a']);
      expect(await m.target.get('{d}n')).toBe('6');
      expect((await m.target.smembers('{d}s')).sort()).toEqual(['x', 'y']);
      expect(await m.source.exists('{d}q', '{d}n', '{d}s', '{d}t')).toBe(0);
    } finally {
      r.disconnect();
      await m.finish();
    }
  });

  it('FLUSHALL flushes the sources of migrating slots before the other masters', async () => {
    const m = await migratingSlot('f', (a) => a.set('{f}in-source', '1'));
    await m.target.set('{f}in-target', '1');
    const inTarget = await m.target.dbsize();
    const r = cluster.proxies[0]!.client();
    await r.ping(); // connected and past ioredis's ready check (an INFO the busy source would hold)
    try {
      // The source is busy for 600 ms: its flush waits, and the target's must wait for it (a
      // MIGRATE running on the source would land its keys in an already flushed target).
      const busy = busyScript(600);
      const script = m.source.eval(busy, 0);
      await new Promise((res) => setTimeout(res, 50));
      const flushed = r.flushall();
      await new Promise((res) => setTimeout(res, 300));
      expect(await m.target.dbsize(), 'the target flushed while the source was still busy').toBe(inTarget);
      await script;
      expect(await flushed).toBe('OK');
      expect([await m.source.dbsize(), await m.target.dbsize()]).toEqual([0, 0]);
    } finally {
      r.disconnect();
      await m.finish();
    }
  });

  it('a key in both groups is refused with BUSYKEY and logged, and neither copy is touched', async () => {
    const m = await migratingSlot('b', (a) => a.set('{b}k', 'in-A'));
    await m.target.set('{b}k', 'in-B');
    const r = cluster.proxies[0]!.client();
    try {
      await expect(r.get('{b}k')).rejects.toThrow(/moving the keys of migrating slot \d+ failed: .*BUSYKEY/);
      // The proxy's log reaches the test through its stdout pipe: wait for the line.
      const busyKeyLogged = (): boolean =>
        cluster.proxies[0]!.logRecords().some((rec) => String(rec.msg).startsWith('MIGRATE answered BUSYKEY') && JSON.stringify(rec.keys) === '["{b}k"]');
      await waitFor(busyKeyLogged, { what: 'the BUSYKEY log line naming {b}k' });
      expect(await m.source.get('{b}k')).toBe('in-A');
      expect(await m.target.get('{b}k')).toBe('in-B');
    } finally {
      r.disconnect();
      await m.source.del('{b}k');
      await m.finish();
    }
  });
});
