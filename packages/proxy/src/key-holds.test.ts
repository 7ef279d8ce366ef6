/**
 * KeyHolds bookkeeping: which keys a set of move records holds, who waits for them, who is
 * released when a record goes (and only they, in arrival order), the timeout and the bound.
 * Fake timers drive the timeout: the sweep is the only clock this module has.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { keySlot } from '@reborn/protocol';
import type { KeyMove } from '@reborn/coordinator';
import { KeyHolds, printableKey } from './key-holds.js';

const hex = (k: string | Buffer): string => Buffer.from(k).toString('hex');

function move(id: string, keys: Array<string | Buffer>, hold = true): KeyMove {
  return {
    id,
    task: 'm1',
    kind: 'big-key',
    slots: [...new Set(keys.map((k) => keySlot(Buffer.from(k))))],
    from: 1,
    to: 2,
    keys: keys.map(hex),
    hold,
    state: 'holding',
    tmp: null,
    src: '127.0.0.1:1',
    dst: '127.0.0.1:2',
    createdAt: '',
    updatedAt: '',
  };
}

/** Records what happens to parked requests. */
function recorder(): { log: string[]; park(holds: KeyHolds, name: string, key: string): void } {
  const log: string[] = [];
  return {
    log,
    park(holds, name, key) {
      holds.wait(keySlot(Buffer.from(key, 'latin1')), key, () => log.push(`${name}:resumed`), (reply) => log.push(`${name}:${reply.toString().trim()}`));
    },
  };
}

let holds: KeyHolds;

beforeEach(() => {
  vi.useFakeTimers();
  holds = new KeyHolds({ timeoutMs: 1000, maxHeld: 3 });
});

afterEach(() => {
  holds.close();
  vi.useRealTimers();
});

describe('KeyHolds', () => {
  it('holds nothing in any slot until a record with hold arrives', () => {
    const slot = keySlot(Buffer.from('big'));
    expect(holds.holdsIn(slot)).toBe(false);
    expect(holds.heldKey(slot, [Buffer.from('big')])).toBeNull();
    holds.apply('m1.1', move('m1.1', ['big'], false));
    expect(holds.holdsIn(slot)).toBe(false);
    holds.apply('m1.1', move('m1.1', ['big']));
    expect(holds.holdsIn(slot)).toBe(true);
    expect(holds.heldKey(slot, [Buffer.from('other'), Buffer.from('big')])).toBe('big');
    expect(holds.heldKey(slot, [Buffer.from('bi')])).toBeNull();
    expect(holds.heldKeys).toBe(1);
  });

  it('compares binary keys byte for byte', () => {
    const key = Buffer.from([0xff, 0x00, 0x7b, 0x41, 0x7d]);
    const slot = keySlot(key);
    holds.apply('m1.1', move('m1.1', [key]));
    expect(holds.heldKey(slot, [Buffer.from(key)])).toBe(key.toString('latin1'));
    expect(holds.heldKey(slot, [Buffer.from(key.toString('utf8'))])).toBeNull();
    expect(printableKey(key.toString('latin1'))).toBe('\\xff\\x00{A}');
  });

  it('releases the waiters of a key when its record is deleted, in arrival order, and no others', () => {
    // Same slot (hash tag), two keys held by two moves.
    holds.apply('m1.1', move('m1.1', ['{t}a']));
    holds.apply('m1.2', move('m1.2', ['{t}b']));
    const r = recorder();
    r.park(holds, 'first', '{t}a');
    r.park(holds, 'b', '{t}b');
    r.park(holds, 'second', '{t}a');
    expect(holds.waitingRequests).toBe(3);
    holds.apply('m1.1', null);
    expect(r.log).toEqual(['first:resumed', 'second:resumed']);
    expect(holds.waitingRequests).toBe(1);
    expect(holds.heldKey(keySlot(Buffer.from('{t}a')), [Buffer.from('{t}a')])).toBeNull();
    // A record that loses `hold` releases as a delete does.
    holds.apply('m1.2', move('m1.2', ['{t}b'], false));
    expect(r.log).toEqual(['first:resumed', 'second:resumed', 'b:resumed']);
    expect(holds.holdsIn(keySlot(Buffer.from('{t}b')))).toBe(false);
  });

  it('keeps a key held while any move still holds it, and updates of the same record keep it', () => {
    holds.apply('m1.1', move('m1.1', ['k']));
    holds.apply('m2.1', move('m2.1', ['k']));
    const r = recorder();
    r.park(holds, 'x', 'k');
    holds.apply('m1.1', { ...move('m1.1', ['k']), state: 'copying' });
    holds.apply('m1.1', null);
    expect(r.log).toEqual([]);
    holds.apply('m2.1', null);
    expect(r.log).toEqual(['x:resumed']);
  });

  it('a whole table replaces every hold: records gone release their keys, new ones hold', () => {
    holds.apply('m1.1', move('m1.1', ['old']));
    const r = recorder();
    r.park(holds, 'old', 'old');
    holds.replaceAll(new Map([['m1.2', move('m1.2', ['new'])]]));
    expect(r.log).toEqual(['old:resumed']);
    expect(holds.moveIds()).toEqual(['m1.2']);
    expect(holds.heldKey(keySlot(Buffer.from('new')), [Buffer.from('new')])).toBe('new');
  });

  it('a resumed request that finds its key held again waits anew', () => {
    holds.apply('m1.1', move('m1.1', ['k']));
    const log: string[] = [];
    const slot = keySlot(Buffer.from('k'));
    holds.wait(slot, 'k', () => {
      log.push('resumed');
      // The router sends it again; meanwhile another move took the key.
      if (holds.heldKey(slot, [Buffer.from('k')]) !== null) holds.wait(slot, 'k', () => log.push('resumed again'), () => log.push('failed'));
    }, () => log.push('failed'));
    holds.replaceAll(new Map([['m1.2', move('m1.2', ['k'])]]));
    // The same key under a new record: still held, nothing resumed.
    expect(log).toEqual([]);
    holds.apply('m1.2', null);
    expect(log).toEqual(['resumed']);
    expect(holds.waitingRequests).toBe(0);
  });

  it('answers TRYAGAIN after the timeout, counts it, and never holds a request for ever', () => {
    holds.apply('m1.1', move('m1.1', ['k']));
    const r = recorder();
    r.park(holds, 'early', 'k');
    vi.advanceTimersByTime(600);
    r.park(holds, 'late', 'k');
    vi.advanceTimersByTime(500);
    expect(r.log).toEqual(['early:-TRYAGAIN key "k" is being moved between groups; try again']);
    expect(holds.timeouts).toBe(1);
    vi.advanceTimersByTime(600);
    expect(r.log).toHaveLength(2);
    expect(r.log[1]).toMatch(/^late:-TRYAGAIN/);
    expect(holds.waitingRequests).toBe(0);
    expect(holds.timeouts).toBe(2);
  });

  it('refuses past the bound at once', () => {
    holds.apply('m1.1', move('m1.1', ['k']));
    const r = recorder();
    for (const n of ['a', 'b', 'c', 'd']) r.park(holds, n, 'k');
    expect(r.log).toEqual(['d:-TRYAGAIN key "k" is being moved between groups and too many requests wait; try again']);
    expect(holds.waitingRequests).toBe(3);
  });
});
