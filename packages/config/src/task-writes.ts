/**
 * The etcd writes of one migration task run: its slots and the task record, each a guarded
 * write (coordinator's guarded-writes) that also requires the runner's election key — so a
 * runner that lost its lease (paused process, partition) cannot write even before it
 * notices. A refused write re-checks leadership and stops the run (Halt) if it is gone.
 *
 * Invariant: slots change only from the state the caller expects (`expect`), and only while
 * every group they name exists. See docs/architecture.md (migration protocol).
 */
import type { Logger } from 'pino';
import {
  ConflictError,
  MAX_TXN_OPS,
  NO_GROUP,
  encodeSlot,
  guard,
  guardedWrite,
  op,
  readKey,
  type MigrationTask,
  type Migrations,
  type SlotInfo,
  type Store,
} from '@reborn/coordinator';
import { Halt, MigrationError, describeSlot, nap, slotRangeEnd, slotsFixHint, type Lead } from './migration-common.js';

export interface TaskWritesOptions {
  store: Store;
  migrations: Migrations;
  taskId: string;
  lead: Lead;
  log: Logger;
}

export class TaskWrites {
  constructor(private readonly o: TaskWritesOptions) {}

  /**
   * Writes the batch's slots in one transaction, only if (a) this runner still leads
   * (its campaign key exists), (b) no slot in the batch's id range changed since they were
   * read and found as `expect` says, and (c) the groups referenced exist. Concurrent changes
   * elsewhere in the range just cause a re-read and retry.
   */
  async slots(next: SlotInfo[], expect: (cur: SlotInfo) => boolean, what: string): Promise<string> {
    // A batch larger than one transaction is written in consecutive chunks. Proxies apply
    // them in revision order and a barrier names the revision of the last one, so the batch
    // still switches as a unit as far as the barrier is concerned.
    if (next.length > MAX_TXN_OPS) {
      let rev = '';
      for (let i = 0; i < next.length; i += MAX_TXN_OPS) rev = await this.slots(next.slice(i, i + MAX_TXN_OPS), expect, what);
      return rev;
    }
    const { store } = this.o;
    const ids = next.map((s) => s.id);
    const lo = Math.min(...ids);
    const hi = Math.max(...ids);
    // No check of lead.signal here: stop() lets a started barrier section finish; a lost
    // leadership is caught by the guard compare below.
    for (let attempt = 0; attempt < 20; attempt++) {
      const topo = await store.loadTopology();
      for (const s of next) {
        const cur = topo.slots[s.id]!;
        if (!expect(cur)) throw new MigrationError('ESLOTS', `${what}: slot ${s.id} is ${describeSlot(cur)}: changed outside migration ${this.o.taskId}; ${slotsFixHint(this.o.taskId)}`);
      }
      const groups = [...new Set(next.flatMap((s) => [s.group, s.to ?? NO_GROUP]).filter((g) => g !== NO_GROUP))];
      const missing = groups.filter((g) => !topo.groups.has(g));
      if (missing.length > 0) throw new MigrationError('ESLOTS', `${what}: group(s) ${missing.join(', ')} no longer exist; re-create them, or cancel migration ${this.o.taskId}`);
      const guards = [
        guard.exists(this.o.lead.guardKey),
        guard.rangeUnchangedSince(store.paths.slot(lo), slotRangeEnd(store, hi), topo.revision),
        ...groups.map((g) => guard.exists(store.paths.group(g))),
      ];
      const res = await guardedWrite(store, what, guards, next.map((s) => op.put(store.paths.slot(s.id), encodeSlot(s))));
      if (res.succeeded) return res.revision;
      await this.checkLeadership(what);
      await nap(20 + Math.random() * 50 * attempt, this.o.lead.signal);
    }
    throw new ConflictError(`${what}: slots kept changing; will retry`, { retryable: true });
  }

  /** After a guarded write failed: if our campaign key is gone, stop acting now. */
  private async checkLeadership(what: string): Promise<void> {
    const leaderKey = await readKey(this.o.store, 'check leadership', this.o.lead.guardKey);
    if (leaderKey === null) {
      this.o.log.warn({ what }, 'write refused: this runner no longer leads');
      this.o.lead.lose();
      throw new Halt('leadership lost');
    }
  }

  /**
   * Compare-and-swap update of the task (Migrations.update), also guarded by our
   * campaign key: a runner that lost its lease cannot mark a task done, failed or cancelled
   * — or overwrite the progress — behind the new leader's back.
   */
  async task(change: (t: MigrationTask) => MigrationTask): Promise<MigrationTask> {
    return this.o.migrations.update(this.o.taskId, change, {
      guards: [guard.exists(this.o.lead.guardKey)],
      afterConflict: () => this.checkLeadership(`update migration ${this.o.taskId}`),
    });
  }
}
