/**
 * What `check` needs to know from etcd, read in ONE transaction (one revision): the slots
 * (with each slot key's mod revision), the groups, the migration tasks and the open barrier
 * actions. Reading them together is what makes the check's verdicts sound: a slot seen
 * `migrating` and the task list read a moment later could otherwise disagree only because a
 * task finished in between.
 *
 * Invariant: `slotRevisions[id]` is the mod revision of slot `id`'s key ('0' when it has
 * none). If it is the same in two reads, the slot did not change between them — the fix uses
 * that to prove a slot stayed `online` in the same group for the whole of a move.
 */
import {
  ACTIVE_MIGRATION_STATES,
  MigrationState,
  SLOT_COUNT,
  decodeJson,
  groupMaster,
  offlineSlot,
  parseAction,
  parseGroup,
  parseMigration,
  parseSlot,
  readPrefixes,
  type GroupInfo,
  type MigrationTask,
  type SlotInfo,
  type Store,
} from '@reborn/coordinator';

export interface ControlState {
  revision: string;
  /** Exactly SLOT_COUNT entries, index = slot id. */
  slots: SlotInfo[];
  slotRevisions: string[];
  groups: Map<number, GroupInfo>;
  /** Every task, oldest first. */
  tasks: MigrationTask[];
  /** Slot id → sequence numbers of the barrier actions naming it. */
  actionsBySlot: Map<number, number[]>;
}

export async function readControlState(store: Store): Promise<ControlState> {
  const { paths } = store;
  const res = await readPrefixes(store, 'read slots, groups, migrations and actions', [paths.slots, paths.groups, paths.migrations, paths.actions]);
  const [slotKvs, groupKvs, taskKvs, actionKvs] = res.ranges;

  const slots = Array.from({ length: SLOT_COUNT }, (_, id) => offlineSlot(id));
  const slotRevisions = new Array<string>(SLOT_COUNT).fill('0');
  for (const kv of slotKvs ?? []) {
    const key = kv.key;
    const id = paths.slotIdOf(key);
    if (id === null) continue;
    slots[id] = parseSlot(decodeJson(kv.value, key), id, key);
    slotRevisions[id] = kv.modRevision;
  }

  const groups = new Map<number, GroupInfo>();
  for (const kv of groupKvs ?? []) {
    const key = kv.key;
    const id = paths.groupIdOf(key);
    if (id !== null) groups.set(id, parseGroup(decodeJson(kv.value, key), id, key));
  }

  const tasks: MigrationTask[] = [];
  for (const kv of taskKvs ?? []) {
    const key = kv.key;
    if (paths.migrationIdOf(key) !== null) tasks.push(parseMigration(decodeJson(kv.value, key), key));
  }
  tasks.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));

  const actionsBySlot = new Map<number, number[]>();
  for (const kv of actionKvs ?? []) {
    const key = kv.key;
    if (paths.actionSeqOf(key) === null) continue; // acks live under the action's key
    const action = parseAction(decodeJson(kv.value, key), key);
    for (const s of action.slots) actionsBySlot.set(s, [...(actionsBySlot.get(s) ?? []), action.seq]);
  }

  return { revision: res.revision, slots, slotRevisions, groups: new Map([...groups].sort(([a], [b]) => a - b)), tasks, actionsBySlot };
}

/** The master address of group `gid`, or null (no such group, or no master right now). */
export function masterAddr(state: ControlState, gid: number): string | null {
  const g = state.groups.get(gid);
  return (g && groupMaster(g)?.addr) ?? null;
}

/** The active (pending, running, paused, cancelling) task that has slot `id`, if any. */
export function activeTaskOf(state: ControlState, id: number): MigrationTask | null {
  return state.tasks.find((t) => ACTIVE_MIGRATION_STATES.has(t.state) && t.slots.includes(id)) ?? null;
}

/** The newest task of any state that has slot `id`, if any. */
export function lastTaskOf(state: ControlState, id: number): MigrationTask | null {
  return state.tasks.findLast((t) => t.slots.includes(id)) ?? null;
}

/** What runs on slot `id` (an active migration, an open barrier), as words; null when nothing does. */
export function busyWith(state: ControlState, id: number): string | null {
  const task = activeTaskOf(state, id);
  if (task) return `migration ${task.id} (${task.state}, to group ${task.to})`;
  const actions = state.actionsBySlot.get(id);
  if (actions && actions.length > 0) return `an open barrier (action ${actions.join(', ')})`;
  return null;
}

/** A paused task holds its slots on purpose; every other active state needs a runner. */
export function needsRunner(task: MigrationTask): boolean {
  return ACTIVE_MIGRATION_STATES.has(task.state) && task.state !== MigrationState.Paused;
}
