/**
 * The topology guard's decisions (pure) and the alarm's one-log-line-per-transition rule.
 */
import { describe, expect, it } from 'vitest';
import { SLOT_COUNT, offlineSlot, onlineSlot, type GroupInfo, type ProductIdentity, type SlotInfo, type Topology } from './models.js';
import {
  TopologyAlarm,
  judgeTopology,
  judgeTopologyHead,
  missingTopologyProblem,
  needsServingCheck,
  type HeldTopology,
} from './topology-guard.js';

const G1: ProductIdentity = { generation: 'gen-1', createdAt: '2024-01-01T00:00:00.000Z' };
const G2: ProductIdentity = { generation: 'gen-2', createdAt: '2024-02-01T00:00:00.000Z' };
const group = (id: number): GroupInfo => ({ id, servers: [{ addr: `127.0.0.1:${6000 + id}`, role: 'master' }] });

/** Slots 0..511 in group 1, the rest in group 2 (every key present). */
function served(): SlotInfo[] {
  return Array.from({ length: SLOT_COUNT }, (_, id) => onlineSlot(id, id < 512 ? 1 : 2));
}

function topology(over: Partial<Topology> = {}): Topology {
  return {
    groups: new Map([[1, group(1)], [2, group(2)]]),
    slots: served(),
    revision: '100',
    identity: G1,
    restoring: null,
    missingSlotKeys: [],
    moves: new Map(),
    ...over,
  };
}

const held = (over: Partial<HeldTopology> = {}): HeldTopology => ({
  identity: G1,
  groups: new Map([[1, group(1)], [2, group(2)]]),
  slots: served(),
  ...over,
});

const wiped = (): Topology =>
  topology({
    groups: new Map(),
    slots: Array.from({ length: SLOT_COUNT }, (_, id) => offlineSlot(id)),
    identity: null,
    missingSlotKeys: Array.from({ length: SLOT_COUNT }, (_, id) => id),
  });

describe('judgeTopology', () => {
  it('takes the same identity, with any legitimate change', () => {
    const slots = served();
    slots[7] = offlineSlot(7); // set offline: its key stays
    expect(judgeTopology(held(), topology({ slots }))).toBeNull();
    // a group no slot uses any more may go
    const moved = served().map((s) => (s.group === 2 ? onlineSlot(s.id, 1) : s));
    expect(judgeTopology(held(), topology({ slots: moved, groups: new Map([[1, group(1)]]) }))).toBeNull();
  });

  it('refuses a wiped etcd: the identity is gone', () => {
    expect(judgeTopology(held(), wiped())?.reason).toBe('identity_vanished');
  });

  it('refuses another identity', () => {
    const p = judgeTopology(held(), topology({ identity: G2 }));
    expect(p?.reason).toBe('identity_changed');
    expect(p?.message).toContain('gen-2');
    expect(p?.message).toContain('gen-1');
  });

  it('without identity (a product from before identities), a wiped slot table is still seen', () => {
    expect(judgeTopology(held({ identity: null }), wiped())?.reason).toBe('topology_vanished');
    expect(judgeTopology(held({ identity: null }), wiped())?.message).toMatch(/every slot key is gone/);
    // and a non-empty table without identity is taken
    expect(judgeTopology(held({ identity: null }), topology({ identity: null }))).toBeNull();
    // an identity appearing (adopted) is taken
    expect(judgeTopology(held({ identity: null }), topology())).toBeNull();
  });

  it('refuses served slots whose keys were deleted, and groups deleted under their slots', () => {
    const someGone = topology({ slots: served().map((s) => (s.id < 3 ? offlineSlot(s.id) : s)), missingSlotKeys: [0, 1, 2] });
    expect(judgeTopology(held(), someGone)?.message).toMatch(/keys of 3 served slot/);
    const groupGone = topology({ groups: new Map([[1, group(1)]]) });
    expect(judgeTopology(held(), groupGone)?.message).toMatch(/group 2 is gone from etcd while slot 512/);
  });

  it('refuses while a restore is in progress, holding a table or not', () => {
    const restoring = { generation: 'gen-1', startedAt: 'now', by: 'ops 1' };
    expect(judgeTopology(held(), topology({ restoring, identity: null }))?.reason).toBe('restore_in_progress');
    expect(judgeTopology(null, topology({ restoring, identity: null }))?.reason).toBe('restore_in_progress');
  });

  it('holding nothing, takes what etcd has; only an empty product without identity needs the registrations', () => {
    expect(judgeTopology(null, topology())).toBeNull();
    expect(judgeTopology(null, wiped())).toBeNull();
    expect(needsServingCheck(null, wiped())).toBe(true);
    expect(needsServingCheck(held(), wiped())).toBe(false);
    expect(needsServingCheck(null, { ...wiped(), identity: G1 })).toBe(false); // created, not lost
    expect(needsServingCheck(null, { ...wiped(), groups: new Map([[1, group(1)]]) })).toBe(false); // being created
    const p = missingTopologyProblem('shop', ['px-1', 'px-2']);
    expect(p.reason).toBe('topology_missing');
    expect(p.message).toContain('shop');
    expect(p.message).toContain('px-1, px-2');
  });
});

describe('judgeTopologyHead', () => {
  const head = { identity: G1, restoring: null, slotKeys: SLOT_COUNT, groups: 2, revision: '5' };
  it('sees a lost or replaced identity and a slot table without keys', () => {
    expect(judgeTopologyHead(held(), head)).toBeNull();
    expect(judgeTopologyHead(held(), { ...head, identity: null })?.reason).toBe('identity_vanished');
    expect(judgeTopologyHead(held(), { ...head, identity: G2 })?.reason).toBe('identity_changed');
    expect(judgeTopologyHead(held({ identity: null }), { ...head, identity: null, slotKeys: 0 })?.reason).toBe('topology_vanished');
    expect(judgeTopologyHead(held({ identity: null, slots: [offlineSlot(0)] }), { ...head, identity: null, slotKeys: 0 })).toBeNull();
  });
});

describe('TopologyAlarm', () => {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const logger = {
      error: (obj: object, msg: string) => lines.push({ ...obj, level: 50, msg }),
      warn: (obj: object, msg: string) => lines.push({ ...obj, level: 40, msg }),
    };
    return { lines, logger };
  }

  it('logs one error per transition and one line when it clears', () => {
    const { lines, logger } = capture();
    const alarm = new TopologyAlarm(logger, 'serving the last table');
    expect(alarm.raise({ reason: 'identity_vanished', message: 'gone' })).toBe(true);
    expect(alarm.raise({ reason: 'identity_vanished', message: 'still gone' })).toBe(false);
    expect(alarm.view?.message).toBe('still gone');
    const since = alarm.view?.since;
    expect(alarm.raise({ reason: 'restore_in_progress', message: 'restoring' })).toBe(true);
    expect(alarm.view?.since).toBeDefined();
    expect(alarm.reason).toBe('restore_in_progress');
    expect(alarm.clear('back')).toBe(true);
    expect(alarm.clear('back')).toBe(false);
    expect(alarm.view).toBeNull();
    const errors = lines.filter((l) => l['level'] === 50);
    expect(errors.map((l) => l['reason'])).toEqual(['identity_vanished', 'restore_in_progress']);
    expect(errors[0]!['msg']).toBe('topology alarm: gone');
    expect(lines.filter((l) => String(l['msg']).startsWith('topology alarm cleared'))).toHaveLength(1);
    expect(since).toBeDefined();
  });
});
