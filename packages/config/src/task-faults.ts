/**
 * Which failures of a migration step a task waits out and which need an operator, and the
 * clock of a wait (what for, since when, how often retried) — the FAULTS paragraph of
 * task-run.ts and docs/migration-faults.md.
 *
 * Transient (the task stays `running`, says what it waits for, retries from a fresh read of
 * etcd): MigrationWait; a redis server unreachable (named by the group it serves, and by the
 * master etcd names now: a group that failed over is simply continued against); error replies
 * of a server that is restarting, loading, busy, out of memory or no longer master; etcd
 * unavailable or contended. Everything else — MigrationError, and errors nobody foresaw —
 * needs an operator: failing loudly beats retrying a bug forever.
 *
 * Invariant: classification only reads (etcd, one PING); it never changes a slot or a task.
 */
import { CoordinatorError, groupMaster, type Store, type Topology } from '@reborn/coordinator';
import { RedisAdminError, replyCode, withRedis, type RedisAdminOptions } from '@reborn/coordinator/admin';
import { MAX_WAIT_RETRY_MS, MigrationError, MigrationWait, errText, isConnectionError, masterMoved, type Batch } from './migration-common.js';

/** Error replies of a server that is restarting, loading, busy, full or failing over: they pass by themselves. */
const TRANSIENT_REPLIES: ReadonlySet<string> = new Set(['LOADING', 'MASTERDOWN', 'BUSY', 'TRYAGAIN', 'READONLY', 'OOM', 'CLUSTERDOWN']);

/**
 * What the task waits for after `err`, or null when `err` needs an operator (the task then
 * fails). `lastTopo`: the topology as last read, used when etcd cannot be read now.
 */
export async function transientFault(err: unknown, store: Store, lastTopo: Topology | null): Promise<MigrationWait | null> {
  if (err instanceof MigrationWait) return err;
  if (err instanceof MigrationError) return null;
  if (err instanceof RedisAdminError) return serverWait(err.addr, err.why, err, store, lastTopo);
  if (isConnectionError(err)) return new MigrationWait('waiting for redis', errText(err), { cause: err });
  const code = replyCode(err);
  if (code !== null && TRANSIENT_REPLIES.has(code)) return new MigrationWait('waiting for redis to take commands', errText(err), { cause: err });
  if (err instanceof CoordinatorError && err.retryable) return new MigrationWait('waiting for etcd', errText(err), { cause: err });
  return null;
}

/** `addr` failed: a wait for its group's master — or a move to the new one — as etcd says now. */
async function serverWait(addr: string, why: string, cause: unknown, store: Store, lastTopo: Topology | null): Promise<MigrationWait> {
  const topo = await store.loadTopology().catch(() => lastTopo);
  const group = topo ? [...topo.groups.values()].find((g) => g.servers.some((s) => s.addr === addr)) : undefined;
  if (!group) return new MigrationWait(`waiting for redis ${addr}`, why, { cause });
  const master = groupMaster(group)?.addr;
  if (master !== addr) return masterMoved(group.id, addr, master);
  return new MigrationWait(`waiting for group ${group.id} to have a reachable master`, `${addr}: ${why}`, { cause });
}

/**
 * Before slots of `batch` enter pre_migrate: both groups have a master that answers PING (a
 * batch started into a group being failed over would only turn its clients' requests into
 * errors). Null when both do.
 */
export async function mastersReady(batch: Batch, topo: Topology, redis: RedisAdminOptions): Promise<MigrationWait | null> {
  for (const gid of [batch.from, batch.to]) {
    const master = groupMaster(topo.groups.get(gid) ?? { id: gid, servers: [] });
    if (!master) return new MigrationWait(`waiting for group ${gid} to have a master`, 'etcd names none: failover in progress');
    try {
      await withRedis(master.addr, (r) => r.ping(), { ...redis, connectTimeoutMs: 1000, commandTimeoutMs: 2000 });
    } catch (err) {
      return new MigrationWait(`waiting for group ${gid} to have a reachable master`, `${master.addr}: ${err instanceof RedisAdminError ? err.why : errText(err)}`, { cause: err });
    }
  }
  return null;
}

/** One wait as it goes on: the reason to show, whether it just began, and the pause before the next try. */
export interface WaitTick {
  reason: string;
  began: boolean;
  retries: number;
  pauseMs: number;
}

/** The clock of the wait a task run is in (if any): the same `waitingFor` is one wait, however many retries. */
export class WaitClock {
  private waitingFor: string | null = null;
  private startedAt = 0;
  private retries = 0;

  tick(w: MigrationWait, now = Date.now()): WaitTick {
    const began = this.waitingFor !== w.waitingFor;
    if (began) {
      this.waitingFor = w.waitingFor;
      this.startedAt = now;
      this.retries = 0;
    }
    this.retries++;
    const secs = Math.round((now - this.startedAt) / 1000);
    return {
      reason: `${w.waitingFor} (${w.detail}${secs > 0 ? `; since ${secs} s` : ''})`,
      began,
      retries: this.retries,
      pauseMs: w.retryInMs ?? Math.min(MAX_WAIT_RETRY_MS, 100 * 2 ** Math.min(this.retries, 5)),
    };
  }

  /** The wait ended (keys move again): what it was for and how long it lasted, or null if none. */
  end(now = Date.now()): { waitedFor: string; waitedMs: number } | null {
    if (this.waitingFor === null) return null;
    const out = { waitedFor: this.waitingFor, waitedMs: now - this.startedAt };
    this.waitingFor = null;
    return out;
  }
}
