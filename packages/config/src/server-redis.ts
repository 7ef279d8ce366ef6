/**
 * How reborn-config's operations reach a redis server: a connected admin client that has
 * answered PING (coordinator's one admin client, loaded on first use so CLI verbs that need
 * no redis never load ioredis), REPLICAOF with masterauth — or, once the HA leader has given
 * the product a replication user, logging in as that user (a replica pointed with the default
 * password alone would fail its AUTH as `reborn-repl` until the leader's next round) — and
 * INFO replication as fields.
 *
 * Redis. Every redis call has a connect and a command timeout; a server that does not answer
 * is ServerUnreachableError, a bounded wait that runs out is OperationTimeoutError.
 */
import type { Redis } from 'ioredis';
import type { InfoFields, ReplicationLogin } from '@reborn/coordinator/admin';
import { REPL_USER, readReplicationSecret, type Store } from '@reborn/coordinator';
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

/** The login replicas use with their master: the replication user once HA created its secret, else none (the default user). */
export async function replicationLogin(store: Store): Promise<ReplicationLogin | null> {
  const secret = await readReplicationSecret(store);
  return secret === null ? null : { user: REPL_USER, password: secret };
}

/** REPLICAOF `master` (host:port) on `c`, logging in as `login` or, without one, with masterauth where the servers have a password. */
export async function replicaOf(c: Redis, master: string, { password }: RedisConn, login: ReplicationLogin | null = null): Promise<void> {
  await (await redisAdmin()).replicaOf(c, master, password, login);
}

/** INFO replication of `c` as fields (`role` → `master`, …). */
export async function replicationFields(c: Redis): Promise<InfoFields> {
  return (await redisAdmin()).parseInfo(await c.info('replication'));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
