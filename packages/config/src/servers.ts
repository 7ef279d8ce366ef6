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
 * The pieces live beside this file: input checks (admin-checks.ts), the views returned to the
 * front ends (admin-views.ts), snapshots and guarded writes (admin-state.ts), the redis calls
 * (server-redis.ts) and the graceful switchover (switchover.ts).
 */
import type { Redis } from 'ioredis';
import type { InfoFields } from '@reborn/coordinator/admin';
import type { Logger } from 'pino';
import {
  isValidSourceLatency,
  sourceLatencyError,
  ACTIVE_MIGRATION_STATES,
  AgentClient,
  AgentRefusedError,
  AgentStore,
  Barrier,
  ConflictError,
  MigrationState,
  Migrations,
  NO_GROUP,
  NotFoundError,
  SLOT_COUNT,
  ServerRole,
  SlotState,
  ValidationError,
  deleteKey,
  guard,
  guardedWrite,
  op,
  encodeGroup,
  groupMaster,
  onlineSlot,
  splitAddr,
  type ActionInfo,
  type FenceInfo,
  type GroupInfo,
  type GroupServer,
  type MigrationTask,
  type StartedRedis,
  type Store,
  withServers,
} from '@reborn/coordinator';
import { OperationTimeoutError, ServerUnreachableError } from './errors.js';
import { checkAddr, checkGroupId, checkMigrationId, checkProxyId, checkSlotId, checkSlotRange } from './admin-checks.js';
import {
  compactSlots,
  evenRanges,
  mergeProxies,
  migrationTransition,
  formatSlotList,
  groupView,
  type BarrierView,
  type GroupView,
  type MigrationOp,
  type Overview,
  type ProxyView,
  type RebalancePlanView,
  type SlotRange,
  type SlotView,
} from './admin-views.js';
import { AdminState, type Snapshot } from './admin-state.js';
import { applyGroupSettings, type GroupSettingsChange } from './group-settings.js';
import { promoteServer, type PromoteResult } from './switchover.js';
import { replicaOf, replicationFields, replicationLogin, sleep, withRedis, type RedisConn } from './server-redis.js';

// The pieces of the operations, importable from here as before.
export * from './admin-checks.js';
export * from './admin-views.js';
export type { PromoteResult } from './switchover.js';
export type { Durability, GroupSettingsChange } from './group-settings.js';

// The migration machinery is loaded on first use: every CLI call pays for what it imports,
// and most verbs need none of it.
const runnerApi = () => import('./runner-api.js');

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

export class Admin {
  private readonly redis: RedisConn;
  private readonly syncTimeoutMs: number;
  private readonly catchUpTimeoutMs: number;
  private readonly migrations: Migrations;
  private readonly barrier: Barrier;
  private readonly logger: Logger | undefined;
  private readonly state: AdminState;

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
    this.state = new AdminState(store);
  }

  get product(): string {
    return this.store.product;
  }

  // -------------------------------------------------------------------------------------------
  // Groups

  async listGroups(): Promise<GroupView[]> {
    const snap = await this.state.snapshot();
    return [...snap.groups.values()].map((g) => this.state.groupView(g, snap));
  }

  async getGroup(gid: number): Promise<GroupView> {
    checkGroupId(gid);
    const snap = await this.state.snapshot();
    return this.state.groupView(this.state.requireGroup(snap, gid), snap);
  }

  async addGroup(gid: number): Promise<GroupView> {
    checkGroupId(gid);
    // The product's first group creates it: give it its identity (docs/topology-identity.md).
    await this.store.ensureIdentity();
    const key = this.store.paths.group(gid);
    const group: GroupInfo = { id: gid, servers: [] };
    const res = await guardedWrite(this.store, `create group ${gid}`, [guard.absent(key)], [op.put(key, encodeGroup(group))]);
    if (!res.succeeded) throw new ConflictError(`group ${gid} already exists`);
    return groupView(group, 0);
  }

  /**
   * Sets or clears a group's minInSync / wantReplicas (group-settings.ts decides and refuses).
   * The HA leader writes the in-sync set into the same key, so this is a read-modify-write
   * guarded by "the group key unchanged since the read" and re-decided after a concurrent
   * write: a set written meanwhile is kept, never overwritten with the one read before it.
   * Servers and the in-sync set are written back exactly as read.
   */
  async setGroupSettings(gid: number, change: GroupSettingsChange, opts: { force?: boolean } = {}): Promise<{ group: GroupView; warnings: string[] }> {
    checkGroupId(gid);
    const key = this.store.paths.group(gid);
    let warnings: string[] = [];
    const snap = await this.state.retry(
      `set group ${gid}`,
      async (snap) => {
        const decided = applyGroupSettings(this.state.requireGroup(snap, gid), change, opts);
        warnings = decided.warnings;
        return [op.put(key, encodeGroup(decided.next))];
      },
      [],
      // Exists: a group removed meanwhile must not be written back to life.
      (revision) => [guard.keyUnchangedSince(key, revision), guard.exists(key)],
    );
    return { group: this.state.groupView(this.state.requireGroup(snap, gid), snap), warnings };
  }

  async removeGroup(gid: number): Promise<void> {
    checkGroupId(gid);
    await this.state.retry(`remove group ${gid}`, async (snap) => {
      this.state.requireGroup(snap, gid);
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
      const group = this.state.requireGroup(snap, gid);
      for (const g of snap.groups.values()) {
        if (g.servers.some((s) => s.addr === addr)) throw new ConflictError(`server ${addr} is already in group ${g.id}`);
      }
      const master = groupMaster(group);
      if (!master && group.servers.length > 0) {
        throw new ConflictError(`group ${gid} has servers but no master; promote one of them before adding another`);
      }
      return { group, master };
    };
    const before = check(await this.state.snapshot());

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
      const snap = await this.state.retry(`add server ${addr} to group ${gid}`, async (snap) => {
        const now = check(snap);
        if (now.master?.addr !== before.master?.addr) {
          throw new ConflictError(`the master of group ${gid} changed while ${addr} was syncing; add it again`, { retryable: true });
        }
        const next: GroupInfo = withServers(now.group, [...now.group.servers, { addr, role }]);
        return [op.put(this.store.paths.group(gid), encodeGroup(next))];
      }, ['groups']);
      return { group: this.state.groupView(this.state.requireGroup(snap, gid), snap), role };
    } catch (err) {
      // Not recorded: do not leave a server replicating from a group it is not part of.
      if (before.master) await withRedis(addr, this.redis, (c) => c.replicaof('NO', 'ONE')).catch(() => undefined);
      throw err;
    }
  }

  /**
   * `server add <gid> --agent <id> [--port P]`: asks that agent (its registration in etcd
   * gives its API address) to start a redis-server — on `port`, or on one it picks from its
   * --redis-ports — then adds it like addServer. If adding fails, the server is stopped again
   * on the agent, so a refused add leaves nothing running.
   */
  async addServerViaAgent(
    gid: number,
    agentId: string,
    opts: { port?: number; token: string | null },
  ): Promise<{ group: GroupView; role: ServerRole; addr: string; app: string }> {
    checkGroupId(gid);
    this.state.requireGroup(await this.state.snapshot(), gid);
    const agents = await new AgentStore(this.store).listAgents();
    const agent = agents.find((a) => a.id === agentId);
    if (!agent) {
      const known = agents.map((a) => a.id).join(', ') || 'none';
      throw new NotFoundError(`unknown agent ${JSON.stringify(agentId)}: no such agent is registered in product ${this.store.product} (registered: ${known})`);
    }
    const client = new AgentClient(opts.token);
    let started: StartedRedis;
    try {
      started = await client.startRedis(agent, opts.port);
    } catch (err) {
      if (err instanceof AgentRefusedError && err.logTail !== '') {
        throw new AgentRefusedError(err.status, err.code, `${err.message}; the server's log ends with: ${err.logTail.trim().split('\n').slice(-3).join(' | ')}`, err.logTail);
      }
      throw err;
    }
    try {
      const added = await this.addServer(gid, started.addr);
      return { ...added, addr: started.addr, app: started.id };
    } catch (err) {
      await client.stop(agent, started.id).catch(() => undefined);
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
    await replicaOf(c, masterAddr, this.redis, await replicationLogin(this.store));
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
    await this.state.retry(`remove server ${addr} from group ${gid}`, async (snap) => {
      const group = this.state.requireGroup(snap, gid);
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
      const next: GroupInfo = withServers(group, group.servers.filter((s) => s.addr !== addr));
      return [op.put(this.store.paths.group(gid), encodeGroup(next))];
    }, ['slots', 'groups']);
    return { role };
  }

  /** A graceful switchover of a healthy group to `addr` (switchover.ts). */
  async promoteServer(gid: number, addr: string): Promise<PromoteResult> {
    return promoteServer({ store: this.store, state: this.state, redis: this.redis, catchUpTimeoutMs: this.catchUpTimeoutMs }, gid, addr);
  }

  // -------------------------------------------------------------------------------------------
  // Slots

  async listSlots(): Promise<SlotRange[]> {
    return compactSlots(await this.store.listSlots());
  }

  async slotInfo(id: number): Promise<SlotView> {
    checkSlotId(id);
    const snap = await this.state.snapshot();
    const slot = snap.slots[id]!;
    const owner = snap.groups.get(slot.group);
    const task = snap.migrations.find((t) => ACTIVE_MIGRATION_STATES.has(t.state) && t.slots.includes(id));
    return { ...slot, master: (owner && groupMaster(owner)?.addr) ?? null, migration: task?.id ?? null };
  }

  /** Spreads all slots evenly (contiguous ranges) over the groups that have a master. */
  async initSlots(force: boolean): Promise<Array<{ first: number; last: number; group: number }>> {
    await this.store.ensureIdentity();
    let plan: Array<{ first: number; last: number; group: number }> = [];
    await this.state.writeSlots('init slots', (snap) => {
      this.state.refuseDuringMigration(snap, 'reinitialise the slots');
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
    await this.state.writeSlots(`set slots ${first}-${last}`, (snap) => {
      const group = this.state.requireGroup(snap, gid);
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
    opts: { throttle?: number; batchSlots?: number; maxSourceLatencyMs?: number } = {},
  ): Promise<{ task: MigrationTask | null; resumed: boolean }> {
    checkSlotRange(first, last);
    checkGroupId(gid);
    if (opts.throttle !== undefined && !(Number.isSafeInteger(opts.throttle) && opts.throttle >= 0)) {
      throw new ValidationError(`invalid throttle ${opts.throttle}: want keys per second ≥ 0 (0 = unlimited)`);
    }
    if (opts.batchSlots !== undefined && !(Number.isSafeInteger(opts.batchSlots) && opts.batchSlots >= 1 && opts.batchSlots <= SLOT_COUNT)) {
      throw new ValidationError(`invalid batch size ${opts.batchSlots}: want 1..${SLOT_COUNT} slots`);
    }
    if (opts.maxSourceLatencyMs !== undefined && !isValidSourceLatency(opts.maxSourceLatencyMs)) {
      throw new ValidationError(sourceLatencyError(opts.maxSourceLatencyMs));
    }
    const snap = await this.state.snapshot();
    const group = this.state.requireGroup(snap, gid);
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
      ...(opts.maxSourceLatencyMs === undefined ? {} : { maxSourceLatencyMs: opts.maxSourceLatencyMs }),
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
    const snap = await this.state.snapshot();
    this.state.refuseDuringMigration(snap, 'plan a rebalance');
    const groups = [...snap.groups.values()].filter((g) => groupMaster(g));
    if (groups.length === 0) throw new ConflictError('no group has a master: add groups and servers first');
    const { planRebalance } = await runnerApi();
    const plan = planRebalance(groups, snap.slots);
    return { moves: plan.moves.map((m) => ({ first: m.first, last: m.last, from: m.from, to: m.to, kind: m.kind })), summary: [...plan.summary] };
  }

  /** Plans and creates the tasks of a rebalance; the runner executes them. */
  async rebalance(): Promise<{ plan: RebalancePlanView; tasks: MigrationTask[] }> {
    const snap = await this.state.snapshot();
    this.state.refuseDuringMigration(snap, 'rebalance');
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
      this.state.snapshot(),
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
      groups: [...snap.groups.values()].map((g) => this.state.groupView(g, snap)),
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
}
