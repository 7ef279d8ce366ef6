/**
 * The columns of the client compatibility matrix: each client library × protocol it is
 * used with, and one adapter per library family so that every scenario runs the same steps
 * through each (not a test file itself).
 *
 * Scenarios call the library's own typed API (node-redis `hGetAll`, ioredis `hgetall`) through
 * `Dual` pairs — one function per family — so that every value is checked exactly as that
 * client decodes it; the adapter only covers what has no common shape: opening a connection,
 * pipelines, transactions, subscriptions, SCAN iteration.
 *
 * Invariant: a client that is open() has finished its handshake in the protocol its column
 * names. A RESP3 column whose client fell back to RESP2 (ioredis 6 does that silently when
 * HELLO 3 is refused) fails at open(), so no cell of that column can pass on RESP2 replies.
 */
import { readFileSync } from 'node:fs';
import { Redis as IoRedis5 } from 'ioredis';
import IoRedis6 from 'ioredis6';
import { WatchError, createClient } from 'redis';
import { within } from './helpers.js';
import type { Protocol } from './client-matrix.js';

export type Family = 'node-redis' | 'ioredis';

// The libraries' own generic types (modules, scripts, RESP version, type mapping) make a
// common static type for "a client or its pipeline" impractical; steps are checked at run time
// against a direct redis-server instead.
/* eslint-disable @typescript-eslint/no-explicit-any */
export type NodeRedis = any;
export type IoRedis = any;
/* eslint-enable @typescript-eslint/no-explicit-any */

/** One step written for each library family: `nr` gets a node-redis client (or multi), `io` an ioredis one (or pipeline). */
export interface Dual<T = unknown> {
  nr: (c: NodeRedis) => T;
  io: (c: IoRedis) => T;
}

/** A reply or an error, as a pipeline or EXEC hands it over. */
export type Outcome = { ok: unknown } | { err: string };

export interface PubSubMessage {
  kind: 'channel' | 'pattern' | 'shard';
  /** The pattern that matched (kind 'pattern' only). */
  pattern?: string;
  channel: string;
  message: string;
}

export type SubscriptionKind = PubSubMessage['kind'];

export interface MatrixClient {
  readonly variant: Variant;
  /** The library's client object. */
  readonly native: NodeRedis | IoRedis;
  /** The protocol the connection speaks after its handshake. */
  readonly negotiated: 2 | 3;
  /** Messages of the client's 'error' events so far. */
  readonly errors: string[];
  /** Runs the step written for this client's family. */
  run<T>(step: Dual<T>): T;
  /** Sends `steps` in one pipeline (node-redis execAsPipeline, ioredis pipeline().exec()). */
  pipeline(steps: readonly Dual[]): Promise<Outcome[]>;
  /** MULTI … EXEC with the client's transaction API; null when EXEC was aborted by a WATCH. */
  transaction(steps: readonly Dual[]): Promise<Outcome[] | null>;
  subscribe(kind: SubscriptionKind, names: string[], onMessage: (m: PubSubMessage) => void): Promise<void>;
  unsubscribe(kind: SubscriptionKind, names: string[]): Promise<void>;
  /** Every key SCAN returns for `match`, with the client's own iterator (duplicates kept). */
  scanAll(match: string, count: number): Promise<string[]>;
  close(): Promise<void>;
}

export interface Variant {
  /** Short and unique: used in key names so that columns never share keys. */
  id: string;
  /** The library and its installed version, e.g. "node-redis 6.4.0". */
  client: string;
  protocol: Protocol;
  family: Family;
  /** A new connection to 127.0.0.1:port, handshake done. */
  open(port: number): Promise<MatrixClient>;
}

const HOST = '127.0.0.1';
/** A hang detector for the handshake, not a performance bound. */
const OPEN_TIMEOUT_MS = 15_000;

function versionOf(pkg: string): string {
  const url = new URL(`../node_modules/${pkg}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** What went wrong in a failed open(): the first error the client reported, if any. */
class OpenError extends Error {
  constructor(variant: Variant, why: string) {
    super(`${variant.client} (${variant.protocol}) could not connect: ${why}`);
  }
}

function checkNegotiated(variant: Variant, negotiated: 2 | 3): void {
  const want = variant.protocol === 'RESP3' ? 3 : 2;
  if (negotiated !== want) throw new OpenError(variant, `the handshake ended in RESP${negotiated}, not ${variant.protocol}`);
}

// -----------------------------------------------------------------------------------------
// node-redis

async function openNodeRedis(variant: Variant, port: number, resp: 2 | 3): Promise<MatrixClient> {
  // RESP 3 is node-redis's default: the RESP3 column passes no option at all.
  const native: NodeRedis = createClient({ socket: { host: HOST, port }, ...(resp === 2 ? { RESP: 2 } : {}) });
  const errors: string[] = [];
  // A refused HELLO 3 makes node-redis reconnect forever: the first error fails the open.
  const firstError = new Promise<never>((_, reject) => {
    native.on('error', (e: unknown) => {
      errors.push(errorText(e));
      reject(new OpenError(variant, errorText(e)));
    });
  });
  firstError.catch(() => undefined);
  const connecting = native.connect();
  connecting.catch(() => undefined);
  try {
    await within(Promise.race([connecting, firstError]), OPEN_TIMEOUT_MS, `${variant.client} connect`);
  } catch (err) {
    native.destroy();
    throw err;
  }
  const client: MatrixClient = {
    variant,
    native,
    negotiated: (native.options?.RESP ?? 3) as 2 | 3,
    errors,
    run: (step) => step.nr(native),
    async pipeline(steps) {
      const multi = native.multi();
      for (const s of steps) s.nr(multi);
      return nodeRedisOutcomes(() => multi.execAsPipeline());
    },
    async transaction(steps) {
      const multi = native.multi();
      for (const s of steps) s.nr(multi);
      try {
        return await nodeRedisOutcomes(() => multi.exec());
      } catch (err) {
        if (err instanceof WatchError) return null;
        throw err;
      }
    },
    async subscribe(kind, names, onMessage) {
      const listener = (pattern?: string) => (message: string, channel: string) =>
        onMessage({ kind, channel, message, ...(pattern === undefined ? {} : { pattern }) });
      if (kind === 'channel') await native.subscribe(names, listener());
      else if (kind === 'shard') await native.sSubscribe(names, listener());
      // A pattern listener is told the channel only: register one listener per pattern.
      else for (const p of names) await native.pSubscribe(p, listener(p));
    },
    async unsubscribe(kind, names) {
      if (kind === 'channel') await native.unsubscribe(names);
      else if (kind === 'shard') await native.sUnsubscribe(names);
      else await native.pUnsubscribe(names);
    },
    async scanAll(match, count) {
      const out: string[] = [];
      for await (const keys of native.scanIterator({ MATCH: match, COUNT: count })) out.push(...(keys as string[]));
      return out;
    },
    async close() {
      if (native.isOpen) native.destroy();
    },
  };
  checkNegotiated(variant, client.negotiated);
  return client;
}

/** node-redis throws a MultiErrorReply carrying every reply when one of them is an error. */
async function nodeRedisOutcomes(exec: () => Promise<unknown[]>): Promise<Outcome[]> {
  let replies: unknown[];
  try {
    replies = await exec();
  } catch (err) {
    const multi = err as { replies?: unknown[] };
    if (!Array.isArray(multi.replies)) throw err;
    replies = multi.replies;
  }
  return replies.map((r) => (r instanceof Error ? { err: r.message } : { ok: r }));
}

// -----------------------------------------------------------------------------------------
// ioredis (5 and 6 share the API)

type IoRedisClass = new (options: Record<string, unknown>) => IoRedis;

async function openIoRedis(variant: Variant, port: number, Ctor: IoRedisClass, options: Record<string, unknown>): Promise<MatrixClient> {
  const native: IoRedis = new Ctor({ host: HOST, port, ...options });
  const errors: string[] = [];
  native.on('error', (e: unknown) => errors.push(errorText(e)));
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        native.once('ready', () => resolve());
        native.once('error', (e: unknown) => reject(new OpenError(variant, errorText(e))));
      }),
      OPEN_TIMEOUT_MS,
      `${variant.client} ready`,
    );
  } catch (err) {
    native.disconnect();
    throw err;
  }
  // ioredis 6 records the protocol its handshake settled on; ioredis 5 only speaks RESP2.
  const negotiated = ((native as { condition?: { protocol?: number } }).condition?.protocol ?? 2) as 2 | 3;
  const onMessage = new Map<SubscriptionKind, (m: PubSubMessage) => void>();
  native.on('message', (channel: string, message: string) => onMessage.get('channel')?.({ kind: 'channel', channel, message }));
  native.on('pmessage', (pattern: string, channel: string, message: string) =>
    onMessage.get('pattern')?.({ kind: 'pattern', pattern, channel, message }),
  );
  native.on('smessage', (channel: string, message: string) => onMessage.get('shard')?.({ kind: 'shard', channel, message }));
  const client: MatrixClient = {
    variant,
    native,
    negotiated,
    errors,
    run: (step) => step.io(native),
    async pipeline(steps) {
      const p = native.pipeline();
      for (const s of steps) s.io(p);
      return ioRedisOutcomes(await p.exec());
    },
    async transaction(steps) {
      const m = native.multi();
      for (const s of steps) s.io(m);
      const res = await m.exec();
      return res === null ? null : ioRedisOutcomes(res);
    },
    async subscribe(kind, names, handler) {
      onMessage.set(kind, handler);
      if (kind === 'channel') await native.subscribe(...names);
      else if (kind === 'shard') await native.ssubscribe(...names);
      else await native.psubscribe(...names);
    },
    async unsubscribe(kind, names) {
      if (kind === 'channel') await native.unsubscribe(...names);
      else if (kind === 'shard') await native.sunsubscribe(...names);
      else await native.punsubscribe(...names);
    },
    scanAll(match, count) {
      return new Promise((resolve, reject) => {
        const out: string[] = [];
        const stream = native.scanStream({ match, count });
        stream.on('data', (keys: string[]) => out.push(...keys));
        stream.on('end', () => resolve(out));
        stream.on('error', reject);
      });
    },
    async close() {
      native.disconnect();
    },
  };
  checkNegotiated(variant, negotiated);
  return client;
}

function ioRedisOutcomes(res: [Error | null, unknown][]): Outcome[] {
  return res.map(([err, v]) => (err ? { err: err.message } : { ok: v }));
}

// -----------------------------------------------------------------------------------------
// The columns

export const NODE_REDIS = `node-redis ${versionOf('redis')}`;
export const IOREDIS6 = `ioredis ${versionOf('ioredis6')}`;
export const IOREDIS5 = `ioredis ${versionOf('ioredis')}`;

function variant(v: Omit<Variant, 'open'>, open: (self: Variant, port: number) => Promise<MatrixClient>): Variant {
  const self: Variant = { ...v, open: (port) => open(self, port) };
  return self;
}

/** The columns (how each is constructed: docs/clients.md; the README table orders them itself). */
export const VARIANTS: readonly Variant[] = [
  variant(
    { id: 'nr3', client: NODE_REDIS, protocol: 'RESP3', family: 'node-redis' },
    (self, port) => openNodeRedis(self, port, 3),
  ),
  variant(
    { id: 'nr2', client: NODE_REDIS, protocol: 'RESP2', family: 'node-redis' },
    (self, port) => openNodeRedis(self, port, 2),
  ),
  variant(
    { id: 'io63', client: IOREDIS6, protocol: 'RESP3', family: 'ioredis' },
    (self, port) => openIoRedis(self, port, IoRedis6 as unknown as IoRedisClass, {}),
  ),
  variant(
    { id: 'io63m', client: `${IOREDIS6} (replyMapping resp3)`, protocol: 'RESP3', family: 'ioredis' },
    (self, port) => openIoRedis(self, port, IoRedis6 as unknown as IoRedisClass, { protocol: 3, replyMapping: 'resp3' }),
  ),
  variant(
    { id: 'io62', client: IOREDIS6, protocol: 'RESP2', family: 'ioredis' },
    (self, port) => openIoRedis(self, port, IoRedis6 as unknown as IoRedisClass, { protocol: 2 }),
  ),
  variant(
    { id: 'io5', client: IOREDIS5, protocol: 'RESP2', family: 'ioredis' },
    (self, port) => openIoRedis(self, port, IoRedis5 as unknown as IoRedisClass, {}),
  ),
];

/** A column's label in test names and logs. */
export const label = (v: Variant): string => `${v.client} ${v.protocol}`;
