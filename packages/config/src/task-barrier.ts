/**
 * Steps 3–4 of a task run's state machine (task-run.ts, the reference): the barrier of one
 * batch. Prepare writes the batch `pre_migrate`, names the registered proxies in a barrier
 * action, waits for their acks and fences those that did not ack (fence.ts); then the batch
 * becomes `migrating`. Revert puts a `pre_migrate` batch back online in its source group.
 *
 * Invariant: a batch leaves `pre_migrate` only to `migrating` (every proxy named by the action
 * acked or is fenced) or back to `online {group:A}` (nothing was written to B yet); actions an
 * earlier attempt of the task left behind are deleted before a new one is created.
 */
import type { Logger } from 'pino';
import { MAX_TXN_OPS, SlotState, onlineSlot, type Barrier, type MigrationProgress, type MigrationTask, type Store } from '@reborn/coordinator';
import type { RedisAdminOptions } from '@reborn/coordinator/admin';
import { FenceError, fenceSilent } from './fence.js';
import { MigrationError, MigrationWait, BARRIER_ATTEMPTS, pickBatch, ranges, isRetryable, errText, nap, type Batch } from './migration-common.js';
import type { TaskWrites } from './task-writes.js';

export interface TaskBarrierOptions {
  store: Store;
  barrier: Barrier;
  /** The run's guarded etcd writes (they stop the run if it lost the lead). */
  writes: TaskWrites;
  taskId: string;
  log: Logger;
  redis: RedisAdminOptions;
  barrierTimeoutMs: number;
  /** Aborted when the runner stops leading. */
  signal: AbortSignal;
  /** Writes the task's phase (and its progress with it). */
  setPhase: (phase: string) => Promise<void>;
  /** The run's own progress fields: currentSlots is set here and written with the next phase. */
  progress: Partial<MigrationProgress>;
}

/** The barrier step of one task run; counts the barrier failures in a row across its retries. */
export class TaskBarrier {
  private failures = 0;

  constructor(private readonly o: TaskBarrierOptions) {}

  /** Steps 3–4 for `batch`: it ends `migrating`, or back online in its source after a fence failure. */
  async prepare(batch: Batch): Promise<void> {
    const { from: a, to: b, slots } = batch;
    const label = `slots ${ranges(slots)} ${a}→${b}`;
    this.o.progress.currentSlots = slots;
    await this.clearStaleActions();
    const rev = await this.o.writes.slots(
      slots.map((id) => ({ id, state: SlotState.PreMigrate, group: a, from: a, to: b })),
      (s) => (s.state === SlotState.Online && s.group === a) || (s.state === SlotState.PreMigrate && s.from === a && s.to === b),
      `pre_migrate ${label}`,
    );
    // From here to `migrating` (or back to online) the proxies hold requests for these
    // slots: this section is short and bounded, and stop() does not interrupt it.
    const action = await this.o.barrier.createAction(slots, rev, `migration ${this.o.taskId}: ${label}`);
    await this.o.setPhase(`barrier: waiting for ${action.proxies.length} proxies to ack action ${action.seq} (${label})`);
    const { missing } = await this.o.barrier.waitForAcks(action, this.o.barrierTimeoutMs);
    if (missing.length > 0) {
      this.o.log.warn({ action: action.seq, missing, timeoutMs: this.o.barrierTimeoutMs }, 'proxies did not ack the barrier: fencing them');
      await this.o.setPhase(`barrier: fencing ${missing.join(', ')} (no ack of action ${action.seq} within ${this.o.barrierTimeoutMs} ms)`);
      const failed = await fenceSilent(this.o.store, {
        missing,
        action: action.seq,
        reason: `did not ack action ${action.seq} (migration ${this.o.taskId}, ${label}) within ${this.o.barrierTimeoutMs} ms`,
        logger: this.o.log,
        redis: this.o.redis,
      });
      if (failed.length > 0) {
        const why = failed.map(errText).join('; ');
        await this.revert(batch, `barrier failed: ${why}`);
        await this.o.barrier.deleteAction(action.seq).catch(() => {});
        this.failures++;
        if (!failed.every((e) => e instanceof FenceError || isRetryable(e))) {
          throw new MigrationError(
            'EBARRIER',
            `barrier for ${label} failed: ${why}; the slots are online in group ${a}; fix the cause, then run "reborn-config migration resume ${this.o.taskId}"`,
          );
        }
        // A server that cannot be fenced now (down, being failed over) will be fencable later:
        // retried for as long as it takes, each retry a little later (a barrier holds requests).
        const wait = Math.min(10_000, 2000 * this.failures);
        if (this.failures >= BARRIER_ATTEMPTS) {
          throw new MigrationWait(
            `waiting to fence ${missing.join(', ')} (no ack of the barrier)`,
            `${why}; ${label} back online in group ${a}; attempt ${this.failures}`,
            { retryInMs: wait },
          );
        }
        await this.o.setPhase(`barrier failed (${this.failures}/${BARRIER_ATTEMPTS}): ${why}; ${label} back online in group ${a}; retrying in ${wait / 1000} s`);
        await nap(wait, this.o.signal);
        return;
      }
    }
    await this.o.writes.slots(
      slots.map((id) => ({ id, state: SlotState.Migrating, group: b, from: a, to: b })),
      (s) => s.state === SlotState.PreMigrate && s.from === a && s.to === b,
      `migrating ${label}`,
    );
    this.failures = 0;
    await this.o.barrier.deleteAction(action.seq).catch((err: unknown) => this.o.log.warn({ err: errText(err), action: action.seq }, 'could not delete action'));
    this.o.log.info({ slots: ranges(slots), from: a, to: b, action: action.seq, fenced: missing }, 'batch migrating');
  }

  /** pre_migrate → online in the source: allowed because nothing was written to the target. */
  async revert(batch: Batch, phase: string): Promise<void> {
    await this.o.writes.slots(
      batch.slots.map((id) => onlineSlot(id, batch.from)),
      (s) => (s.state === SlotState.PreMigrate && s.from === batch.from && s.to === batch.to) || (s.state === SlotState.Online && s.group === batch.from),
      `revert slots ${ranges(batch.slots)} to group ${batch.from}`,
    );
    await this.clearStaleActions();
    this.o.progress.currentSlots = [];
    this.o.log.warn({ slots: ranges(batch.slots), group: batch.from }, 'batch back online in its source group');
    await this.o.setPhase(phase);
  }

  /** Deletes barrier actions an earlier attempt of this task left behind. */
  private async clearStaleActions(): Promise<void> {
    const prefix = `migration ${this.o.taskId}:`;
    for (const a of await this.o.barrier.listActions()) {
      if (a.note.startsWith(prefix)) await this.o.barrier.deleteAction(a.seq);
    }
  }

  /** A failing task never leaves a batch of its slots in pre_migrate behind (proxies would hold its requests). */
  async revertPreMigrate(task: MigrationTask): Promise<void> {
    try {
      const topo = await this.o.store.loadTopology();
      const pre = task.slots.map((id) => topo.slots[id]!).filter((s) => s.state === SlotState.PreMigrate && s.to === task.to);
      if (pre.length > 0) await this.revert(pickBatch(pre.map((s) => ({ id: s.id, from: s.from! })), task.to, MAX_TXN_OPS), 'failing');
    } catch (e) {
      this.o.log.warn({ err: errText(e) }, 'could not put pre_migrate slots back online');
    }
  }
}
