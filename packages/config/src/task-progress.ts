/**
 * The progress counters of one task run (TaskRun): keys moved (since the task began, in this
 * run, in the current batch), the rate over the last few seconds, the estimate of keys left,
 * the unconfirmed / resurrected counters of a source or target failover (key-mover.ts), what
 * the run waits for (if anything), and the MigrationProgress they add up to.
 *
 * Invariant: bookkeeping only — no etcd or redis call. Counters the stored task already carries
 * are taken once (begin), so a run that resumes a task counts on from them.
 */
import type { MigrationProgress, MigrationTask } from '@reborn/coordinator';
import { RATE_WINDOW_MS } from './migration-common.js';

type FailoverCounter = 'unconfirmedKeys' | 'resurrectedDeleted' | 'targetUnconfirmedKeys' | 'bytesMoved';

export class TaskProgress {
  /** What the run sets itself: phase, slots done, the current batch's slots. */
  readonly fields: Partial<MigrationProgress> = {};
  /** Keys moved in the current batch (by this run). */
  movedInBatch = 0;
  /** Estimated keys of the current batch. */
  batchEstimate = 0;
  /** Estimated keys of the slots after the current batch. */
  keysLeftOutside = 0;
  private movedBase = -1;
  private movedThisRun = 0;
  private samples: { t: number; moved: number }[] = [];
  private countersBase: Record<FailoverCounter, number> | null = null;

  /** The counters of the task as first read by this run. */
  begin(stored: MigrationProgress): void {
    if (this.movedBase < 0) this.movedBase = stored.keysMoved;
    this.countersBase ??= {
      unconfirmedKeys: stored.unconfirmedKeys ?? 0,
      resurrectedDeleted: stored.resurrectedDeleted ?? 0,
      targetUnconfirmedKeys: stored.targetUnconfirmedKeys ?? 0,
      bytesMoved: stored.bytesMoved ?? 0,
    };
  }

  moved(n: number): void {
    this.movedThisRun += n;
    this.movedInBatch += n;
  }

  count(name: FailoverCounter, n: number): void {
    this.fields[name] = (this.fields[name] ?? this.countersBase?.[name] ?? 0) + n;
  }

  /** After a pause: the rate is measured afresh. */
  restartRate(): void {
    this.samples = [];
  }

  endBatch(): void {
    this.movedInBatch = 0;
    this.batchEstimate = 0;
  }

  /** The progress to store now (`task` as last read; before the first read, only the fields). */
  snapshot(task: MigrationTask | undefined): Partial<MigrationProgress> {
    // `waiting` always goes in, unset too: a stored reason is cleared by the first write after it passed.
    if (!task) return { ...this.fields, waiting: this.fields.waiting };
    const now = Date.now();
    const moved = this.movedBase + this.movedThisRun;
    this.samples.push({ t: now, moved });
    while (this.samples.length > 2 && now - this.samples[0]!.t > RATE_WINDOW_MS) this.samples.shift();
    const first = this.samples[0]!;
    const dt = (now - first.t) / 1000;
    const rate = dt > 0.2 ? Math.round((moved - first.moved) / dt) : (this.fields.rate ?? 0);
    const keysLeft = Math.max(0, this.keysLeftOutside + Math.max(0, this.batchEstimate - this.movedInBatch));
    return {
      ...this.fields,
      waiting: this.fields.waiting,
      slotsTotal: task.slots.length,
      keysMoved: moved,
      keysLeft,
      rate,
      etaSeconds: rate > 0 ? Math.ceil(keysLeft / rate) : keysLeft === 0 ? 0 : null,
    };
  }
}
