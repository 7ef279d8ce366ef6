/**
 * The shapes a backend connection deals in: the request it carries, its options (timeouts,
 * the proxy's ACL identity) and the durable-mode setting a pool shares with its connections.
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
  /** A write: in durable mode its reply waits until a replica confirmed it (WAIT). */
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
 * Durable mode (`--durable`): per pool, how many replicas must confirm a write before the
 * client hears of it (0 = the group has no replica: writes are acknowledged as usual).
 */
export interface Durability {
  replicas: number;
  timeoutMs: number;
}

export interface BackendAuth {
  user: string;
  password: string;
  /** The servers' default-user password: needed to create or inspect `user` where it fails. */
  adminPassword: string | null;
  /** The server refused the proxy's user because it is disabled: the proxy has been fenced. */
  onFenced(addr: string): void;
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
