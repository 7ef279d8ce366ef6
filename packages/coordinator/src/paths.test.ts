import { describe, expect, it } from 'vitest';
import { ValidationError } from './errors.js';
import { Paths, isValidProduct } from './paths.js';

describe('Paths', () => {
  const p = new Paths('demo');

  it('lays keys out as docs/architecture.md §2 says', () => {
    expect(p.root).toBe('/reborn/demo/');
    expect(p.slot(0)).toBe('/reborn/demo/slots/0000');
    expect(p.slot(7)).toBe('/reborn/demo/slots/0007');
    expect(p.slot(1023)).toBe('/reborn/demo/slots/1023');
    expect(p.group(1)).toBe('/reborn/demo/groups/1');
    expect(p.group(9999)).toBe('/reborn/demo/groups/9999');
    expect(p.proxy('px-1')).toBe('/reborn/demo/proxies/px-1');
    expect(p.action(42)).toBe('/reborn/demo/actions/0000000042');
    expect(p.actionAck(42, 'px-1')).toBe('/reborn/demo/actions/0000000042/acks/px-1');
    expect(p.migration('m1')).toBe('/reborn/demo/migrations/m1');
    expect(p.agents).toBe('/reborn/demo/agents/');
  });

  it('sorts slot keys in slot order', () => {
    const keys = [1023, 5, 100, 0, 64].map((id) => p.slot(id));
    expect([...keys].sort()).toEqual([0, 5, 64, 100, 1023].map((id) => p.slot(id)));
  });

  it('rejects out-of-range ids', () => {
    for (const id of [-1, 1024, 1.5, NaN]) expect(() => p.slot(id)).toThrow(ValidationError);
    for (const id of [0, 10000, 2.5, -3]) expect(() => p.group(id)).toThrow(ValidationError);
    expect(() => p.proxy('a/b')).toThrow(ValidationError);
    expect(() => p.proxy('')).toThrow(ValidationError);
  });

  it('parses keys back, and only exact keys', () => {
    expect(p.slotIdOf('/reborn/demo/slots/0042')).toBe(42);
    expect(p.slotIdOf('/reborn/demo/slots/42')).toBeNull();
    expect(p.slotIdOf('/reborn/demo/slots/1024')).toBeNull();
    expect(p.slotIdOf('/reborn/demo/slots/0042/x')).toBeNull();
    expect(p.slotIdOf('/reborn/other/slots/0042')).toBeNull();
    expect(p.groupIdOf('/reborn/demo/groups/12')).toBe(12);
    expect(p.groupIdOf('/reborn/demo/groups/012')).toBeNull();
    expect(p.groupIdOf('/reborn/demo/groups/0')).toBeNull();
    expect(p.groupIdOf('/reborn/demo/groups/10000')).toBeNull();
    expect(p.proxyIdOf('/reborn/demo/proxies/px-1')).toBe('px-1');
    expect(p.proxyIdOf('/reborn/demo/proxies/a/b')).toBeNull();
  });

  it('keeps products apart: one is never a prefix of another', () => {
    const p2 = new Paths('demo2');
    expect(p2.slot(1).startsWith(p.root)).toBe(false);
  });

  it('validates product names', () => {
    for (const ok of ['a', 'default', 'A_b-9', 'x'.repeat(64)]) expect(isValidProduct(ok)).toBe(true);
    for (const bad of ['', 'a/b', 'a b', 'ü', 'x'.repeat(65), '..']) {
      expect(isValidProduct(bad)).toBe(false);
      expect(() => new Paths(bad)).toThrow(ValidationError);
    }
  });

  it('puts the identity and the restore marker inside the range the topology watch covers', () => {
    expect(p.identity).toBe('/reborn/demo/identity');
    expect(p.restoring).toBe('/reborn/demo/restoring');
    const watchedFrom = p.actions;
    const watchedTo = p.slots + '\xff';
    for (const key of [p.identity, p.restoring]) {
      expect(key > watchedFrom && key < watchedTo).toBe(true);
      expect(p.slotIdOf(key)).toBeNull();
      expect(p.groupIdOf(key)).toBeNull();
    }
  });
});
