/**
 * Rebalance: spread the slots evenly over the groups that have a master.
 *
 * planRebalance is pure. Its plan:
 *   - targets: with T movable-or-owned slots and N groups, every group gets ⌊T/N⌋ and the
 *     T mod N groups that own the most today get one more — so counts differ by at most 1 and
 *     as few slots as possible change hands (a group never both gives and receives);
 *   - donors give their highest-numbered slots (their remaining ones stay contiguous);
 *     slots of groups not in `groups` (e.g. a group being drained) are all given away;
 *     offline slots are handed out too, as `assign` moves (a `slot set`, no keys to move);
 *   - the donated slots, in id order, fill the receivers in id order, so each receiver gets
 *     as few, as long runs as the donors allow; runs become moves (first..last).
 * Slots that cannot move now stay where they are and count for their group: slots of a
 * listed group without a master (nothing to scan) and slots already pre_migrate/migrating
 * (counted for their target).
 *
 * executeRebalance applies a plan: assigns the offline slots directly (after checking they
 * are still offline) and creates one migration task per `migrate` move; the runner executes
 * the tasks (tasks sharing a group run one after the other, in creation order).
 */
import {
  ConflictError,
  MAX_TXN_OPS,
  NO_GROUP,
  SlotState,
  groupMaster,
  onlineSlot,
  type GroupInfo,
  type MigrationTask,
  type SlotInfo,
  type Store,
} from '@reborn/coordinator';
import { createMigration } from './migration-runner.js';

export interface RebalanceMove {
  first: number;
  last: number;
  /** The current owner; NO_GROUP (0) for offline slots. */
  from: number;
  to: number;
  /** `migrate`: a migration task moves the keys; `assign`: offline slots, set online directly. */
  kind: 'migrate' | 'assign';
}

export interface RebalancePlan {
  moves: RebalanceMove[];
  summary: string[];
}

interface Donation {
  id: number;
  from: number;
}

export function planRebalance(groups: readonly GroupInfo[], slots: readonly SlotInfo[]): RebalancePlan {
  const listed = new Map(groups.map((g) => [g.id, g]));
  const eligible = groups.filter((g) => groupMaster(g) !== undefined).map((g) => g.id).sort((a, b) => a - b);
  const summary: string[] = [];
  if (eligible.length === 0) {
    return { moves: [], summary: ['no group has a master: nothing to balance'] };
  }
  const isEligible = new Set(eligible);

  const owned = new Map<number, number[]>(eligible.map((g) => [g, []])); // movable slots per group
  const fixed = new Map<number, number>(eligible.map((g) => [g, 0])); // slots that count but stay
  const donations: Donation[] = [];
  const stuck = new Map<number, number>(); // listed groups without a master → slots left alone
  const drained = new Map<number, number>();
  const sorted = [...slots].sort((a, b) => a.id - b.id);
  for (const s of sorted) {
    if (s.state === SlotState.Offline) {
      donations.push({ id: s.id, from: NO_GROUP });
    } else if (s.state === SlotState.Online) {
      if (isEligible.has(s.group)) owned.get(s.group)!.push(s.id);
      else if (listed.has(s.group)) stuck.set(s.group, (stuck.get(s.group) ?? 0) + 1);
      else {
        donations.push({ id: s.id, from: s.group });
        drained.set(s.group, (drained.get(s.group) ?? 0) + 1);
      }
    } else {
      // In motion: it belongs to its target once the running migration ends.
      const to = s.to ?? s.group;
      if (isEligible.has(to)) fixed.set(to, fixed.get(to)! + 1);
      else stuck.set(to, (stuck.get(to) ?? 0) + 1);
    }
  }

  const count = (g: number) => owned.get(g)!.length + fixed.get(g)!;
  const total = eligible.reduce((n, g) => n + count(g), 0) + donations.length;
  const base = Math.floor(total / eligible.length);
  const extra = total % eligible.length;
  // The groups owning the most keep the +1: fewer slots have to move.
  const byCount = [...eligible].sort((a, b) => count(b) - count(a) || a - b);
  const target = new Map(byCount.map((g, i) => [g, base + (i < extra ? 1 : 0)]));

  for (const g of eligible) {
    const surplus = count(g) - target.get(g)!;
    if (surplus <= 0) continue;
    const mine = owned.get(g)!;
    const give = mine.splice(Math.max(0, mine.length - surplus)); // highest ids
    for (const id of give) donations.push({ id, from: g });
  }
  donations.sort((a, b) => a.id - b.id);

  const assigned: { id: number; from: number; to: number }[] = [];
  let next = 0;
  for (const g of eligible) {
    let need = target.get(g)! - count(g);
    while (need > 0 && next < donations.length) {
      const d = donations[next++]!;
      assigned.push({ id: d.id, from: d.from, to: g });
      need--;
    }
  }

  const moves: RebalanceMove[] = [];
  for (const a of assigned.sort((x, y) => x.id - y.id)) {
    const kind = a.from === NO_GROUP ? 'assign' : 'migrate';
    const last = moves[moves.length - 1];
    if (last && last.last === a.id - 1 && last.from === a.from && last.to === a.to && last.kind === kind) last.last = a.id;
    else moves.push({ first: a.id, last: a.id, from: a.from, to: a.to, kind });
  }

  const after = new Map(eligible.map((g) => [g, count(g) + assigned.filter((a) => a.to === g).length]));
  for (const g of eligible) {
    const before = count(g) + donations.filter((d) => d.from === g).length;
    summary.push(`group ${g}: ${before} → ${after.get(g)} slots`);
  }
  for (const [g, n] of drained) summary.push(`group ${g} is not among the groups to balance: its ${n} slot(s) move out`);
  for (const [g, n] of stuck) summary.push(`group ${g} has no master: its ${n} slot(s) stay where they are`);
  if (moves.length === 0) {
    summary.push(`already balanced: every group owns ${base}${extra > 0 ? ` or ${base + 1}` : ''} slots`);
  }
  for (const m of moves) {
    const n = m.last - m.first + 1;
    const range = m.first === m.last ? `slot ${m.first}` : `slots ${m.first}-${m.last}`;
    summary.push(
      m.kind === 'assign'
        ? `assign offline ${range} (${n}) to group ${m.to}`
        : `migrate ${range} (${n}) from group ${m.from} to group ${m.to}`,
    );
  }
  return { moves, summary };
}

export interface ExecuteRebalanceOptions {
  /** Keys per second per task; 0 = unlimited. */
  throttle?: number;
  batchSlots?: number;
}

/**
 * Assigns the plan's offline slots (refusing if one is no longer offline: plan again) and
 * creates a migration task per `migrate` move. Returns the tasks, in creation order.
 */
export async function executeRebalance(
  store: Store,
  plan: RebalancePlan,
  opts: ExecuteRebalanceOptions = {},
): Promise<MigrationTask[]> {
  const assigns = plan.moves.filter((m) => m.kind === 'assign');
  if (assigns.length > 0) {
    const slots = await store.listSlots();
    const writes: SlotInfo[] = [];
    for (const m of assigns) {
      for (let id = m.first; id <= m.last; id++) {
        const s = slots[id]!;
        if (s.state !== SlotState.Offline) {
          throw new ConflictError(`slot ${id} is no longer offline (${s.state} in group ${s.group}): plan the rebalance again`, {
            retryable: true,
          });
        }
        writes.push(onlineSlot(id, m.to));
      }
    }
    for (let i = 0; i < writes.length; i += MAX_TXN_OPS) await store.putSlots(writes.slice(i, i + MAX_TXN_OPS));
  }
  const tasks: MigrationTask[] = [];
  for (const m of plan.moves) {
    if (m.kind !== 'migrate') continue;
    tasks.push(
      await createMigration(store, {
        first: m.first,
        last: m.last,
        to: m.to,
        ...(opts.throttle === undefined ? {} : { throttle: opts.throttle }),
        ...(opts.batchSlots === undefined ? {} : { batchSlots: opts.batchSlots }),
      }),
    );
  }
  return tasks;
}
