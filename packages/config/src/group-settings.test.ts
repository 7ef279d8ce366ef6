import { describe, expect, it } from 'vitest';
import { ServerRole, type GroupInfo } from '@reborn/coordinator';
import { applyGroupSettings, durabilityOf } from './group-settings.js';
import { groupView } from './admin-views.js';

const M = { addr: 'm:1', role: ServerRole.Master };
const R1 = { addr: 'r:1', role: ServerRole.Replica };
const R2 = { addr: 'r:2', role: ServerRole.Replica };
const group = (over: Partial<GroupInfo> = {}): GroupInfo => ({ id: 3, servers: [M, R1, R2], ...over });

/** The error `fn` throws: [code, message]. */
function refusal(fn: () => unknown): [string, string] {
  try {
    fn();
  } catch (err) {
    return [(err as { code: string }).code, (err as Error).message];
  }
  throw new Error('not refused');
}

describe('durabilityOf', () => {
  it('ok, degraded (set empty while replicas exist), refusing (set smaller than minInSync)', () => {
    expect(durabilityOf(group())).toBe('ok'); // absent set: every replica is a member
    expect(durabilityOf(group({ inSync: ['r:1'] }))).toBe('ok');
    expect(durabilityOf(group({ inSync: [] }))).toBe('degraded');
    expect(durabilityOf(group({ inSync: [], minInSync: 0 }))).toBe('degraded');
    expect(durabilityOf(group({ inSync: ['r:1'], minInSync: 2 }))).toBe('refusing');
    expect(durabilityOf(group({ inSync: [], minInSync: 1 }))).toBe('refusing');
    expect(durabilityOf(group({ inSync: ['r:1', 'r:2'], minInSync: 2 }))).toBe('ok');
    // A master alone never had replicas to wait for: not degraded, unless a floor asks for one.
    expect(durabilityOf({ id: 1, servers: [M] })).toBe('ok');
    expect(durabilityOf({ id: 1, servers: [M], minInSync: 1 })).toBe('refusing');
  });

  it('the view shows the members, whether HA manages the set, and the settings', () => {
    expect(groupView(group(), 7)).toEqual({
      id: 3,
      servers: [M, R1, R2],
      slots: 7,
      inSync: ['r:1', 'r:2'],
      inSyncManaged: false,
      minInSync: null,
      wantReplicas: null,
      durability: 'ok',
    });
    expect(groupView(group({ inSync: [], minInSync: 0, wantReplicas: 2 }), 0)).toMatchObject({
      inSync: [],
      inSyncManaged: true,
      minInSync: 0,
      wantReplicas: 2,
      durability: 'degraded',
    });
  });
});

describe('applyGroupSettings', () => {
  it('sets and clears only the settings given; servers and the in-sync set stay as read', () => {
    const g = group({ inSync: ['r:2'], minInSync: 1, wantReplicas: 2 });
    expect(applyGroupSettings(g, { wantReplicas: 3 })).toEqual({ next: { ...g, wantReplicas: 3 }, warnings: [] });
    const cleared = applyGroupSettings(g, { minInSync: null }).next;
    expect(cleared).toEqual({ id: 3, servers: [M, R1, R2], inSync: ['r:2'], wantReplicas: 2 });
    expect('minInSync' in cleared).toBe(false);
    expect(applyGroupSettings(g, { minInSync: null, wantReplicas: null }).next).toEqual({ id: 3, servers: [M, R1, R2], inSync: ['r:2'] });
    expect(applyGroupSettings(group(), { minInSync: 0, wantReplicas: 0 }).next).toEqual({ ...group(), minInSync: 0, wantReplicas: 0 });
  });

  it('refuses nothing to set and values out of range', () => {
    expect(refusal(() => applyGroupSettings(group(), {}))).toEqual(['EINVALID', 'nothing to set for group 3: give min-in-sync and/or want-replicas']);
    expect(refusal(() => applyGroupSettings(group(), { minInSync: 17 }))).toEqual(['EINVALID', 'invalid min-in-sync 17: want 0..16, or none to clear it']);
    expect(refusal(() => applyGroupSettings(group(), { wantReplicas: -1 }))).toEqual(['EINVALID', 'invalid want-replicas -1: want 0..16, or none to clear it']);
    expect(refusal(() => applyGroupSettings(group(), { wantReplicas: 1.5 }))).toEqual(['EINVALID', 'invalid want-replicas 1.5: want 0..16, or none to clear it']);
  });

  it('refuses a min-in-sync above the replica count or above want-replicas, unless forced (then warns)', () => {
    const why = 'min-in-sync 3 is more than the 2 replica(s) of group 3: durable writes to it would be refused until it has 3';
    expect(refusal(() => applyGroupSettings(group(), { minInSync: 3 }))).toEqual(['ECONFLICT', `${why}; add replicas first, or use --force`]);
    expect(applyGroupSettings(group(), { minInSync: 3 }, { force: true })).toEqual({ next: { ...group(), minInSync: 3 }, warnings: [why] });

    const vsWant = 'min-in-sync 2 is more than want-replicas 1 of group 3: durable writes would be refused once it has the replicas it wants';
    expect(refusal(() => applyGroupSettings(group(), { minInSync: 2, wantReplicas: 1 }))).toEqual(['ECONFLICT', `${vsWant}; lower one of them, or use --force`]);
    expect(refusal(() => applyGroupSettings(group({ minInSync: 2 }), { wantReplicas: 1 }))).toEqual(['ECONFLICT', `${vsWant}; lower one of them, or use --force`]);
    expect(applyGroupSettings(group({ minInSync: 2 }), { wantReplicas: 1 }, { force: true }).warnings).toEqual([vsWant]);

    // A forced floor does not block a later, unrelated change.
    expect(applyGroupSettings(group({ minInSync: 3 }), { wantReplicas: 4 }).next).toEqual({ ...group(), minInSync: 3, wantReplicas: 4 });
  });

  it('warns when the new floor is above the replicas in sync now: writes are refused until they catch up', () => {
    expect(applyGroupSettings(group({ inSync: ['r:1'] }), { minInSync: 2 }).warnings).toEqual([
      'group 3 has 1 of 2 replica(s) in sync: durable writes to it are refused until 2 are',
    ]);
    expect(applyGroupSettings(group({ inSync: ['r:1'] }), { minInSync: 1 }).warnings).toEqual([]);
  });
});
