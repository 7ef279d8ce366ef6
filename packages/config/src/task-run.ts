/**
 * One migration task run by the leading runner (TaskRun): moves slots between groups while clients keep reading and writing
 * (docs/architecture.md, migration protocol). etcd is the only state: every step re-reads the task and the
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
 *   3. Prepare — only while both A and B have a master that answers PING (else the task waits,
 *      see FAULTS; a batch found in pre_migrate meanwhile goes back to online A first):
 *      the batch → `pre_migrate {group:A, from:A, to:B}` in transactions of ≤ 128
 *      slots (the barrier names the revision R of the last one); action <seq> names the proxies registered
 *      now; wait ≤ barrierTimeoutMs for their acks (each proxy holds new requests for the
 *      slots and drains what it already sent to A before acking).
 *   4. Proxies that did not ack are fenced on every server of every group (fence.ts): the
 *      fence drops their member record, so no later barrier names them again. If a
 *      master cannot be fenced: the batch goes back to `online {group:A}` (no proxy wrote B
 *      yet), the action is deleted, and the batch is retried later, for as long as it takes
 *      (from the 3rd failure in a row the task says it waits); a failure that is not an
 *      unreachable server fails the task. Otherwise the batch → `migrating {group:B, from:A, to:B}` and the
 *      action is deleted. From here on A is never written for these slots: proxies move
 *      each key a request touches to B first (MIGRATE … KEYS, never REPLACE) and serve it
 *      from B.
 *   5. Move: SCAN A's master and move the batch's keys to B's master — both as etcd names
 *      them when the pass starts — in chunks sized to the source's latency (source-pace.ts;
 *      ≤ parallel in flight, throttled to `throttle` keys/s), by copy-then-delete under a
 *      copy lease (key-mover.ts, dump-restore.ts): DUMP and mark on A, RESTORE on B (never
 *      REPLACE), WAIT for B's in-sync replicas, delete on A with the mark, WAIT for A's. A
 *      key too big for that (≥ bigKeyBytes) is copied in pieces instead, recorded in etcd,
 *      its requests held by the proxies (big-key-move.ts). BUSYKEY — a key on both sides —
 *      fails the task, naming it, except when the source copy is provably not the
 *      authoritative one (equal copies; a copy a failover of A brought back: key-mover.ts).
 *      Target faults are waited out (FAULTS). Every ~200 ms the task and both groups are
 *      re-read, and again after every error: paused → stop moving (the slots stay
 *      migrating; proxies keep serving them, moving keys as touched); cancelling → keep
 *      going (see below); A's or B's master changed → the pass restarts on the new master.
 *   6. A full SCAN pass that finds no key of the batch → the batch → `online {group:B}`.
 *      Back to 2.
 *   A runner that stops or loses leadership leaves the slots as they are (pre_migrate,
 *   migrating); the next leader resumes at 2, settling the copies and big-key moves the
 *   dead one left (their marks and records), so no key is lost or duplicated.
 *
 * CANCEL SEMANTICS (also written into the cancelled task's phase)
 *   - a batch already `migrating` is finished: its keys are split between A and B and B is
 *     authoritative (a proxy may already have written there), so going back would need a
 *     reverse migration;
 *   - a batch in `pre_migrate` goes back to `online {group:A}` (nothing was written to B);
 *   - no further batch starts; the task ends `cancelled`.
 *   After a cancel every key is readable and every slot is online in exactly one group.
 *
 * FAULTS (docs/migration-faults.md). A transient fault never fails the task: a group with no
 * master or an unreachable one (failover in progress), a master that no longer is one, MIGRATE
 * IOERR or timeouts, OOM/LOADING/READONLY/MASTERDOWN answers, etcd unavailable, a proxy that
 * cannot be fenced yet. The step throws MigrationWait (or an error classified as one); the task
 * stays `running`, `progress.waiting` and the phase say what it waits for and since when, the
 * step is retried (backoff ≤ 2 s) from a fresh read of etcd — so a group that failed over is
 * continued against at its new master — and the reason is cleared as soon as keys move again.
 * Only causes an operator must fix fail the task (MigrationError: BUSYKEY, slots changed outside
 * the migration, MIGRATE refused for auth/permission reasons, a non-transient barrier error, a
 * bug), each message saying what to do.
 *
 * FAILED TASKS keep their migrating batch `migrating` (the only safe state once keys are
 * split): proxies go on serving those slots. Fix the cause, then `migration resume` the task
 * (failed → running; it resumes at 2).
 */
import type { Logger } from 'pino';
import { keySlot } from '@reborn/protocol';
import { MigrationState, Migrations, NotFoundError, RUNNER_CONNECTION_NAME, SLOT_COUNT, WANTED_HASH, SlotState, groupMaster, isInternalKey, onlineSlot, type MigrationTask, type Store, type Topology } from '@reborn/coordinator';
import { RedisAdminError, connectAdmin, withRedis, type RedisAdminOptions } from '@reborn/coordinator/admin';
import type { Redis } from 'ioredis';
import { MigrationError, MigrationWait, Halt, isTerminal, CHECK_INTERVAL_MS, PROGRESS_INTERVAL_MS, Pool, pickBatch, ranges, describeSlot, slotsFixHint, isConnectionError, errText, nap } from './migration-common.js';
import { TaskBarrier } from './task-barrier.js';
import { classifySlots, type Classified } from './task-slots.js';
import { KeyMover, newBatchMoveState, type BatchMoveState, type MovePass } from './key-mover.js';
import { SourceFailoverWatch } from './source-failover.js';
import { TargetWatch } from './target-watch.js';
import { WaitClock, mastersReady, transientFault } from './task-faults.js';
import { TaskProgress } from './task-progress.js';
import { LatencyProbe, SourcePace } from './source-pace.js';
import { TargetRoom } from './target-room.js';
import { estimateKeys } from './batch-estimate.js';
import { TaskWrites } from './task-writes.js';
import { BigKeyMover } from './big-key-move.js';
import type { Batch, RunnerTunables, RunnerContext, Lead } from './migration-common.js';

const ROOM_CHECK_INTERVAL_MS = 2000; // how often the target's room is looked at while keys move

// ---------------------------------------------------------------------------------------------
// One task being executed by the leader

/**
 * One task run. A long class on purpose: its steps (move, checkpoint, finish) share the run's
 * progress counters and the task as last read; the classification of its slots (task-slots.ts),
 * the barrier step (task-barrier.ts), the key mover (key-mover.ts) and the guarded writes
 * (task-writes.ts) live beside it.
 */
export class TaskRun {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly migrations: Migrations;
  private readonly opts: RunnerTunables;
  private readonly redis: RedisAdminOptions;
  private task!: MigrationTask;
  private readonly mover: KeyMover;
  private readonly writes: TaskWrites;
  private readonly batchBarrier: TaskBarrier;
  /** Chunk sizes and pauses for the source (source-pace.ts), kept across passes and batches. */
  private readonly pace: SourcePace;
  private readonly bigKeys: BigKeyMover;

  private readonly tally = new TaskProgress();
  private readonly progress = this.tally.fields;
  private lastProgressWrite = 0;
  private lastCheck = 0;
  private lastWanted = 0;
  /** Room on the target (target-room.ts). */
  private readonly room: TargetRoom;
  private pass = 0;
  /** The transient fault this run waits out now, if any (task-faults.ts). */
  private readonly waits = new WaitClock();
  /** The topology as last read: which group a failing server belongs to. */
  private lastTopo: Topology | null = null;
  /** The batch being moved and what the mover keeps for it (kept across this run's retries). */
  private batchState: { key: string; state: BatchMoveState } | null = null;

  constructor(
    c: RunnerContext,
    private readonly id: string,
    private readonly lead: Lead,
  ) {
    this.store = c.store;
    this.log = c.log.child({ migration: id });
    this.migrations = c.migrations;
    this.opts = c.opts;
    this.redis = c.redis;
    this.writes = new TaskWrites({ store: c.store, migrations: c.migrations, taskId: id, lead, log: this.log });
    this.batchBarrier = new TaskBarrier({
      store: c.store,
      barrier: c.barrier,
      writes: this.writes,
      taskId: id,
      log: this.log,
      redis: c.redis,
      barrierTimeoutMs: c.opts.barrierTimeoutMs,
      signal: lead.signal,
      setPhase: (phase) => this.setPhase(phase),
      progress: this.progress,
    });
    this.bigKeys = new BigKeyMover({
      store: c.store, barrier: c.barrier, taskId: id, lead, log: this.log, redis: c.redis,
      opts: { barrierTimeoutMs: c.opts.barrierTimeoutMs, waitTimeoutMs: c.opts.waitTimeoutMs, maxSourceLatencyMs: () => this.task.maxSourceLatencyMs },
      onBigKey: (p) => void (this.progress.bigKey = p),
      onChunk: (p) => this.bigKeyChunk(p.bytes, p.latencyMs),
    });
    this.mover = new KeyMover({
      taskId: id,
      task: () => this.task,
      opts: c.opts,
      redis: c.redis,
      log: this.log,
      signal: lead.signal,
      confirmations: () => this.batchState?.state.failover.confirmations() ?? 0,
      onMoved: (n) => {
        this.tally.moved(n);
        this.endWait(); // keys move again: whatever the task waited for has passed
      },
      onUnconfirmed: (n) => this.tally.count('unconfirmedKeys', n),
      onTargetUnconfirmed: (n) => this.tally.count('targetUnconfirmedKeys', n),
      onResurrectedDeleted: (n) => this.tally.count('resurrectedDeleted', n),
      onBytes: (n) => this.tally.count('bytesMoved', n),
      pace: () => this.pace,
    });
    this.pace = new SourcePace(() => this.task.maxSourceLatencyMs, c.opts.migrateKeys);
    this.room = new TargetRoom(c.redis);
  }

  async execute(): Promise<MigrationTask | null> {
    for (;;) {
      if (this.lead.signal.aborted) return null;
      try {
        const end = await this.step();
        this.endWait();
        if (end) return end;
      } catch (err) {
        if (err instanceof Halt || this.lead.signal.aborted) return null;
        if (err instanceof NotFoundError && !(await this.exists())) throw err;
        const wait = await transientFault(err, this.store, this.lastTopo);
        if (wait === null) return this.fail(err);
        await this.waitOut(wait);
      }
    }
  }

  // --- transient faults: waited out, never a failure ----------------------------------------

  /** Says what the task waits for (progress.waiting, the phase, the log), then naps before the next try. */
  private async waitOut(w: MigrationWait): Promise<void> {
    if (w.retryInMs === 0) {
      // Not a wait: etcd names a new master already; the next step goes on against it.
      this.log.info({ reason: w.message }, 'migration continues against a new master');
      return;
    }
    const tick = this.waits.tick(w);
    if (tick.began) this.log.warn({ waitingFor: w.waitingFor, detail: w.detail }, 'migration waiting (the task stays running and goes on by itself)');
    else if (tick.retries % 20 === 0) this.log.warn({ reason: tick.reason, retries: tick.retries }, 'migration still waiting');
    this.progress.waiting = tick.reason;
    await this.setPhase(tick.reason).catch((err: unknown) => this.log.debug({ err: errText(err) }, 'waiting reason not written'));
    await nap(tick.pauseMs, this.lead.signal);
  }

  /** The wait (if any) is over: progress says so at its next write. */
  private endWait(): void {
    const ended = this.waits.end();
    if (ended === null) return;
    this.log.info(ended, 'migration no longer waiting');
    this.progress.waiting = undefined;
  }

  /** One transition of the state machine (see the top of the file). Returns the task when terminal. */
  private async step(): Promise<MigrationTask | null> {
    const stored = await this.migrations.get(this.id);
    if (!stored) throw new NotFoundError(`migration ${this.id} does not exist`);
    this.task = stored.task;
    this.tally.begin(this.task.progress);
    const t = this.task;
    if (isTerminal(t)) return t;
    if (t.state === MigrationState.Pending) {
      await this.writes.task((cur) =>
        cur.state === MigrationState.Pending ? { ...cur, state: MigrationState.Running, progress: { ...cur.progress, phase: 'starting' } } : cur,
      );
      this.log.info({ slots: t.slots.length, from: t.from, to: t.to }, 'migration started');
      return null;
    }

    const topo = await this.store.loadTopology();
    this.lastTopo = topo;
    const c = classifySlots(this.task, topo);
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
        const wait = await mastersReady(batch, topo, this.redis);
        if (wait) {
          // Proxies hold requests for pre_migrate slots: not while a group cannot take them.
          await this.batchBarrier.revert(batch, `slots ${ranges(batch.slots)} back online in group ${batch.from} while ${wait.message}`);
          throw wait;
        }
        this.log.info({ slots: ranges(batch.slots) }, 'batch found in pre_migrate: redoing the barrier');
        await this.batchBarrier.prepare(batch);
      } else {
        await this.batchBarrier.revert(batch, `${t.state}: slots ${ranges(batch.slots)} back online in group ${batch.from} (nothing was written to group ${batch.to})`);
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
    const wait = await mastersReady(batch, topo, this.redis);
    if (wait) throw wait;
    await this.estimate(batch, c, topo);
    // No batch starts on a target without room for it (the proxies would soon hit OOM).
    const room = await this.room.wait(batch, topo, this.tally.batchEstimate);
    if (room) throw room;
    await this.batchBarrier.prepare(batch);
    return null;
  }

  // --- steps 5–6: move the keys, then switch the batch to the target -------------------------

  private async moveBatch(batch: Batch, c: Classified, topo: Topology): Promise<void> {
    const { from: a, to: b, slots } = batch;
    this.progress.currentSlots = slots;
    if (this.tally.movedInBatch === 0 && this.tally.batchEstimate === 0) await this.estimate(batch, c, topo);
    const inBatch = new Uint8Array(SLOT_COUNT);
    for (const id of slots) inBatch[id] = 1;
    const state = this.batchMoveState(batch);
    // Big-key moves a crash or an error interrupted are finished (or undone) before anything else.
    await this.bigKeys.recover();

    let source = '';
    for (let pass = 1; ; pass++) {
      const cur = pass === 1 ? topo : await this.store.loadTopology();
      for (const id of slots) {
        const s = cur.slots[id]!;
        if (!(s.state === SlotState.Migrating && s.from === a && s.to === b)) {
          throw new MigrationError('ESLOTS', `slot ${id} is ${describeSlot(s)} while its keys were moving ${a}→${b}: changed outside migration ${this.id}; ${slotsFixHint(this.id)}`);
        }
      }
      // Both masters as etcd names them now: a group that failed over is followed here.
      const srcMaster = groupMaster(cur.groups.get(a) ?? { id: a, servers: [] });
      const dstMaster = groupMaster(cur.groups.get(b) ?? { id: b, servers: [] });
      for (const [gid, m] of [[a, srcMaster], [b, dstMaster]] as const) {
        if (!m) throw new MigrationWait(`waiting for group ${gid} to have a master`, 'etcd names none: failover in progress');
      }
      state.failover.latest = cur.groups.get(a);
      state.target.latest = cur.groups.get(b);
      await this.mover.auditAfterTargetFailover(srcMaster!.addr, dstMaster!.addr, state);
      await state.failover.noteMaster(srcMaster!.addr).catch((err: unknown) => {
        throw new RedisAdminError(srcMaster!.addr, errText(err), err);
      });
      this.pass = pass;
      source = srcMaster!.addr;
      const room = await this.room.wait(batch, cur, this.tally.batchEstimate - this.tally.movedInBatch);
      if (room) throw room;
      await this.setPhase(this.movingPhase(batch));
      const movedBefore = this.tally.movedInBatch;
      const found = await this.scanPass(srcMaster!.addr, dstMaster!.addr, inBatch, state, batch);
      if (pass === 1) this.tally.batchEstimate = this.tally.movedInBatch; // the first pass counted them
      if (found === 0) break;
      // Keys found but none moved: another chunk's copy lease holds them (a runner that died
      // mid-chunk); it lapses within COPY_LEASE_MS, then the next pass settles them.
      if (this.tally.movedInBatch === movedBefore) await nap(500, this.lead.signal);
    }

    await this.writes.slots(
      slots.map((id) => onlineSlot(id, b)),
      (s) => s.state === SlotState.Migrating && s.from === a && s.to === b,
      `online slots ${ranges(slots)} in group ${b}`,
    );
    // No proxy asks for these slots' keys any more: their requests go to B now.
    await withRedis(source, (r) => r.del(WANTED_HASH), this.redis).catch(() => undefined);
    this.progress.slotsDone = (this.progress.slotsDone ?? 0) + slots.length;
    this.progress.currentSlots = [];
    this.log.info({ slots: ranges(slots), from: a, to: b, keys: this.tally.movedInBatch }, 'batch online in the target group');
    this.tally.endBatch();
    this.batchState = null;
    await this.setPhase(`slots ${ranges(slots)} online in group ${b}`);
  }

  /** The mover's state for `batch`: kept while the same batch is retried, fresh for a new one. */
  private batchMoveState(batch: Batch): BatchMoveState {
    const key = `${batch.from}>${batch.to}:${ranges(batch.slots)}`;
    if (this.batchState?.key !== key) {
      const failover = new SourceFailoverWatch({ store: this.store, group: batch.from, redis: this.redis, log: this.log });
      this.batchState = { key, state: newBatchMoveState(failover, new TargetWatch(this.store, batch.to)) };
    }
    return this.batchState.state;
  }

  private movingPhase(batch: Batch): string {
    const what = `moving keys of slots ${ranges(batch.slots)} ${batch.from}→${batch.to} (scan pass ${this.pass})`;
    return this.task.state === MigrationState.Cancelling
      ? `cancelling: finishing ${what}; their keys are split between groups ${batch.from} and ${batch.to} and group ${batch.to} is authoritative, so this batch completes; no further batch starts`
      : what;
  }

  /** One full SCAN of the source master, migrating every key of the batch to the target master. Returns keys found. */
  private async scanPass(src: string, dst: string, inBatch: Uint8Array, state: BatchMoveState, batch: Batch): Promise<number> {
    const { migrateTimeoutMs, waitTimeoutMs, parallel, scanCount } = this.opts;
    state.failover.passSource = src;
    state.target.passTarget = dst;
    const pool = new Pool(parallel);
    let found = 0;
    let srcConn: Redis | null = null;
    let dstConn: Redis | null = null;
    let probe: LatencyProbe | null = null;
    try {
      // The chunks in flight queue their scripts and WAITs on both connections (key-mover.ts):
      // a command may wait for all those ahead of it. Named, so the pace tells them from clients'.
      const timeouts = { connectTimeoutMs: 3000, commandTimeoutMs: (migrateTimeoutMs + waitTimeoutMs) * (parallel + 1) + 5000 };
      srcConn = await connectAdmin(src, { ...this.redis, ...timeouts, connectionName: RUNNER_CONNECTION_NAME });
      dstConn = await connectAdmin(dst, { ...this.redis, ...timeouts, connectionName: RUNNER_CONNECTION_NAME });
      const pass: MovePass = { src: srcConn, srcAddr: src, dst: dstConn, dstAddr: dst };
      // What any client of the source sees, measured on a connection of its own.
      probe = new LatencyProbe(src, this.redis.password ?? null).start();
      this.pace.probe = probe;
      // Chunks a runner left unsettled (it died mid-copy, or lost a restore's answer).
      await this.mover.reconcileExpired(pass);
      let cursor = '0';
      do {
        await this.checkpoint(pool, batch);
        await this.serveWanted(srcConn, pass, state, batch, inBatch);
        const [next, keys] = await srcConn.scanBuffer(cursor, 'COUNT', scanCount);
        cursor = next.toString('latin1');
        // The product's own keys (copy marks, requests for big keys) never move.
        const mine = keys.filter((k) => inBatch[keySlot(k)] === 1 && !isInternalKey(k));
        found += mine.length;
        for (let i = 0; i < mine.length; ) {
          const slice = mine.slice(i, i + this.mover.chunkSize());
          i += slice.length;
          await this.checkpoint(pool, batch);
          await this.serveWanted(srcConn, pass, state, batch, inBatch);
          // Big keys go one by one in chunks (big-key-move.ts); the rest by copy-then-delete.
          const { rest: chunk, moved } = await this.bigKeys.moveBigKeys(srcConn, slice, batch, this.opts.bigKeyBytes);
          this.tally.moved(moved);
          if (chunk.length === 0) continue;
          await this.mover.throttle(chunk.length);
          if (this.pace.pauseMs > 0) await nap(this.pace.pauseMs, this.lead.signal);
          await pool.run(() => this.mover.moveChunk(pass, chunk, state));
        }
      } while (cursor !== '0');
      await pool.drain();
    } catch (err) {
      await pool.settle();
      // The source connection's own failures name the source: the task waits for its group.
      throw isConnectionError(err) ? new RedisAdminError(src, errText(err), err) : err;
    } finally {
      this.pace.probe = null;
      probe?.stop();
      srcConn?.disconnect();
      dstConn?.disconnect();
    }
    return found;
  }

  /**
   * Big keys a proxy met and left to us (coordinator's WANTED_HASH: it retries meanwhile) are
   * moved first, in pieces; keys we find small after all go the usual way. Looked at every
   * CHECK_INTERVAL_MS. Entries of slots not in this batch are dropped: their proxy asks again.
   */
  private async serveWanted(src: Redis, pass: MovePass, state: BatchMoveState, batch: Batch, inBatch: Uint8Array): Promise<void> {
    const now = Date.now();
    if (now - this.lastWanted < CHECK_INTERVAL_MS) return;
    this.lastWanted = now;
    const wanted = (await src.callBuffer('HKEYS', WANTED_HASH)) as Buffer[];
    if (wanted.length === 0) return;
    const { rest, moved } = await this.bigKeys.moveBigKeys(src, wanted.filter((k) => inBatch[keySlot(k)] === 1), batch, this.opts.bigKeyBytes);
    this.tally.moved(moved);
    if (rest.length > 0) await this.mover.moveChunk(pass, rest, state);
    await src.callBuffer('HDEL', WANTED_HASH, ...wanted);
  }

  /** A chunk of a big key was copied: bytes and source latency into progress; keys move again. */
  private async bigKeyChunk(bytes: number, latencyMs: number): Promise<void> {
    this.tally.count('bytesMoved', bytes);
    this.progress.sourceLatencyMs = Math.round(latencyMs * 10) / 10;
    this.endWait();
    await this.writeProgress(false);
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
    const room = this.lastTopo && (await this.room.wait(batch, this.lastTopo, this.tally.batchEstimate - this.tally.movedInBatch, ROOM_CHECK_INTERVAL_MS));
    if (room) {
      await pool.drain();
      throw room;
    }
    // Both groups re-read: a failover of either stops this pass; the next one follows it.
    await this.batchState?.state.failover.refresh();
    await this.batchState?.state.target.refresh();
    if (isTerminal(cur.task)) {
      await pool.drain();
      throw new Halt(`task is ${cur.task.state}`);
    }
    if (cur.task.state === MigrationState.Paused) {
      await pool.drain();
      await this.waitWhilePaused(
        `paused: slots ${ranges(batch.slots)} stay migrating ${batch.from}→${batch.to}; proxies keep serving them, moving the keys clients touch`,
      );
      await this.batchState?.state.failover.refresh(); // a group may have failed over while paused
      await this.batchState?.state.target.refresh();
      await this.setPhase(this.movingPhase(batch));
    } else if (cur.task.state !== was) {
      await this.setPhase(this.movingPhase(batch));
    } else {
      this.progress.batchKeys = this.pace.batchKeys;
      this.progress.sourceLatencyMs = Math.round(this.pace.sourceLatencyMs() * 10) / 10;
      this.log.debug({ batchKeys: this.pace.batchKeys, pauseMs: this.pace.pauseMs, sourceLatencyMs: this.progress.sourceLatencyMs, movedInBatch: this.tally.movedInBatch }, 'pace');
      await this.writeProgress(false);
    }
  }

  private async waitWhilePaused(phase: string): Promise<void> {
    this.log.info({ phase }, 'migration paused');
    this.tally.restartRate();
    await this.setPhase(phase);
    for (;;) {
      await nap(CHECK_INTERVAL_MS, this.lead.signal);
      if (this.lead.signal.aborted) throw new Halt('stopping');
      const cur = await this.migrations.get(this.id);
      if (!cur) throw new NotFoundError(`migration ${this.id} was deleted`);
      this.task = cur.task;
      if (cur.task.state !== MigrationState.Paused) break;
    }
    this.mover.resetPace();
    this.log.info({ state: this.task.state }, 'migration resumed');
  }

  // --- progress ------------------------------------------------------------------------------

  /** Estimates the keys of the batch and of the slots after it (batch-estimate.ts). */
  private async estimate(batch: Batch, c: Classified, topo: Topology): Promise<void> {
    const e = await estimateKeys(batch, c, topo, this.redis);
    this.tally.batchEstimate = e.batch;
    this.tally.keysLeftOutside = e.after;
  }

  private async writeProgress(force: boolean): Promise<void> {
    const now = Date.now();
    if (!force && now - this.lastProgressWrite < PROGRESS_INTERVAL_MS) return;
    this.lastProgressWrite = now;
    const p = this.tally.snapshot(this.task);
    try {
      await this.writes.task((t) => ({ ...t, progress: { ...t.progress, ...p } }));
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
    this.endWait(); // an ended task waits for nothing
    const t = this.task;
    const p = this.tally.snapshot(this.task);
    const kept = t.slots.length - c.done.length;
    const phase =
      state === MigrationState.Done
        ? `done: ${t.slots.length} slot(s) online in group ${t.to}, ${p.keysMoved} key(s) moved by the runner`
        : `cancelled: ${c.done.length} of ${t.slots.length} slot(s) moved to group ${t.to} stay there (a batch that had started migrating was finished: group ${t.to} held its keys); ` +
          `${kept} slot(s) stay online in their groups; every slot is online in exactly one group`;
    const next = await this.writes.task((cur) => {
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
    this.endWait();
    const message = errText(err);
    this.log.error({ err: message, code: (err as { code?: unknown }).code }, 'migration failed');
    // Never leave a big key held behind either (big-key-move.ts).
    await this.bigKeys.releaseForFailure().catch((e: unknown) => this.log.warn({ err: errText(e) }, 'could not release big-key moves'));
    await this.batchBarrier.revertPreMigrate(this.task); // proxies would hold their requests
    try {
      return await this.writes.task((cur) =>
        isTerminal(cur) ? cur : { ...cur, state: MigrationState.Failed, error: message, progress: { ...cur.progress, ...this.tally.snapshot(this.task), phase: `failed: ${message}` } },
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
}
