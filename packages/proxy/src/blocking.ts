/**
 * Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN/MAX, BLMPOP, BZMPOP, XREAD and
 * XREADGROUP with BLOCK). A blocked command would stall every client sharing a pipelined
 * backend connection, so each runs on a connection of its own (authenticated as the proxy's
 * ACL user like every other), closed when it answers or when its client goes away — which
 * also unblocks it in redis without consuming anything.
 *
 * Migration: before acking a barrier for some slots, the proxy unblocks the commands blocked
 * on those slots with `CLIENT UNBLOCK <id> TIMEOUT` (sent on a shared connection) and waits
 * for their replies. Redis answers them as if their timeout had expired (or with the element
 * they had just popped, which the client then receives): nothing is lost, and no blocked
 * command can pop from the old group after the barrier.
 */
import { encodeCommand, encodeError, isErrorReply, parseIntegerReply } from '@reborn/protocol';
import { BackendConnection, type BackendOptions, type BackendPool, type BackendRequest } from './backend.js';
import type { Session } from './session.js';

interface Blocked {
  readonly slot: number;
  readonly conn: BackendConnection;
  readonly pool: BackendPool;
  /** Redis client id of the dedicated connection, once known. */
  clientId: bigint | null;
  done: Promise<void>;
}

/** Longer than any blocking timeout a client may reasonably ask for: redis enforces those. */
const NO_WATCHDOG_MS = 2 ** 30;

export class BlockingCommands {
  private readonly blocked = new Set<Blocked>();

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
    // With --durable, a blocking pop is a write like any other: its reply waits for a replica.
    const conn = new BackendConnection(pool.addr, { ...this.options, timeoutMs: NO_WATCHDOG_MS }, pool.durability);
    let finish!: () => void;
    const entry: Blocked = { slot, conn, pool, clientId: null, done: new Promise((r) => (finish = r)) };
    this.blocked.add(entry);
    const release = (): void => {
      if (!this.blocked.delete(entry)) return;
      session.forgetWhenClosed(cancel);
      conn.close();
      finish();
    };
    // The client went away: closing the connection unblocks the command in redis.
    const cancel = (): void => release();
    session.whenClosed(cancel);
    conn.send({
      payload: encodeCommand(['CLIENT', 'ID']),
      resolve: (reply) => {
        if (!isErrorReply(reply)) entry.clientId = parseIntegerReply(reply);
      },
    });
    conn.send({
      payload: req.payload,
      write: req.write === true,
      resolve: (reply) => {
        release();
        req.resolve(reply);
      },
    });
  }

  /** Unblocks every command blocked on one of `slots`; resolves when all have answered. */
  async unblock(slots: ReadonlySet<number>, sessionIndex = 0): Promise<void> {
    const affected = [...this.blocked].filter((b) => slots.has(b.slot));
    for (const b of affected) {
      if (b.clientId === null) {
        // Not even CLIENT ID answered yet: dropping the connection unblocks it safely.
        b.conn.close('its slot is being migrated');
        continue;
      }
      b.pool.pick(sessionIndex).send({
        payload: encodeCommand(['CLIENT', 'UNBLOCK', String(b.clientId), 'TIMEOUT']),
        resolve: () => undefined,
      });
    }
    await Promise.all(affected.map((b) => b.done));
  }

  closeAll(): void {
    for (const b of this.blocked) b.conn.close();
  }
}
