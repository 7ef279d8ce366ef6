/**
 * The per-client state a Session carries for the modules that act on it: the open MULTI
 * (transactions.ts), the WATCH and its pinned connection (transactions.ts, forward.ts) and
 * the client's subscriptions (pubsub.ts).
 *
 * Invariant: a leaf module. It imports nothing of the proxy but backend types, so the
 * session, the dispatcher, forwarding, transactions and pub/sub can all name these shapes
 * without importing one another (docs/architecture.md §3, "The request path in the proxy").
 */
import type { BackendConnection } from './backend.js';

/** A command queued inside MULTI. */
export interface QueuedCommand {
  readonly payload: Buffer;
  readonly keys: readonly Buffer[];
  readonly write: boolean;
}

export interface TxState {
  queued: QueuedCommand[];
  /** Bytes of the queued commands, against --max-multi-bytes. */
  bytes: number;
  /** The slot every key must hash to; -1 until the first key (or WATCH) fixes it. */
  slot: number;
  failed: boolean;
}

export interface WatchState {
  readonly slot: number;
  /** The pinned connection; null once aborted (or when the slot was not online). */
  conn: BackendConnection | null;
  aborted: boolean;
  readonly release: () => void;
  /** Settles when the WATCH ends (EXEC, DISCARD, UNWATCH, RESET or the client going away). */
  readonly ended: Promise<void>;
}

/**
 * Commands of a pinned session for its WATCH slot go over the pinned connection — also
 * while the slot waits for its barrier, until the WATCH ends or is aborted.
 */
export function pinnedConnection(client: { readonly watch: WatchState | null }, slot: number): BackendConnection | null {
  const w = client.watch;
  return w !== null && w.slot === slot && w.conn !== null ? w.conn : null;
}

/** Subscription kinds, used as indexes. */
export const CHANNEL = 0;
export const PATTERN = 1;
export const SHARD = 2;
export type Kind = typeof CHANNEL | typeof PATTERN | typeof SHARD;

/** One client's subscriptions: name (latin1, binary-safe) → the name's bytes. */
export class ClientSubscriptions {
  readonly names: [Map<string, Buffer>, Map<string, Buffer>, Map<string, Buffer>] = [new Map(), new Map(), new Map()];

  /** Registered with the session while it has subscriptions: drops them when it closes. */
  constructor(readonly closeHook: () => void) {}

  get total(): number {
    return this.names[CHANNEL].size + this.names[PATTERN].size + this.names[SHARD].size;
  }

  /** The count a confirmation carries: channels + patterns, or shard channels (as Redis 7.0). */
  count(kind: Kind): number {
    return kind === SHARD ? this.names[SHARD].size : this.names[CHANNEL].size + this.names[PATTERN].size;
  }
}
