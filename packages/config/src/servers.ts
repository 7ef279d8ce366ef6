/**
 * The operations of reborn-config — groups, servers, slots, migrations, proxies — shared by
 * the CLI (cli.ts) and the REST API (api.ts). Both front ends only turn text or JSON into
 * typed arguments; every check that an operator's request makes sense (ranges, existence,
 * "still owns slots", "already in a group") is made here, once, so the CLI and the API
 * refuse the same things with the same words.
 *
 * Consistency. Each change is decided on a snapshot of slots, groups and migrations read in
 * one etcd transaction at revision R, and written in a transaction guarded by "none of the
 * ranges the decision read has changed since R". A concurrent change makes the write fail
 * and the operation re-decides from a fresh snapshot, so two operators can never, say, put
 * the same server into two groups, or remove a group while slots are being assigned to it.
 *
 * Redis. Every redis call has a connect and a command timeout; a server that does not answer
 * is ServerUnreachableError, a bounded wait that runs out is OperationTimeoutError.
 *
 * server promote — a graceful switchover of a healthy group:
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
 */
import type { Redis } from 'ioredis';
import type { InfoFields } from '@reborn/coordinator/admin';
import type { Logger } from 'pino';
import {
  ACTIVE_MIGRATION_STATES,
  Barrier,
  ConflictError,
  MAX_GROUP_ID,
  MigrationState,
  Migrations,
  NO_GROUP,
  NotFoundError,
  SLOT_COUNT,
  ServerRole,
  SlotState,
  UnavailableError,
  ValidationError,
  decodeJson,
  deleteKey,
  guard,
  guardedWrite,
  op,
  readPrefixes,
  writeChunksGuarded,
  type WriteGuard,
  type StoredValue,
  type WriteOp,
  encodeGroup,
  encodeSlot,
  groupMaster,
  isValidAddr,
  isValidGroupId,
  isValidName,
  isValidSlotId,
  offlineSlot,
  onlineSlot,
  parseGroup,
  parseMigration,
  parseSlot,
  splitAddr,
  type ActionInfo,
  type FenceInfo,
  type GroupInfo,
  type GroupServer,
  type MigrationTask,
  type ProxyInfo,
  type SlotInfo,
  type Store,
} from '@reborn/coordinator';
import { OperationTimeoutError, ServerUnreachableError } from './errors.js';

// ioredis and the migration machinery are loaded on first use: every CLI call pays for what
// it imports, and most verbs need neither (etcd3 alone is most of a call's start-up time).
const runnerApi = () => import('./runner-api.js');
const redisAdmin = () => import('@reborn/coordinator/admin');

// ---------------------------------------------------------------------------------------------
// Input checks shared by the CLI and the API. Messages name the value and what is wanted.

export function checkGroupId(id: number): number {
  if (!isValidGroupId(id)) throw new ValidationError(`invalid group id ${id}: want 1..${MAX_GROUP_ID}`);
  return id;
}

export function checkSlotId(id: number): number {
  if (!isValidSlotId(id)) throw new ValidationError(`slot ${id} is out of range 0..${SLOT_COUNT - 1}`);
  return id;
}

export function checkSlotRange(first: number, last: number): void {
  checkSlotId(first);
  checkSlotId(last);
  if (first > last) throw new ValidationError(`invalid slot range ${first}-${last}: from must not be greater than to`);
}

export function checkAddr(addr: string): string {
  if (!isValidAddr(addr)) throw new ValidationError(`invalid server address ${JSON.stringify(addr)}: want host:port`);
  return addr;
}

export function checkMigrationId(id: string): string {
  if (!isValidName(id)) throw new ValidationError(`invalid migration id ${JSON.stringify(id)}`);
  return id;
}

export function checkProxyId(id: string): string {
  if (!isValidName(id)) throw new ValidationError(`invalid proxy id ${JSON.stringify(id)}`);
  return id;
}


// ---------------------------------------------------------------------------------------------
// Views returned to the front ends (the JSON of the API and of `--json`).

export interface GroupView {
  id: number;
  servers: GroupServer[];
  /** Slots the group owns (online, or the source of a migration). */
  slots: number;
}

/** Consecutive slots in the same state: `first..last` inclusive. */
export interface SlotRange {
  first: number;
  last: number;
  state: SlotState;
  group: number;
  from?: number;
  to?: number;
}

export interface SlotView extends SlotInfo {
  /** The owner group's master, or null. */
  master: string | null;
  /** The active migration task that includes this slot, or null. */
  migration: string | null;
}

export interface ProxyView {
  id: string;
  state: string;
  addr: string | null;
  adminAddr: string | null;
  pid: number | null;
  host: string | null;
  startedAt: string | null;
  /** Registered in etcd now (lease-bound; a fenced proxy that has not come back is not). */
  registered: boolean;
  /**
   * Has a member key: it may be serving, so barriers wait for it. A member that is not
   * registered (state `lost`) lost etcd and may still serve with an old table.
   */
  member: boolean;
  fence: FenceInfo | null;
}

export interface BarrierView {
  seq: number;
  slots: number[];
  createdAt: string;
  note: string;
  waitingFor: string[];
}

export interface Overview {
  product: string;
  groups: GroupView[];
  slots: { byState: Record<string, number>; byGroup: Record<string, number> };
  proxies: ProxyView[];
  fences: FenceInfo[];
  barriers: BarrierView[];
  migrations: MigrationTask[];
  runnerAlive: boolean;
  /** Every product with a slot table in this etcd (this one included). */
  products: string[];
}

export interface RebalancePlanView {
  moves: Array<{ first: number; last: number; from: number; to: number; kind: 'migrate' | 'assign' }>;
  summary: string[];
}

/** Groups the slots into runs of equal state/group/from/to. */
export function compactSlots(slots: readonly SlotInfo[]): SlotRange[] {
  const out: SlotRange[] = [];
  for (const s of slots) {
    const cur = out[out.length - 1];
    if (cur && cur.last === s.id - 1 && cur.state === s.state && cur.group === s.group && cur.from === s.from && cur.to === s.to) {
      cur.last = s.id;
    } else {
      out.push({ first: s.id, last: s.id, state: s.state, group: s.group, ...(s.from === undefined ? {} : { from: s.from, to: s.to }) });
    }
  }
  return out;
}

/** Contiguous, as even as integer division allows: group i of n gets [i·1024/n, (i+1)·1024/n). */
export function evenRanges(groupIds: readonly number[]): Array<{ first: number; last: number; group: number }> {
  const n = groupIds.length;
  return groupIds.map((group, i) => ({
    first: Math.floor((i * SLOT_COUNT) / n),
    last: Math.floor(((i + 1) * SLOT_COUNT) / n) - 1,
    group,
  }));
}

export type MigrationOp = 'pause' | 'resume' | 'cancel';

/**
 * The state an operator's pause/resume/cancel moves a task to; `null` when it is already
 * there (a no-op, not an error); ConflictError for a transition the state machine forbids.
 */
export function migrationTransition(task: Pick<MigrationTask, 'id' | 'state'>, op: MigrationOp): MigrationState | null {
  const { id, state } = task;
  const refuse = (why: string): never => {
    throw new ConflictError(`cannot ${op} migration ${id}: it is ${why}`);
  };
  const finished = (): never => refuse(state === MigrationState.Failed ? 'failed' : state);
  switch (op) {
    case 'pause':
      if (state === MigrationState.Pending || state === MigrationState.Running) return MigrationState.Paused;
      if (state === MigrationState.Paused) return null;
      if (state === MigrationState.Cancelling) return refuse('being cancelled');
      return finished();
    case 'resume':
      // A failed task keeps its migrating batch split between groups: resuming (once the
      // cause is fixed) is the way to finish it.
      if (state === MigrationState.Paused || state === MigrationState.Failed) return MigrationState.Running;
      if (state === MigrationState.Pending || state === MigrationState.Running) return null;
      if (state === MigrationState.Cancelling) return refuse('being cancelled');
      return finished();
    case 'cancel':
      if (state === MigrationState.Pending || state === MigrationState.Running || state === MigrationState.Paused) {
        return MigrationState.Cancelling;
      }
      if (state === MigrationState.Cancelling) return null;
      return finished();
  }
}

/** Slot ids of a task as compact text: `0-63,100`. */
export function formatSlotList(ids: readonly number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < ids.length) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
    parts.push(i === j ? String(ids[i]) : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

// ---------------------------------------------------------------------------------------------
// Redis helpers

export interface AdminOptions {
  /** Where operations that log (fencing) write; none by default. */
  logger?: Logger;
  /** Connect and per-command timeout for redis servers. Default 3000. */
  redisTimeoutMs?: number;
  /** The servers' default-user password (requirepass), or none. */
  redisPassword?: string | null;
  /** How long a new replica may take for its initial sync. Default 60000. */
  syncTimeoutMs?: number;
  /** How long a promotion waits for the candidate to catch up. Default 10000. */
  catchUpTimeoutMs?: number;
}

/** How Admin reaches a redis server: one timeout for connect and each command, and the password. */
interface RedisConn {
  timeoutMs: number;
  password: string | null;
}

/**
 * A connected admin client to `addr` that has answered PING; anything else is
 * ServerUnreachableError (`server <addr> is unreachable: <why>`).
 */
async function connectRedis(addr: string, { timeoutMs, password }: RedisConn): Promise<Redis> {
  const { connectAdmin, RedisAdminError } = await redisAdmin();
  let c: Redis | null = null;
  try {
    c = await connectAdmin(addr, { connectTimeoutMs: timeoutMs, commandTimeoutMs: timeoutMs, password });
    const pong = await c.ping();
    if (pong !== 'PONG') throw new Error(`PING answered ${pong}`);
    return c;
  } catch (err) {
    c?.disconnect();
    const why = err instanceof RedisAdminError ? err.reason : (err as Error).message;
    throw new ServerUnreachableError(`server ${addr} is unreachable: ${why}`, err);
  }
}

async function withRedis<T>(addr: string, conn: RedisConn, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = await connectRedis(addr, conn);
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

/** REPLICAOF `master` (host:port) on `c`, with masterauth first where the servers have a password. */
async function replicaOf(c: Redis, master: string, { password }: RedisConn): Promise<void> {
  await (await redisAdmin()).replicaOf(c, master, password);
}

/** INFO replication of `c` as fields (`role` → `master`, …). */
async function replicationFields(c: Redis): Promise<InfoFields> {
  return (await redisAdmin()).parseInfo(await c.info('replication'));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// Snapshots and guarded writes

/** Slots, groups and migrations as read at one etcd revision. */
interface Snapshot {
  revision: string;
  slots: SlotInfo[];
  groups: Map<number, GroupInfo>;
  migrations: MigrationTask[];
}

type Guard = 'slots' | 'groups' | 'migrations';

export class Admin {
  private readonly redis: RedisConn;
  private readonly syncTimeoutMs: number;
  private readonly catchUpTimeoutMs: number;
  private readonly migrations: Migrations;
  private readonly barrier: Barrier;
  private readonly logger: Logger | undefined;

  constructor(
    readonly store: Store,
    opts: AdminOptions = {},
  ) {
    this.redis = { timeoutMs: opts.redisTimeoutMs ?? 3000, password: opts.redisPassword ?? null };
    this.syncTimeoutMs = opts.syncTimeoutMs ?? 60_000;
    this.catchUpTimeoutMs = opts.catchUpTimeoutMs ?? 10_000;
    this.logger = opts.logger;
    this.migrations = new Migrations(store);
    this.barrier = new Barrier(store);
  }

  get product(): string {
    return this.store.product;
  }

  // -------------------------------------------------------------------------------------------
  // Groups

  async listGroups(): Promise<GroupView[]> {
    const snap = await this.snapshot();
    return [...snap.groups.values()].map((g) => this.groupView(g, snap));
  }

  async getGroup(gid: number): Promise<GroupView> {
    checkGroupId(gid);
    const snap = await this.snapshot();
    return this.groupView(this.requireGroup(snap, gid), snap);
  }

  async addGroup(gid: number): Promise<GroupView> {
    checkGroupId(gid);
    // The product's first group creates it: give it its identity (docs/topology-identity.md).
    await this.store.ensureIdentity();
    const key = this.store.paths.group(gid);
    const group: GroupInfo = { id: gid, servers: [] };
    const res = await guardedWrite(this.store, `create group ${gid}`, [guard.absent(key)], [op.put(key, encodeGroup(group))]);
    if (!res.succeeded) throw new ConflictError(`group ${gid} already exists`);
    return { ...group, servers: [], slots: 0 };
  }

  async removeGroup(gid: number): Promise<void> {
    checkGroupId(gid);
    await this.retry(`remove group ${gid}`, async (snap) => {
      this.requireGroup(snap, gid);
      const owned = snap.slots.filter((s) => s.group === gid || s.from === gid || s.to === gid);
      if (owned.length > 0) {
        throw new ConflictError(
          `group ${gid} still owns ${owned.length} slot(s) (${formatSlotList(owned.map((s) => s.id))}); move them to another group first`,
        );
      }
      const task = snap.migrations.find((t) => ACTIVE_MIGRATION_STATES.has(t.state) && (t.to === gid || t.from.includes(gid)));
      if (task) throw new ConflictError(`group ${gid} is part of active migration ${task.id}; wait for it or cancel it first`);
      return [op.delete(this.store.paths.group(gid))];
    }, ['slots', 'groups', 'migrations']);
  }

  // -------------------------------------------------------------------------------------------
  // Servers

  /**
   * Adds `addr` to group `gid`: as its master when the group has no server yet, else as a
   * replica of the master — after REPLICAOF and a complete initial sync, so the group never
   * lists a replica that does not have the data.
   */
  async addServer(gid: number, addr: string): Promise<{ group: GroupView; role: ServerRole }> {
    checkGroupId(gid);
    checkAddr(addr);
    const check = (snap: Snapshot): { group: GroupInfo; master: GroupServer | undefined } => {
      const group = this.requireGroup(snap, gid);
      for (const g of snap.groups.values()) {
        if (g.servers.some((s) => s.addr === addr)) throw new ConflictError(`server ${addr} is already in group ${g.id}`);
      }
      const master = groupMaster(group);
      if (!master && group.servers.length > 0) {
        throw new ConflictError(`group ${gid} has servers but no master; promote one of them before adding another`);
      }
      return { group, master };
    };
    const before = check(await this.snapshot());

    await withRedis(addr, this.redis, async (c) => {
      const info = await replicationFields(c);
      if (!before.master) {
        if (info['role'] !== 'master') {
          throw new ConflictError(
            `server ${addr} is a replica of ${info['master_host']}:${info['master_port']}; run REPLICAOF NO ONE on it before making it the master of group ${gid}`,
          );
        }
        return;
      }
      await this.replicate(c, addr, before.master.addr);
    });

    try {
      const role = before.master ? ServerRole.Replica : ServerRole.Master;
      const snap = await this.retry(`add server ${addr} to group ${gid}`, async (snap) => {
        const now = check(snap);
        if (now.master?.addr !== before.master?.addr) {
          throw new ConflictError(`the master of group ${gid} changed while ${addr} was syncing; add it again`, { retryable: true });
        }
        const next: GroupInfo = { id: gid, servers: [...now.group.servers, { addr, role }] };
        return [op.put(this.store.paths.group(gid), encodeGroup(next))];
      }, ['groups']);
      return { group: this.groupView(this.requireGroup(snap, gid), snap), role };
    } catch (err) {
      // Not recorded: do not leave a server replicating from a group it is not part of.
      if (before.master) await withRedis(addr, this.redis, (c) => c.replicaof('NO', 'ONE')).catch(() => undefined);
      throw err;
    }
  }

  /** REPLICAOF master on `c`, then wait for master_link_status:up and no sync in progress. */
  private async replicate(c: Redis, addr: string, masterAddr: string): Promise<void> {
    // Check the master answers before pointing anything at it.
    await withRedis(masterAddr, this.redis, (m) => m.ping()).catch((err: Error) => {
      throw new ServerUnreachableError(`cannot add replica ${addr}: the group master did not answer (${err.message})`, err);
    });
    const { host, port } = splitAddr(masterAddr);
    await replicaOf(c, masterAddr, this.redis);
    const deadline = Date.now() + this.syncTimeoutMs;
    let info: InfoFields = {};
    for (;;) {
      try {
        info = await replicationFields(c);
        const linked = info['master_host'] === host && info['master_port'] === String(port);
        if (linked && info['master_link_status'] === 'up' && info['master_sync_in_progress'] === '0') return;
      } catch {
        // A replica loading the RDB may answer -LOADING for a moment; keep waiting.
      }
      if (Date.now() >= deadline) {
        await c.replicaof('NO', 'ONE').catch(() => undefined);
        throw new OperationTimeoutError(
          `replica ${addr} did not finish its initial sync from master ${masterAddr} within ${this.syncTimeoutMs} ms ` +
            `(master_link_status:${info['master_link_status'] ?? '?'}); it was not added`,
        );
      }
      await sleep(100);
    }
  }

  async removeServer(gid: number, addr: string): Promise<{ role: ServerRole }> {
    checkGroupId(gid);
    checkAddr(addr);
    let role: ServerRole = ServerRole.Replica;
    await this.retry(`remove server ${addr} from group ${gid}`, async (snap) => {
      const group = this.requireGroup(snap, gid);
      const server = group.servers.find((s) => s.addr === addr);
      if (!server) throw new NotFoundError(`server ${addr} is not in group ${gid}`);
      role = server.role;
      if (server.role === ServerRole.Master) {
        const owned = snap.slots.filter((s) => s.group === gid || s.from === gid || s.to === gid).length;
        if (owned > 0) {
          throw new ConflictError(`server ${addr} is the master of group ${gid}, which still owns ${owned} slot(s); move them away first`);
        }
        const replicas = group.servers.length - 1;
        if (replicas > 0) {
          throw new ConflictError(
            `server ${addr} is the master of group ${gid}, which still has ${replicas} replica(s); remove them or promote one first`,
          );
        }
      }
      const next: GroupInfo = { id: gid, servers: group.servers.filter((s) => s.addr !== addr) };
      return [op.put(this.store.paths.group(gid), encodeGroup(next))];
    }, ['slots', 'groups']);
    return { role };
  }

  /** Graceful switchover; the steps are written at the top of this file. */
  async promoteServer(gid: number, addr: string): Promise<{ group: GroupView; oldMaster: string; offset: string; warnings: string[] }> {
    checkGroupId(gid);
    checkAddr(addr);
    const snap = await this.snapshot();
    const group = this.requireGroup(snap, gid);
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
    const t = this.redis;
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
      await old.call('CLIENT', 'PAUSE', String(this.catchUpTimeoutMs + 10_000), 'WRITE');
      paused = true;
      // 3. The candidate must reach the offset the master has now.
      const { replicationInfo, replicationOffset } = await redisAdmin();
      const target = BigInt(replicationInfo(await replicationFields(old)).masterReplOffset ?? 0);
      const deadline = Date.now() + this.catchUpTimeoutMs;
      let offset = -1n;
      for (;;) {
        offset = BigInt(replicationOffset(replicationInfo(await replicationFields(cand))) ?? -1);
        if (offset >= target) break;
        if (Date.now() >= deadline) {
          throw new OperationTimeoutError(
            `replica ${addr} did not catch up with master ${master.addr} within ${this.catchUpTimeoutMs} ms (offset ${offset} < ${target}); nothing changed`,
          );
        }
        await sleep(20);
      }
      // 4.
      await cand.replicaof('NO', 'ONE');
      // 5.
      const next: GroupInfo = {
        id: gid,
        servers: group.servers.map((s) =>
          s.addr === addr ? { addr, role: ServerRole.Master } : s.addr === master.addr ? { addr: s.addr, role: ServerRole.Replica } : s,
        ),
      };
      try {
        const key = this.store.paths.group(gid);
        const res = await this.store.call(`promote ${addr} in group ${gid}`, async () => {
          // Re-check on fresh state what step 1 checked: a migration that started during the
          // catch-up wait must not see its group's master change under it. The slots guard
          // below makes the check and the write one atomic decision.
          const fresh = await this.snapshot();
          const nowMoving = movingSlotOf(fresh.slots, gid) !== undefined;
          const cur = fresh.groups.get(gid);
          if (nowMoving || cur === undefined || encodeGroup(cur) !== encodeGroup(group)) return null;
          return guardedWrite(this.store, `promote ${addr} in group ${gid}`, this.guards(['slots', 'groups'], fresh.revision), [op.put(key, encodeGroup(next))]);
        });
        if (res === null || !res.succeeded) {
          throw new ConflictError(`group ${gid} changed, or a migration involving it started, during the switchover; nothing changed, try again`, { retryable: true });
        }
      } catch (err) {
        // Undo 4 unless etcd may have taken the write (then the new layout must stand).
        const written = err instanceof UnavailableError ? await this.groupHasMaster(gid, addr) : false;
        if (written !== true) {
          await replicaOf(cand, master.addr, this.redis).catch(() => undefined);
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
      await replicaOf(old, addr, t).catch((err: Error) => {
        warnings.push(`old master ${master.addr} did not accept REPLICAOF ${addr}: ${err.message}`);
      });
      for (const r of others) {
        await withRedis(r, t, (c) => replicaOf(c, addr, t)).catch((err: Error) => {
          warnings.push(`replica ${r} was not re-pointed to ${addr}: ${err.message}`);
        });
      }
      const after = await this.snapshot();
      return { group: this.groupView(this.requireGroup(after, gid), after), oldMaster: master.addr, offset: String(offset), warnings };
    } finally {
      // 7.
      if (paused) await old.call('CLIENT', 'UNPAUSE').catch(() => undefined);
      old.disconnect();
      cand?.disconnect();
    }
  }

  /** Whether etcd shows `addr` as the master of `gid`; null when etcd cannot tell. */
  private async groupHasMaster(gid: number, addr: string): Promise<boolean | null> {
    try {
      const g = await this.store.getGroup(gid);
      return g !== null && groupMaster(g)?.addr === addr;
    } catch {
      return null;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Slots

  async listSlots(): Promise<SlotRange[]> {
    return compactSlots(await this.store.listSlots());
  }

  async slotInfo(id: number): Promise<SlotView> {
    checkSlotId(id);
    const snap = await this.snapshot();
    const slot = snap.slots[id]!;
    const owner = snap.groups.get(slot.group);
    const task = snap.migrations.find((t) => ACTIVE_MIGRATION_STATES.has(t.state) && t.slots.includes(id));
    return { ...slot, master: (owner && groupMaster(owner)?.addr) ?? null, migration: task?.id ?? null };
  }

  /** Spreads all slots evenly (contiguous ranges) over the groups that have a master. */
  async initSlots(force: boolean): Promise<Array<{ first: number; last: number; group: number }>> {
    await this.store.ensureIdentity();
    let plan: Array<{ first: number; last: number; group: number }> = [];
    await this.writeSlots('init slots', (snap) => {
      this.refuseDuringMigration(snap, 'reinitialise the slots');
      const assigned = snap.slots.filter((s) => s.state !== SlotState.Offline);
      if (assigned.length > 0 && !force) {
        const s = assigned[0]!;
        throw new ConflictError(
          `${assigned.length} slot(s) are already assigned (e.g. slot ${s.id} ${s.state} in group ${s.group}); use --force to reassign all of them`,
        );
      }
      const ids = [...snap.groups.values()].filter((g) => groupMaster(g)).map((g) => g.id);
      if (ids.length === 0) throw new ConflictError('no group has a master: add groups and servers first');
      plan = evenRanges(ids);
      return plan.flatMap(({ first, last, group }) => Array.from({ length: last - first + 1 }, (_, i) => onlineSlot(first + i, group)));
    });
    return plan;
  }

  /** Sets slots first..last online in `gid` directly. No data is moved. */
  async setSlots(first: number, last: number, gid: number): Promise<{ changedOwner: number }> {
    checkSlotRange(first, last);
    checkGroupId(gid);
    let changedOwner = 0;
    await this.writeSlots(`set slots ${first}-${last}`, (snap) => {
      const group = this.requireGroup(snap, gid);
      if (!groupMaster(group)) throw new ConflictError(`group ${gid} has no master: add a server to it first`);
      const range = snap.slots.slice(first, last + 1);
      const moving = range.find((s) => s.state === SlotState.Migrating || s.state === SlotState.PreMigrate);
      if (moving) {
        throw new ConflictError(`slot ${moving.id} is ${moving.state} (${moving.from}→${moving.to}); wait for its migration or cancel it first`);
      }
      const task = snap.migrations.find((t) => ACTIVE_MIGRATION_STATES.has(t.state) && t.slots.some((s) => s >= first && s <= last));
      if (task) {
        const s = task.slots.find((x) => x >= first && x <= last);
        throw new ConflictError(`slot ${s} is part of active migration ${task.id}; wait for it or cancel it first`);
      }
      changedOwner = range.filter((s) => s.state === SlotState.Online && s.group !== gid).length;
      return range.map((s) => onlineSlot(s.id, gid));
    });
    return { changedOwner };
  }

  // -------------------------------------------------------------------------------------------
  // Migrations

  async listMigrations(): Promise<MigrationTask[]> {
    return (await this.migrations.list()).map((m) => m.task);
  }

  async getMigration(id: string): Promise<MigrationTask> {
    checkMigrationId(id);
    const m = await this.migrations.get(id);
    if (!m) throw new NotFoundError(`migration ${id} does not exist`);
    return m.task;
  }

  /**
   * Creates the task moving first..last to `gid` (the runner executes it). An active task for
   * exactly these slots and target is resumed instead (e.g. after Ctrl-C), and a range that is
   * already online in `gid` needs nothing: `task` is then null.
   */
  async startMigration(
    first: number,
    last: number,
    gid: number,
    opts: { throttle?: number; batchSlots?: number } = {},
  ): Promise<{ task: MigrationTask | null; resumed: boolean }> {
    checkSlotRange(first, last);
    checkGroupId(gid);
    if (opts.throttle !== undefined && !(Number.isSafeInteger(opts.throttle) && opts.throttle >= 0)) {
      throw new ValidationError(`invalid throttle ${opts.throttle}: want keys per second ≥ 0 (0 = unlimited)`);
    }
    if (opts.batchSlots !== undefined && !(Number.isSafeInteger(opts.batchSlots) && opts.batchSlots >= 1 && opts.batchSlots <= SLOT_COUNT)) {
      throw new ValidationError(`invalid batch size ${opts.batchSlots}: want 1..${SLOT_COUNT} slots`);
    }
    const snap = await this.snapshot();
    const group = this.requireGroup(snap, gid);
    if (!groupMaster(group)) throw new ConflictError(`group ${gid} has no master: add a server to it first`);
    const wanted = Array.from({ length: last - first + 1 }, (_, i) => first + i);
    const same = snap.migrations.find(
      (t) => ACTIVE_MIGRATION_STATES.has(t.state) && t.to === gid && t.slots.length === wanted.length && t.slots.every((s, i) => s === wanted[i]),
    );
    if (same) {
      if (same.state === MigrationState.Cancelling) throw new ConflictError(`migration ${same.id} of these slots is being cancelled; wait for it`);
      const task = same.state === MigrationState.Paused ? await this.changeMigration(same.id, 'resume') : same;
      return { task, resumed: true };
    }
    const range = snap.slots.slice(first, last + 1);
    if (range.every((s) => s.state === SlotState.Online && s.group === gid)) return { task: null, resumed: false };
    const offline = range.find((s) => s.state === SlotState.Offline);
    if (offline) throw new ConflictError(`slot ${offline.id} is offline (no group owns it): assign it with "slot set" instead`);
    const busy = snap.migrations.find((t) => ACTIVE_MIGRATION_STATES.has(t.state) && t.slots.some((s) => s >= first && s <= last));
    if (busy) {
      const s = busy.slots.find((x) => x >= first && x <= last);
      throw new ConflictError(`slot ${s} is already part of active migration ${busy.id} (to group ${busy.to})`);
    }
    const moving = range.find((s) => s.state !== SlotState.Online);
    if (moving) throw new ConflictError(`slot ${moving.id} is ${moving.state} (${moving.from}→${moving.to}) without an active task`);
    const { createMigration } = await runnerApi();
    const task = await createMigration(this.store, {
      first,
      last,
      to: gid,
      ...(opts.throttle === undefined ? {} : { throttle: opts.throttle }),
      ...(opts.batchSlots === undefined ? {} : { batchSlots: opts.batchSlots }),
    });
    return { task, resumed: false };
  }

  /** pause / resume / cancel; a task already in the wanted state is returned unchanged. */
  async changeMigration(id: string, op: MigrationOp): Promise<MigrationTask> {
    checkMigrationId(id);
    return this.migrations.update(id, (t) => {
      const next = migrationTransition(t, op);
      if (next === null) return t;
      // A resumed failed task starts over without its old error.
      return t.state === MigrationState.Failed ? { ...t, state: next, error: null } : { ...t, state: next };
    });
  }

  async runnerAlive(): Promise<boolean> {
    const { isRunnerAlive } = await runnerApi();
    return isRunnerAlive(this.store);
  }

  // -------------------------------------------------------------------------------------------
  // Rebalance

  async rebalancePlan(): Promise<RebalancePlanView> {
    const snap = await this.snapshot();
    this.refuseDuringMigration(snap, 'plan a rebalance');
    const groups = [...snap.groups.values()].filter((g) => groupMaster(g));
    if (groups.length === 0) throw new ConflictError('no group has a master: add groups and servers first');
    const { planRebalance } = await runnerApi();
    const plan = planRebalance(groups, snap.slots);
    return { moves: plan.moves.map((m) => ({ first: m.first, last: m.last, from: m.from, to: m.to, kind: m.kind })), summary: [...plan.summary] };
  }

  /** Plans and creates the tasks of a rebalance; the runner executes them. */
  async rebalance(): Promise<{ plan: RebalancePlanView; tasks: MigrationTask[] }> {
    const snap = await this.snapshot();
    this.refuseDuringMigration(snap, 'rebalance');
    const groups = [...snap.groups.values()].filter((g) => groupMaster(g));
    if (groups.length === 0) throw new ConflictError('no group has a master: add groups and servers first');
    const { planRebalance, executeRebalance } = await runnerApi();
    const plan = planRebalance(groups, snap.slots);
    const tasks = plan.moves.length === 0 ? [] : await executeRebalance(this.store, plan);
    return { plan: { moves: plan.moves.map((m) => ({ first: m.first, last: m.last, from: m.from, to: m.to, kind: m.kind })), summary: [...plan.summary] }, tasks };
  }

  // -------------------------------------------------------------------------------------------
  // Proxies

  async listProxies(): Promise<ProxyView[]> {
    const [proxies, fences, members] = await Promise.all([this.store.listProxies(), this.barrier.listFences(), this.barrier.listMembers()]);
    return mergeProxies(proxies, fences, members);
  }

  /** Fences the proxy at every group's servers, then deletes its registration. */
  async proxyOffline(id: string): Promise<{ fence: FenceInfo; registered: boolean }> {
    checkProxyId(id);
    const [proxies, fences, members, groups] = await Promise.all([
      this.store.listProxies(),
      this.barrier.listFences(),
      this.barrier.listMembers(),
      this.store.listGroups(),
    ]);
    const registered = proxies.some((p) => p.id === id);
    if (!registered && !members.includes(id) && !fences.some((f) => f.proxyId === id)) {
      throw new NotFoundError(`proxy ${id} is not registered`);
    }
    const { fenceProxy } = await runnerApi();
    const fence = await fenceProxy(this.store, {
      proxyId: id,
      groups: groups.map((g) => g.id),
      reason: 'operator: proxy offline',
      ...(this.logger ? { logger: this.logger } : {}),
      redis: { password: this.redis.password },
    });
    const key = this.store.paths.proxy(id);
    await deleteKey(this.store, `delete registration of ${id}`, key);
    return { fence, registered };
  }

  // -------------------------------------------------------------------------------------------

  async overview(): Promise<Overview> {
    const [snap, proxies, fences, members, actions, runnerAlive, products] = await Promise.all([
      this.snapshot(),
      this.store.listProxies(),
      this.barrier.listFences(),
      this.barrier.listMembers(),
      this.barrier.listActions(),
      this.runnerAlive().catch(() => false),
      this.store.listProducts(),
    ]);
    const byState: Record<string, number> = { offline: 0, online: 0, pre_migrate: 0, migrating: 0 };
    const byGroup: Record<string, number> = {};
    for (const g of snap.groups.keys()) byGroup[String(g)] = 0;
    for (const s of snap.slots) {
      byState[s.state] = (byState[s.state] ?? 0) + 1;
      if (s.group !== NO_GROUP) byGroup[String(s.group)] = (byGroup[String(s.group)] ?? 0) + 1;
    }
    return {
      product: this.product,
      groups: [...snap.groups.values()].map((g) => this.groupView(g, snap)),
      slots: { byState, byGroup },
      proxies: mergeProxies(proxies, fences, members),
      fences,
      barriers: await this.stalledBarriers(actions),
      migrations: snap.migrations.filter((t) => ACTIVE_MIGRATION_STATES.has(t.state)),
      runnerAlive,
      products,
    };
  }

  /** Actions still waiting for acks: a stalled barrier is visible to the operator. */
  async stalledBarriers(actions?: ActionInfo[]): Promise<BarrierView[]> {
    actions ??= await this.barrier.listActions();
    const out: BarrierView[] = [];
    for (const a of actions) {
      const acked = new Set(await this.barrier.listAcks(a.seq));
      const waitingFor = a.proxies.filter((p) => !acked.has(p));
      if (waitingFor.length > 0) out.push({ seq: a.seq, slots: [...a.slots], createdAt: a.createdAt, note: a.note, waitingFor });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  private groupView(g: GroupInfo, snap: Snapshot): GroupView {
    return { id: g.id, servers: g.servers.map((s) => ({ ...s })), slots: snap.slots.filter((s) => s.group === g.id).length };
  }

  private requireGroup(snap: Snapshot, gid: number): GroupInfo {
    const g = snap.groups.get(gid);
    if (!g) throw new NotFoundError(`group ${gid} does not exist`);
    return g;
  }

  private refuseDuringMigration(snap: Snapshot, what: string): void {
    const task = snap.migrations.find((t) => ACTIVE_MIGRATION_STATES.has(t.state));
    if (task) throw new ConflictError(`cannot ${what} while migration ${task.id} is ${task.state}; wait for it or cancel it`);
    const moving = snap.slots.find((s) => s.state === SlotState.Migrating || s.state === SlotState.PreMigrate);
    if (moving) throw new ConflictError(`cannot ${what} while slot ${moving.id} is ${moving.state} (${moving.from}→${moving.to})`);
  }

  /** Slots, groups and migrations at one revision. */
  private async snapshot(): Promise<Snapshot> {
    const { paths } = this.store;
    const res = await readPrefixes(this.store, 'read topology', [paths.slots, paths.groups, paths.migrations]);
    const kvs = (i: number): StoredValue[] => res.ranges[i] ?? [];
    const slots = Array.from({ length: SLOT_COUNT }, (_, id) => offlineSlot(id));
    for (const kv of kvs(0)) {
      const key = kv.key;
      const id = paths.slotIdOf(key);
      if (id !== null) slots[id] = parseSlot(decodeJson(kv.value, key), id, key);
    }
    const groups = new Map<number, GroupInfo>();
    for (const kv of kvs(1)) {
      const key = kv.key;
      const id = paths.groupIdOf(key);
      if (id !== null) groups.set(id, parseGroup(decodeJson(kv.value, key), id, key));
    }
    const migrations: MigrationTask[] = [];
    for (const kv of kvs(2)) {
      const key = kv.key;
      if (paths.migrationIdOf(key) !== null) migrations.push(parseMigration(decodeJson(kv.value, key), key));
    }
    migrations.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
    return { revision: res.revision, slots, groups: new Map([...groups].sort(([a], [b]) => a - b)), migrations };
  }

  private guards(kinds: readonly Guard[], revision: string): WriteGuard[] {
    const prefix = { slots: this.store.paths.slots, groups: this.store.paths.groups, migrations: this.store.paths.migrations };
    return kinds.map((k) => guard.prefixUnchangedSince(prefix[k], revision));
  }

  /**
   * Decides on a fresh snapshot and writes the ops `decide` returns, guarded by `kinds` not
   * having changed since; re-decides after a concurrent change. Returns the snapshot after.
   */
  private async retry(what: string, decide: (snap: Snapshot) => Promise<WriteOp[]>, kinds: readonly Guard[]): Promise<Snapshot> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const snap = await this.snapshot();
      const ops = await decide(snap);
      const res = await guardedWrite(this.store, what, this.guards(kinds, snap.revision), ops);
      if (res.succeeded) return this.snapshot();
    }
    throw new ConflictError(`${what}: the cluster kept changing meanwhile; try again`, { retryable: true });
  }

  /**
   * Writes the slots `decide` returns in transactions of at most MAX_TXN_OPS puts. The first
   * is guarded by "nothing read changed since the snapshot", each next one by "nothing
   * changed since our previous write", so no concurrent change slips in between chunks.
   */
  private async writeSlots(what: string, decide: (snap: Snapshot) => SlotInfo[]): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const snap = await this.snapshot();
      const slots = decide(snap);
      const ops = slots.map((s) => op.put(this.store.paths.slot(s.id), encodeSlot(s)));
      const { written } = await writeChunksGuarded(this.store, what, ops, snap.revision, (rev) => this.guards(['slots', 'groups', 'migrations'], rev));
      if (written === ops.length) return;
      if (written > 0) {
        throw new ConflictError(`${what}: the cluster changed part way; ${written} of ${slots.length} slots were written — check "slot list" and run it again`, {
          retryable: true,
        });
      }
    }
    throw new ConflictError(`${what}: the cluster kept changing meanwhile; try again`, { retryable: true });
  }
}

export function mergeProxies(proxies: readonly ProxyInfo[], fences: readonly FenceInfo[], members: readonly string[] = []): ProxyView[] {
  const fenceOf = new Map(fences.map((f) => [f.proxyId, f]));
  const memberSet = new Set(members);
  const out: ProxyView[] = proxies.map((p) => ({
    id: p.id,
    state: fenceOf.has(p.id) ? 'fenced' : p.state,
    addr: p.addr,
    adminAddr: p.adminAddr,
    pid: p.pid,
    host: p.host,
    startedAt: p.startedAt,
    registered: true,
    member: memberSet.has(p.id),
    fence: fenceOf.get(p.id) ?? null,
  }));
  const known = new Set(proxies.map((p) => p.id));
  for (const id of new Set([...fences.map((f) => f.proxyId), ...members])) {
    if (known.has(id)) continue;
    const fence = fenceOf.get(id) ?? null;
    out.push({
      id,
      state: fence ? 'fenced' : 'lost',
      addr: null,
      adminAddr: null,
      pid: null,
      host: null,
      startedAt: null,
      registered: false,
      member: memberSet.has(id),
      fence,
    });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** A slot of a migration that involves group `gid` (pre_migrate or migrating), if any. */
function movingSlotOf(slots: readonly SlotInfo[], gid: number): SlotInfo | undefined {
  return slots.find((s) => (s.state === SlotState.Migrating || s.state === SlotState.PreMigrate) && (s.from === gid || s.to === gid));
}
