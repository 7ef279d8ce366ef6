/**
 * The proxy's tracking table (client-side caching, default mode): for each key some client
 * read while tracking, which clients may hold it in their cache — the proxy's counterpart of
 * Redis's TrackingTable (tracking.c).
 *
 * Invariants:
 * - A key is in the table, under its slot, exactly while at least one holder has it in its
 *   own `keys` set; every removal keeps the three views (key, slot, holder) in step.
 * - At most `maxKeys` keys (0: no limit, as Redis's tracking-table-max-keys). Past it the
 *   oldest keys are handed back to the caller, which must invalidate them at their holders:
 *   a key the table forgets is a key whose writes nobody would hear of.
 * - A key leaves the table when it is taken (an invalidation: the holders must drop it, as
 *   Redis forgets a key once it sent its invalidation) or its holder leaves.
 */
import { SLOT_COUNT } from '@reborn/protocol';

/** A tracking client as the table sees it: the keys recorded for it. */
export interface KeyHolder {
  readonly keys: Set<string>;
}

interface Entry<T> {
  readonly slot: number;
  readonly holders: Set<T>;
}

/** Keys (latin1, binary-safe) with the holders that must hear of them. */
export type Taken<T> = Array<[key: string, holders: Set<T>]>;

export class KeyTable<T extends KeyHolder> {
  /** Insertion order is age: the first entries are the ones evicted. */
  private readonly entries = new Map<string, Entry<T>>();
  private readonly bySlot: Array<Set<string> | undefined> = new Array(SLOT_COUNT);
  private pairs = 0;

  constructor(private readonly maxKeys: number) {}

  /** Keys in the table. */
  get size(): number {
    return this.entries.size;
  }

  /** (key, holder) pairs: Redis's tracking_total_items. */
  get items(): number {
    return this.pairs;
  }

  /**
   * Records that `holder` may cache `key` (of `slot`). Returns the keys evicted to stay
   * within the limit (never `key` itself), or null.
   */
  track(holder: T, key: string, slot: number): Taken<T> | null {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { slot, holders: new Set() };
      this.entries.set(key, entry);
      (this.bySlot[slot] ??= new Set()).add(key);
    }
    if (!entry.holders.has(holder)) {
      entry.holders.add(holder);
      holder.keys.add(key);
      this.pairs++;
    }
    if (this.maxKeys === 0 || this.entries.size <= this.maxKeys) return null;
    const evicted: Taken<T> = [];
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxKeys) break;
      if (oldest === key) continue;
      evicted.push([oldest, this.take(oldest)!]);
    }
    return evicted;
  }

  /** Removes `key`: its holders, which forget it too (an invalidation is on its way to them). */
  take(key: string): Set<T> | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    this.dropFromSlot(entry.slot, key);
    for (const h of entry.holders) h.keys.delete(key);
    this.pairs -= entry.holders.size;
    return entry.holders;
  }

  /** Removes every key of `slot` (its owner changed), with their holders. */
  takeSlot(slot: number): Taken<T> {
    const keys = this.bySlot[slot];
    if (keys === undefined) return [];
    const out: Taken<T> = [];
    for (const key of [...keys]) out.push([key, this.take(key)!]);
    return out;
  }

  /** Forgets every key of `holder` (tracking off, or flushed whole): no invalidation is owed. */
  forget(holder: T): void {
    for (const key of holder.keys) {
      const entry = this.entries.get(key)!;
      entry.holders.delete(holder);
      this.pairs--;
      if (entry.holders.size === 0) {
        this.entries.delete(key);
        this.dropFromSlot(entry.slot, key);
      }
    }
    holder.keys.clear();
  }

  private dropFromSlot(slot: number, key: string): void {
    const keys = this.bySlot[slot]!;
    keys.delete(key);
    if (keys.size === 0) this.bySlot[slot] = undefined;
  }
}
