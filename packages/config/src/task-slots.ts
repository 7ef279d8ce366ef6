/**
 * Step 2 of a task run's state machine (task-run.ts, the reference): where each slot of a task
 * stands in etcd now — done (online in the target), to do (online elsewhere), in a batch left
 * in `pre_migrate` or `migrating` towards the target. Reads nothing itself: the caller passes
 * the task and the topology it just read.
 *
 * Invariant: every slot of the task lands in exactly one class; a slot in any other state was
 * changed outside this migration and fails the task (ESLOTS), naming the slot and the fix.
 */
import { SlotState, type MigrationTask, type Topology } from '@reborn/coordinator';
import { MigrationError, describeSlot, slotsFixHint } from './migration-common.js';

export interface Classified {
  done: number[];
  todo: { id: number; from: number }[];
  pre: { id: number; from: number }[];
  mig: { id: number; from: number }[];
}

export function classifySlots(t: MigrationTask, topo: Topology): Classified {
  const out: Classified = { done: [], todo: [], pre: [], mig: [] };
  for (const id of t.slots) {
    const s = topo.slots[id]!;
    if (s.state === SlotState.Online && s.group === t.to) out.done.push(id);
    else if (s.state === SlotState.Online) out.todo.push({ id, from: s.group });
    else if (s.state === SlotState.PreMigrate && s.to === t.to) out.pre.push({ id, from: s.from! });
    else if (s.state === SlotState.Migrating && s.to === t.to) out.mig.push({ id, from: s.from! });
    else {
      throw new MigrationError('ESLOTS', `slot ${id} is ${describeSlot(s)}: it was changed outside migration ${t.id} (to group ${t.to}); ${slotsFixHint(t.id)}`);
    }
  }
  return out;
}
