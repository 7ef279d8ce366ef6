/**
 * The migration runner: moves slots between groups while clients keep reading and writing
 * (DESIGN.md "Slot migration"). etcd is the only state: every step re-reads the task and the
 * real slot states, so any runner can take over at any point.
 *
 * THE STATE MACHINE (one task; a "batch" = ≤ batchSlots (default 512) of its slots that share
 * one source group A; B = the task's target)
 *
 *   0. Leadership. Only the leader of the product's runner election acts (`runner` key,
 *      an etcd lease). Every slot and task write is a transaction guarded by "my campaign
 *      key still exists", so a runner that lost its lease (paused process, partition)
 *      cannot write even before it notices; on lease loss it stops acting first, then
 *      campaigns again. Tasks whose groups {from ∪ to} are disjoint run at once; otherwise one after
 *      the other in creation order.
 *   1. Task pending → running.
 *   2. Look at the task's slots in etcd:
 *        online in B                → done
 *        migrating A→B              → go to 5 (finish that batch first)
 *        pre_migrate A→B            → cancelling: back to online A (nothing was written to
 *                                     B); otherwise redo the barrier (3)
 *        online in A (A ≠ B)        → to do
 *        anything else              → failed (changed outside this migration)
 *      Nothing to do → task done. Cancelling → task cancelled. Paused → wait (a paused task
 *      never leaves a batch in pre_migrate: that would hold the proxies' requests).
 *   3. Prepare: the batch → `pre_migrate {group:A, from:A, to:B}` in transactions of ≤ 128
 *      slots (the barrier names the revision R of the last one); action <seq> names the proxies registered
 *      now; wait ≤ barrierTimeoutMs for their acks (each proxy holds new requests for the
 *      slots and drains what it already sent to A before acking).
 *   4. Proxies that did not ack are fenced on every server of every group (fence.ts): the
 *      fence drops their member record, so no later barrier names them again. If a
 *      master cannot be fenced: the batch goes back to `online {group:A}` (no proxy wrote B
 *      yet), the action is deleted, and the batch is retried later; the 3rd failure in a
 *      row fails the task. Otherwise the batch → `migrating {group:B, from:A, to:B}` and the
 *      action is deleted. From here on A is never written for these slots: proxies move
 *      each key a request touches to B first (MIGRATE … KEYS, never REPLACE) and serve it
 *      from B.
 *   5. Move: SCAN A's master, MIGRATE the batch's keys to B's master (≤ migrateKeys per
 *      command, ≤ parallel commands in flight, throttled to `throttle` keys/s). NOKEY is
 *      fine (a proxy moved it, or it expired). BUSYKEY — the key exists on both — fails the
 *      task, naming the key: nothing here overwrites (the one exception: a key left on both
 *      by a MIGRATE that timed out in this run, whose two copies are equal — type, content,
 *      TTL; then A's copy is deleted, as redis documents for IOERR). IOERR/timeouts are
 *      retried 3 times, then the task fails. Every ~200 ms the task is re-read: paused →
 *      stop moving (the slots stay migrating; proxies keep serving them, moving keys as
 *      touched); cancelling → keep going (see below).
 *   6. A full SCAN pass that finds no key of the batch → the batch → `online {group:B}`.
 *      Back to 2.
 *   A runner that stops or loses leadership leaves the slots as they are (pre_migrate,
 *   migrating); the next leader resumes at 2. MIGRATE without REPLACE is atomic per key on
 *   A (A blocks while it runs, even if the runner dies), so no key is lost or duplicated.
 *
 * CANCEL SEMANTICS (also written into the cancelled task's phase)
 *   - a batch already `migrating` is finished: its keys are split between A and B and B is
 *     authoritative (a proxy may already have written there), so going back would need a
 *     reverse migration;
 *   - a batch in `pre_migrate` goes back to `online {group:A}` (nothing was written to B);
 *   - no further batch starts; the task ends `cancelled`.
 *   After a cancel every key is readable and every slot is online in exactly one group.
 *
 * FAILED TASKS keep their migrating batch `migrating` (the only safe state once keys are
 * split): proxies go on serving those slots. Fix the cause, then `migration resume` the task
 * (failed → running; it resumes at 2).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { keySlot } from '@reborn/protocol';
import {
  ACTIVE_MIGRATION_STATES,
  Barrier,
  ConflictError,
  CoordinatorError,
  MAX_TXN_OPS,
  MigrationState,
  Leadership,
  guard,
  guardedWrite,
  op,
  readKey,
  readPrefixes,
  Migrations,
  NO_GROUP,
  NotFoundError,
  SLOT_COUNT,
  SlotState,
  ValidationError,
  decodeJson,
  encodeSlot,
  groupMaster,
  isValidGroupId,
  migrateAuthArgs,
  newProgress,
  onlineSlot,
  parseMigration,
  type MigrationProgress,
  type MigrationTask,
  type SlotInfo,
  type Store,
  type Topology,
} from '@reborn/coordinator';
import { FenceError, fenceProxy } from './fence.js';
import { RedisAdminError, adminClient, canonicalValue, isTransportError, parseAddr, replyCode, showKey, withRedis, type RedisAdminOptions } from '@reborn/coordinator/admin';

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * A migration cannot go on without an operator: the task is marked failed with this message.
 *
 * | code      | meaning                                                               |
 * |-----------|-----------------------------------------------------------------------|
 * | EBUSYKEY  | a key exists in both groups; never overwritten                        |
 * | EMIGRATE  | MIGRATE kept failing (IOERR, timeouts) or redis refused it            |
 * | EBARRIER  | the barrier failed 3 times in a row (proxies could not be fenced)      |
 * | ESLOTS    | the task's slots were changed outside the migration                   |
 */
export class MigrationError extends CoordinatorError {
  constructor(code: 'EBUSYKEY' | 'EMIGRATE' | 'EBARRIER' | 'ESLOTS', message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = 'MigrationError';
  }
}

/** Internal: stop acting now (leadership lost, stop(), task gone). Not a task failure. */
class Halt extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'Halt';
  }
}

/** The runner's election log lines (the runner logs its own "won/lost/released" too). */
const RUNNER_ELECTION_MESSAGES = {
  elected: 'runner leadership won',
  lost: 'runner election: leadership lost (lease lost or not confirmed in time)',
  campaignFailed: 'runner election: campaign failed (lease lost)',
  unconfirmed: 'runner election: elected but cannot confirm the lease; campaigning again',
};

const TERMINAL: ReadonlySet<string> = new Set([MigrationState.Done, MigrationState.Cancelled, MigrationState.Failed]);

export function isTerminal(task: MigrationTask): boolean {
  return TERMINAL.has(task.state);
}

// ---------------------------------------------------------------------------------------------
// Creating a task

export interface CreateMigrationOptions {
  first: number;
  last: number;
  to: number;
  /** Keys per second at most; 0 = unlimited. */
  throttle?: number;
  /** Slots per barrier (default 512): fewer, larger batches mean fewer full SCANs of the source. */
  batchSlots?: number;
}

let lastCreatedAt = 0;

/** Strictly increasing creation times within this process: tasks run in creation order. */
function creationTime(): string {
  lastCreatedAt = Math.max(Date.now(), lastCreatedAt + 1);
  return new Date(lastCreatedAt).toISOString();
}

function newTaskId(at: string): string {
  const stamp = at.slice(0, 19).replace(/[-:T]/g, '');
  return `m-${stamp}-${randomBytes(2).toString('hex')}`;
}

/**
 * Validates and stores a task moving slots first..last to group `to`. Slots already in `to`
 * are skipped; when none is left the task is stored already done. The write is guarded by
 * "neither those slots nor any task changed since they were checked", so two concurrent
 * calls can never create overlapping active tasks.
 */
export async function createMigration(store: Store, opts: CreateMigrationOptions): Promise<MigrationTask> {
  const { first, last, to, throttle = 0, batchSlots = 512 } = opts;
  if (!(Number.isInteger(first) && Number.isInteger(last) && first >= 0 && first <= last && last < SLOT_COUNT)) {
    throw new ValidationError(`invalid slot range ${first}..${last}: want 0 ≤ first ≤ last ≤ ${SLOT_COUNT - 1}`);
  }
  if (!isValidGroupId(to)) throw new ValidationError(`invalid group id ${to}`);
  if (!(Number.isSafeInteger(throttle) && throttle >= 0)) {
    throw new ValidationError(`invalid throttle ${throttle}: want keys per second ≥ 0 (0 = unlimited)`);
  }
  if (!(Number.isSafeInteger(batchSlots) && batchSlots >= 1 && batchSlots <= SLOT_COUNT)) {
    throw new ValidationError(`invalid batch size ${batchSlots}: want 1..${SLOT_COUNT} slots`);
  }
  for (let attempt = 0; attempt < 10; attempt++) {
    const topo = await store.loadTopology();
    const target = topo.groups.get(to);
    if (!target) throw new ValidationError(`group ${to} does not exist`);
    if (!groupMaster(target)) throw new ValidationError(`group ${to} has no master: add a server to it first`);
    const range = topo.slots.slice(first, last + 1);
    const remaining = range.filter((s) => !(s.state === SlotState.Online && s.group === to));

    // Read raw (not Migrations.list) to know the revision the "no task changed" guard needs.
    const listRes = await readPrefixes(store, 'list migrations', [store.paths.migrations]);
    const active = (listRes.ranges[0] ?? [])
      .map((kv) => ({ key: kv.key, kv }))
      .filter(({ key }) => store.paths.migrationIdOf(key) !== null)
      .map(({ key, kv }) => parseMigration(decodeJson(kv.value, key), key))
      .filter((t) => ACTIVE_MIGRATION_STATES.has(t.state));
    for (const s of remaining) {
      const owner = active.find((t) => t.slots.includes(s.id));
      if (owner) {
        throw new ValidationError(`slot ${s.id} already belongs to active migration ${owner.id} (${owner.state}, to group ${owner.to})`);
      }
    }
    for (const s of remaining) {
      if (s.state === SlotState.Offline) throw new ValidationError(`slot ${s.id} is offline: use slot set`);
      if (s.state !== SlotState.Online) {
        throw new ValidationError(`slot ${s.id} is already ${s.state} from group ${s.from} to group ${s.to}`);
      }
      const src = topo.groups.get(s.group);
      if (!src || !groupMaster(src)) throw new ValidationError(`group ${s.group} (owner of slot ${s.id}) has no master`);
    }

    const createdAt = creationTime();
    const slots = remaining.map((s) => s.id);
    const task: MigrationTask = {
      id: newTaskId(createdAt),
      slots,
      from: [...new Set(remaining.map((s) => s.group))].sort((a, b) => a - b),
      to,
      state: slots.length === 0 ? MigrationState.Done : MigrationState.Pending,
      throttle,
      batchSlots,
      progress: newProgress(slots.length),
      createdAt,
      updatedAt: createdAt,
      error: null,
    };
    if (slots.length === 0) {
      task.progress.phase = `nothing to move: slots ${first}-${last} are already online in group ${to}`;
      task.progress.etaSeconds = 0;
    }

    const key = store.paths.migration(task.id);
    const res = await guardedWrite(
      store,
      `create migration ${task.id}`,
      [
        guard.absent(key),
        guard.rangeUnchangedSince(store.paths.slot(first), slotRangeEnd(store, last), topo.revision),
        guard.prefixUnchangedSince(store.paths.migrations, listRes.revision),
      ],
      [op.put(key, JSON.stringify(task))],
    );
    if (res.succeeded) return task;
  }
  throw new ConflictError('slots or migrations kept changing while creating the migration; try again', { retryable: true });
}

/** The end of the key range [slot(first), …, slot(last)]: the key right after slot(last). */
function slotRangeEnd(store: Store, last: number): string {
  return `${store.paths.slot(last)}\0`;
}

// ---------------------------------------------------------------------------------------------
// The runner

export interface MigrationRunnerOptions {
  store: Store;
  logger: Logger;
  /** This runner's name in the election. Default `<hostname>:<pid>:<random>`. */
  id?: string;
  /** How long the barrier waits for acks before fencing the silent proxies. Default 5000. */
  barrierTimeoutMs?: number;
  /** SCAN … COUNT. Default 5000: fewer round trips queued behind MIGRATEs. */
  scanCount?: number;
  /** Keys per MIGRATE. Default 500 (measured: 100 → ~22k keys/s, 500 → ~26k in the runner; raw MIGRATE does ~90k). */
  migrateKeys?: number;
  /** MIGRATE's own timeout (A ↔ B). Default 5000. */
  migrateTimeoutMs?: number;
  /**
   * MIGRATE commands in flight per batch. Default 1: each blocks the source redis, and a
   * client request queued behind several waits for all of them. Measured with
   * bench/migration.mjs, interleaved: 4 in flight → 39k keys/s, GET p99 during 41–43 ms;
   * 1 → 35–41k keys/s, p99 25–27 ms, and half again more client throughput meanwhile.
   */
  parallel?: number;
  /** TTL of the election lease: how soon another runner takes over a dead one. Default 10. */
  leaseTtlSeconds?: number;
  /** How often the leader looks for new tasks. Default 500. */
  pollIntervalMs?: number;
  /** The servers' default-user password (requirepass): for the runner's connections and MIGRATE's to the target. */
  redisPassword?: string | null;
}

interface Lead {
  /** Aborted when leadership is lost or the runner stops. */
  signal: AbortSignal;
  /** Our campaign key: slot writes are guarded by its existence. */
  guardKey: string;
  /** Give up leadership now (a guarded write failed: someone else leads). */
  lose(): void;
}

const CHECK_INTERVAL_MS = 200;
const PROGRESS_INTERVAL_MS = 500;
const RATE_WINDOW_MS = 5000;
const BARRIER_ATTEMPTS = 3;
const MIGRATE_RETRIES = 3;
/** How long MIGRATE is retried against an unreachable target before the task fails. */
const MIGRATE_OUTAGE_MS = 30_000;
const TRANSIENT_REDIS_ATTEMPTS = 6;

export class MigrationRunner {
  readonly id: string;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly migrations: Migrations;
  private readonly barrier: Barrier;
  readonly opts: Required<Omit<MigrationRunnerOptions, 'store' | 'logger' | 'id' | 'redisPassword'>>;
  /** How the runner's own connections log in (timeouts are set per use). */
  readonly redis: RedisAdminOptions;
  private stopCtl: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private leading = false;
  private readonly running = new Set<string>();

  constructor(options: MigrationRunnerOptions) {
    this.store = options.store;
    this.id = options.id ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.log = options.logger.child({ component: 'migration-runner', runner: this.id });
    this.migrations = new Migrations(this.store);
    this.barrier = new Barrier(this.store);
    this.redis = { password: options.redisPassword ?? null };
    this.opts = {
      barrierTimeoutMs: options.barrierTimeoutMs ?? 5000,
      scanCount: options.scanCount ?? 5000,
      migrateKeys: options.migrateKeys ?? 500,
      migrateTimeoutMs: options.migrateTimeoutMs ?? 5000,
      parallel: options.parallel ?? 1,
      leaseTtlSeconds: options.leaseTtlSeconds ?? 10,
      pollIntervalMs: options.pollIntervalMs ?? 500,
    };
    for (const [k, v] of Object.entries(this.opts)) {
      if (!(Number.isSafeInteger(v) && v >= 1)) throw new ValidationError(`migration runner: ${k} must be a positive integer, got ${v}`);
    }
  }

  /** Whether this runner currently leads the product's election. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Ids of the tasks this runner is executing now. */
  get activeTasks(): string[] {
    return [...this.running];
  }

  /** Campaigns for leadership and, while leader, runs every active task. */
  start(): void {
    if (this.loop) throw new Error('migration runner already started');
    const ctl = new AbortController();
    this.stopCtl = ctl;
    this.loop = this.elect(ctl.signal, (lead) => this.schedule(lead)).catch((err: unknown) => {
      this.log.error({ err: errText(err) }, 'migration runner stopped by an error');
    });
  }

  /** Stops at a safe point (slots stay as they are, the next leader resumes), resigns, waits. */
  async stop(): Promise<void> {
    this.stopCtl?.abort(new Halt('runner stopping'));
    await this.loop;
    this.loop = null;
    this.stopCtl = null;
  }

  /**
   * Runs one task to a terminal state in this process, holding the election while it does
   * (so it never acts next to another runner). If another runner finishes the task while
   * this one waits to be elected, returns that result. Rejects when `signal` aborts.
   */
  async runTask(id: string, { signal }: { signal?: AbortSignal } = {}): Promise<MigrationTask> {
    const first = await this.migrations.get(id);
    if (!first) throw new NotFoundError(`migration ${id} does not exist`);
    if (isTerminal(first.task)) return first.task;
    signal?.throwIfAborted();

    const ctl = new AbortController();
    const onAbort = () => ctl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let result: MigrationTask | null = null;
    // While another runner leads, it may be the one that finishes the task.
    const watcher = (async () => {
      while (!ctl.signal.aborted) {
        await nap(this.opts.pollIntervalMs, ctl.signal);
        if (ctl.signal.aborted || this.running.has(id)) continue;
        const cur = await this.migrations.get(id).catch(() => null);
        if (cur && isTerminal(cur.task)) {
          result ??= cur.task;
          ctl.abort(new Halt('task ended elsewhere'));
        }
      }
    })();
    try {
      await this.elect(ctl.signal, async (lead) => {
        const t = await this.drive(id, lead);
        if (t) result = t;
        return t ? 'done' : 'continue';
      });
    } finally {
      ctl.abort(new Halt('runTask finished'));
      signal?.removeEventListener('abort', onAbort);
      await watcher;
    }
    if (result) return result;
    throw signal?.reason ?? new Halt('runTask interrupted');
  }

  // -------------------------------------------------------------------------------------------
  // Leadership (coordinator's Leadership): on lease loss stop acting first, then campaign again.

  /**
   * Campaigns until `stop` aborts or `work` says 'done' (then resigns). Each term runs `work`
   * once, after the previous term's work has returned, so two terms never act at once.
   */
  private elect(stop: AbortSignal, work: (lead: Lead) => Promise<'done' | 'continue'>): Promise<void> {
    if (stop.aborted) return Promise.resolve();
    const leadership = new Leadership({
      store: this.store,
      namespace: '',
      name: this.store.paths.runnerElection,
      id: this.id,
      ttlSeconds: this.opts.leaseTtlSeconds,
      logger: this.log,
      component: 'migration-runner',
      notLeader: (message) => new Halt(message ?? 'leadership lost'),
      messages: RUNNER_ELECTION_MESSAGES,
    });
    return new Promise<void>((resolve, reject) => {
      let terms: Promise<void> = Promise.resolve();
      let failure: { err: unknown } | null = null;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        stop.removeEventListener('abort', finish);
        void (async () => {
          await leadership.close();
          await terms;
          if (failure) reject(failure.err);
          else resolve();
        })();
      };
      const term = async (signal: AbortSignal, guardKey: string) => {
        if (signal.aborted || finished) return;
        this.leading = true;
        let result: 'done' | 'continue' = 'continue';
        try {
          result = await work({ signal: AbortSignal.any([stop, signal]), guardKey, lose: () => leadership.relinquish('a guarded write was refused') });
        } catch (err) {
          failure = { err };
          result = 'done';
        } finally {
          this.leading = false;
          this.log.info({ lost: signal.aborted }, signal.aborted ? 'runner leadership lost' : 'runner leadership released');
        }
        if (result === 'done') finish();
        else if (!stop.aborted) leadership.relinquish('leader work ended; campaigning again');
      };
      leadership.on('elected', (signal) => {
        let guardKey: string;
        try {
          guardKey = leadership.guardKey();
        } catch {
          return; // lost again before we could act
        }
        terms = terms.then(() => term(signal, guardKey));
      });
      stop.addEventListener('abort', finish, { once: true });
      leadership.start();
    });
  }

  /** The leader's loop: start every runnable task, in creation order, disjoint groups at once. */
  private async schedule(lead: Lead): Promise<'continue'> {
    const tasks = new Map<string, Promise<void>>();
    let listFailing = false;
    while (!lead.signal.aborted) {
      try {
        const all = (await this.migrations.list()).map((m) => m.task);
        listFailing = false;
        const claimed = new Set<number>();
        for (const t of all) {
          if (!ACTIVE_MIGRATION_STATES.has(t.state)) continue;
          const groups = [...t.from, t.to];
          const blocked = groups.some((g) => claimed.has(g));
          for (const g of groups) claimed.add(g);
          if (tasks.has(t.id) || blocked) continue;
          const p = this.drive(t.id, lead)
            .catch((err: unknown) => this.log.warn({ migration: t.id, err: errText(err) }, 'migration task stopped'))
            .then(() => {
              tasks.delete(t.id);
            });
          tasks.set(t.id, p);
        }
      } catch (err) {
        if (!listFailing) this.log.warn({ err: errText(err) }, 'cannot list migrations; retrying');
        listFailing = true;
      }
      await nap(this.opts.pollIntervalMs, lead.signal);
    }
    await Promise.allSettled(tasks.values());
    return 'continue';
  }

  /** Runs one task until it is terminal (returned) or this runner must stop acting (null). */
  private async drive(id: string, lead: Lead): Promise<MigrationTask | null> {
    if (this.running.has(id)) return null;
    this.running.add(id);
    try {
      return await new TaskRun(this, id, lead).execute();
    } finally {
      this.running.delete(id);
    }
  }

  /** @internal for TaskRun */
  get ctx() {
    return { store: this.store, log: this.log, migrations: this.migrations, barrier: this.barrier, opts: this.opts, redis: this.redis };
  }
}

// ---------------------------------------------------------------------------------------------
// One task being executed by the leader

interface Batch {
  from: number;
  to: number;
  slots: number[];
}

interface Classified {
  done: number[];
  todo: { id: number; from: number }[];
  pre: { id: number; from: number }[];
  mig: { id: number; from: number }[];
}

class TaskRun {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly migrations: Migrations;
  private readonly barrier: Barrier;
  private readonly opts: MigrationRunner['opts'];
  private readonly redis: RedisAdminOptions;
  private task!: MigrationTask;

  private movedBase = -1;
  private movedThisRun = 0;
  private movedInBatch = 0;
  private keysLeftOutside = 0; // estimated keys of the slots after the current batch
  private batchEstimate = 0;
  private samples: { t: number; moved: number }[] = [];
  private progress: Partial<MigrationProgress> = {};
  private lastProgressWrite = 0;
  private lastCheck = 0;
  private barrierFailures = 0;
  private transientFailures = 0;
  private nextSendAt = 0;
  private pass = 0;

  constructor(
    runner: MigrationRunner,
    private readonly id: string,
    private readonly lead: Lead,
  ) {
    const c = runner.ctx;
    this.store = c.store;
    this.log = c.log.child({ migration: id });
    this.migrations = c.migrations;
    this.barrier = c.barrier;
    this.opts = c.opts;
    this.redis = c.redis;
  }

  async execute(): Promise<MigrationTask | null> {
    for (;;) {
      if (this.lead.signal.aborted) return null;
      try {
        const end = await this.step();
        this.transientFailures = 0;
        if (end) return end;
      } catch (err) {
        if (err instanceof Halt || this.lead.signal.aborted) return null;
        if (err instanceof NotFoundError && !(await this.exists())) throw err;
        const etcdDown = err instanceof CoordinatorError && err.retryable && !(err instanceof RedisAdminError);
        const redisDown = err instanceof RedisAdminError || isConnectionError(err);
        if (!etcdDown && !redisDown) return this.fail(err);
        this.transientFailures++;
        if (!etcdDown && this.transientFailures >= TRANSIENT_REDIS_ATTEMPTS) return this.fail(err);
        const wait = Math.min(5000, 250 * 2 ** Math.min(this.transientFailures, 5));
        this.log.warn({ err: errText(err), attempt: this.transientFailures, retryInMs: wait }, 'migration step failed; retrying');
        await this.setPhase(`retrying in ${Math.round(wait / 100) / 10} s: ${errText(err)}`).catch(() => {});
        await nap(wait, this.lead.signal);
      }
    }
  }

  /** One transition of the state machine (see the top of the file). Returns the task when terminal. */
  private async step(): Promise<MigrationTask | null> {
    const stored = await this.migrations.get(this.id);
    if (!stored) throw new NotFoundError(`migration ${this.id} does not exist`);
    this.task = stored.task;
    if (this.movedBase < 0) this.movedBase = this.task.progress.keysMoved;
    const t = this.task;
    if (isTerminal(t)) return t;
    if (t.state === MigrationState.Pending) {
      await this.updateTask((cur) =>
        cur.state === MigrationState.Pending ? { ...cur, state: MigrationState.Running, progress: { ...cur.progress, phase: 'starting' } } : cur,
      );
      this.log.info({ slots: t.slots.length, from: t.from, to: t.to }, 'migration started');
      return null;
    }

    const topo = await this.store.loadTopology();
    const c = this.classify(topo);
    this.progress.slotsDone = c.done.length;
    const max = t.batchSlots;

    if (c.mig.length > 0) {
      // A batch already migrating is always finished, whether running, paused or cancelling.
      const batch = pickBatch(c.mig, t.to, max);
      await this.moveBatch(batch, c, topo);
      return null;
    }
    if (c.pre.length > 0) {
      const batch = pickBatch(c.pre, t.to, max);
      if (t.state === MigrationState.Running) {
        this.log.info({ slots: ranges(batch.slots) }, 'batch found in pre_migrate: redoing the barrier');
        await this.prepare(batch);
      } else {
        await this.revert(batch, `${t.state}: slots ${ranges(batch.slots)} back online in group ${batch.from} (nothing was written to group ${batch.to})`);
      }
      return null;
    }
    if (c.todo.length === 0) return this.finish(MigrationState.Done, c);
    if (t.state === MigrationState.Cancelling) return this.finish(MigrationState.Cancelled, c);
    if (t.state === MigrationState.Paused) {
      await this.waitWhilePaused(`paused before slots ${ranges(pickBatch(c.todo, t.to, max).slots)}; ${c.done.length} of ${t.slots.length} slots moved`);
      return null;
    }
    const batch = pickBatch(c.todo, t.to, max);
    await this.estimate(batch, c, topo);
    await this.prepare(batch);
    return null;
  }

  private classify(topo: Topology): Classified {
    const t = this.task;
    const out: Classified = { done: [], todo: [], pre: [], mig: [] };
    for (const id of t.slots) {
      const s = topo.slots[id]!;
      if (s.state === SlotState.Online && s.group === t.to) out.done.push(id);
      else if (s.state === SlotState.Online) out.todo.push({ id, from: s.group });
      else if (s.state === SlotState.PreMigrate && s.to === t.to) out.pre.push({ id, from: s.from! });
      else if (s.state === SlotState.Migrating && s.to === t.to) out.mig.push({ id, from: s.from! });
      else {
        throw new MigrationError('ESLOTS', `slot ${id} is ${describeSlot(s)}: it was changed outside migration ${t.id} (to group ${t.to})`);
      }
    }
    return out;
  }

  // --- steps 3–4: prepare a batch (barrier, fencing) -------------------------------------------

  private async prepare(batch: Batch): Promise<void> {
    const { from: a, to: b, slots } = batch;
    const label = `slots ${ranges(slots)} ${a}→${b}`;
    this.progress.currentSlots = slots;
    await this.clearStaleActions();
    const rev = await this.writeSlots(
      slots.map((id) => ({ id, state: SlotState.PreMigrate, group: a, from: a, to: b })),
      (s) => (s.state === SlotState.Online && s.group === a) || (s.state === SlotState.PreMigrate && s.from === a && s.to === b),
      `pre_migrate ${label}`,
    );
    // From here to `migrating` (or back to online) the proxies hold requests for these
    // slots: this section is short and bounded, and stop() does not interrupt it.
    const action = await this.barrier.createAction(slots, rev, `migration ${this.id}: ${label}`);
    await this.setPhase(`barrier: waiting for ${action.proxies.length} proxies to ack action ${action.seq} (${label})`);
    const { missing } = await this.barrier.waitForAcks(action, this.opts.barrierTimeoutMs);
    if (missing.length > 0) {
      this.log.warn({ action: action.seq, missing, timeoutMs: this.opts.barrierTimeoutMs }, 'proxies did not ack the barrier: fencing them');
      await this.setPhase(`barrier: fencing ${missing.join(', ')} (no ack of action ${action.seq} within ${this.opts.barrierTimeoutMs} ms)`);
      // Fence on EVERY group, not only A and B: the fence also drops the proxy's member
      // record, so later barriers will not name it; it must then be unable to write
      // anywhere with whatever table it still has (a partitioned proxy keeps serving).
      const everyGroup = (await this.store.listGroups()).map((g) => g.id);
      const results = await Promise.allSettled(
        missing.map((proxyId) =>
          fenceProxy(this.store, {
            proxyId,
            groups: everyGroup,
            reason: `did not ack action ${action.seq} (migration ${this.id}, ${label}) within ${this.opts.barrierTimeoutMs} ms`,
            action: action.seq,
            logger: this.log,
            redis: this.redis,
          }),
        ),
      );
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
      if (failed.length > 0) {
        const why = failed.map(errText).join('; ');
        await this.revert(batch, `barrier failed: ${why}`);
        await this.barrier.deleteAction(action.seq).catch(() => {});
        this.barrierFailures++;
        if (this.barrierFailures >= BARRIER_ATTEMPTS || !failed.every((e) => e instanceof FenceError || isRetryable(e))) {
          throw new MigrationError(
            'EBARRIER',
            `barrier for ${label} failed ${this.barrierFailures} time(s): ${why}; the slots are online in group ${a}`,
          );
        }
        const wait = 2000 * this.barrierFailures;
        await this.setPhase(`barrier failed (${this.barrierFailures}/${BARRIER_ATTEMPTS}): ${why}; ${label} back online in group ${a}; retrying in ${wait / 1000} s`);
        await nap(wait, this.lead.signal);
        return;
      }
    }
    await this.writeSlots(
      slots.map((id) => ({ id, state: SlotState.Migrating, group: b, from: a, to: b })),
      (s) => s.state === SlotState.PreMigrate && s.from === a && s.to === b,
      `migrating ${label}`,
    );
    this.barrierFailures = 0;
    await this.barrier.deleteAction(action.seq).catch((err: unknown) => this.log.warn({ err: errText(err), action: action.seq }, 'could not delete action'));
    this.log.info({ slots: ranges(slots), from: a, to: b, action: action.seq, fenced: missing }, 'batch migrating');
  }

  /** pre_migrate → online in the source: allowed because nothing was written to the target. */
  private async revert(batch: Batch, phase: string): Promise<void> {
    await this.writeSlots(
      batch.slots.map((id) => onlineSlot(id, batch.from)),
      (s) => (s.state === SlotState.PreMigrate && s.from === batch.from && s.to === batch.to) || (s.state === SlotState.Online && s.group === batch.from),
      `revert slots ${ranges(batch.slots)} to group ${batch.from}`,
    );
    await this.clearStaleActions();
    this.progress.currentSlots = [];
    this.log.warn({ slots: ranges(batch.slots), group: batch.from }, 'batch back online in its source group');
    await this.setPhase(phase);
  }

  /** Deletes barrier actions an earlier attempt of this task left behind. */
  private async clearStaleActions(): Promise<void> {
    const prefix = `migration ${this.id}:`;
    for (const a of await this.barrier.listActions()) {
      if (a.note.startsWith(prefix)) await this.barrier.deleteAction(a.seq);
    }
  }

  // --- steps 5–6: move the keys, then switch the batch to the target -------------------------

  private async moveBatch(batch: Batch, c: Classified, topo: Topology): Promise<void> {
    const { from: a, to: b, slots } = batch;
    this.progress.currentSlots = slots;
    if (this.movedInBatch === 0 && this.batchEstimate === 0) await this.estimate(batch, c, topo);
    const inBatch = new Uint8Array(SLOT_COUNT);
    for (const id of slots) inBatch[id] = 1;
    const suspects = new Set<string>(); // keys of MIGRATEs that timed out: may be on both sides

    for (let pass = 1; ; pass++) {
      const cur = pass === 1 ? topo : await this.store.loadTopology();
      for (const id of slots) {
        const s = cur.slots[id]!;
        if (!(s.state === SlotState.Migrating && s.from === a && s.to === b)) {
          throw new MigrationError('ESLOTS', `slot ${id} is ${describeSlot(s)} while its keys were moving ${a}→${b}: changed outside migration ${this.id}`);
        }
      }
      const srcMaster = groupMaster(cur.groups.get(a) ?? { id: a, servers: [] });
      const dstMaster = groupMaster(cur.groups.get(b) ?? { id: b, servers: [] });
      if (!srcMaster) throw new RedisAdminError(`group ${a}`, 'has no master (failover in progress?)');
      if (!dstMaster) throw new RedisAdminError(`group ${b}`, 'has no master (failover in progress?)');
      this.pass = pass;
      await this.setPhase(this.movingPhase(batch));
      const found = await this.scanPass(srcMaster.addr, dstMaster.addr, inBatch, suspects, batch);
      if (pass === 1) this.batchEstimate = this.movedInBatch; // the first pass counted them
      if (found === 0) break;
    }

    await this.writeSlots(
      slots.map((id) => onlineSlot(id, b)),
      (s) => s.state === SlotState.Migrating && s.from === a && s.to === b,
      `online slots ${ranges(slots)} in group ${b}`,
    );
    this.progress.slotsDone = (this.progress.slotsDone ?? 0) + slots.length;
    this.progress.currentSlots = [];
    this.log.info({ slots: ranges(slots), from: a, to: b, keys: this.movedInBatch }, 'batch online in the target group');
    this.movedInBatch = 0;
    this.batchEstimate = 0;
    await this.setPhase(`slots ${ranges(slots)} online in group ${b}`);
  }

  private movingPhase(batch: Batch): string {
    const what = `moving keys of slots ${ranges(batch.slots)} ${batch.from}→${batch.to} (scan pass ${this.pass})`;
    return this.task.state === MigrationState.Cancelling
      ? `cancelling: finishing ${what}; their keys are split between groups ${batch.from} and ${batch.to} and group ${batch.to} is authoritative, so this batch completes; no further batch starts`
      : what;
  }

  /** One full SCAN of the source master, migrating every key of the batch. Returns keys found. */
  private async scanPass(src: string, dst: string, inBatch: Uint8Array, suspects: Set<string>, batch: Batch): Promise<number> {
    const { host, port } = parseAddr(dst);
    const { migrateTimeoutMs, parallel, scanCount } = this.opts;
    // Pipelined MIGRATEs queue on the source: a command may wait for all those ahead of it.
    const conn = adminClient(src, { ...this.redis, connectTimeoutMs: 3000, commandTimeoutMs: migrateTimeoutMs * (parallel + 1) + 5000 });
    const pool = new Pool(parallel);
    let found = 0;
    try {
      try {
        await conn.connect();
      } catch (err) {
        throw new RedisAdminError(src, `cannot connect: ${errText(err)}`, err);
      }
      let cursor = '0';
      do {
        await this.checkpoint(pool, batch);
        const [next, keys] = await conn.scanBuffer(cursor, 'COUNT', scanCount);
        cursor = next.toString('latin1');
        const mine = keys.filter((k) => inBatch[keySlot(k)] === 1);
        found += mine.length;
        const size = this.chunkSize();
        for (let i = 0; i < mine.length; i += size) {
          const chunk = mine.slice(i, i + size);
          if (i > 0) await this.checkpoint(pool, batch);
          await this.throttle(chunk.length);
          await pool.run(() => this.migrateChunk(conn, src, dst, host, port, chunk, suspects));
        }
      } while (cursor !== '0');
      await pool.drain();
    } catch (err) {
      await pool.settle();
      throw err;
    } finally {
      conn.disconnect();
    }
    return found;
  }

  private chunkSize(): number {
    const t = this.task.throttle;
    return t > 0 ? Math.max(1, Math.min(this.opts.migrateKeys, Math.floor(t / 10))) : this.opts.migrateKeys;
  }

  private async throttle(n: number): Promise<void> {
    const rate = this.task.throttle;
    if (rate <= 0) return;
    const now = Date.now();
    this.nextSendAt = Math.max(this.nextSendAt, now);
    const wait = this.nextSendAt - now;
    this.nextSendAt += (n * 1000) / rate;
    if (wait > 0) await nap(wait, this.lead.signal);
  }

  private async migrateChunk(conn: Redis, src: string, dst: string, host: string, port: number, keys: Buffer[], suspects: Set<string>): Promise<void> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = await conn.callBuffer('MIGRATE', host, String(port), '', '0', String(this.opts.migrateTimeoutMs), ...migrateAuthArgs(this.redis.password ?? null), 'KEYS', ...keys);
        // OK: every key that still existed moved; NOKEY: none did (a proxy moved them, or they expired).
        if (String(reply) === 'OK') this.moved(keys.length);
        return;
      } catch (err) {
        const code = replyCode(err);
        const timedOut = code === 'IOERR' || (code === null && /timed out/i.test(errText(err)));
        if (timedOut) {
          // Some keys may now be on both sides (restored on B, reply lost): remember them.
          for (const k of keys) suspects.add(k.toString('hex'));
          // Retried for longer than a failover takes (the target restarted, or its agent
          // promoting a replica): a target outage alone must not fail the task.
          if (attempt >= MIGRATE_RETRIES && Date.now() - started >= MIGRATE_OUTAGE_MS) {
            throw new MigrationError('EMIGRATE', `MIGRATE from ${src} to ${dst} failed ${attempt + 1} times in ${Math.round((Date.now() - started) / 1000)} s: ${errText(err)}`, err);
          }
          this.log.warn({ err: errText(err), attempt: attempt + 1, src, dst }, 'MIGRATE timed out; retrying');
          await nap(Math.min(250 * 2 ** attempt, 2000), this.lead.signal);
          continue;
        }
        if (code === 'BUSYKEY') {
          if (attempt >= MIGRATE_RETRIES) throw new MigrationError('EBUSYKEY', `MIGRATE from ${src} to ${dst} kept answering BUSYKEY: ${errText(err)}`, err);
          await this.resolveBusyKeys(src, dst, keys, suspects);
          continue;
        }
        if (code !== null) throw new MigrationError('EMIGRATE', `MIGRATE from ${src} to ${dst}: ${errText(err)}`, err);
        throw err; // the connection to the source failed: retried by execute()
      }
    }
  }

  /**
   * MIGRATE refused because some keys already exist on the target. That is a bug to surface
   * (BUSYKEY) — unless the key was in a MIGRATE of this run that timed out and both copies
   * are identical: then the restore on B went through and only the reply was lost, and
   * redis' documented remedy is to drop the source copy.
   */
  private async resolveBusyKeys(src: string, dst: string, keys: Buffer[], suspects: Set<string>): Promise<void> {
    const exists = (addr: string) =>
      withRedis(addr, async (c) => {
        const p = c.pipeline();
        for (const k of keys) p.exists(k);
        const res = (await p.exec()) ?? [];
        return res.map(([e, v]) => {
          if (e) throw e;
          return Number(v) === 1;
        });
      }, this.redis);
    const [onA, onB] = await Promise.all([exists(src), exists(dst)]);
    const both = keys.filter((_, i) => onA[i] && onB[i]);
    for (const k of both) {
      const where = `key "${showKey(k)}" (slot ${keySlot(k)}) exists in both group ${this.task.from.join('/')} (${src}) and group ${this.task.to} (${dst})`;
      if (!suspects.has(k.toString('hex'))) {
        throw new MigrationError('EBUSYKEY', `BUSYKEY: ${where}; the runner never overwrites a key: find out how it got there, delete one copy, then resume migration ${this.id}`);
      }
      const copy = (addr: string) =>
        withRedis(addr, async (c) => ({ value: await canonicalValue(c, k), pttl: await c.pttl(k) }), this.redis);
      const [x, y] = await Promise.all([copy(src), copy(dst)]);
      const sameTtl = (x.pttl < 0 && y.pttl < 0 && x.pttl === y.pttl) || (x.pttl >= 0 && y.pttl >= 0 && Math.abs(x.pttl - y.pttl) < this.opts.migrateTimeoutMs + 2000);
      if (!(x.value !== null && x.value === y.value && sameTtl)) {
        throw new MigrationError('EBUSYKEY', `BUSYKEY: ${where} after a MIGRATE timeout, and the copies differ (or are too large to compare); resolve by hand, then resume migration ${this.id}`);
      }
      await withRedis(src, (c) => c.del(k), this.redis);
      this.log.warn({ key: showKey(k), src, dst }, 'key on both sides after a MIGRATE timeout, copies identical: removed the source copy');
    }
  }

  private moved(n: number): void {
    this.movedThisRun += n;
    this.movedInBatch += n;
  }

  /**
   * Between rounds: stop if we must, re-read the task every ~200 ms (pause, cancel, throttle),
   * write progress every ~500 ms. Pausing drains the MIGRATEs in flight first.
   */
  private async checkpoint(pool: Pool, batch: Batch): Promise<void> {
    if (this.lead.signal.aborted) {
      await pool.drain();
      throw new Halt('stopping');
    }
    const now = Date.now();
    if (now - this.lastCheck < CHECK_INTERVAL_MS) return;
    this.lastCheck = now;
    const cur = await this.migrations.get(this.id);
    if (!cur) {
      await pool.drain();
      throw new NotFoundError(`migration ${this.id} was deleted`);
    }
    const was = this.task.state;
    this.task = cur.task;
    if (isTerminal(cur.task)) {
      await pool.drain();
      throw new Halt(`task is ${cur.task.state}`);
    }
    if (cur.task.state === MigrationState.Paused) {
      await pool.drain();
      await this.waitWhilePaused(
        `paused: slots ${ranges(batch.slots)} stay migrating ${batch.from}→${batch.to}; proxies keep serving them, moving the keys clients touch`,
      );
      await this.setPhase(this.movingPhase(batch));
    } else if (cur.task.state !== was) {
      await this.setPhase(this.movingPhase(batch));
    } else {
      await this.writeProgress(false);
    }
  }

  private async waitWhilePaused(phase: string): Promise<void> {
    this.log.info({ phase }, 'migration paused');
    this.samples = [];
    await this.setPhase(phase);
    for (;;) {
      await nap(CHECK_INTERVAL_MS, this.lead.signal);
      if (this.lead.signal.aborted) throw new Halt('stopping');
      const cur = await this.migrations.get(this.id);
      if (!cur) throw new NotFoundError(`migration ${this.id} was deleted`);
      this.task = cur.task;
      if (cur.task.state !== MigrationState.Paused) break;
    }
    this.nextSendAt = 0;
    this.log.info({ state: this.task.state }, 'migration resumed');
  }

  // --- progress ------------------------------------------------------------------------------

  /** Estimates the keys of the batch and of the slots after it (DBSIZE per source ÷ its slots). */
  private async estimate(batch: Batch, c: Classified, topo: Topology): Promise<void> {
    const sources = new Set([batch.from, ...c.todo.map((s) => s.from)]);
    const perSlot = new Map<number, number>();
    await Promise.all(
      [...sources].map(async (g) => {
        const master = groupMaster(topo.groups.get(g) ?? { id: g, servers: [] });
        const owned = topo.slots.filter((s) => (s.from ?? s.group) === g).length;
        if (!master || owned === 0) return;
        const size = await withRedis(master.addr, (r) => r.dbsize(), { ...this.redis, commandTimeoutMs: 2000 }).catch(() => 0);
        perSlot.set(g, size / owned);
      }),
    );
    const inBatch = new Set(batch.slots);
    this.batchEstimate = Math.round(batch.slots.length * (perSlot.get(batch.from) ?? 0));
    this.keysLeftOutside = Math.round(c.todo.filter((s) => !inBatch.has(s.id)).reduce((n, s) => n + (perSlot.get(s.from) ?? 0), 0));
  }

  private snapshot(): Partial<MigrationProgress> {
    if (!this.task) return { ...this.progress };
    const now = Date.now();
    const moved = this.movedBase + this.movedThisRun;
    this.samples.push({ t: now, moved });
    while (this.samples.length > 2 && now - this.samples[0]!.t > RATE_WINDOW_MS) this.samples.shift();
    const first = this.samples[0]!;
    const dt = (now - first.t) / 1000;
    const rate = dt > 0.2 ? Math.round((moved - first.moved) / dt) : (this.progress.rate ?? 0);
    const keysLeft = Math.max(0, this.keysLeftOutside + Math.max(0, this.batchEstimate - this.movedInBatch));
    return {
      ...this.progress,
      slotsTotal: this.task.slots.length,
      keysMoved: moved,
      keysLeft,
      rate,
      etaSeconds: rate > 0 ? Math.ceil(keysLeft / rate) : keysLeft === 0 ? 0 : null,
    };
  }

  private async writeProgress(force: boolean): Promise<void> {
    const now = Date.now();
    if (!force && now - this.lastProgressWrite < PROGRESS_INTERVAL_MS) return;
    this.lastProgressWrite = now;
    const p = this.snapshot();
    try {
      await this.updateTask((t) => ({ ...t, progress: { ...t.progress, ...p } }));
    } catch (err) {
      if (force) throw err;
      this.log.debug({ err: errText(err) }, 'progress not written');
    }
  }

  private async setPhase(phase: string): Promise<void> {
    this.progress.phase = phase;
    await this.writeProgress(true);
  }

  // --- ends ----------------------------------------------------------------------------------

  private async finish(state: 'done' | 'cancelled', c: Classified): Promise<MigrationTask> {
    const t = this.task;
    const p = this.snapshot();
    const kept = t.slots.length - c.done.length;
    const phase =
      state === MigrationState.Done
        ? `done: ${t.slots.length} slot(s) online in group ${t.to}, ${p.keysMoved} key(s) moved by the runner`
        : `cancelled: ${c.done.length} of ${t.slots.length} slot(s) moved to group ${t.to} stay there (a batch that had started migrating was finished: group ${t.to} held its keys); ` +
          `${kept} slot(s) stay online in their groups; every slot is online in exactly one group`;
    const next = await this.updateTask((cur) => {
      if (isTerminal(cur)) return cur;
      // done beats a cancel that came too late to stop anything.
      return {
        ...cur,
        state,
        error: null,
        progress: { ...cur.progress, ...p, slotsDone: c.done.length, keysLeft: 0, etaSeconds: 0, currentSlots: [], phase },
      };
    });
    this.log.info({ state: next.state, slotsDone: c.done.length, keysMoved: p.keysMoved }, `migration ${next.state}`);
    return next;
  }

  private async fail(err: unknown): Promise<MigrationTask | null> {
    const message = errText(err);
    this.log.error({ err: message, code: (err as { code?: unknown }).code }, 'migration failed');
    // Never leave a batch in pre_migrate behind (proxies would hold its requests).
    try {
      const topo = await this.store.loadTopology();
      const pre = this.task.slots
        .map((id) => topo.slots[id]!)
        .filter((s) => s.state === SlotState.PreMigrate && s.to === this.task.to);
      if (pre.length > 0) await this.revert(pickBatch(pre.map((s) => ({ id: s.id, from: s.from! })), this.task.to, MAX_TXN_OPS), 'failing');
    } catch (e) {
      this.log.warn({ err: errText(e) }, 'could not put pre_migrate slots back online');
    }
    try {
      return await this.updateTask((cur) =>
        isTerminal(cur) ? cur : { ...cur, state: MigrationState.Failed, error: message, progress: { ...cur.progress, ...this.snapshot(), phase: `failed: ${message}` } },
      );
    } catch (e) {
      // etcd unavailable: the next leader (or our next turn) finds the task running and retries.
      this.log.warn({ err: errText(e) }, 'could not mark the migration failed');
      return null;
    }
  }

  private async exists(): Promise<boolean> {
    return (await this.migrations.get(this.id).catch(() => ({}))) !== null;
  }

  // --- guarded slot writes -------------------------------------------------------------------

  /**
   * Writes the batch's slots in one transaction, only if (a) this runner still leads
   * (its campaign key exists), (b) no slot in the batch's id range changed since they were
   * read and found as `expect` says, and (c) the groups referenced exist. Concurrent changes
   * elsewhere in the range just cause a re-read and retry.
   */
  private async writeSlots(next: SlotInfo[], expect: (cur: SlotInfo) => boolean, what: string): Promise<string> {
    // A batch larger than one transaction is written in consecutive chunks. Proxies apply
    // them in revision order and a barrier names the revision of the last one, so the batch
    // still switches as a unit as far as the barrier is concerned.
    if (next.length > MAX_TXN_OPS) {
      let rev = '';
      for (let i = 0; i < next.length; i += MAX_TXN_OPS) rev = await this.writeSlots(next.slice(i, i + MAX_TXN_OPS), expect, what);
      return rev;
    }
    const { store } = this;
    const ids = next.map((s) => s.id);
    const lo = Math.min(...ids);
    const hi = Math.max(...ids);
    // No check of lead.signal here: stop() lets a started barrier section finish; a lost
    // leadership is caught by the guard compare below.
    for (let attempt = 0; attempt < 20; attempt++) {
      const topo = await store.loadTopology();
      for (const s of next) {
        const cur = topo.slots[s.id]!;
        if (!expect(cur)) throw new MigrationError('ESLOTS', `${what}: slot ${s.id} is ${describeSlot(cur)}: changed outside migration ${this.id}`);
      }
      const groups = [...new Set(next.flatMap((s) => [s.group, s.to ?? NO_GROUP]).filter((g) => g !== NO_GROUP))];
      const missing = groups.filter((g) => !topo.groups.has(g));
      if (missing.length > 0) throw new MigrationError('ESLOTS', `${what}: group(s) ${missing.join(', ')} no longer exist`);
      const guards = [
        guard.exists(this.lead.guardKey),
        guard.rangeUnchangedSince(store.paths.slot(lo), slotRangeEnd(store, hi), topo.revision),
        ...groups.map((g) => guard.exists(store.paths.group(g))),
      ];
      const res = await guardedWrite(store, what, guards, next.map((s) => op.put(store.paths.slot(s.id), encodeSlot(s))));
      if (res.succeeded) return res.revision;
      await this.checkLeadership(what);
      await nap(20 + Math.random() * 50 * attempt, this.lead.signal);
    }
    throw new ConflictError(`${what}: slots kept changing; will retry`, { retryable: true });
  }

  /** After a guarded write failed: if our campaign key is gone, stop acting now. */
  private async checkLeadership(what: string): Promise<void> {
    const leaderKey = await readKey(this.store, 'check leadership', this.lead.guardKey);
    if (leaderKey === null) {
      this.log.warn({ what }, 'write refused: this runner no longer leads');
      this.lead.lose();
      throw new Halt('leadership lost');
    }
  }

  /**
   * Compare-and-swap update of the task (Migrations.update), also guarded by our
   * campaign key: a runner that lost its lease cannot mark a task done, failed or cancelled
   * — or overwrite the progress — behind the new leader's back.
   */
  private async updateTask(change: (t: MigrationTask) => MigrationTask): Promise<MigrationTask> {
    return this.migrations.update(this.id, change, {
      guards: [guard.exists(this.lead.guardKey)],
      afterConflict: () => this.checkLeadership(`update migration ${this.id}`),
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** ≤ `size` concurrent jobs; the first failure is rethrown by the next run()/drain(). */
class Pool {
  private readonly inFlight = new Set<Promise<void>>();
  private error: unknown = null;
  constructor(private readonly size: number) {}

  async run(job: () => Promise<void>): Promise<void> {
    this.rethrow();
    while (this.inFlight.size >= this.size) {
      await Promise.race(this.inFlight);
      this.rethrow();
    }
    const p: Promise<void> = job()
      .catch((err: unknown) => {
        this.error ??= err;
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  async drain(): Promise<void> {
    await this.settle();
    this.rethrow();
  }

  /** Waits for every job, without rethrowing. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private rethrow(): void {
    if (this.error !== null) {
      const e = this.error;
      this.error = null;
      throw e;
    }
  }
}

function pickBatch(list: readonly { id: number; from: number }[], to: number, max: number): Batch {
  const from = list[0]!.from;
  return { from, to, slots: list.filter((s) => s.from === from).slice(0, max).map((s) => s.id) };
}

/** `0-9,12,20-21` */
export function ranges(ids: readonly number[]): string {
  const sorted = [...ids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

function describeSlot(s: SlotInfo): string {
  if (s.state === SlotState.Offline) return 'offline';
  if (s.state === SlotState.Online) return `online in group ${s.group}`;
  return `${s.state} from group ${s.from} to group ${s.to}`;
}

/** ioredis' own failures (closed, reset, timed out) — not reply errors, not our bugs. */
function isConnectionError(err: unknown): boolean {
  if (!isTransportError(err) || err instanceof CoordinatorError) return false;
  return !(err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || err instanceof SyntaxError);
}

function isRetryable(err: unknown): boolean {
  return err instanceof CoordinatorError && err.retryable;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Sleeps `ms`, or less when `signal` aborts; never throws. */
async function nap(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return;
  await sleep(ms, undefined, signal ? { signal } : undefined).catch(() => {});
}
