/**
 * Key holds: while a key is being moved between groups in pieces (a big key copied in chunks,
 * coordinator moves.ts), every request naming it waits here, and requests for the other keys
 * of its slot flow untouched.
 *
 * The holds follow the `/moves/` records of etcd (the topology follower hands them in, in
 * revision order with slot changes, and the whole set with each table it installs): a record
 * with `hold` set holds its keys until it is deleted or loses `hold`. A waiting request is
 * then resumed and routed again by its slot's state at that time (forward.ts). Each request
 * waits at most `timeoutMs` (a record nobody deletes must not hold a client for ever), after
 * which it gets -TRYAGAIN; at most `maxHeld` requests wait at once, past that -TRYAGAIN too.
 *
 * Invariant: `bySlot[slot]` is undefined whenever no key of that slot is held, so the check
 * on the request path is one array read for every slot without a hold. Keys are compared as
 * latin1 strings of their bytes (binary-safe: one char per byte).
 */
import { encodeError, keySlot, SLOT_COUNT } from '@reborn/protocol';
import type { KeyMove } from '@reborn/coordinator';
import { Fifo } from './fifo.js';

export interface KeyHoldLimits {
  /** How long one request may wait for its key's move (--key-hold-timeout). */
  timeoutMs: number;
  /** Most requests waiting for key moves at once. */
  maxHeld: number;
}

/** A request waiting for a held key. */
interface Waiter {
  readonly since: number;
  /** The held key it names (latin1). */
  readonly key: string;
  resume(): void;
  fail(reply: Buffer): void;
}

/** The keys of a record that a proxy must hold: none unless `hold` is set. */
function heldKeysOf(move: KeyMove | null): Array<{ slot: number; key: string }> {
  if (move === null || !move.hold) return [];
  return move.keys.map((hex) => {
    const bytes = Buffer.from(hex, 'hex');
    return { slot: keySlot(bytes), key: bytes.toString('latin1') };
  });
}

/** A key as an error text shows it: printable ASCII as is, other bytes as \xHH, long keys cut. */
export function printableKey(key: string): string {
  const shown = key.length > 128 ? key.slice(0, 128) : key;
  let out = '';
  for (let i = 0; i < shown.length; i++) {
    const c = shown.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += '\\' + shown[i];
    else if (c >= 0x20 && c < 0x7f) out += shown[i];
    else out += '\\x' + c.toString(16).padStart(2, '0');
  }
  return key.length > 128 ? `${out}…` : out;
}

export function keyHoldTimeoutReply(key: string): Buffer {
  return encodeError(`TRYAGAIN key "${printableKey(key)}" is being moved between groups; try again`);
}

export class KeyHolds {
  /** Per slot: held key → ids of the moves holding it; undefined while the slot holds none. */
  private readonly bySlot: (Map<string, Set<string>> | undefined)[] = new Array(SLOT_COUNT);
  /** Move id → what it holds, to release exactly that when the record goes. */
  private readonly moves = new Map<string, Array<{ slot: number; key: string }>>();
  /** Per slot: requests waiting for one of its held keys, oldest first. */
  private readonly waiting: (Fifo<Waiter> | undefined)[] = new Array(SLOT_COUNT);
  private waitingCount = 0;
  private timedOut = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly limits: KeyHoldLimits) {
    this.sweeper = setInterval(() => this.expire(), Math.min(100, Math.max(10, Math.floor(limits.timeoutMs / 4))));
    this.sweeper.unref();
  }

  /** Requests waiting now (the held-requests gauge). */
  get waitingRequests(): number {
    return this.waitingCount;
  }

  /** Requests that gave up waiting (the timeouts counter). */
  get timeouts(): number {
    return this.timedOut;
  }

  /** Distinct keys held now. */
  get heldKeys(): number {
    let n = 0;
    for (const m of this.bySlot) if (m !== undefined) n += m.size;
    return n;
  }

  /** True when some key of `slot` is held (the cheap test before looking at keys). */
  holdsIn(slot: number): boolean {
    return this.bySlot[slot] !== undefined;
  }

  /** The first of `keys` (all of `slot`) that is held, as a latin1 string; null when none. */
  heldKey(slot: number, keys: readonly Buffer[]): string | null {
    const held = this.bySlot[slot];
    if (held === undefined) return null;
    for (const k of keys) {
      const id = k.toString('latin1');
      if (held.has(id)) return id;
    }
    return null;
  }

  /**
   * Parks a request naming held `key` of `slot`: `resume` runs once no move holds the key
   * any more, `fail` with -TRYAGAIN after the timeout or at once when too many wait.
   */
  wait(slot: number, key: string, resume: () => void, fail: (reply: Buffer) => void): void {
    if (this.waitingCount >= this.limits.maxHeld) {
      fail(encodeError(`TRYAGAIN key "${printableKey(key)}" is being moved between groups and too many requests wait; try again`));
      return;
    }
    let q = this.waiting[slot];
    if (q === undefined) {
      q = new Fifo<Waiter>(8);
      this.waiting[slot] = q;
    }
    q.push({ since: Date.now(), key, resume, fail });
    this.waitingCount++;
  }

  /** A move record was written (`move`) or deleted (null). */
  apply(id: string, move: KeyMove | null): void {
    const touched = new Set<number>();
    this.drop(id, touched);
    this.add(id, heldKeysOf(move), touched);
    this.release(touched);
  }

  /** A whole table was installed: its records replace every hold. */
  replaceAll(moves: ReadonlyMap<string, KeyMove>): void {
    const touched = new Set<number>();
    for (const id of [...this.moves.keys()]) this.drop(id, touched);
    for (const [id, move] of moves) this.add(id, heldKeysOf(move), touched);
    this.release(touched);
  }

  /** Ids of the moves holding keys now (the admin view, tests). */
  moveIds(): string[] {
    return [...this.moves.keys()];
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private drop(id: string, touched: Set<number>): void {
    const had = this.moves.get(id);
    if (had === undefined) return;
    this.moves.delete(id);
    for (const { slot, key } of had) {
      const held = this.bySlot[slot];
      const ids = held?.get(key);
      if (held === undefined || ids === undefined) continue;
      ids.delete(id);
      if (ids.size === 0) held.delete(key);
      if (held.size === 0) this.bySlot[slot] = undefined;
      touched.add(slot);
    }
  }

  private add(id: string, keys: Array<{ slot: number; key: string }>, touched: Set<number>): void {
    if (keys.length === 0) return;
    this.moves.set(id, keys);
    for (const { slot, key } of keys) {
      let held = this.bySlot[slot];
      if (held === undefined) {
        held = new Map();
        this.bySlot[slot] = held;
      }
      let ids = held.get(key);
      if (ids === undefined) {
        ids = new Set();
        held.set(key, ids);
      }
      ids.add(id);
      touched.add(slot);
    }
  }

  /** Resumes, in arrival order, the waiters of `slots` whose key is no longer held. */
  private release(slots: Set<number>): void {
    const ready: Waiter[] = [];
    for (const slot of slots) {
      const q = this.waiting[slot];
      if (q === undefined) continue;
      const held = this.bySlot[slot];
      const still = new Fifo<Waiter>(8);
      for (let w = q.shift(); w !== undefined; w = q.shift()) {
        if (held?.has(w.key) === true) still.push(w);
        else ready.push(w);
      }
      this.waiting[slot] = still.length > 0 ? still : undefined;
    }
    this.waitingCount -= ready.length;
    // After the bookkeeping: a resumed request routes again and may wait here anew.
    for (const w of ready) w.resume();
  }

  private expire(): void {
    if (this.waitingCount === 0) return;
    const limit = Date.now() - this.limits.timeoutMs;
    const expired: Waiter[] = [];
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      const q = this.waiting[slot];
      if (q === undefined) continue;
      // Oldest first and one timeout for all: the expired ones are at the head.
      while (q.length > 0 && q.peek()!.since <= limit) expired.push(q.shift()!);
      if (q.length === 0) this.waiting[slot] = undefined;
    }
    this.waitingCount -= expired.length;
    this.timedOut += expired.length;
    for (const w of expired) w.fail(keyHoldTimeoutReply(w.key));
  }
}
