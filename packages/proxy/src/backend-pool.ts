/**
 * A backend pool: a fixed set of shared connections to one redis-server.
 *
 * Invariant: a client session always maps to the same connection of a pool (by session
 * index), so two requests of one client to one server can never overtake each other.
 */
import { BackendConnection } from './backend.js';
import type { BackendOptions, Durability } from './backend-types.js';

/** A fixed set of connections to one server; a session always maps to the same one. */
export class BackendPool {
  readonly connections: readonly BackendConnection[];
  /** Shared by the pool's connections; the router updates `replicas` when the group changes. */
  readonly durability: Durability | null;

  constructor(readonly addr: string, size: number, opts: BackendOptions, durableTimeoutMs: number | null = null) {
    this.durability = durableTimeoutMs === null ? null : { replicas: 0, timeoutMs: durableTimeoutMs };
    this.connections = Array.from({ length: size }, () => new BackendConnection(addr, opts, this.durability));
    for (const c of this.connections) c.onUp = () => this.clearBackoffs();
  }

  /** Stop failing fast on old backoffs: the server answered, or this proxy was unfenced. */
  clearBackoffs(): void {
    for (const c of this.connections) c.clearBackoff();
  }

  pick(sessionIndex: number): BackendConnection {
    return this.connections[sessionIndex % this.connections.length]!;
  }

  get pending(): number {
    let n = 0;
    for (const c of this.connections) n += c.pending;
    return n;
  }

  get isUp(): boolean {
    return this.connections.some((c) => c.isUp);
  }

  /** Drops every connection (they reconnect on the next request). */
  reset(reason: string): void {
    for (const c of this.connections) c.reset(reason);
  }

  close(): void {
    for (const c of this.connections) c.close();
  }
}
