/**
 * How reborn-config's operations reach a redis server: a connected admin client that has
 * answered PING (coordinator's one admin client, loaded on first use so CLI verbs that need
 * no redis never load ioredis), REPLICAOF with masterauth, INFO replication as fields.
 *
 * Redis. Every redis call has a connect and a command timeout; a server that does not answer
 * is ServerUnreachableError, a bounded wait that runs out is OperationTimeoutError.
 */
import type { Redis } from 'ioredis';
import type { InfoFields } from '@reborn/coordinator/admin';
import { ServerUnreachableError } from './errors.js';

/** The admin client (and ioredis with it) loads on first use. */
export const redisAdmin = () => import('@reborn/coordinator/admin');

/** How Admin reaches a redis server: one timeout for connect and each command, and the password. */
export interface RedisConn {
  timeoutMs: number;
  password: string | null;
}

/**
 * A connected admin client to `addr` that has answered PING; anything else is
 * ServerUnreachableError (`server <addr> is unreachable: <why>`).
 */
export async function connectRedis(addr: string, { timeoutMs, password }: RedisConn): Promise<Redis> {
  const { connectAdmin, RedisAdminError } = await redisAdmin();
  let c: Redis | null = null;
  try {
    c = await connectAdmin(addr, { connectTimeoutMs: timeoutMs, commandTimeoutMs: timeoutMs, password });
    const pong = await c.ping();
    if (pong !== 'PONG') throw new Error(`PING answered ${pong}`);
    return c;
  } catch (err) {
    c?.disconnect();
    const why = err instanceof RedisAdminError ? err.why : (err as Error).message;
    throw new ServerUnreachableError(`server ${addr} is unreachable: ${why}`, err);
  }
}

export async function withRedis<T>(addr: string, conn: RedisConn, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = await connectRedis(addr, conn);
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

/** REPLICAOF `master` (host:port) on `c`, with masterauth first where the servers have a password. */
export async function replicaOf(c: Redis, master: string, { password }: RedisConn): Promise<void> {
  await (await redisAdmin()).replicaOf(c, master, password);
}

/** INFO replication of `c` as fields (`role` → `master`, …). */
export async function replicationFields(c: Redis): Promise<InfoFields> {
  return (await redisAdmin()).parseInfo(await c.info('replication'));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
