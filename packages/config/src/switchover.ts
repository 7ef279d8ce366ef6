/**
 * The graceful switchover of a healthy group (`server promote`), step by step:
 *   1. check: the candidate is a replica of the group's master, its link is up; no slot of
 *      the group is migrating (the runner and the proxies address the group's master);
 *   2. CLIENT PAUSE <ms> WRITE on the old master: writes wait (the pause expires by itself
 *      if we die, so the group cannot stay frozen);
 *   3. wait until the candidate's replication offset reaches the master's — it then has
 *      every write the old master ever acknowledged;
 *   4. REPLICAOF NO ONE on the candidate;
 *   5. the group in etcd: candidate → master, old master → replica (proxies switch now);
 *      if etcd refuses, undo 4 and unpause: nothing changed;
 *   6. REPLICAOF <candidate> on the old master and on the other replicas;
 *   7. CLIENT UNPAUSE on the old master (writes that waited there now fail READONLY, which
 *      a client sees as an error, never as a lost acknowledged write).
 *
 * Invariant: etcd names the candidate master only after it has every acknowledged write of
 * the old master; if etcd refuses, the candidate is turned back into a replica.
 *
 * A fault at each step (this process dies, a server or etcd fails) leaves a state that
 * finishes or rolls back by itself, and re-running the command is safe:
 *   - before 4: nothing changed but a write pause, which expires by itself (catch-up + 10 s);
 *   - after 4, before 5 is written: etcd still names the old master; the candidate is a
 *     detached master nobody writes (proxies follow etcd). It is turned back by the catch
 *     below, or — if this process died — re-pointed by the HA leader, which makes every
 *     server etcd lists as a replica replicate from the group's master. A re-run then sees a
 *     healthy replica again (until then it refuses: "not replicating from master");
 *   - etcd unsure whether 5 was written: read back; written → the new layout stands,
 *     otherwise the candidate is turned back (and the error says so);
 *   - after 5, before 6/7: etcd names the candidate; the old master, listed as a replica, is
 *     re-pointed by the HA leader; its pause expires by itself. A re-run answers "already the
 *     master". The old master stays outside the in-sync set until it has caught up.
 * A migration never sees this: a group that is part of one is refused, atomically with the
 * etcd write (the slots guard).
 */
import type { Redis } from 'ioredis';
import {
  ConflictError,
  NotFoundError,
  ServerRole,
  UnavailableError,
  guardedWrite,
  op,
  encodeGroup,
  groupMaster,
  splitAddr,
  type GroupInfo,
  type Store,
  withServers,
} from '@reborn/coordinator';
import { OperationTimeoutError, ServerUnreachableError } from './errors.js';
import type { AdminState } from './admin-state.js';
import { checkAddr, checkGroupId } from './admin-checks.js';
import { movingSlotOf, type GroupView } from './admin-views.js';
import { connectRedis, redisAdmin, replicaOf, replicationFields, replicationLogin, sleep, withRedis, type RedisConn } from './server-redis.js';

export interface SwitchoverContext {
  store: Store;
  state: AdminState;
  redis: RedisConn;
  /** How long the candidate may take to catch up. */
  catchUpTimeoutMs: number;
}

export interface PromoteResult {
  group: GroupView;
  oldMaster: string;
  offset: string;
  warnings: string[];
}

/**
 * Graceful switchover; the steps are written at the top of this file. One function on
 * purpose (~110 lines): the `finally` that unpauses the old master and closes both
 * connections must cover every step from the pause on.
 */
export async function promoteServer(ctx: SwitchoverContext, gid: number, addr: string): Promise<PromoteResult> {
  checkGroupId(gid);
  checkAddr(addr);
  const snap = await ctx.state.snapshot();
  const group = ctx.state.requireGroup(snap, gid);
  const server = group.servers.find((s) => s.addr === addr);
  if (!server) throw new NotFoundError(`server ${addr} is not in group ${gid}`);
  if (server.role === ServerRole.Master) throw new ConflictError(`server ${addr} is already the master of group ${gid}`);
  const master = groupMaster(group);
  if (!master) throw new ConflictError(`group ${gid} has no master to switch over from`);
  const moving = movingSlotOf(snap.slots, gid);
  if (moving) {
    throw new ConflictError(`group ${gid} is part of a slot migration (slot ${moving.id} ${moving.state} ${moving.from}→${moving.to}); wait for it or pause it first`);
  }
  const others = group.servers.filter((s) => s.role === ServerRole.Replica && s.addr !== addr).map((s) => s.addr);
  const warnings: string[] = [];
  const t = ctx.redis;
  const login = await replicationLogin(ctx.store);
  const old = await connectRedis(master.addr, t).catch((err: Error) => {
    throw new ServerUnreachableError(`${err.message}; a graceful switchover needs a healthy master (failover is the agent's job)`, err);
  });
  let cand: Redis | null = null;
  let paused = false;
  try {
    cand = await connectRedis(addr, t);
    const ci = await replicationFields(cand);
    const m = splitAddr(master.addr);
    if (ci['role'] !== 'slave' || ci['master_host'] !== m.host || ci['master_port'] !== String(m.port)) {
      throw new ConflictError(`server ${addr} is not replicating from master ${master.addr}; it cannot be promoted gracefully`);
    }
    if (ci['master_link_status'] !== 'up') {
      throw new ConflictError(`server ${addr} has its replication link to ${master.addr} down; it cannot be promoted gracefully`);
    }

    // 2. Writes wait on the old master; the pause outlives our wait so it cannot end early.
    await old.call('CLIENT', 'PAUSE', String(ctx.catchUpTimeoutMs + 10_000), 'WRITE');
    paused = true;
    // 3. The candidate must reach the offset the master has now.
    const { replicationInfo, replicationOffset } = await redisAdmin();
    const target = BigInt(replicationInfo(await replicationFields(old)).masterReplOffset ?? 0);
    const deadline = Date.now() + ctx.catchUpTimeoutMs;
    let offset = -1n;
    for (;;) {
      offset = BigInt(replicationOffset(replicationInfo(await replicationFields(cand))) ?? -1);
      if (offset >= target) break;
      if (Date.now() >= deadline) {
        throw new OperationTimeoutError(
          `replica ${addr} did not catch up with master ${master.addr} within ${ctx.catchUpTimeoutMs} ms (offset ${offset} < ${target}); nothing changed`,
        );
      }
      await sleep(20);
    }
    // 4.
    await cand.replicaof('NO', 'ONE');
    // 5.
    // The old master becomes a replica outside the in-sync set: it rejoins once caught up.
    const next: GroupInfo = withServers(
      group,
      group.servers.map((s) =>
        s.addr === addr ? { addr, role: ServerRole.Master } : s.addr === master.addr ? { addr: s.addr, role: ServerRole.Replica } : s,
      ),
    );
    try {
      const key = ctx.store.paths.group(gid);
      const res = await ctx.store.call(`promote ${addr} in group ${gid}`, async () => {
        // Re-check on fresh state what step 1 checked: a migration that started during the
        // catch-up wait must not see its group's master change under it. The slots guard
        // below makes the check and the write one atomic decision.
        const fresh = await ctx.state.snapshot();
        const nowMoving = movingSlotOf(fresh.slots, gid) !== undefined;
        const cur = fresh.groups.get(gid);
        if (nowMoving || cur === undefined || encodeGroup(cur) !== encodeGroup(group)) return null;
        return guardedWrite(ctx.store, `promote ${addr} in group ${gid}`, ctx.state.guards(['slots', 'groups'], fresh.revision), [op.put(key, encodeGroup(next))]);
      });
      if (res === null || !res.succeeded) {
        throw new ConflictError(`group ${gid} changed, or a migration involving it started, during the switchover; nothing changed, try again`, { retryable: true });
      }
    } catch (err) {
      // Undo 4 unless etcd may have taken the write (then the new layout must stand).
      const written = err instanceof UnavailableError ? await groupHasMaster(ctx.store, gid, addr) : false;
      if (written !== true) {
        await replicaOf(cand, master.addr, ctx.redis, login).catch(() => undefined);
        if (written === null) {
          throw new UnavailableError(
            `etcd did not confirm the promotion of ${addr} in group ${gid}: it was turned back into a replica of ${master.addr}; check "group list" and retry`,
            err,
          );
        }
        throw err;
      }
    }
    // 6.
    await replicaOf(old, addr, t, login).catch((err: Error) => {
      warnings.push(`old master ${master.addr} did not accept REPLICAOF ${addr}: ${err.message}`);
    });
    for (const r of others) {
      await withRedis(r, t, (c) => replicaOf(c, addr, t, login)).catch((err: Error) => {
        warnings.push(`replica ${r} was not re-pointed to ${addr}: ${err.message}`);
      });
    }
    const after = await ctx.state.snapshot();
    return { group: ctx.state.groupView(ctx.state.requireGroup(after, gid), after), oldMaster: master.addr, offset: String(offset), warnings };
  } finally {
    // 7.
    if (paused) await old.call('CLIENT', 'UNPAUSE').catch(() => undefined);
    old.disconnect();
    cand?.disconnect();
  }
}

/** Whether etcd shows `addr` as the master of `gid`; null when etcd cannot tell. */
async function groupHasMaster(store: Store, gid: number, addr: string): Promise<boolean | null> {
  try {
    const g = await store.getGroup(gid);
    return g !== null && groupMaster(g)?.addr === addr;
  } catch {
    return null;
  }
}
