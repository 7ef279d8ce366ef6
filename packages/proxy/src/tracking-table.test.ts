/**
 * The tracking table (tracking-table.ts): keys, slots and holders stay in step through
 * track, take, takeSlot, forget and eviction.
 */
import { describe, expect, it } from 'vitest';
import { KeyTable, type KeyHolder } from './tracking-table.js';

class Holder implements KeyHolder {
  readonly keys = new Set<string>();
  constructor(readonly name: string) {}
}

const names = (holders: Set<Holder> | undefined): string[] => [...(holders ?? [])].map((h) => h.name).sort();

describe('KeyTable', () => {
  it('records holders per key and hands them over once when the key is taken', () => {
    const t = new KeyTable<Holder>(0);
    const [a, b] = [new Holder('a'), new Holder('b')];
    t.track(a, 'k', 1);
    t.track(b, 'k', 1);
    t.track(a, 'k', 1); // again: nothing new
    t.track(a, 'j', 2);
    expect(t.size).toBe(2);
    expect(t.items).toBe(3);
    expect(names(t.take('k'))).toEqual(['a', 'b']);
    expect(t.take('k')).toBeUndefined();
    expect([...a.keys]).toEqual(['j']);
    expect([...b.keys]).toEqual([]);
    expect(t.items).toBe(1);
  });

  it('takes every key of a slot, and only those', () => {
    const t = new KeyTable<Holder>(0);
    const a = new Holder('a');
    t.track(a, 'x1', 7);
    t.track(a, 'x2', 7);
    t.track(a, 'y', 8);
    const taken = t.takeSlot(7);
    expect(taken.map(([k, h]) => [k, names(h)])).toEqual([
      ['x1', ['a']],
      ['x2', ['a']],
    ]);
    expect(t.takeSlot(7)).toEqual([]);
    expect([...a.keys]).toEqual(['y']);
    expect(t.size).toBe(1);
  });

  it('forgets a holder without touching the others', () => {
    const t = new KeyTable<Holder>(0);
    const [a, b] = [new Holder('a'), new Holder('b')];
    t.track(a, 'k', 1);
    t.track(b, 'k', 1);
    t.track(a, 'only-a', 3);
    t.forget(a);
    expect(a.keys.size).toBe(0);
    expect(t.size).toBe(1);
    expect(t.items).toBe(1);
    expect(t.takeSlot(3)).toEqual([]);
    expect(names(t.take('k'))).toEqual(['b']);
  });

  it('stays within maxKeys by handing back the oldest keys, never the one just added', () => {
    const t = new KeyTable<Holder>(3);
    const a = new Holder('a');
    for (const k of ['k1', 'k2', 'k3']) expect(t.track(a, k, 0)).toBeNull();
    const evicted = t.track(a, 'k4', 0);
    expect(evicted?.map(([k, h]) => [k, names(h)])).toEqual([['k1', ['a']]]);
    expect(t.size).toBe(3);
    expect([...a.keys].sort()).toEqual(['k2', 'k3', 'k4']);
    // An existing key read again does not grow the table.
    expect(t.track(new Holder('b'), 'k2', 0)).toBeNull();
    expect(t.items).toBe(4);
  });
});
