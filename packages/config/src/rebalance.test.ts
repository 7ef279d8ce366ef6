import { describe, expect, it } from 'vitest';
import { SLOT_COUNT, offlineSlot, onlineSlot, type GroupInfo, type SlotInfo } from '@reborn/coordinator';
import { planRebalance, type RebalanceMove } from './rebalance.js';

const group = (id: number, master = true): GroupInfo => ({
  id,
  servers: master ? [{ addr: `127.0.0.1:${7000 + id}`, role: 'master' }] : [{ addr: `127.0.0.1:${7000 + id}`, role: 'replica' }],
});

/** Slots from a list of [first, last, gid] runs (gid 0 = offline); the rest offline. */
function table(runs: [number, number, number][]): SlotInfo[] {
  const slots = Array.from({ length: SLOT_COUNT }, (_, i) => offlineSlot(i));
  for (const [a, b, g] of runs) for (let i = a; i <= b; i++) slots[i] = g === 0 ? offlineSlot(i) : onlineSlot(i, g);
  return slots;
}

/** The table after applying the plan's moves. */
function apply(slots: SlotInfo[], moves: RebalanceMove[]): SlotInfo[] {
  const out = [...slots];
  for (const m of moves) {
    for (let i = m.first; i <= m.last; i++) {
      expect(out[i]!.group).toBe(m.from); // moves name the real current owner
      out[i] = onlineSlot(i, m.to);
    }
  }
  return out;
}

function counts(slots: SlotInfo[]): Map<number, number> {
  const c = new Map<number, number>();
  for (const s of slots) c.set(s.group, (c.get(s.group) ?? 0) + 1);
  return c;
}

function moved(moves: RebalanceMove[], kind?: RebalanceMove['kind']): number {
  return moves.filter((m) => kind === undefined || m.kind === kind).reduce((n, m) => n + m.last - m.first + 1, 0);
}

function expectEven(slots: SlotInfo[], gids: number[]): void {
  const c = counts(slots);
  const n = gids.map((g) => c.get(g) ?? 0);
  expect(n.reduce((a, b) => a + b, 0)).toBe(SLOT_COUNT);
  expect(Math.max(...n) - Math.min(...n)).toBeLessThanOrEqual(1);
}

describe('planRebalance', () => {
  it('assigns a fresh product (all offline) in one contiguous range per group, as assign moves', () => {
    const slots = table([]);
    const plan = planRebalance([group(1), group(2), group(3)], slots);
    expect(plan.moves).toEqual([
      { first: 0, last: 341, from: 0, to: 1, kind: 'assign' },
      { first: 342, last: 682, from: 0, to: 2, kind: 'assign' },
      { first: 683, last: 1023, from: 0, to: 3, kind: 'assign' },
    ]);
    expectEven(apply(slots, plan.moves), [1, 2, 3]);
    expect(plan.summary).toContain('assign offline slots 0-341 (342) to group 1');
  });

  it('does nothing when already balanced', () => {
    const plan = planRebalance([group(1), group(2)], table([[0, 511, 1], [512, 1023, 2]]));
    expect(plan.moves).toEqual([]);
    expect(plan.summary.at(-1)).toBe('already balanced: every group owns 512 slots');
    const three = planRebalance([group(1), group(2), group(3)], table([[0, 341, 1], [342, 682, 2], [683, 1023, 3]]));
    expect(three.moves).toEqual([]);
    expect(three.summary.at(-1)).toBe('already balanced: every group owns 341 or 342 slots');
  });

  it('a new group gets one contiguous tail from each donor, and only the minimum moves', () => {
    const slots = table([[0, 511, 1], [512, 1023, 2]]);
    const plan = planRebalance([group(1), group(2), group(3)], slots);
    // 1024 = 342 + 341 + 341; group 1 (tie, lower id) keeps the extra slot.
    expect(plan.moves).toEqual([
      { first: 342, last: 511, from: 1, to: 3, kind: 'migrate' },
      { first: 853, last: 1023, from: 2, to: 3, kind: 'migrate' },
    ]);
    expect(moved(plan.moves)).toBe(512 - 342 + (512 - 341));
    expectEven(apply(slots, plan.moves), [1, 2, 3]);
    expect(plan.summary).toEqual(
      expect.arrayContaining(['group 1: 512 → 342 slots', 'group 3: 0 → 341 slots', 'migrate slots 342-511 (170) from group 1 to group 3']),
    );
  });

  it('two new groups each get one range', () => {
    const slots = table([[0, 511, 1], [512, 1023, 2]]);
    const plan = planRebalance([group(1), group(2), group(3), group(4)], slots);
    expect(plan.moves).toEqual([
      { first: 256, last: 511, from: 1, to: 3, kind: 'migrate' },
      { first: 768, last: 1023, from: 2, to: 4, kind: 'migrate' },
    ]);
    expectEven(apply(slots, plan.moves), [1, 2, 3, 4]);
  });

  it('moves the minimum number of slots: surplus groups keep the +1 slots', () => {
    // 3 groups own 400, 400, 224: targets 342/341/341, the two big groups keep 342 and 341.
    const slots = table([[0, 399, 1], [400, 799, 2], [800, 1023, 3]]);
    const plan = planRebalance([group(1), group(2), group(3)], slots);
    const after = apply(slots, plan.moves);
    expectEven(after, [1, 2, 3]);
    expect(moved(plan.moves)).toBe(400 - 342 + (400 - 341));
    // Nobody both gives and receives.
    const givers = new Set(plan.moves.map((m) => m.from));
    for (const m of plan.moves) expect(givers.has(m.to)).toBe(false);
  });

  it('hands out offline slots before migrating anything, and mixes both when needed', () => {
    // Group 1 owns 600, 424 are offline, group 2 owns nothing.
    const slots = table([[0, 599, 1]]);
    const plan = planRebalance([group(1), group(2)], slots);
    expect(moved(plan.moves, 'assign')).toBe(424);
    expect(moved(plan.moves, 'migrate')).toBe(600 - 512);
    for (const m of plan.moves) expect(m.kind === 'assign' ? m.from : m.from).toBe(m.kind === 'assign' ? 0 : 1);
    expectEven(apply(slots, plan.moves), [1, 2]);
    // Enough offline slots to fix everything without migrating.
    const only = planRebalance([group(1), group(2)], table([[0, 511, 1]]));
    expect(only.moves).toEqual([{ first: 512, last: 1023, from: 0, to: 2, kind: 'assign' }]);
  });

  it('drains groups that are not in the list, and leaves masterless groups alone', () => {
    const slots = table([[0, 341, 1], [342, 682, 2], [683, 1023, 3]]);
    const drain = planRebalance([group(1), group(2)], slots);
    const after = apply(slots, drain.moves);
    expectEven(after, [1, 2]);
    expect(after.some((s) => s.group === 3)).toBe(false);
    expect(drain.summary).toContain('group 3 is not among the groups to balance: its 341 slot(s) move out');

    const stuck = planRebalance([group(1), group(2), group(3, false)], slots);
    for (const m of stuck.moves) expect(m.from).not.toBe(3);
    expect(stuck.moves.every((m) => m.to !== 3)).toBe(true);
    expect(stuck.summary).toContain('group 3 has no master: its 341 slot(s) stay where they are');
  });

  it('keeps slots in motion where they are going and never moves them', () => {
    const base = table([[0, 511, 1], [512, 1023, 2]]);
    const slots = base.map((s) => (s.id < 100 ? ({ id: s.id, state: 'migrating', group: 1, from: 1, to: 3 } as SlotInfo) : s));
    const plan = planRebalance([group(1), group(2), group(3)], slots);
    for (const m of plan.moves) for (let i = m.first; i <= m.last; i++) expect(i).toBeGreaterThanOrEqual(100);
    // After the running migration and the plan: even.
    const after = apply(
      slots.map((s) => (s.id < 100 ? onlineSlot(s.id, 3) : s)),
      plan.moves,
    );
    expectEven(after, [1, 2, 3]);
  });

  it('handles fragmented ownership and yields no overlapping moves', () => {
    // Interleaved 1,2,1,2,… in runs of 8, plus a new group.
    const runs: [number, number, number][] = [];
    for (let i = 0; i < SLOT_COUNT; i += 8) runs.push([i, i + 7, (i / 8) % 2 === 0 ? 1 : 2]);
    const slots = table(runs);
    const plan = planRebalance([group(1), group(2), group(3)], slots);
    const seen = new Set<number>();
    for (const m of plan.moves) {
      expect(m.first).toBeLessThanOrEqual(m.last);
      for (let i = m.first; i <= m.last; i++) {
        expect(seen.has(i)).toBe(false);
        seen.add(i);
      }
    }
    expectEven(apply(slots, plan.moves), [1, 2, 3]);
    expect(moved(plan.moves)).toBe(341);
  });

  it('says so when no group has a master', () => {
    expect(planRebalance([group(1, false)], table([]))).toEqual({ moves: [], summary: ['no group has a master: nothing to balance'] });
    expect(planRebalance([], table([])).moves).toEqual([]);
  });
});
