/**
 * A backend pool: a fixed set of shared connections to one redis-server, per protocol.
 *
 * Invariant: a client session always maps to the same connection of a pool (by session
 * index and protocol), so two requests of one client to one server can never overtake each
 * other. A session that switches protocol (HELLO) waits until its earlier requests are
 * answered before it sends on the other set (local-commands.ts, HELLO).
 *
 * Why a set per protocol: a backend's replies then reach the client in its own protocol
 * byte for byte (RESP3 maps, doubles, `_` nulls), with no re-encoding on the common path.
 * The RESP3 set is opened the first time a RESP3 client needs it.
 *
 * Every connection of the pool shares the master's write policy (in-sync.ts): the in-sync
 * set's WAIT count and the minInSync refusal apply to all of them at once.
 */
import type { Protocol } from '@reborn/protocol';
import { BackendConnection } from './backend.js';
import type { BackendOptions, WritePolicy } from './backend-types.js';

export class BackendPool {
  /** The RESP2 connections (the proxy's own requests use these too). */
  readonly connections: readonly BackendConnection[];
  private resp3: readonly BackendConnection[] | null = null;
  constructor(
    readonly addr: string,
    private readonly size: number,
    private readonly opts: BackendOptions,
    /** Shared by the pool's connections (and a WATCH's or blocking command's own); updated in place. */
    readonly writePolicy: WritePolicy | null = null,
  ) {
    this.connections = this.open(2);
  }

  private open(resp: Protocol): BackendConnection[] {
    const conns = Array.from({ length: this.size }, () => new BackendConnection(this.addr, resp === 3 ? { ...this.opts, resp } : this.opts, this.writePolicy));
    for (const c of conns) c.onUp = () => this.clearBackoffs();
    return conns;
  }

  /** Every connection opened so far, of both protocols: what a barrier drains. */
  get all(): readonly BackendConnection[] {
    return this.resp3 === null ? this.connections : [...this.connections, ...this.resp3];
  }

  /** Stop failing fast on old backoffs: the server answered, or this proxy was unfenced. */
  clearBackoffs(): void {
    for (const c of this.all) c.clearBackoff();
  }

  pick(sessionIndex: number, resp: Protocol = 2): BackendConnection {
    const set = resp === 2 ? this.connections : (this.resp3 ??= this.open(3));
    return set[sessionIndex % set.length]!;
  }

  get pending(): number {
    let n = 0;
    for (const c of this.all) n += c.pending;
    return n;
  }

  get isUp(): boolean {
    return this.connections.some((c) => c.isUp) || (this.resp3 !== null && this.resp3.some((c) => c.isUp));
  }

  /** Drops every connection (they reconnect on the next request). */
  reset(reason: string): void {
    for (const c of this.all) c.reset(reason);
  }

  /** Closes every connection; requests still waiting are answered `reply` (default: `ERR backend … connection closed`). */
  close(reason?: string, reply?: Buffer): void {
    for (const c of this.all) c.close(reason, reply);
  }
}
