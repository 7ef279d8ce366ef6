/**
 * Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN/MAX, BLMPOP, BZMPOP, XREAD and
 * XREADGROUP with BLOCK). A blocked command would stall every client sharing a pipelined
 * backend connection, so each runs on a connection of its own (authenticated as the proxy's
 * ACL user like every other), closed when it answers or when its client goes away — which
 * also unblocks it in redis without consuming anything.
 *
 * Connections are reused: one whose command answered goes back to a small idle pool per
 * server, so a job queue doing BLPOP after BLPOP does not pay a TCP connect and an AUTH each
 * time. (Each knows its redis client id from its handshake: BackendConnection.whenClientId.) A connection whose client went away is closed, never
 * reused: closing it is what unblocks the command in redis.
 *
 * Migration: before acking a barrier for some slots, the proxy unblocks the commands blocked
 * on those slots with `CLIENT UNBLOCK <id> TIMEOUT` (sent on a shared connection) and waits
 * for their replies. Redis answers them as if their timeout had expired (or with the element
 * they had just popped, which the client then receives): nothing is lost, and no blocked
 * command can pop from the old group after the barrier.
 */
import { encodeCommand, encodeError, isErrorReply, type Protocol } from '@reborn/protocol';
import { BackendConnection, type BackendOptions, type BackendRequest } from './backend.js';
import type { BackendPool } from './backend-pool.js';
import type { Session } from './session.js';

interface Blocked {
  readonly slot: number;
  readonly conn: BackendConnection;
  readonly pool: BackendPool;
  done: Promise<void>;
}

/** Between CLIENT UNBLOCK attempts that found the client not blocked (yet). */
const UNBLOCK_RETRY_MS = 2;

/** Longer than any blocking timeout a client may reasonably ask for: redis enforces those. */
const NO_WATCHDOG_MS = 2 ** 30;
/** Idle dedicated connections kept per server for the next blocking command, and for how long. */
const MAX_IDLE_PER_SERVER = 16;
const IDLE_MS = 60_000;

/** Idle connections are kept per server and protocol: a RESP3 client's pop must answer in RESP3. */
function idleKey(addr: string, resp: Protocol): string {
  return resp === 2 ? addr : `${addr} resp3`;
}

interface Idle {
  readonly conn: BackendConnection;
  /** The pool it was made for: reused only for that pool. */
  readonly pool: BackendPool;
  readonly since: number;
}

export class BlockingCommands {
  private readonly blocked = new Set<Blocked>();
  private readonly idle = new Map<string, Idle[]>();

  constructor(
    private readonly options: BackendOptions,
    private readonly maxBlocked: number,
  ) {}

  get count(): number {
    return this.blocked.size;
  }

  run(session: Session, pool: BackendPool, slot: number, req: BackendRequest): void {
    if (this.blocked.size >= this.maxBlocked) {
      req.resolve(encodeError(`ERR too many blocked clients on this proxy (--max-blocked ${this.maxBlocked})`));
      return;
    }
    const conn = this.checkout(pool, session.resp);
    let finish!: () => void;
    const entry: Blocked = { slot, conn, pool, done: new Promise((r) => (finish = r)) };
    this.blocked.add(entry);
    const release = (reusable: boolean): void => {
      if (!this.blocked.delete(entry)) return;
      session.forgetWhenClosed(cancel);
      if (reusable) this.checkin(pool, conn, session.resp);
      else conn.close();
      finish();
    };
    // The client went away: closing the connection unblocks the command in redis.
    const cancel = (): void => release(false);
    session.whenClosed(cancel, true);
    conn.send({
      payload: req.payload,
      write: req.write === true,
      resolve: (reply) => {
        // A reply that is the connection's own failure leaves nothing worth keeping.
        release(!isErrorReply(reply) || conn.isUp);
        req.resolve(reply);
      },
    });
  }

  /**
   * An idle dedicated connection to the pool's server that is still up, or a new one. Only a
   * connection made for this very pool is reused (a replaced pool may carry another write
   * policy).
   */
  private checkout(pool: BackendPool, resp: Protocol): BackendConnection {
    this.expireIdle();
    const idle = this.idle.get(idleKey(pool.addr, resp));
    while (idle !== undefined && idle.length > 0) {
      const { conn, pool: owner } = idle.pop()!;
      if (owner === pool && conn.isUp && conn.pending === 0) return conn;
      conn.close();
    }
    // A blocking pop is a write like any other: refused below minInSync, and with --durable
    // its reply waits for the in-sync replicas.
    return new BackendConnection(pool.addr, { ...this.options, resp, timeoutMs: NO_WATCHDOG_MS }, pool.writePolicy);
  }

  private checkin(pool: BackendPool, conn: BackendConnection, resp: Protocol): void {
    const key = idleKey(pool.addr, resp);
    let idle = this.idle.get(key);
    if (idle === undefined) {
      idle = [];
      this.idle.set(key, idle);
    }
    if (conn.isUp && conn.pending === 0 && idle.length < MAX_IDLE_PER_SERVER) idle.push({ conn, pool, since: Date.now() });
    else conn.close();
  }

  /** Idle connections not reused for a while go (servers that left the topology included). */
  private expireIdle(): void {
    const cutoff = Date.now() - IDLE_MS;
    for (const [addr, idle] of this.idle) {
      while (idle.length > 0 && idle[0]!.since < cutoff) idle.shift()!.conn.close();
      if (idle.length === 0) this.idle.delete(addr);
    }
  }

  /**
   * Unblocks every command blocked on one of `slots`; resolves when all have answered.
   *
   * Never by closing the connection: the command may already have popped an element in
   * redis, which would then be lost with the connection. A CLIENT UNBLOCK answered 0 means
   * redis has not run the command yet (it is still in its input) or has just answered it:
   * asked again until the command's reply arrives.
   */
  async unblock(slots: ReadonlySet<number>, sessionIndex = 0): Promise<void> {
    const affected = [...this.blocked].filter((b) => slots.has(b.slot));
    for (const b of affected) {
      const ask = (id: bigint, retryMs = UNBLOCK_RETRY_MS): void => {
        if (!this.blocked.has(b)) return;
        b.pool.pick(sessionIndex).send({
          payload: encodeCommand(['CLIENT', 'UNBLOCK', String(id), 'TIMEOUT']),
          resolve: (reply) => {
            // Backing off: against a stalled server every attempt fails at once.
            if (reply.toString('latin1') !== ':1\r\n' && this.blocked.has(b)) setTimeout(() => ask(id, Math.min(retryMs * 2, 200)), retryMs);
          },
        });
      };
      // The connection's own id, from its handshake (before which nothing was sent on it).
      b.conn.whenClientId((id) => {
        if (id !== null) ask(id);
        // Not an id (never seen): closing is the only way left to unblock it.
        else if (this.blocked.has(b)) b.conn.close('its slot is being migrated');
      });
    }
    await Promise.all(affected.map((b) => b.done));
  }

  /**
   * `addr` is no longer its group's master (a failover): commands blocked there would wait
   * on a server that may be frozen or gone, holding their clients; they fail now with `reply`
   * (the client retries on the new master; one that had popped may have lost its element),
   * and idle connections to it are dropped. Nothing the old master says later is read.
   */
  failOn(addr: string, reply: Buffer): void {
    for (const b of [...this.blocked]) if (b.conn.addr === addr) b.conn.close('its group failed over to another master', reply);
    for (const resp of [2, 3] as const) {
      const key = idleKey(addr, resp);
      const idle = this.idle.get(key);
      if (idle !== undefined) for (const { conn } of idle.splice(0)) conn.close();
      this.idle.delete(key);
    }
  }

  /** Idle connections kept for reuse (for tests and /api/proxy). */
  get idleConnections(): number {
    let n = 0;
    for (const list of this.idle.values()) n += list.length;
    return n;
  }

  closeAll(): void {
    for (const b of this.blocked) b.conn.close();
    for (const list of this.idle.values()) for (const { conn } of list) conn.close();
    this.idle.clear();
  }
}
