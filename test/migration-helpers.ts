/**
 * Shared helpers for the live-migration end-to-end tests (test/migration-*.test.ts); not a
 * test file itself.
 *
 * - preload(): mixed keys (strings, strings with TTL, hashes, lists, hash-tagged keys)
 *   written through a proxy in pipelines, with each key's TTL and when it was set, so that
 *   verifyPreloaded() can check value and TTL (PTTL within the original ± elapsed + slack).
 * - Writers: concurrent ioredis clients doing INCR / RPUSH / HINCRBY on a few thousand keys
 *   and counting ACKNOWLEDGED commands per key. An error reply is not acknowledged; it is
 *   counted apart (and makes that key's check a range, since the write may or may not have
 *   happened). Beyond the counts, every reply is kept: for a key with no error, the INCR
 *   (HINCRBY, RPUSH) replies must be exactly 1..N, so a write applied twice, applied to a
 *   stale copy, or lost shows up even when the final count happens to match.
 * - placement(): SCAN every master directly; every key must live only on the master of the
 *   group its slot says (slot table read from etcd), never in two groups.
 *
 * ioredis is told never to resend: with `autoResendUnfulfilledCommands: false` and
 * `maxRetriesPerRequest: 0`, a command whose connection dies is reported as an error instead
 * of silently being sent a second time (which would make an INCR count twice).
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import { Redis, type RedisOptions } from 'ioredis';
import { pino, type Logger } from 'pino';
import { keySlot } from '@reborn/protocol';
import { Migrations, type MigrationTask, type SlotInfo, type Store } from '@reborn/coordinator';
import type { Cluster, ProxyProcess } from '@reborn/testkit';

export const NO_RESEND: RedisOptions = { maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false };

/** An ioredis client for a proxy that never resends a command on its own. */
export function strictClient(p: ProxyProcess, opts: RedisOptions = {}): Redis {
  return p.client({ ...NO_RESEND, ...opts });
}

// -----------------------------------------------------------------------------------------
// Logs

/** A pino logger writing JSON lines into memory; `problems()` returns warn and above. */
export function memoryLogger(level = 'info'): { logger: Logger; lines: string[]; problems(): string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(l);
      cb();
    },
  });
  const logger = pino({ level }, stream);
  const problems = () =>
    lines.filter((l) => {
      try {
        return (JSON.parse(l) as { level: number }).level >= 40;
      } catch {
        return true;
      }
    });
  return { logger, lines, problems };
}

// -----------------------------------------------------------------------------------------
// Preloaded keys

export type KeyKind = 'string' | 'hash' | 'list';

export interface PreKey {
  key: string;
  kind: KeyKind;
  /** EX seconds given when written, or null (no TTL). */
  ttlSec: number | null;
  /** The write was sent at or after this time, answered at or before setUntil (ms epoch). */
  setFrom: number;
  setUntil: number;
}

export function preKeyName(prefix: string, i: number): string {
  // One in ten keys shares a hash tag with others: those slots hold groups of related keys.
  return i % 10 === 9 ? `{${prefix}tag${i % 97}}:${i}` : `${prefix}:${i}`;
}

function preKind(i: number): { kind: KeyKind; ttlSec: number | null } {
  const ttl = 3600 + ((i * 7919) % 3601); // 3600 … 7200 s
  switch (i % 5) {
    case 0:
      return { kind: 'string', ttlSec: null };
    case 1:
      return { kind: 'string', ttlSec: ttl };
    case 2:
      return { kind: 'hash', ttlSec: i % 3 === 0 ? ttl : null };
    case 3:
      return { kind: 'list', ttlSec: i % 4 === 0 ? ttl : null };
    default:
      return { kind: 'string', ttlSec: i % 2 === 0 ? ttl : null };
  }
}

/** The value preload() gives a string key (and field `a` of a hash, the head of a list). */
export function valueOf(key: string): string {
  return `value-of-${key}-${key.length * 31}`;
}

/** Writes `n` keys through `client` in pipelines of `batch`; throws on any error reply. */
export async function preload(client: Redis, n: number, prefix = 'pre', batch = 2000): Promise<PreKey[]> {
  const out: PreKey[] = [];
  for (let start = 0; start < n; start += batch) {
    const p = client.pipeline();
    const part: PreKey[] = [];
    const setFrom = Date.now();
    for (let i = start; i < Math.min(n, start + batch); i++) {
      const key = preKeyName(prefix, i);
      const { kind, ttlSec } = preKind(i);
      if (kind === 'string') {
        if (ttlSec === null) p.set(key, valueOf(key));
        else p.set(key, valueOf(key), 'EX', ttlSec);
      } else if (kind === 'hash') {
        p.hset(key, 'a', valueOf(key), 'b', String(i));
        if (ttlSec !== null) p.expire(key, ttlSec);
      } else {
        p.rpush(key, valueOf(key), String(i), 'tail');
        if (ttlSec !== null) p.expire(key, ttlSec);
      }
      part.push({ key, kind, ttlSec, setFrom, setUntil: 0 });
    }
    const res = (await p.exec()) ?? [];
    const setUntil = Date.now();
    const errors = res.filter(([e]) => e !== null).map(([e]) => String(e));
    if (errors.length > 0) throw new Error(`preload: ${errors.length} error replies, first: ${errors[0]}`);
    for (const k of part) k.setUntil = setUntil;
    out.push(...part);
  }
  return out;
}

const TTL_SLACK_MS = 2000;

/**
 * Reads every preloaded key through `client`: its value, and PTTL within
 * [ttl − (now − setFrom) − slack, ttl − (now − setUntil) + slack]; -1 when it had no TTL.
 * Returns one line per problem (empty when all is well).
 */
export async function verifyPreloaded(client: Redis, keys: readonly PreKey[], batch = 2000): Promise<string[]> {
  const problems: string[] = [];
  for (let start = 0; start < keys.length; start += batch) {
    const part = keys.slice(start, start + batch);
    const p = client.pipeline();
    for (const k of part) {
      if (k.kind === 'string') p.get(k.key);
      else if (k.kind === 'hash') p.hgetall(k.key);
      else p.lrange(k.key, 0, -1);
      p.pttl(k.key);
    }
    const askedFrom = Date.now();
    const res = (await p.exec()) ?? [];
    const askedUntil = Date.now();
    part.forEach((k, n) => {
      const [err, value] = res[2 * n] ?? [new Error('no reply'), null];
      const [terr, pttlRaw] = res[2 * n + 1] ?? [new Error('no reply'), null];
      if (err || terr) {
        problems.push(`${k.key}: error ${String(err ?? terr)}`);
        return;
      }
      const v = valueOf(k.key);
      const i = k.key.slice(k.key.lastIndexOf(':') + 1);
      const want = k.kind === 'string' ? v : k.kind === 'hash' ? { a: v, b: i } : [v, i, 'tail'];
      if (JSON.stringify(value) !== JSON.stringify(want)) {
        problems.push(`${k.key}: ${k.kind} is ${JSON.stringify(value)}, want ${JSON.stringify(want)}`);
        return;
      }
      const pttl = Number(pttlRaw);
      if (k.ttlSec === null) {
        if (pttl !== -1) problems.push(`${k.key}: PTTL ${pttl}, want -1 (no TTL)`);
        return;
      }
      const ttlMs = k.ttlSec * 1000;
      const lo = ttlMs - (askedUntil - k.setFrom) - TTL_SLACK_MS;
      const hi = ttlMs - (askedFrom - k.setUntil) + TTL_SLACK_MS;
      if (!(pttl >= lo && pttl <= hi)) problems.push(`${k.key}: PTTL ${pttl} not in [${lo}, ${hi}] (EX ${k.ttlSec})`);
    });
  }
  return problems;
}

// -----------------------------------------------------------------------------------------
// Concurrent writers

interface KeyStats {
  acked: number;
  errors: number;
  /** Replies of acknowledged commands (new counter value, hash field value, list length). */
  replies: number[];
}

export interface WritersOptions {
  /** Keys per kind: counters `<p>:c:<i>`, lists `<p>:l:<i>`, hashes `<p>:h:<i>`. */
  keysPerKind: number;
  prefix?: string;
  /** Commands per pipeline round trip. */
  pipeline?: number;
  /** Keys with their expected value: a share of the ops reads one and compares. */
  reads?: readonly { key: string; value: string }[];
  /** Only key names for which this holds are used (e.g. to avoid offline slots). */
  keyFilter?: (key: string) => boolean;
}

/**
 * `clients.length` writers, each its own connection, each sending pipelines of random
 * INCR / RPUSH / HINCRBY (and GETs when `reads` is given) until stop().
 */
export class Writers {
  readonly prefix: string;
  readonly keysPerKind: number;
  private readonly depth: number;
  private readonly names: Record<'c' | 'l' | 'h', string[]>;
  private readonly stats = new Map<string, KeyStats>();
  /** List element → acknowledged (true) or errored (false). */
  private readonly pushed = new Map<string, boolean>();
  private running = false;
  private loops: Promise<void>[] = [];
  acked = 0;
  errors = 0;
  reads = 0;
  badReads = 0;
  readonly errorSamples: string[] = [];
  private seed = 12345;

  constructor(
    private readonly clients: readonly Redis[],
    private readonly opts: WritersOptions,
  ) {
    this.prefix = opts.prefix ?? 'w';
    this.keysPerKind = opts.keysPerKind;
    this.depth = opts.pipeline ?? 16;
    const ok = opts.keyFilter ?? (() => true);
    const names = (kind: string): string[] => {
      const out: string[] = [];
      for (let n = 0; out.length < this.keysPerKind; n++) {
        const k = `${this.prefix}:${kind}:${n}`;
        if (ok(k)) out.push(k);
      }
      return out;
    };
    this.names = { c: names('c'), l: names('l'), h: names('h') };
  }

  key(kind: 'c' | 'l' | 'h', i: number): string {
    return this.names[kind][i]!;
  }

  allKeys(): string[] {
    return [...this.names.c, ...this.names.l, ...this.names.h];
  }

  private rand(n: number): number {
    // xorshift: deterministic, cheap
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed % n;
  }

  private stat(key: string): KeyStats {
    let s = this.stats.get(key);
    if (!s) {
      s = { acked: 0, errors: 0, replies: [] };
      this.stats.set(key, s);
    }
    return s;
  }

  start(): void {
    if (this.running) throw new Error('writers already running');
    this.running = true;
    this.loops = this.clients.map((c, w) => this.loop(c, w));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Resolves once `n` more commands have been acknowledged than when called. */
  async waitForAcks(n: number, timeoutMs = 60_000): Promise<void> {
    const target = this.acked + n;
    const deadline = Date.now() + timeoutMs;
    while (this.acked < target) {
      if (Date.now() > deadline) throw new Error(`writers: ${this.acked}/${target} acks after ${timeoutMs} ms (errors ${this.errors}: ${this.errorSamples.slice(0, 3).join(' | ')})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async loop(client: Redis, w: number): Promise<void> {
    let seq = 0;
    const reads = this.opts.reads ?? [];
    while (this.running) {
      const p = client.pipeline();
      const ops: { key: string; kind: 'c' | 'l' | 'h' | 'r'; elem?: string; want?: string }[] = [];
      for (let j = 0; j < this.depth; j++) {
        const r = this.rand(reads.length > 0 ? 4 : 3);
        if (r === 3) {
          const k = reads[this.rand(reads.length)]!;
          p.get(k.key);
          ops.push({ key: k.key, kind: 'r', want: k.value });
          continue;
        }
        const kind = (['c', 'l', 'h'] as const)[r]!;
        const key = this.key(kind, this.rand(this.keysPerKind));
        if (kind === 'c') {
          p.incr(key);
          ops.push({ key, kind });
        } else if (kind === 'l') {
          const elem = `${w}:${seq++}`;
          p.rpush(key, elem);
          ops.push({ key, kind, elem });
        } else {
          p.hincrby(key, 'n', 1);
          ops.push({ key, kind });
        }
      }
      let res: [Error | null, unknown][];
      try {
        res = (await p.exec()) ?? [];
      } catch (err) {
        res = ops.map(() => [err as Error, null]);
      }
      ops.forEach((op, n) => {
        const [err, value] = res[n] ?? [new Error('no reply'), null];
        if (op.kind === 'r') {
          this.reads++;
          if (err || value !== op.want) {
            this.badReads++;
            if (this.errorSamples.length < 20) this.errorSamples.push(`GET ${op.key}: ${err ? err.message : JSON.stringify(value)}`);
          }
          return;
        }
        const s = this.stat(op.key);
        if (err) {
          s.errors++;
          this.errors++;
          if (op.elem) this.pushed.set(`${op.key}\n${op.elem}`, false);
          if (this.errorSamples.length < 20) this.errorSamples.push(`${op.kind} ${op.key}: ${err.message}`);
        } else {
          s.acked++;
          this.acked++;
          s.replies.push(Number(value));
          if (op.elem) this.pushed.set(`${op.key}\n${op.elem}`, true);
        }
      });
    }
  }

  /**
   * Reads every key through `client` and checks it against the acknowledged commands.
   * Keys with no error: value = acked exactly, replies exactly 1..acked, list elements exactly
   * the acknowledged ones, each writer's in the order sent. Keys with errors: acked ≤ value ≤
   * acked + errors, no unknown list element.
   */
  async verify(client: Redis): Promise<string[]> {
    const problems: string[] = [];
    const keys = this.allKeys();
    for (let start = 0; start < keys.length; start += 1000) {
      const part = keys.slice(start, start + 1000);
      const p = client.pipeline();
      for (const k of part) {
        if (k.startsWith(`${this.prefix}:c:`)) p.get(k);
        else if (k.startsWith(`${this.prefix}:h:`)) p.hget(k, 'n');
        else p.lrange(k, 0, -1);
      }
      const res = (await p.exec()) ?? [];
      part.forEach((k, n) => {
        const [err, value] = res[n] ?? [new Error('no reply'), null];
        if (err) {
          problems.push(`${k}: read error ${err.message}`);
          return;
        }
        const s = this.stats.get(k) ?? { acked: 0, errors: 0, replies: [] };
        const isList = k.startsWith(`${this.prefix}:l:`);
        const list = isList ? (value as string[]) : [];
        const count = isList ? list.length : value === null ? 0 : Number(value);
        if (s.errors === 0 ? count !== s.acked : count < s.acked || count > s.acked + s.errors) {
          problems.push(`${k}: ${count} but ${s.acked} acknowledged (${s.errors} errors)`);
        }
        const replies = [...s.replies].sort((a, b) => a - b);
        if (s.errors === 0 && replies.some((r, i) => r !== i + 1)) {
          problems.push(`${k}: replies are not 1..${s.acked}: ${replies.slice(0, 20).join(',')}…`);
        } else if (new Set(replies).size !== replies.length) {
          problems.push(`${k}: the same reply twice: a write was applied to a stale copy`);
        }
        if (isList) {
          const lastSeq = new Map<string, number>();
          for (const e of list) {
            const st = this.pushed.get(`${k}\n${e}`);
            if (st === undefined) problems.push(`${k}: element ${e} was never pushed`);
            const [w, q] = e.split(':');
            const prev = lastSeq.get(w!) ?? -1;
            if (Number(q) <= prev) problems.push(`${k}: writer ${w}'s element ${e} after ${w}:${prev}`);
            lastSeq.set(w!, Number(q));
          }
          const present = new Set(list);
          if (present.size !== list.length) problems.push(`${k}: an element appears twice`);
        }
      });
    }
    problems.push(...(await this.missingElements(client)).map((m) => `acknowledged RPUSH lost: ${m}`));
    return problems;
  }

  /** Acknowledged list elements missing from their lists (read through `client`). */
  private async missingElements(client: Redis): Promise<string[]> {
    const byKey = new Map<string, string[]>();
    for (const [ke, ok] of this.pushed) {
      if (!ok) continue;
      const [k, e] = ke.split('\n') as [string, string];
      let l = byKey.get(k);
      if (!l) byKey.set(k, (l = []));
      l.push(e);
    }
    const missing: string[] = [];
    const keys = [...byKey.keys()];
    for (let start = 0; start < keys.length; start += 1000) {
      const part = keys.slice(start, start + 1000);
      const p = client.pipeline();
      for (const k of part) p.lrange(k, 0, -1);
      const res = (await p.exec()) ?? [];
      part.forEach((k, n) => {
        const got = new Set((res[n]?.[1] as string[] | null) ?? []);
        for (const e of byKey.get(k)!) if (!got.has(e)) missing.push(`${k}: ${e}`);
      });
    }
    return missing;
  }

  /** Writer keys that got at least one acknowledged command (so they must exist). */
  keysWithAcks(): number {
    let n = 0;
    for (const s of this.stats.values()) if (s.acked > 0) n++;
    return n;
  }

  summary(): string {
    return `${this.clients.length} writers: ${this.acked} acknowledged, ${this.errors} errors${this.reads ? `, ${this.reads} reads (${this.badReads} bad)` : ''}`;
  }
}

// -----------------------------------------------------------------------------------------
// Where keys live, checked on the redis servers themselves

export interface Placement {
  /** Keys per group id, from SCAN of each master. */
  perGroup: Map<number, number>;
  total: number;
  /** Keys on a master whose group does not own their slot. */
  misplaced: string[];
  /** Keys found on more than one master. */
  duplicated: string[];
  /** Slots not online. */
  notOnline: string[];
}

export async function placement(cluster: Cluster): Promise<Placement> {
  const slots: SlotInfo[] = await cluster.store.listSlots();
  const seen = new Map<string, number>();
  const out: Placement = { perGroup: new Map(), total: 0, misplaced: [], duplicated: [], notOnline: [] };
  for (const s of slots) if (s.state !== 'online') out.notOnline.push(`${s.id}:${s.state}`);
  for (const g of cluster.groups) {
    const c = new Redis({ host: g.master.host, port: g.master.port, maxRetriesPerRequest: 1 });
    try {
      let cursor = '0';
      let n = 0;
      do {
        const [next, keys] = await c.scanBuffer(cursor, 'COUNT', 5000);
        cursor = next.toString();
        for (const k of keys) {
          n++;
          const hex = k.toString('hex');
          const slot = keySlot(k);
          const owner = slots[slot]!;
          if (!(owner.state === 'online' && owner.group === g.id)) {
            out.misplaced.push(`${k.toString('latin1')} (slot ${slot}, ${owner.state} group ${owner.group}) on group ${g.id}`);
          }
          const other = seen.get(hex);
          if (other !== undefined) out.duplicated.push(`${k.toString('latin1')} on groups ${other} and ${g.id}`);
          seen.set(hex, g.id);
        }
      } while (cursor !== '0');
      out.perGroup.set(g.id, n);
    } finally {
      c.disconnect();
    }
  }
  out.total = seen.size;
  return out;
}

/** The group whose master holds `key` right now (direct EXISTS on each), for spot checks. */
export async function holders(cluster: Cluster, key: string): Promise<number[]> {
  const out: number[] = [];
  for (const g of cluster.groups) {
    const c = new Redis({ host: g.master.host, port: g.master.port, maxRetriesPerRequest: 1 });
    try {
      if ((await c.exists(key)) === 1) out.push(g.id);
    } finally {
      c.disconnect();
    }
  }
  return out;
}

/** `count` key names `<prefix>:<n>` whose slot satisfies `want`. */
export function keysWhere(prefix: string, count: number, want: (slot: number) => boolean): string[] {
  const out: string[] = [];
  for (let n = 0; out.length < count; n++) {
    const k = `${prefix}:${n}`;
    if (want(keySlot(Buffer.from(k)))) out.push(k);
  }
  return out;
}

export function slotOf(key: string): number {
  return keySlot(Buffer.from(key));
}

// -----------------------------------------------------------------------------------------
// Tasks

/** Polls etcd until `pred` holds for the task (and the slot table), returns what it saw. */
export async function waitForTask(
  store: Store,
  id: string,
  pred: (t: MigrationTask, slots: SlotInfo[]) => boolean,
  { timeoutMs = 60_000, what = 'task condition' } = {},
): Promise<{ task: MigrationTask; slots: SlotInfo[] }> {
  const migrations = new Migrations(store);
  const deadline = Date.now() + timeoutMs;
  let last: MigrationTask | null = null;
  for (;;) {
    const cur = await migrations.get(id);
    if (cur) {
      last = cur.task;
      const slots = await store.listSlots();
      if (pred(cur.task, slots)) return { task: cur.task, slots };
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; task: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The task's slots by state, e.g. `{online: 64, migrating: 64}` (online counted in the target only). */
export function taskSlotStates(t: MigrationTask, slots: readonly SlotInfo[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of t.slots) {
    const s = slots[id]!;
    const name = s.state === 'online' ? (s.group === t.to ? 'done' : 'todo') : s.state;
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

/** ACL GETUSER's flags for `user` on `addr`, or null when the user does not exist. */
export async function aclFlags(host: string, port: number, user: string): Promise<string[] | null> {
  const c = new Redis({ host, port, maxRetriesPerRequest: 1 });
  try {
    const reply = (await c.call('ACL', 'GETUSER', user)) as unknown[] | null;
    if (reply === null) return null;
    const i = reply.findIndex((v) => String(v) === 'flags');
    return ((reply[i + 1] as unknown[]) ?? []).map(String);
  } finally {
    c.disconnect();
  }
}

// -----------------------------------------------------------------------------------------
// A network partition between one process and etcd

/**
 * A TCP forwarder on a free loopback port to `target` (host:port). `partition()` cuts every
 * forwarded connection and refuses new ones (they are closed at once) until `heal()`, so a
 * process pointed at it loses etcd while everything else keeps it.
 */
export class Partitionable {
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetHost: string, targetPort: number): Promise<Partitionable> {
    let self: Partitionable | null = null;
    const server = net.createServer((client) => {
      const me = self!;
      if (me.cut) {
        client.destroy();
        return;
      }
      const upstream = net.connect({ host: targetHost, port: targetPort });
      for (const s of [client, upstream]) {
        me.sockets.add(s);
        s.on('error', () => undefined);
        s.once('close', () => {
          me.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    const addr = server.address();
    self = new Partitionable(server, typeof addr === 'object' && addr ? addr.port : 0);
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  partition(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  heal(): void {
    this.cut = false;
  }

  async close(): Promise<void> {
    this.partition();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * Writes the failover tests' keys through `via`: strings, and every key ending in 0 a hash
 * (`a` = the value, `b` = x). Returns the error of every write that failed.
 */
export async function loadFailoverKeys(via: Redis, keys: readonly string[], value: (key: string) => string): Promise<string[]> {
  const errors: string[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const p = via.pipeline();
    for (const k of keys.slice(i, i + 500)) {
      if (k.endsWith('0')) p.hset(k, 'a', value(k), 'b', 'x');
      else p.set(k, value(k));
    }
    const res = (await p.exec()) ?? [];
    for (const [e] of res) if (e) errors.push(String(e));
  }
  return errors;
}

/**
 * Reads every key back through `reader` (GET, or HGET <key> a for the keys ending in 0, the
 * hashes loadFailoverKeys writes) and returns one line per key whose reply is an error or not
 * `expected(key)`.
 */
export async function readBackProblems(reader: Redis, keys: readonly string[], expected: (key: string) => string): Promise<string[]> {
  const problems: string[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const part = keys.slice(i, i + 500);
    const rp = reader.pipeline();
    for (const k of part) {
      if (k.endsWith('0')) rp.hget(k, 'a');
      else rp.get(k);
    }
    const res = (await rp.exec()) ?? [];
    part.forEach((k, n) => {
      const [err, v] = res[n]!;
      if (err || v !== expected(k)) problems.push(`${k}: ${err ? err.message : JSON.stringify(v)}`);
    });
  }
  return problems;
}

/** Every key of a server matching `match`, by SCAN (COUNT 5000). */
export async function scanKeys(c: Redis, match = '*'): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await c.scan(cursor, 'MATCH', match, 'COUNT', 5000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}
