/**
 * Short-lived admin connections to redis-server: the one operator-side redis client of the
 * control plane (reborn-config's operations, fencing, migration and checks; the agent's
 * cached clients in redis-admin-pool.ts are built from the same adminClient()).
 *
 * Every call is bounded: a connect timeout, a command timeout, no offline queue (a command
 * sent while disconnected fails at once instead of waiting for a reconnect), no reconnects —
 * and the connection is always closed. A control loop that talks to a hung or partitioned
 * server therefore hears back within the timeouts. The servers' password (requirepass) is
 * sent by every client made here, and REPLICAOF carries it on as masterauth (or, given a
 * ReplicationLogin, the replication user's).
 *
 * Redis error replies carry their code as the first word (`BUSYKEY …`, `IOERR …`); replyCode()
 * reads it, so callers branch on that code and never on the rest of the message.
 * Loaded only through the `@reborn/coordinator/admin` entry, so the proxy's data path never
 * loads ioredis. See docs/architecture.md (control path).
 */
import { Redis, type RedisOptions } from 'ioredis';
import { CoordinatorError } from './errors.js';
import { isValidAddr, splitAddr } from './models.js';
import { parseInfo, replicationInfo, replicationOffset, type InfoFields } from './redis-info.js';

export interface RedisAdminOptions {
  /** Default 2000. */
  connectTimeoutMs?: number;
  /** Upper bound of each command, from the moment it is sent. Default 5000. */
  commandTimeoutMs?: number;
  /** The servers' default-user password (requirepass), or none. */
  password?: string | null;
}

/** How adminClient() builds a client beyond the bounds every caller shares. */
export interface AdminClientOptions extends Omit<RedisAdminOptions, 'commandTimeoutMs'> {
  /** Default 5000; null: no ioredis timeout, the caller enforces its own per-call deadline. */
  commandTimeoutMs?: number | null;
  /** CLIENT SETNAME on connect (shows in CLIENT LIST), or none. */
  connectionName?: string;
  /**
   * Let commands wait in ioredis's queue while the first connect is under way (the client then
   * connects itself on first use). Default false: the caller connects, and a command sent
   * while disconnected fails at once.
   */
  queueUntilConnected?: boolean;
}

/** Whether a password is configured (an empty one counts as none). */
export function hasPassword(password: string | null | undefined): password is string {
  return typeof password === 'string' && password !== '';
}

const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const DEFAULT_COMMAND_TIMEOUT_MS = 5000;

/** A redis server could not be reached or did not answer in time (not an error reply). */
export class RedisAdminError extends CoordinatorError {
  readonly addr: string;
  /** What went wrong, without the address or the step (a connect failure: the socket's error), for callers that word their own. */
  readonly why: string;
  constructor(addr: string, message: string, cause?: unknown, why: string = message) {
    super('EUNREACHABLE', `redis ${addr}: ${message}`, { cause, retryable: true });
    this.name = 'RedisAdminError';
    this.addr = addr;
    this.why = why;
  }
}

/** `host:port` (IPv6 hosts in brackets) → host and port. */
export function parseAddr(addr: string): { host: string; port: number } {
  if (!isValidAddr(addr)) throw new RedisAdminError(addr, 'not a host:port address');
  return splitAddr(addr);
}

/**
 * An unconnected client with bounded everything; the caller connects (`await c.connect()`)
 * and must `disconnect()` it. For work that outlives one call (the migration runner's scans).
 */
export function adminClient(addr: string, opts: AdminClientOptions = {}): Redis {
  const { host, port } = parseAddr(addr);
  const commandTimeout = opts.commandTimeoutMs === undefined ? DEFAULT_COMMAND_TIMEOUT_MS : opts.commandTimeoutMs;
  const options: RedisOptions = {
    host,
    port,
    ...(hasPassword(opts.password) ? { password: opts.password } : {}),
    ...(commandTimeout === null ? {} : { commandTimeout }),
    ...(opts.connectionName === undefined ? {} : { connectionName: opts.connectionName }),
    lazyConnect: true,
    connectTimeout: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    // No reconnects (retryStrategy → null), so a request is never retried on another connection.
    maxRetriesPerRequest: 0,
    enableOfflineQueue: opts.queueUntilConnected === true,
    enableReadyCheck: false,
    autoResubscribe: false,
    retryStrategy: () => null,
  };
  const c = new Redis(options);
  // Connection errors surface as rejected commands; without a listener ioredis would log them.
  c.on('error', () => {});
  return c;
}

/** True for failures of the connection itself (refused, reset, timed out), not error replies. */
export function isTransportError(err: unknown): boolean {
  return err instanceof RedisAdminError || (err instanceof Error && !isReplyError(err));
}

function isReplyError(err: Error): boolean {
  return err.name === 'ReplyError';
}

/**
 * The code of a redis error reply — its first word — or null for anything that is not an
 * error reply. MIGRATE wraps the target's error (`ERR Target instance replied with error:
 * BUSYKEY …`); for those the target's code is returned.
 */
export function replyCode(err: unknown): string | null {
  if (!(err instanceof Error) || !isReplyError(err)) return null;
  const wrapped = /^ERR Target instance replied with error: (\S+)/.exec(err.message);
  if (wrapped) return wrapped[1]!;
  return /^(\S+)/.exec(err.message)?.[1] ?? null;
}

/**
 * A connected bounded client; the caller must `disconnect()` it. A failed connect is a
 * RedisAdminError whose reason is the socket's own error (connect() itself only says
 * "Connection is closed").
 */
export async function connectAdmin(addr: string, opts: AdminClientOptions = {}): Promise<Redis> {
  const c = adminClient(addr, opts);
  let socketError: Error | null = null;
  c.on('error', (err: Error) => {
    socketError ??= err;
  });
  try {
    await c.connect();
    return c;
  } catch (err) {
    c.disconnect();
    const why = (socketError as Error | null)?.message ?? (err as Error).message;
    throw new RedisAdminError(addr, `cannot connect: ${why}`, err, why);
  }
}

/** EXISTS of each key, pipelined in one round trip; throws on any failure. */
export async function existsAll(c: Redis, keys: readonly Buffer[]): Promise<boolean[]> {
  const p = c.pipeline();
  for (const k of keys) p.exists(k);
  const res = (await p.exec()) ?? [];
  return res.map(([err, n]) => {
    if (err) throw err;
    return Number(n) === 1;
  });
}

/** Connects to `addr`, runs `fn`, always disconnects. Transport failures become RedisAdminError. */
export async function withRedis<T>(addr: string, fn: (c: Redis) => Promise<T>, opts: RedisAdminOptions = {}): Promise<T> {
  const c = await connectAdmin(addr, opts);
  try {
    try {
      return await fn(c);
    } catch (err) {
      if (err instanceof Error && !isReplyError(err) && !(err instanceof CoordinatorError)) {
        throw new RedisAdminError(addr, err.message, err);
      }
      throw err;
    }
  } finally {
    c.disconnect();
  }
}

/** PING; resolves with the round trip in milliseconds, rejects when the server does not answer PONG. */
export async function ping(addr: string, opts: RedisAdminOptions = {}): Promise<number> {
  return withRedis(
    addr,
    async (c) => {
      const t0 = performance.now();
      const reply = await c.ping();
      if (reply !== 'PONG') throw new RedisAdminError(addr, `PING answered ${JSON.stringify(reply)}`);
      return performance.now() - t0;
    },
    opts,
  );
}

/** `INFO <section>` as a record of its `field:value` lines (section headers and blanks dropped). */
export async function info(addr: string, section = 'default', opts: RedisAdminOptions = {}): Promise<InfoFields> {
  const text = await withRedis(addr, (c) => c.info(section), opts);
  return parseInfo(text);
}

/**
 * replicationOffset() of the server at `addr`, read now: how far its replication stream has
 * got, in bytes. A bigint for callers that do offset arithmetic; the HA leader promotes the
 * replica with the highest one.
 */
export async function readReplicationOffset(addr: string, opts: RedisAdminOptions = {}): Promise<bigint> {
  const fields = replicationInfo(await info(addr, 'replication', opts));
  const offset = replicationOffset(fields);
  if (offset === null) throw new RedisAdminError(addr, `INFO replication has no replication offset (role ${fields.role === 'unknown' ? '?' : fields.role})`);
  return BigInt(offset);
}

/**
 * How a replica logs in to its master: a dedicated user (`masteruser` + `masterauth`) instead
 * of the default user. Reborn's HA gives the product's servers such a user at runtime only
 * (agent repl-guard.ts), so a master that restarted has lost it and cannot feed a sync.
 */
export interface ReplicationLogin {
  readonly user: string;
  readonly password: string;
}

/**
 * The commands that make a server a replica of `master` (`host:port`), or a master again
 * (null). The replica must log in to its new master: with `login`, as that user (masterauth
 * first, then masteruser: between the two a reconnect fails AUTH, it never logs in as
 * someone else); otherwise, where the servers have a password, as the default user
 * (masterauth only — a masteruser set by reborn's HA stays, so a replica the HA leader put on
 * the replication user keeps refusing a master without it until the leader points it again).
 */
export function replicaOfCommands(master: string | null, password?: string | null, login?: ReplicationLogin | null): string[][] {
  if (master === null) return [['REPLICAOF', 'NO', 'ONE']];
  const { host, port } = splitAddr(master);
  const auth = login
    ? [['CONFIG', 'SET', 'masterauth', login.password], ['CONFIG', 'SET', 'masteruser', login.user]]
    : hasPassword(password) ? [['CONFIG', 'SET', 'masterauth', password]] : [];
  return [...auth, ['REPLICAOF', host, String(port)]];
}

/** REPLICAOF on an open client (see replicaOfCommands). */
export async function replicaOf(c: Redis, master: string | null, password?: string | null, login?: ReplicationLogin | null): Promise<void> {
  for (const [cmd, ...args] of replicaOfCommands(master, password, login)) await c.call(cmd!, ...args);
}

/** A key for log lines and error messages: printable ASCII as is, other bytes as \xNN. */
export function showKey(key: Buffer): string {
  let out = '';
  for (const b of key.subarray(0, 200)) {
    out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return key.length > 200 ? `${out}…(${key.length} bytes)` : out;
}

const COMPARE_MAX_ELEMENTS = 100_000;
const COMPARE_MAX_BYTES = 16 * 1024 * 1024;

/**
 * A canonical form of one key's value (type, content, ordering-independent for hashes and
 * sets), or null when the value is too large to compare or its type unknown. DUMP payloads
 * cannot be compared across servers: a hashtable-encoded set or hash serializes in the
 * order of the server's own (randomly seeded) dict.
 */
export async function canonicalValue(c: Redis, key: Buffer): Promise<string | null> {
  const type = await c.type(key);
  const size = async (cmd: string) => Number(await c.call(cmd, key));
  const flat = async (...args: (string | Buffer | number)[]) => ((await c.callBuffer(...(args as [string, ...(string | Buffer | number)[]]))) as Buffer[]).map((b) => b.toString('hex'));
  const pairs = (items: string[]) => {
    const out: string[] = [];
    for (let i = 0; i + 1 < items.length; i += 2) out.push(`${items[i]}=${items[i + 1]}`);
    return out;
  };
  switch (type) {
    case 'none':
      return 'none';
    case 'string': {
      if ((await size('STRLEN')) > COMPARE_MAX_BYTES) return null;
      const v = (await c.getBuffer(key)) ?? Buffer.alloc(0);
      return `string:${v.toString('hex')}`;
    }
    case 'hash':
      if ((await size('HLEN')) > COMPARE_MAX_ELEMENTS) return null;
      return `hash:${pairs(await flat('HGETALL', key)).sort().join(',')}`;
    case 'set':
      if ((await size('SCARD')) > COMPARE_MAX_ELEMENTS) return null;
      return `set:${(await flat('SMEMBERS', key)).sort().join(',')}`;
    case 'zset':
      if ((await size('ZCARD')) > COMPARE_MAX_ELEMENTS) return null;
      return `zset:${(await flat('ZRANGE', key, 0, -1, 'WITHSCORES')).join(',')}`;
    case 'list':
      if ((await size('LLEN')) > COMPARE_MAX_ELEMENTS) return null;
      return `list:${(await flat('LRANGE', key, 0, -1)).join(',')}`;
    case 'stream':
      if ((await size('XLEN')) > COMPARE_MAX_ELEMENTS) return null;
      // Entries in id order; consumer groups are not compared.
      return `stream:${JSON.stringify(await c.callBuffer('XRANGE', key, '-', '+'), (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v))}`;
    default:
      return null;
  }
}
