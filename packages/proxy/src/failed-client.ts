/**
 * Settling the requests of a failed backend connection. A request the proxy failed (timed
 * out, connection lost) may still run: redis reads what reached its socket even after we hung
 * up, e.g. once a long script or a SIGSTOP ends. So the failed connection's redis client is
 * killed by id (`CLIENT KILL ID`) over a fresh connection, retried with backoff.
 *
 * Invariant: `settled` is called exactly once, and only when that client can run nothing
 * more — CLIENT KILL answered (:1 killed now, :0 gone already), the server refuses
 * connections (its process, and the client with it, is gone), or the connection was closed
 * for good — or when it can never be told (-NOPERM: waiting would hold every barrier).
 */
import type { Logger } from 'pino';
import { redisCommand } from './admin-redis.js';

export interface FailedClient {
  addr: string;
  clientId: bigint;
  /** Per CLIENT KILL attempt. */
  timeoutMs: number;
  adminPassword: string | null;
  logger: Logger;
  /** The connection was closed for good: a refused attempt then settles too. */
  isClosed: () => boolean;
}

export function killFailedClient(c: FailedClient, settled: () => void): void {
  const again = (delayMs: number): void => {
    setTimeout(() => attempt(Math.min(delayMs * 2, 1000)), delayMs).unref();
  };
  const attempt = (delayMs: number): void => {
    redisCommand(c.addr, ['CLIENT', 'KILL', 'ID', String(c.clientId)], c.timeoutMs, c.adminPassword).then(
      (reply) => {
        // :1 killed now, :0 gone already (redis read its input to the end first).
        if (reply[0] === 0x3a) {
          settled();
          return;
        }
        const text = reply.toString('latin1').trim();
        if (text.startsWith('-NOPERM')) {
          // Cannot ever be told: waiting would hold every barrier of this proxy for good.
          c.logger.warn({ backend: c.addr, reply: text }, 'CLIENT KILL of a failed connection refused; counting its requests as settled');
          settled();
        } else {
          again(delayMs); // -BUSY (a script still runs: our requests may still run after it), -LOADING …
        }
      },
      (err: Error) => {
        if (/ECONNREFUSED/.test(err.message) || c.isClosed()) settled();
        else again(delayMs);
      },
    );
  };
  attempt(50);
}
