/**
 * A logical, type-aware copy of one key into a temporary key, chunk by chunk: type-aware reads
 * on the source (HSCAN, SSCAN, ZRANGE by rank, LRANGE by index, GETRANGE, XRANGE), type-aware
 * writes on the target (HSET, SADD, ZADD, RPUSH, APPEND, XADD with the entries' own ids, then
 * the stream's XSETID and consumer groups). No DUMP format is involved, so the same copy works
 * between stores that share none.
 *
 * Each chunk is sized to keep the source read near a latency target: a read slower than the
 * target shrinks the next chunk, one well under it grows it (ChunkSizer). The write of a chunk
 * to the target overlaps the read of the next; at most one write is in flight.
 *
 * Invariant: reads only on the source; writes only the temporary key on the target (the
 * caller deleted any leftover of it first). Correct only while nothing writes the source key
 * (the caller holds it: proxies hold its requests, the slot is migrating): HSCAN/SSCAN then
 * return every element at least once, and repeats are harmless (HSET/SADD are idempotent).
 * A stream whose consumer groups have pending entries is not copied here (its PEL cannot be
 * rebuilt with public commands): streamHasPending tells the caller to MIGRATE it whole.
 */
import type { Redis } from 'ioredis';
import { RedisAdminError } from '@reborn/coordinator/admin';
import { errText, isConnectionError, nap } from './migration-common.js';

/** Adapts a chunk size to keep each source read near `targetMs`. */
export class ChunkSizer {
  size: number;
  constructor(
    private readonly targetMs: number,
    private readonly min: number,
    private readonly max: number,
    start: number,
  ) {
    this.size = Math.max(min, Math.min(max, start));
  }

  /** After a read of `size` that took `ms`: shrink in proportion when over the target, grow by half when well under. */
  observe(ms: number): void {
    if (ms > this.targetMs) this.size = Math.max(this.min, Math.floor((this.size * this.targetMs * 0.8) / ms));
    else if (ms < this.targetMs / 2) this.size = Math.min(this.max, Math.ceil(this.size * 1.5));
  }
}

/** Element chunks: 16 … 10 000 (start 512); string chunks in bytes: 16 KiB … 16 MiB (start 256 KiB). */
export const ELEMENT_CHUNK = { min: 16, max: 10_000, start: 512 } as const;
export const BYTE_CHUNK = { min: 16 * 1024, max: 16 * 1024 * 1024, start: 256 * 1024 } as const;

export interface ChunkCopyOptions {
  src: Redis;
  dst: Redis;
  key: Buffer;
  tmp: Buffer;
  /** The key's type as detected (hash, set, zset, list, string, stream). */
  type: string;
  /** Latency target of one source read, ms. */
  maxSourceLatencyMs: number;
  signal?: AbortSignal;
  /** The servers' addresses: a connection failure names the one that failed (RedisAdminError). */
  srcAddr: string;
  dstAddr: string;
  /**
   * After each chunk written: elements (bytes for a string) copied so far, bytes moved by the
   * chunk, the source read's latency and the next chunk size. May throw to stop the copy
   * (e.g. the target's master changed): the temporary key is the caller's to delete.
   */
  onChunk?: (p: { done: number; bytes: number; latencyMs: number; chunk: number }) => Promise<void> | void;
}

/** A chunk read from the source: the target commands that write it, and what it counted. */
interface Chunk {
  writes: (string | Buffer)[][];
  elements: number;
  bytes: number;
  last: boolean;
}

type Reader = (count: number) => Promise<Chunk>;

const bytesOf = (items: readonly Buffer[]) => items.reduce((n, b) => n + b.length, 0);

/** Reads a scan-type collection (HSCAN/SSCAN) `count` at a time; each chunk one write command. */
function scanReader(o: ChunkCopyOptions, scan: 'HSCAN' | 'SSCAN', write: 'HSET' | 'SADD', per: number): Reader {
  let cursor = '0';
  return async (count) => {
    const [next, items] = (await o.src.callBuffer(scan, o.key, cursor, 'COUNT', String(count))) as [Buffer, Buffer[]];
    cursor = next.toString('latin1');
    return { writes: items.length > 0 ? [[write, o.tmp, ...items]] : [], elements: items.length / per, bytes: bytesOf(items), last: cursor === '0' };
  };
}

function zsetReader(o: ChunkCopyOptions): Reader {
  let at = 0;
  return async (count) => {
    const items = (await o.src.callBuffer('ZRANGE', o.key, String(at), String(at + count - 1), 'WITHSCORES')) as Buffer[];
    at += items.length / 2;
    // ZRANGE answers member, score; ZADD takes score, member. Scores come as %.17g text ("inf" too): exact.
    const args: Buffer[] = [];
    for (let i = 0; i + 1 < items.length; i += 2) args.push(items[i + 1]!, items[i]!);
    return { writes: args.length > 0 ? [['ZADD', o.tmp, ...args]] : [], elements: items.length / 2, bytes: bytesOf(items), last: items.length / 2 < count };
  };
}

function listReader(o: ChunkCopyOptions): Reader {
  let at = 0;
  return async (count) => {
    const items = (await o.src.callBuffer('LRANGE', o.key, String(at), String(at + count - 1))) as Buffer[];
    at += items.length;
    return { writes: items.length > 0 ? [['RPUSH', o.tmp, ...items]] : [], elements: items.length, bytes: bytesOf(items), last: items.length < count };
  };
}

function stringReader(o: ChunkCopyOptions): Reader {
  let at = 0;
  return async (count) => {
    const piece = (await o.src.callBuffer('GETRANGE', o.key, String(at), String(at + count - 1))) as Buffer;
    at += piece.length;
    // The first piece SETs (an empty string never reaches here: it is not big), the next APPEND.
    const write = at === piece.length ? ['SET', o.tmp, piece] : ['APPEND', o.tmp, piece];
    return { writes: piece.length > 0 ? [write] : [], elements: piece.length, bytes: piece.length, last: piece.length < count };
  };
}

type StreamEntry = [Buffer, Buffer[]];

function streamReader(o: ChunkCopyOptions): Reader {
  let from = '-';
  let copied = 0;
  return async (count) => {
    const entries = (await o.src.callBuffer('XRANGE', o.key, from, '+', 'COUNT', String(count))) as StreamEntry[];
    const writes = entries.map(([id, fields]) => ['XADD', o.tmp, id, ...fields]);
    if (entries.length > 0) from = `(${entries[entries.length - 1]![0].toString('latin1')}`;
    copied += entries.length;
    const last = entries.length < count;
    if (last) writes.push(...(await streamMetadataWrites(o, copied === 0)));
    const bytes = entries.reduce((n, [id, f]) => n + id.length + bytesOf(f), 0);
    return { writes, elements: entries.length, bytes, last };
  };
}

/** Flat [name, value, …] reply (XINFO) as a map keyed by name. */
function fields(reply: unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) m.set(String(reply[i]), reply[i + 1]);
  return m;
}

const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v));

/**
 * The stream's own counters (last id, entries added, max deleted id) and its consumer groups
 * (last delivered id, entries read) and their consumers, as target commands.
 */
async function streamMetadataWrites(o: ChunkCopyOptions, empty: boolean): Promise<(string | Buffer)[][]> {
  const info = fields((await o.src.callBuffer('XINFO', 'STREAM', o.key)) as unknown[]);
  const writes: (string | Buffer)[][] = [];
  // An empty stream (every entry deleted) still exists: XADD one entry and trim it away.
  if (empty) writes.push(['XADD', o.tmp, 'MAXLEN', '0', '0-1', 'f', 'v']);
  writes.push(['XSETID', o.tmp, text(info.get('last-generated-id')), 'ENTRIESADDED', text(info.get('entries-added')), 'MAXDELETEDID', text(info.get('max-deleted-entry-id'))]);
  const groups = (await o.src.callBuffer('XINFO', 'GROUPS', o.key)) as unknown[][];
  for (const g of groups) {
    const gi = fields(g);
    const name = gi.get('name') as Buffer;
    const read = gi.get('entries-read');
    writes.push(['XGROUP', 'CREATE', o.tmp, name, text(gi.get('last-delivered-id')), ...(read === null || read === undefined ? [] : ['ENTRIESREAD', text(read)])]);
    const consumers = (await o.src.callBuffer('XINFO', 'CONSUMERS', o.key, name)) as unknown[][];
    for (const c of consumers) writes.push(['XGROUP', 'CREATECONSUMER', o.tmp, name, fields(c).get('name') as Buffer]);
  }
  return writes;
}

/** Whether some consumer group of the stream has pending entries (then it cannot be copied logically). */
export async function streamHasPending(src: Redis, key: Buffer): Promise<boolean> {
  const groups = (await src.callBuffer('XINFO', 'GROUPS', key)) as unknown[][];
  return groups.some((g) => Number(fields(g).get('pending')) > 0);
}

function readerFor(o: ChunkCopyOptions): Reader {
  switch (o.type) {
    case 'hash':
      return scanReader(o, 'HSCAN', 'HSET', 2);
    case 'set':
      return scanReader(o, 'SSCAN', 'SADD', 1);
    case 'zset':
      return zsetReader(o);
    case 'list':
      return listReader(o);
    case 'string':
      return stringReader(o);
    case 'stream':
      return streamReader(o);
    default:
      throw new TypeError(`cannot copy a key of type ${o.type} in chunks`);
  }
}

/** Sends a chunk's writes to the target as one pipeline; rejects with the first error. */
async function writeChunk(dst: Redis, writes: (string | Buffer)[][]): Promise<void> {
  if (writes.length === 0) return;
  const p = dst.pipeline();
  for (const [cmd, ...args] of writes) p.callBuffer(cmd as string, ...args);
  for (const [err] of (await p.exec()) ?? []) if (err) throw err;
}

/** A connection failure of `addr` becomes a RedisAdminError naming it (the task then waits for its group). */
async function onServer<T>(addr: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw isConnectionError(err) ? new RedisAdminError(addr, errText(err), err) : err;
  }
}

/**
 * Copies `key` into `tmp` chunk by chunk. Returns the elements (bytes for a string) and bytes
 * copied. Throws on any redis error (the caller restarts from a fresh temporary key).
 */
export async function copyInChunks(o: ChunkCopyOptions): Promise<{ elements: number; bytes: number }> {
  const limits = o.type === 'string' ? BYTE_CHUNK : ELEMENT_CHUNK;
  const sizer = new ChunkSizer(o.maxSourceLatencyMs, limits.min, limits.max, limits.start);
  const read = readerFor(o);
  // The write of chunk n overlaps the read of chunk n+1; it is awaited before chunk n+1's write.
  let inFlight: Promise<void> = Promise.resolve();
  let done = 0;
  let bytes = 0;
  try {
    for (;;) {
      if (o.signal?.aborted) throw o.signal.reason ?? new Error('aborted');
      const t0 = performance.now();
      const chunk = await onServer(o.srcAddr, () => read(sizer.size));
      const latencyMs = performance.now() - t0;
      sizer.observe(latencyMs);
      await inFlight;
      inFlight = onServer(o.dstAddr, () => writeChunk(o.dst, chunk.writes));
      inFlight.catch(() => {}); // awaited at the next chunk or below; never unhandled
      done += chunk.elements;
      bytes += chunk.bytes;
      if (chunk.last) break;
      await o.onChunk?.({ done, bytes, latencyMs, chunk: sizer.size });
      // A read slower than the target: leave the source's thread to its clients for a moment.
      if (latencyMs > o.maxSourceLatencyMs) await nap(Math.min(latencyMs, 50), o.signal);
    }
    await inFlight;
  } finally {
    await inFlight.catch(() => {});
  }
  return { elements: done, bytes };
}
