/**
 * Short-lived admin connections to redis-server for reborn-config (fencing, migration, health).
 *
 * Every call is bounded: a connect timeout, a command timeout, no offline queue (a command
 * sent while disconnected fails at once instead of waiting for a reconnect), no reconnects,
 * at most one retry per request — and the connection is always closed. A control loop that
 * talks to a hung or partitioned server therefore hears back within the timeouts.
 *
 * Redis error replies carry their code as the first word (`BUSYKEY …`, `IOERR …`); replyCode()
 * reads it, so callers branch on that code and never on the rest of the message.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { CoordinatorError } from '@reborn/coordinator';

export interface RedisAdminOptions {
  /** Default 2000. */
  connectTimeoutMs?: number;
  /** Upper bound of each command, from the moment it is sent. Default 5000. */
  commandTimeoutMs?: number;
  /** The servers' default-user password (requirepass), or none. */
  password?: string | null;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const DEFAULT_COMMAND_TIMEOUT_MS = 5000;

/** A redis server could not be reached or did not answer in time (not an error reply). */
export class RedisAdminError extends CoordinatorError {
  readonly addr: string;
  constructor(addr: string, message: string, cause?: unknown) {
    super('EUNREACHABLE', `redis ${addr}: ${message}`, { cause, retryable: true });
    this.name = 'RedisAdminError';
    this.addr = addr;
  }
}

/** `host:port` (IPv6 hosts in brackets) → host and port. */
export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(addr);
  const port = Number(m?.[3]);
  if (!m || !(port >= 1 && port <= 65535)) throw new RedisAdminError(addr, 'not a host:port address');
  return { host: m[1] ?? m[2]!, port };
}

/**
 * An unconnected client with bounded everything; the caller connects (`await c.connect()`)
 * and must `disconnect()` it. For work that outlives one call (the migration runner's scans).
 */
export function adminClient(addr: string, opts: RedisAdminOptions = {}): Redis {
  const { host, port } = parseAddr(addr);
  const options: RedisOptions = {
    host,
    port,
    ...(opts.password ? { password: opts.password } : {}),
    lazyConnect: true,
    connectTimeout: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    commandTimeout: opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
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

/** Connects to `addr`, runs `fn`, always disconnects. Transport failures become RedisAdminError. */
export async function withRedis<T>(addr: string, fn: (c: Redis) => Promise<T>, opts: RedisAdminOptions = {}): Promise<T> {
  const c = adminClient(addr, opts);
  // connect() itself only says "Connection is closed"; the socket's error says why.
  let socketError: Error | null = null;
  c.on('error', (err: Error) => {
    socketError ??= err;
  });
  try {
    try {
      await c.connect();
    } catch (err) {
      const why = (socketError as Error | null)?.message ?? (err as Error).message;
      throw new RedisAdminError(addr, `cannot connect: ${why}`, err);
    }
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
export async function info(addr: string, section = 'default', opts: RedisAdminOptions = {}): Promise<Record<string, string>> {
  const text = await withRedis(addr, (c) => c.info(section), opts);
  return parseInfo(text);
}

export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.indexOf(':');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

/**
 * How far the server's replication stream has got, in bytes: a replica's processed offset
 * (`slave_repl_offset`), a master's `master_repl_offset`. A bigint: offsets are never
 * rounded through JS numbers. The HA leader promotes the replica with the highest one.
 */
export async function replicationOffset(addr: string, opts: RedisAdminOptions = {}): Promise<bigint> {
  const fields = await info(addr, 'replication', opts);
  const raw = fields['role'] === 'slave' ? fields['slave_repl_offset'] : fields['master_repl_offset'];
  if (raw === undefined || !/^-?\d+$/.test(raw)) {
    throw new RedisAdminError(addr, `INFO replication has no replication offset (role ${fields['role'] ?? '?'})`);
  }
  return BigInt(raw);
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
