/**
 * Exactly-once bookkeeping for one group's pub/sub feeds (pubsub.ts explains the feeds).
 * Pure logic, no I/O: the feeds report what they receive, the matcher says what to deliver.
 *
 * The active feed (the master's) and each standby feed (a replica's) carry the same stream:
 * the messages published on the master, in publish order, each feed possibly missing some
 * (a reconnect, a replica that lost the tail of the replication stream). Per standby:
 *   - `expected`: delivered from the active feed, not yet seen on the standby. The standby's
 *     copy, when it comes, cancels it.
 *   - `unmatched`: seen on the standby, not (yet) delivered from the active feed. The active
 *     feed's copy cancels it.
 * Matching is positional: a match at index i means the entries before it will never be
 * matched (the other feed's stream has moved past them).
 *   - Entries before a match in `expected`: the standby lost them. Dropped.
 *   - Entries before a match in `unmatched`: the active feed lost them (it reconnected while
 *     the master stayed up). Delivered now, ahead of the matching message: recovered. The
 *     same holds for a standby's whole `unmatched` queue when its stream reaches a message
 *     the active feed delivered: those are delivered at once, after it.
 * On promotion the new master's `unmatched` is delivered (published on the old master but
 * cut off on its way to us, or published on the new master before we switched), and its
 * `expected` keeps suppressing late copies until `settle()` — called when a PING sent at the
 * switch comes back, after which the stream carries only what the new master published.
 *
 * Bounds: each queue holds at most `maxEntries` messages and `maxBytes` bytes. An `expected`
 * entry evicted for room is counted; that many of the standby's next unmatched messages are
 * taken to be those entries' copies (the standby lags, it has not lost them) and dropped, so
 * a lagging replica cannot turn into duplicates at failover.
 */

export interface MatcherLimits {
  maxEntries: number;
  maxBytes: number;
  /** How far from the head a match is looked for: the streams are in order, so it is near. */
  scan: number;
}

export const DEFAULT_MATCHER_LIMITS: MatcherLimits = { maxEntries: 10_000, maxBytes: 16 * 1024 * 1024, scan: 256 };

class BoundedQueue {
  items: Buffer[] = [];
  bytes = 0;

  constructor(private readonly limits: MatcherLimits) {}

  /** Adds a copy (the original is a view of a socket chunk); returns how many were evicted. */
  push(message: Buffer): number {
    let evicted = 0;
    while (this.items.length > 0 && (this.items.length >= this.limits.maxEntries || this.bytes + message.length > this.limits.maxBytes)) {
      this.bytes -= this.items.shift()!.length;
      evicted++;
    }
    this.items.push(Buffer.from(message));
    this.bytes += message.length;
    return evicted;
  }

  /** Inserts a copy at `index` (a late entry that belongs before a later one); no eviction. */
  insert(index: number, message: Buffer): void {
    this.items.splice(index, 0, Buffer.from(message));
    this.bytes += message.length;
  }

  /** Index of the first entry equal to `message`, within the scan limit; -1 if none. */
  find(message: Buffer): number {
    const end = Math.min(this.items.length, this.limits.scan);
    for (let i = 0; i < end; i++) if (this.items[i]!.equals(message)) return i;
    return -1;
  }

  /** Removes and returns the first `n` entries. */
  take(n: number): Buffer[] {
    const out = this.items.splice(0, n);
    for (const m of out) this.bytes -= m.length;
    return out;
  }

  clear(): void {
    this.items = [];
    this.bytes = 0;
  }
}

class StandbyState {
  readonly expected: BoundedQueue;
  readonly unmatched: BoundedQueue;
  /** `expected` entries evicted for room whose standby copies are still to come. */
  evicted = 0;
  /** `unmatched` entries evicted for room: messages lost if this standby is promoted. */
  lost = 0;

  constructor(limits: MatcherLimits) {
    this.expected = new BoundedQueue(limits);
    this.unmatched = new BoundedQueue(limits);
  }

  clear(): void {
    this.expected.clear();
    this.unmatched.clear();
    this.evicted = 0;
  }
}

export class FeedMatcher<F> {
  private readonly standbys = new Map<F, StandbyState>();
  /** After a promotion: messages delivered before it, whose late copies the new master may still carry. */
  private readonly settling: BoundedQueue;

  constructor(
    private readonly deliver: (message: Buffer) => void,
    private readonly limits: MatcherLimits = DEFAULT_MATCHER_LIMITS,
  ) {
    this.settling = new BoundedQueue(limits);
  }

  /** A standby feed connected (or reconnected): it starts with no history. */
  addStandby(feed: F): void {
    const state = this.standbys.get(feed);
    if (state === undefined) this.standbys.set(feed, new StandbyState(this.limits));
    else state.clear();
  }

  removeStandby(feed: F): void {
    this.standbys.delete(feed);
  }

  /** A message on the active feed. */
  fromActive(message: Buffer): void {
    if (this.settling.items.length > 0) {
      const i = this.settling.find(message);
      if (i >= 0) {
        this.settling.take(i + 1);
        return;
      }
    }
    for (const [feed, state] of this.standbys) {
      const i = state.unmatched.find(message);
      if (i < 0) {
        state.evicted += state.expected.push(message);
        continue;
      }
      // The standby had these before `message`; the active feed never delivered them.
      const recovered = state.unmatched.take(i + 1);
      recovered.pop();
      for (const m of recovered) this.deliverRecovered(m, feed);
    }
    this.deliver(message);
  }

  /** A message on a standby feed. */
  fromStandby(feed: F, message: Buffer): void {
    const state = this.standbys.get(feed);
    if (state === undefined) return;
    const i = state.expected.find(message);
    if (i >= 0) {
      state.expected.take(i + 1);
      // What this standby received before `message` and the active feed has not delivered,
      // it never will: its stream is past `message`. Delivered now (late, never twice).
      if (state.unmatched.items.length > 0) {
        for (const m of state.unmatched.take(state.unmatched.items.length)) this.deliverRecovered(m, feed, message);
      }
      return;
    }
    if (state.evicted > 0) {
      state.evicted--;
      return;
    }
    state.lost += state.unmatched.push(message);
  }

  /**
   * `feed` (a standby) becomes the active feed: delivers what only it received, and returns
   * how many messages that was. The other standbys start over (they follow a new master).
   */
  promote(feed: F): number {
    const state = this.standbys.get(feed);
    this.standbys.delete(feed);
    for (const other of this.standbys.values()) other.clear();
    this.settling.clear();
    if (state === undefined) return 0;
    for (const m of state.expected.items) this.settling.push(m);
    const backlog = state.unmatched.take(state.unmatched.items.length);
    for (const m of backlog) this.deliver(m);
    return backlog.length;
  }

  /** The new master's stream has caught up with the switch: no late copy can follow. */
  settle(): void {
    this.settling.clear();
  }

  /** Messages a standby dropped for room (for logs and tests). */
  lostOn(feed: F): number {
    return this.standbys.get(feed)?.lost ?? 0;
  }

  /**
   * A message recovered from `source` counts as delivered for every other standby too. When
   * it is recovered late, after `later` (a message after it in the stream) was delivered, it
   * is expected before `later` — or not at all on a standby whose stream is past `later`.
   */
  private deliverRecovered(message: Buffer, source: F, later?: Buffer): void {
    for (const [feed, state] of this.standbys) {
      if (feed === source) continue;
      const i = state.unmatched.find(message);
      if (i >= 0) {
        state.unmatched.take(i + 1);
      } else if (later === undefined) {
        state.evicted += state.expected.push(message);
      } else {
        const at = state.expected.find(later);
        if (at >= 0) state.expected.insert(at, message);
      }
    }
    this.deliver(message);
  }
}
