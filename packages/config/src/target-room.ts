/**
 * Room on the target: before a batch starts, and every few seconds while its keys move, the
 * runner compares what is still to move with the room the target's master has under its
 * maxmemory. Short of room, the task waits (MigrationWait: it stays running, progress.waiting
 * says how much is missing and what to do) instead of running into OOM — which would turn
 * into errors for the clients whose keys the proxies try to move on touch.
 *
 * The estimate: keys still to move × the source's bytes per key (used_memory / keys), times
 * ROOM_FACTOR for the target's own overhead, plus a margin of ROOM_MARGIN of its maxmemory.
 * A target without maxmemory is not limited here (the machine's memory is the operator's).
 *
 * Invariant: reads only (INFO, DBSIZE); never changes a server's configuration.
 */
import { info, withRedis, type RedisAdminOptions } from '@reborn/coordinator/admin';
import { groupMaster, type Topology } from '@reborn/coordinator';
import { MigrationWait, type Batch } from './migration-common.js';

/** A copied key takes about this much more room on the target than the source's average (fragmentation, a fresh dict). */
const ROOM_FACTOR = 1.2;
/** Room kept free on the target beyond the estimate, as a share of its maxmemory. */
const ROOM_MARGIN = 0.05;

const mb = (n: number): string => `${(n / (1024 * 1024)).toFixed(1)} MB`;

/** The source's average bytes per key (used_memory / DBSIZE), 0 when it holds nothing. */
export async function bytesPerKey(source: string, opts: RedisAdminOptions): Promise<number> {
  const [mem, keys] = await Promise.all([info(source, 'memory', opts), withRedis(source, (c) => c.dbsize(), opts)]);
  const used = Number(mem['used_memory'] ?? 0);
  return keys > 0 ? used / keys : 0;
}

/**
 * Whether group `gid`'s master `target` has room for `keysLeft` more keys of `perKey` bytes:
 * null when it has (or has no maxmemory), else what the task waits for.
 */
export async function roomWait(target: string, gid: number, keysLeft: number, perKey: number, opts: RedisAdminOptions): Promise<MigrationWait | null> {
  if (keysLeft <= 0 || perKey <= 0) return null;
  const mem = await info(target, 'memory', opts);
  const max = Number(mem['maxmemory'] ?? 0);
  if (!(max > 0)) return null;
  const used = Number(mem['used_memory'] ?? 0);
  const need = keysLeft * perKey * ROOM_FACTOR + max * ROOM_MARGIN;
  if (max - used >= need) return null;
  return new MigrationWait(
    `waiting for room on group ${gid}'s master ${target}`,
    `about ${mb(need)} more to move, ${mb(Math.max(0, max - used))} free under its maxmemory ${mb(max)}; raise it ("reborn-config redis-config set maxmemory …") or free memory there, and the migration goes on by itself`,
  );
}

/** The room checks of one task run: the source's bytes per key read once per batch, checks spaced out while keys move. */
export class TargetRoom {
  private perKey: { batch: string; bytes: number } | null = null;
  private lastCheck = 0;

  constructor(private readonly redis: RedisAdminOptions) {}

  /**
   * What the task waits for when `batch`'s target has no room for `keysLeft` more keys, or
   * null. `every` (ms): skip the check when the last one is more recent than that.
   */
  async wait(batch: Batch, topo: Topology, keysLeft: number, every = 0): Promise<MigrationWait | null> {
    const now = Date.now();
    if (every > 0 && now - this.lastCheck < every) return null;
    this.lastCheck = now;
    const src = groupMaster(topo.groups.get(batch.from) ?? { id: batch.from, servers: [] });
    const dst = groupMaster(topo.groups.get(batch.to) ?? { id: batch.to, servers: [] });
    if (!src || !dst || keysLeft <= 0) return null;
    const opts = { ...this.redis, commandTimeoutMs: 2000 };
    const key = `${batch.from}>${batch.to}:${batch.slots[0]}+${batch.slots.length}`;
    if (this.perKey?.batch !== key) this.perKey = { batch: key, bytes: await bytesPerKey(src.addr, opts) };
    return roomWait(dst.addr, batch.to, keysLeft, this.perKey.bytes, opts);
  }
}
