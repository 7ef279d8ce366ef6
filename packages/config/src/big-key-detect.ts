/**
 * Which keys of a chunk about to be MIGRATEd are too big for one MIGRATE: one Lua script on the
 * source master per chunk. A single MIGRATE holds the source's only thread for the whole
 * DUMP + transfer + remote RESTORE, so a key whose MIGRATE would stall the group longer than
 * the operator tolerates goes through the chunked path (big-key-move.ts) instead.
 *
 * Cost on the source's thread: OBJECT ENCODING first (O(1)); compact encodings (listpack,
 * ziplist, intset, int, embstr) are small by definition and cost nothing more. Only keys in a
 * large encoding (hashtable, skiplist, quicklist, raw, stream, linkedlist) are measured with
 * MEMORY USAGE … SAMPLES 5 (a sample, not a walk) and, when over the threshold, their O(1)
 * length (HLEN, SCARD, ZCARD, LLEN, XLEN, STRLEN) for progress.
 *
 * Invariant: read-only; a key missing by now (moved by a proxy, expired) is simply not big.
 */
import type { Redis } from 'ioredis';

/** A key of the chunk that goes through the chunked path. */
export interface BigKeyInfo {
  key: Buffer;
  /** Its redis type: hash, set, zset, list, string or stream. */
  type: string;
  /** Elements (bytes for a string): what progress counts against. */
  size: number;
  /** MEMORY USAGE … SAMPLES 5: an estimate, what the threshold compares. */
  bytes: number;
}

const DETECT_SCRIPT = `
local big = { hashtable = true, skiplist = true, quicklist = true, raw = true, stream = true, linkedlist = true }
local lengthOf = { hash = 'HLEN', set = 'SCARD', zset = 'ZCARD', list = 'LLEN', stream = 'XLEN', string = 'STRLEN' }
local threshold = tonumber(ARGV[1])
local out = {}
for i, k in ipairs(KEYS) do
  local enc = redis.pcall('OBJECT', 'ENCODING', k)
  if type(enc) == 'string' and big[enc] then
    local bytes = redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '5')
    if bytes and bytes >= threshold then
      local t = redis.call('TYPE', k)['ok']
      local cmd = lengthOf[t]
      if cmd then out[#out + 1] = { i, t, redis.call(cmd, k), bytes } end
    end
  end
end
return out
`;

/**
 * The keys of `keys` whose size estimate is at least `bigKeyBytes`, in chunk order. One
 * round trip on `src` (the connection the chunk's MIGRATE will use, so it queues in order).
 */
export async function findBigKeys(src: Redis, keys: readonly Buffer[], bigKeyBytes: number): Promise<BigKeyInfo[]> {
  if (keys.length === 0) return [];
  const reply = (await src.call('EVAL', DETECT_SCRIPT, String(keys.length), ...keys, String(bigKeyBytes))) as [number, string, number, number][];
  return reply.map(([i, type, size, bytes]) => ({ key: keys[i - 1]!, type: String(type), size: Number(size), bytes: Number(bytes) }));
}

/** `keys` without the big ones (same order). */
export function withoutBig(keys: readonly Buffer[], big: readonly BigKeyInfo[]): Buffer[] {
  if (big.length === 0) return [...keys];
  const skip = new Set(big.map((b) => b.key));
  return keys.filter((k) => !skip.has(k));
}
