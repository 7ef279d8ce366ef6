/**
 * How many keys a batch and the slots after it hold, estimated before they move: each source
 * master's DBSIZE spread evenly over the slots it owns (or is the source of). Progress (keys
 * left, ETA) and the target's room check (target-room.ts) start from it; the first scan pass
 * of a batch then counts the batch's keys exactly.
 *
 * Invariant: reads only (DBSIZE); a source that does not answer counts as empty.
 */
import { groupMaster, type Topology } from '@reborn/coordinator';
import { withRedis, type RedisAdminOptions } from '@reborn/coordinator/admin';
import type { Batch } from './migration-common.js';
import type { Classified } from './task-slots.js';

export interface KeyEstimate {
  /** Keys of the batch. */
  batch: number;
  /** Keys of the task's slots still to do after the batch. */
  after: number;
}

export async function estimateKeys(batch: Batch, c: Classified, topo: Topology, redis: RedisAdminOptions): Promise<KeyEstimate> {
  const sources = new Set([batch.from, ...c.todo.map((s) => s.from)]);
  const perSlot = new Map<number, number>();
  await Promise.all(
    [...sources].map(async (g) => {
      const master = groupMaster(topo.groups.get(g) ?? { id: g, servers: [] });
      const owned = topo.slots.filter((s) => (s.from ?? s.group) === g).length;
      if (!master || owned === 0) return;
      const size = await withRedis(master.addr, (r) => r.dbsize(), { ...redis, commandTimeoutMs: 2000 }).catch(() => 0);
      perSlot.set(g, size / owned);
    }),
  );
  const inBatch = new Set(batch.slots);
  return {
    batch: Math.round(batch.slots.length * (perSlot.get(batch.from) ?? 0)),
    after: Math.round(c.todo.filter((s) => !inBatch.has(s.id)).reduce((n, s) => n + (perSlot.get(s.from) ?? 0), 0)),
  };
}
