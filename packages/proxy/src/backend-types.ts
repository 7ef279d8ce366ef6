/**
 * The shapes a backend connection deals in: the request it carries, its options (timeouts,
 * the proxy's ACL identity) and the write policy (in-sync set, durable mode) a master's
 * connections share.
 *
 * Invariant: types only, imports nothing of the proxy, so the connection, the pool and the
 * durable-write logic can share them without a cycle. backend.ts re-exports all of them.
 */
import type { Logger } from 'pino';
import type { Flusher } from './flusher.js';

/** What a backend connection needs of a request. */
export interface BackendRequest {
  /** The bytes to send (one complete RESP command, answered by one reply). */
  payload: Buffer;
  /**
   * A write: refused while its group's in-sync set is below minInSync, and in durable mode
   * its reply waits until the in-sync replicas confirmed it (WAIT).
   */
  readonly write?: boolean;
  /**
   * Replies to discard before the one that resolves: a transaction is sent as one request
   * `MULTI … EXEC` whose answer is EXEC's reply (the +OK and +QUEUED before it are dropped).
   */
  skipReplies?: number;
  /**
   * Only meaningful on the client's pinned WATCH connection: if that pin is gone by the time
   * the request is delivered (the WATCH was aborted), it is answered +OK and never sent.
   */
  pinnedOnly?: boolean;
  /** Deliver over this connection (an EXEC over its WATCH's pinned one), after any key move. */
  pinned?: RequestSink;
  /** Called exactly once with the raw reply (or an error reply made by the proxy). */
  resolve(reply: Buffer): void;
}

/**
 * What a group's in-sync set asks of the writes sent to its master (in-sync.ts computes it):
 * one object per master address, shared by every connection to that master (its pool's, a
 * WATCH's pinned one, a blocking command's) and updated in place when the group changes in
 * etcd, so the next write on any of them follows the new set without a lookup.
 */
export interface WritePolicy {
  /** The group this master serves (for error texts); -1 until a group names it. */
  group: number;
  /**
   * Durable mode: the count `WAIT` asks for behind each write batch, the size of the group's
   * in-sync set. 0 = no WAIT (no --durable, or the set is the master alone).
   */
  replicas: number;
  /** The in-sync members as the durable error names them: "127.0.0.1:7001, 127.0.0.1:7002". */
  members: string;
  /** Durable mode: WAIT's timeout. */
  timeoutMs: number;
  /** Non-null while the set is smaller than the group's minInSync: a write's whole reply. */
  refusal: Buffer | null;
  /** The same refusal for an EXEC (Redis' shape: -EXECABORT … because of: NOREPLICAS …). */
  execRefusal: Buffer | null;
}

export interface BackendAuth {
  user: string;
  password: string;
  /** The servers' default-user password: needed to create or inspect `user` where it fails. */
  adminPassword: string | null;
  /**
   * The server refused the proxy's user (disabled, or refused right after being created).
   * Resolves `fail` when the connection must fail: the proxy has been fenced (etcd holds a
   * fence record for it, or cannot tell), or the server could not be repaired yet. `retry`:
   * the server was stale and the user has been re-enabled there; the connection
   * authenticates again before it writes anything (refusal-check.ts).
   */
  onRefused(addr: string): Promise<'fail' | 'retry'>;
}

export interface BackendOptions {
  /** The protocol the connection speaks (HELLO 3 in its handshake); 2 when absent. */
  resp?: 2 | 3;
  connectTimeoutMs: number;
  timeoutMs: number;
  logger: Logger;
  flusher: Flusher;
  auth: BackendAuth | null;
  onStateChange?: (addr: string, up: boolean) => void;
}

/** Where a request can be sent: a BackendConnection (named here without importing it). */
export interface RequestSink {
  send(req: BackendRequest): void;
}
