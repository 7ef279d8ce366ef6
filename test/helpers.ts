/**
 * Shared helpers for the end-to-end suite (not a test file itself).
 *
 * - RawClient: a node:net client that writes exact bytes and decodes RESP2 replies, for what
 *   ioredis cannot show (inline commands, pipelines in one write, protocol errors, closes).
 * - Slot helpers computed independently of the proxy (zlib.crc32 + the hash-tag rule), and
 *   ways to see which group's master really holds a key.
 * - A strict Prometheus text parser for /metrics.
 */
import net from 'node:net';
import { crc32 } from 'node:zlib';
import { Redis } from 'ioredis';
import type { Cluster, RedisServer } from '@reborn/testkit';

// -----------------------------------------------------------------------------------------
// RESP2 replies

export class RespError {
  constructor(readonly message: string) {}
}

export type Reply = string | RespError | bigint | Buffer | null | Reply[];

/** Thrown for bytes that are not a RESP2 reply. */
export class BadReplyError extends Error {}

/** Decodes one reply at `pos`: [reply, next position], or null when more bytes are needed. */
export function parseReply(buf: Buffer, pos: number): [Reply, number] | null {
  if (pos >= buf.length) return null;
  const eol = buf.indexOf('\r\n', pos + 1, 'latin1');
  if (eol < 0) return null;
  const type = buf[pos];
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case 0x2b: // +
      return [line, next];
    case 0x2d: // -
      return [new RespError(line), next];
    case 0x3a: // :
      if (!/^-?\d+$/.test(line)) throw new BadReplyError(`bad integer reply ${JSON.stringify(line)}`);
      return [BigInt(line), next];
    case 0x24: {
      // $
      if (!/^(-1|\d+)$/.test(line)) throw new BadReplyError(`bad bulk length ${JSON.stringify(line)}`);
      const len = Number(line);
      if (len === -1) return [null, next];
      if (buf.length < next + len + 2) return null;
      if (buf[next + len] !== 0x0d || buf[next + len + 1] !== 0x0a) throw new BadReplyError('bulk not followed by CRLF');
      return [Buffer.from(buf.subarray(next, next + len)), next + len + 2];
    }
    case 0x2a: {
      // *
      if (!/^(-1|\d+)$/.test(line)) throw new BadReplyError(`bad array length ${JSON.stringify(line)}`);
      const n = Number(line);
      if (n === -1) return [null, next];
      const items: Reply[] = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (r === null) return null;
        items.push(r[0]);
        p = r[1];
      }
      return [items, p];
    }
    default:
      throw new BadReplyError(`bad reply type byte 0x${(type ?? 0).toString(16)} at ${pos}`);
  }
}

/** RESP multibulk encoding of one command. */
export function cmd(...args: (string | Buffer | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A reply rendered for assertions: bulk strings as utf8, integers as numbers when safe. */
export function plain(r: Reply): unknown {
  if (Buffer.isBuffer(r)) return r.toString('utf8');
  if (typeof r === 'bigint') return Number(r);
  if (r instanceof RespError) return { err: r.message };
  if (Array.isArray(r)) return r.map(plain);
  return r;
}

/** Rejects with `what` when `p` is not settled within `ms`: a hang detector, not a perf bound. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: ${what} not done within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A raw TCP client: write exact bytes, read decoded replies in order, see the close.
 * Replies are decoded as they arrive; undecodable bytes are kept in `error`.
 */
export class RawClient {
  readonly replies: Reply[] = [];
  /** Bytes received in total. */
  received = 0;
  closed = false;
  /** Set when the peer sent bytes that are not RESP replies. */
  error: Error | null = null;
  private consumed = 0;
  private buf: Buffer = Buffer.alloc(0);
  private readonly listeners = new Set<() => void>();
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      let pos = 0;
      try {
        for (;;) {
          const r = parseReply(this.buf, pos);
          if (r === null) break;
          this.replies.push(r[0]);
          pos = r[1];
        }
      } catch (err) {
        this.error ??= err as Error;
        pos = this.buf.length;
      }
      this.buf = pos === 0 ? this.buf : this.buf.subarray(pos);
      this.notify();
    });
    socket.on('error', () => undefined);
    this.closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        this.closed = true;
        this.notify();
        resolve();
      });
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, noDelay: true });
      const client = new RawClient(socket);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(client);
      });
      socket.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Half-closes: no more requests from this side. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Undecoded bytes waiting for the rest of a reply. */
  get partialBytes(): number {
    return this.buf.length;
  }

  /** The next `n` replies not yet returned; rejects if the connection closes first or after `ms`. */
  async next(n = 1, ms = 10_000): Promise<Reply[]> {
    await this.until(() => this.replies.length >= this.consumed + n || this.closed || this.error !== null, ms, `${n} replies`);
    if (this.error) throw this.error;
    if (this.replies.length < this.consumed + n) {
      throw new Error(`connection closed after ${this.replies.length - this.consumed} of ${n} replies`);
    }
    const out = this.replies.slice(this.consumed, this.consumed + n);
    this.consumed += n;
    return out;
  }

  async one(ms = 10_000): Promise<Reply> {
    const [r] = await this.next(1, ms);
    return r as Reply;
  }

  /** Sends one command and returns its reply. */
  async call(...args: (string | Buffer | number)[]): Promise<Reply> {
    this.write(cmd(...args));
    return this.one();
  }

  /** Resolves when the peer closed the connection; rejects after `ms`. */
  waitClosed(ms = 10_000): Promise<void> {
    return within(this.closedPromise, ms, 'connection close');
  }

  private until(cond: () => boolean, ms: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (cond()) {
            this.listeners.delete(check);
            resolve();
          }
        };
        this.listeners.add(check);
      }),
      ms,
      what,
    );
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

// -----------------------------------------------------------------------------------------
// Slots, computed here from the rule in docs/architecture.md §3 (step 4) and not with the proxy's own code

export function hashTagOf(key: Buffer): Buffer {
  const open = key.indexOf(0x7b);
  if (open < 0) return key;
  const close = key.indexOf(0x7d, open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.subarray(open + 1, close);
}

export function slotOf(key: string | Buffer): number {
  return crc32(hashTagOf(Buffer.isBuffer(key) ? key : Buffer.from(key))) % 1024;
}

/** The group id owning `slot` with the testkit's even split of 1024 slots over `groups` groups. */
export function initialOwner(slot: number, groups: number): number {
  for (let i = 0; i < groups; i++) {
    if (slot < Math.floor(((i + 1) * 1024) / groups)) return i + 1;
  }
  throw new RangeError(`slot ${slot}`);
}

/** `n` keys `${prefix}<i>` whose slots lie in [from, to]. */
export function keysInSlots(prefix: string, from: number, to: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const k = `${prefix}${i}`;
    const s = slotOf(k);
    if (s >= from && s <= to) out.push(k);
  }
  return out;
}

/** `n` keys that the initial split of a cluster with `groups` groups gives to group `gid`. */
export function keysOfGroup(prefix: string, gid: number, n: number, groups = 2): string[] {
  const from = Math.floor(((gid - 1) * 1024) / groups);
  const to = Math.floor((gid * 1024) / groups) - 1;
  return keysInSlots(prefix, from, to, n);
}

/**
 * A Lua script that keeps redis busy for `ms` (it blocks every client of that server), then
 * runs `then` (a Lua expression; default `1`): EVAL it with its keys.
 */
export function busyScript(ms: number, then = '1'): string {
  return `local t0 = redis.call('TIME'); repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > ${ms * 1000}; return ${then}`;
}

/** Direct clients to each group's master, index i = group id i+1. */
export function masterClients(cluster: Cluster): Redis[] {
  return cluster.groups.map((g) => g.master.client());
}

/**
 * Fails group `gid` over by hand, as reborn-agent would: `replica` stops replicating (REPLICAOF
 * NO ONE), then the group is rewritten in etcd with it as master and `oldMaster` as its replica
 * (the proxies switch on that write). `oldMaster` itself is left as it is.
 */
export async function promoteReplica(cluster: Cluster, gid: number, replica: RedisServer, oldMaster: RedisServer): Promise<void> {
  await replica.client().replicaof('NO', 'ONE');
  await cluster.store.putGroup({
    id: gid,
    servers: [
      { addr: replica.addr, role: 'master' },
      { addr: oldMaster.addr, role: 'replica' },
    ],
  });
}

/** Ids of the groups whose master holds `key`. */
export async function groupsHolding(masters: Redis[], key: string | Buffer): Promise<number[]> {
  const found = await Promise.all(masters.map((m) => m.exists(key)));
  return found.flatMap((n, i) => (n === 1 ? [i + 1] : []));
}

// -----------------------------------------------------------------------------------------
// Prometheus text format

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})?\s+(\S+)(?:\s+-?\d+)?$/;

/**
 * Parses Prometheus text exposition: every non-empty line must be a `# HELP`/`# TYPE` comment
 * or a sample. Returns samples keyed by `name{labels}` exactly as written.
 */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      if (line.startsWith('# HELP') && !/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* /.test(line)) {
        throw new Error(`line ${i + 1}: bad HELP ${JSON.stringify(line)}`);
      }
      if (line.startsWith('# TYPE') && !/^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/.test(line)) {
        throw new Error(`line ${i + 1}: bad TYPE ${JSON.stringify(line)}`);
      }
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`line ${i + 1}: not a sample: ${JSON.stringify(line)}`);
    // Values as Prometheus reads them (Go's ParseFloat: Inf and NaN in any letter case;
    // prom-client writes NaN as "Nan").
    const raw = m[3]!;
    const special = /^([+-]?)(inf|infinity|nan)$/i.exec(raw);
    const value = special ? (special[2]!.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity) : Number(raw);
    if (Number.isNaN(value) && !special) throw new Error(`line ${i + 1}: bad value ${JSON.stringify(raw)}`);
    out.set(`${m[1]}${m[2] ?? ''}`, value);
  }
  return out;
}

/** Deterministic pseudo-random numbers (mulberry32), so a failing run can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Waits until the proxy serves data commands: any reply but `-ERR proxy not ready…` to an
 * EXISTS (after AUTH when `password` is given). /healthz can say 200 a moment before that
 * (see the "healthz" test in proxy-topology.test.ts); suites wait here so that their own
 * first command does not race it.
 */
export async function dataReady(port: number, password?: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const c = await RawClient.connect(port);
    try {
      if (password !== undefined) await c.call('AUTH', password);
      const r = await c.call('EXISTS', 'reborn-test:ready');
      if (!(r instanceof RespError && r.message.startsWith('ERR proxy not ready'))) return;
      if (Date.now() > deadline) throw new Error(`proxy on port ${port} still answers: ${r.message}`);
    } finally {
      c.destroy();
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A group as reborn-config shows it (`group list --json`, `GET /api/groups`): an absent in-sync
 * set (every replica counts) and no settings, unless `over` says otherwise.
 */
export function groupView(id: number, servers: { addr: string; role: 'master' | 'replica' }[], slots: number, over: Record<string, unknown> = {}) {
  return {
    id,
    servers,
    slots,
    inSync: servers.filter((s) => s.role === 'replica').map((s) => s.addr),
    inSyncManaged: false,
    minInSync: null,
    wantReplicas: null,
    durability: 'ok',
    ...over,
  };
}

/**
 * Runs `fn` on a short-lived connection to the redis server at `addr` (host:port on loopback),
 * logged in with `password`, and closes it. No retries and bounded connect/command timeouts,
 * so a dead or paused server fails the call instead of hanging it.
 */
export async function onServer<T>(addr: string, password: string | undefined, fn: (c: Redis) => Promise<T>, timeoutMs = 3000): Promise<T> {
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  const c = new Redis({
    host: '127.0.0.1',
    port,
    ...(password === undefined ? {} : { password }),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableReadyCheck: false,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await fn(c);
  } finally {
    c.disconnect();
  }
}
