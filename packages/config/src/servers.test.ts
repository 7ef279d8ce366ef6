import { describe, expect, it } from 'vitest';
import { SLOT_COUNT, offlineSlot, onlineSlot, splitAddr, type MigrationState } from '@reborn/coordinator';
import {
  checkSlotRange,
  compactSlots,
  evenRanges,
  formatSlotList,
  mergeProxies,
  migrationTransition,
} from './servers.js';
import { parseInfo } from '@reborn/coordinator/admin';

describe('evenRanges', () => {
  it('covers 0..1023 contiguously and as evenly as integer division allows', () => {
    for (const n of [1, 2, 3, 5, 7, 1024]) {
      const ids = Array.from({ length: n }, (_, i) => i + 1);
      const r = evenRanges(ids);
      expect(r[0]!.first).toBe(0);
      expect(r[r.length - 1]!.last).toBe(SLOT_COUNT - 1);
      for (let i = 1; i < r.length; i++) expect(r[i]!.first).toBe(r[i - 1]!.last + 1);
      const sizes = r.map((x) => x.last - x.first + 1);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
    expect(evenRanges([3, 8])).toEqual([
      { first: 0, last: 511, group: 3 },
      { first: 512, last: 1023, group: 8 },
    ]);
  });
});

describe('compactSlots', () => {
  it('merges runs of equal state, group and from/to', () => {
    const slots = Array.from({ length: SLOT_COUNT }, (_, id) => (id < 100 ? onlineSlot(id, 1) : offlineSlot(id)));
    expect(compactSlots(slots)).toEqual([
      { first: 0, last: 99, state: 'online', group: 1 },
      { first: 100, last: 1023, state: 'offline', group: 0 },
    ]);
  });
});

describe('migrationTransition', () => {
  const t = (state: MigrationState) => ({ id: 'm-1', state });
  it('allowed moves', () => {
    expect(migrationTransition(t('running'), 'pause')).toBe('paused');
    expect(migrationTransition(t('pending'), 'pause')).toBe('paused');
    expect(migrationTransition(t('paused'), 'resume')).toBe('running');
    // A failed task holds a batch split between groups: resuming it is the way to finish.
    expect(migrationTransition(t('failed'), 'resume')).toBe('running');
    expect(migrationTransition(t('running'), 'cancel')).toBe('cancelling');
    expect(migrationTransition(t('paused'), 'cancel')).toBe('cancelling');
  });
  it('already there: no-op', () => {
    expect(migrationTransition(t('paused'), 'pause')).toBeNull();
    expect(migrationTransition(t('running'), 'resume')).toBeNull();
    expect(migrationTransition(t('cancelling'), 'cancel')).toBeNull();
  });
  it.each([
    ['done', 'resume', 'cannot resume migration m-1: it is done'],
    ['cancelled', 'pause', 'cannot pause migration m-1: it is cancelled'],
    ['done', 'cancel', 'cannot cancel migration m-1: it is done'],
    ['cancelling', 'resume', 'cannot resume migration m-1: it is being cancelled'],
    ['cancelling', 'pause', 'cannot pause migration m-1: it is being cancelled'],
  ] as const)('%s + %s → %s', (state, op, message) => {
    expect(() => migrationTransition(t(state), op)).toThrow(message);
    try {
      migrationTransition(t(state), op);
    } catch (err) {
      expect((err as { code: string }).code).toBe('ECONFLICT');
    }
  });
});

describe('small helpers', () => {
  it('formatSlotList', () => {
    expect(formatSlotList([])).toBe('');
    expect(formatSlotList([0, 1, 2, 5, 7, 8])).toBe('0-2,5,7-8');
  });
  it('parseInfo', () => {
    const m = parseInfo('# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_link_status:up\r\n\r\n');
    expect(m['role']).toBe('slave');
    expect(m['master_link_status']).toBe('up');
    expect('# Replication' in m).toBe(false);
  });
  it('splitAddr handles IPv6 brackets', () => {
    expect(splitAddr('127.0.0.1:6379')).toEqual({ host: '127.0.0.1', port: 6379 });
    expect(splitAddr('[::1]:7000')).toEqual({ host: '::1', port: 7000 });
  });
  it('checkSlotRange', () => {
    expect(() => checkSlotRange(10, 5)).toThrow('invalid slot range 10-5: from must not be greater than to');
    expect(() => checkSlotRange(0, 1024)).toThrow('slot 1024 is out of range 0..1023');
    expect(() => checkSlotRange(3, 3)).not.toThrow();
  });
  it('mergeProxies: registered, fenced-only and lost members', () => {
    const p = { id: 'a', addr: 'h:1', adminAddr: 'h:2', pid: 1, host: 'h', startedAt: 'T', state: 'online' as const };
    const fence = { proxyId: 'b', at: 'T', reason: 'r', action: null, servers: [] };
    const v = mergeProxies([p], [fence], ['a', 'c']);
    expect(v.map((x) => [x.id, x.state, x.registered, x.member])).toEqual([
      ['a', 'online', true, true],
      ['b', 'fenced', false, false],
      ['c', 'lost', false, true],
    ]);
  });
});
