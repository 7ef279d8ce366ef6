/**
 * The invalidation listeners of client-side caching: while any client of this proxy tracks
 * keys, one connection per group master, speaking RESP3, with `CLIENT TRACKING ON BCAST` (no
 * prefix: every key). Redis then pushes `invalidate [keys]` for every key written, expired,
 * evicted or moved on that master — by this proxy, by any other proxy, or by anyone talking
 * to redis directly — and `invalidate null` when it is flushed. tracking.ts fans those out to
 * the clients that may hold the keys.
 *
 * Invariant: a group is *live* only while its listener's current connection has had its
 * `CLIENT TRACKING ON BCAST` confirmed. Redis reports every write after that confirmation;
 * nothing is known about writes outside it. So a listener that stops being live (connection
 * lost or timed out, its master replaced in etcd, its group gone, this proxy fenced) reports
 * `lost` — the clients that may hold keys of that group must flush — and tracking.ts treats
 * reads of a group that is not live as not watched (see there).
 *
 * The connection is a BackendConnection: it authenticates as this proxy's ACL user (so a
 * fence ends it too), and a PING every second keeps it connected and lets its watchdog
 * (--backend-timeout) notice a server that stopped answering. When the last tracking client
 * leaves, the listeners stay for LINGER_MS, so a client toggling tracking does not reconnect
 * them each time.
 */
import type { Logger } from 'pino';
import { encodeCommand, errorReplyMessage, isErrorReply, splitAggregateReply, splitArrayReply } from '@reborn/protocol';
import { groupMaster } from '@reborn/coordinator';
import { BackendConnection, type BackendOptions } from './backend.js';
import type { Router } from './router.js';

const TRACKING_ON = encodeCommand(['CLIENT', 'TRACKING', 'ON', 'BCAST']);
const PING = encodeCommand(['PING']);
const INVALIDATE = Buffer.from('$10\r\ninvalidate\r\n');
const KEEPALIVE_MS = 1000;
const LINGER_MS = 10_000;

/** What the listeners report to the tracking hub. */
export interface ListenerEvents {
  /** These keys (views of the frame: copy to keep) changed on group `gid`'s master. */
  keys(gid: number, keys: Buffer[]): void;
  /** Group `gid`'s master was flushed (FLUSHALL / FLUSHDB). */
  flush(gid: number): void;
  /** Group `gid` stopped being live: writes there may go unreported from now on. */
  lost(gid: number): void;
}

/** What the tracking hub needs of the listeners (a fake in unit tests). */
export interface Listeners {
  /** A client tracks: listen on every group (again). */
  start(): void;
  /** No client tracks any more: stop listening after a while. */
  idle(): void;
  /** The group table changed: follow masters. */
  groupsChanged(): void;
  /** Group `gid`'s writes are being reported (see the file comment). */
  isLive(gid: number): boolean;
  /** Resolves once every listener has been confirmed live, or its connection failed. */
  whenListening(): Promise<void>;
  /** Per group with a listener: live or not. */
  states(): Map<number, boolean>;
  close(): void;
}

/** The bulk strings of an array payload, as views of their data. */
function keysOf(payload: Buffer): Buffer[] | null {
  const items = splitArrayReply(payload);
  if (items === null) return null;
  return items.map((b) => b.subarray(b.indexOf(0x0a) + 1, b.length - 2));
}

class GroupListener {
  private confirmed = false;
  /** The next non-push reply is the one to CLIENT TRACKING (it is written first on connect). */
  private awaitingConfirmation = false;
  private lastRefusal = '';
  readonly conn: BackendConnection;

  constructor(
    readonly gid: number,
    readonly addr: string,
    options: BackendOptions,
    private readonly events: ListenerEvents,
    private readonly log: Logger,
  ) {
    this.conn = new BackendConnection(addr, { ...options, resp: 3, onStateChange: (_addr, up) => !up && this.notLive() });
    this.conn.afterHandshake = () => {
      this.awaitingConfirmation = true;
      return [TRACKING_ON];
    };
    this.conn.onPush = (reply) => this.onReply(reply);
    this.conn.send({ payload: PING, resolve: () => undefined }); // connects
  }

  get live(): boolean {
    return this.confirmed;
  }

  /** Resolves after a round trip: by then CLIENT TRACKING's answer (written first) is in. */
  roundTrip(): Promise<void> {
    this.conn.clearBackoff();
    return new Promise((resolve) => this.conn.send({ payload: PING, resolve: () => resolve() }));
  }

  keepalive(): void {
    this.conn.send({ payload: PING, resolve: () => undefined });
  }

  close(reason: string): void {
    this.conn.close(reason);
    this.notLive();
  }

  private onReply(reply: Buffer): boolean {
    if (reply[0] === 0x3e) {
      if (this.confirmed) this.onPush(reply);
      return true;
    }
    if (!this.awaitingConfirmation) return false; // a PING's answer
    this.awaitingConfirmation = false;
    if (isErrorReply(reply)) {
      const why = errorReplyMessage(reply);
      // Said once per reason: the connection retries on every keepalive after its backoff.
      if (why !== this.lastRefusal) this.log.warn({ group: this.gid, backend: this.addr, reply: why }, 'cannot listen for invalidations: CLIENT TRACKING refused; reads of this group are not cached');
      this.lastRefusal = why;
      // Not in the middle of the reply scanner's loop: after this chunk.
      queueMicrotask(() => this.conn.drop(`CLIENT TRACKING refused: ${why}`));
      return true;
    }
    this.confirmed = true;
    this.lastRefusal = '';
    this.log.info({ group: this.gid, backend: this.addr }, 'listening for invalidations');
    return true;
  }

  private onPush(frame: Buffer): void {
    const parts = splitAggregateReply(frame);
    if (parts === null || parts.length !== 2 || !parts[0]!.equals(INVALIDATE)) return;
    const payload = parts[1]!;
    // A null (RESP3 `_`; `*-1`/`$-1` to be safe): the master was flushed.
    if (payload[0] === 0x5f || payload[1] === 0x2d) {
      this.events.flush(this.gid);
      return;
    }
    const keys = keysOf(payload);
    if (keys !== null && keys.length > 0) this.events.keys(this.gid, keys);
  }

  private notLive(): void {
    this.awaitingConfirmation = false;
    if (!this.confirmed) return;
    this.confirmed = false;
    this.log.warn({ group: this.gid, backend: this.addr }, 'invalidation listener lost: clients that read keys of this group are told to flush');
    this.events.lost(this.gid);
  }
}

export class InvalidationListeners implements Listeners {
  private readonly byGroup = new Map<number, GroupListener>();
  private active = false;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly router: Router,
    private readonly options: BackendOptions,
    private readonly log: Logger,
    private readonly events: ListenerEvents,
  ) {}

  start(): void {
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    if (this.active) return;
    this.active = true;
    this.sync();
    this.keepaliveTimer = setInterval(() => {
      for (const l of this.byGroup.values()) l.keepalive();
    }, KEEPALIVE_MS);
    this.keepaliveTimer.unref();
  }

  idle(): void {
    if (!this.active || this.lingerTimer !== null) return;
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = null;
      this.stopAll('no client tracks keys any more');
    }, LINGER_MS);
    this.lingerTimer.unref();
  }

  groupsChanged(): void {
    if (this.active) this.sync();
  }

  isLive(gid: number): boolean {
    return this.byGroup.get(gid)?.live ?? false;
  }

  async whenListening(): Promise<void> {
    await Promise.all([...this.byGroup.values()].map((l) => l.roundTrip()));
  }

  states(): Map<number, boolean> {
    const out = new Map<number, boolean>();
    for (const [gid, l] of this.byGroup) out.set(gid, l.live);
    return out;
  }

  close(): void {
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    this.stopAll('proxy stopping');
  }

  /** One listener per group with a master, on that master; a replaced one is closed (lost). */
  private sync(): void {
    const wanted = new Map<number, string>();
    for (const g of this.router.groupList()) {
      const m = groupMaster(g);
      if (m) wanted.set(g.id, m.addr);
    }
    for (const [gid, l] of this.byGroup) {
      const addr = wanted.get(gid);
      if (addr === l.addr) continue;
      this.byGroup.delete(gid);
      l.close(addr === undefined ? 'the group is gone or has no master' : 'the group master changed');
    }
    for (const [gid, addr] of wanted) {
      if (!this.byGroup.has(gid)) this.byGroup.set(gid, new GroupListener(gid, addr, this.options, this.events, this.log));
    }
  }

  private stopAll(reason: string): void {
    this.active = false;
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
    for (const l of this.byGroup.values()) l.close(reason);
    this.byGroup.clear();
  }
}
