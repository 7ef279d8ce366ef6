/**
 * Slot hashing (docs/architecture.md §3, step 4 "Slot"): slot = crc32(tag) % 1024 with IEEE crc32 (zlib.crc32).
 * The tag is the bytes between the first `{` and the next `}` when that span is non-empty,
 * otherwise the whole key — the Redis Cluster rule, so `{}` hashes the whole key.
 * Keys are raw bytes: never decode them to strings.
 */
import { crc32 } from 'node:zlib';

export const SLOT_COUNT = 1024;
export const MAX_SLOT = SLOT_COUNT - 1;

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/** The bytes of `key` that are hashed: its hash tag when it has a non-empty one. */
export function hashTag(key: Uint8Array): Uint8Array {
  const open = key.indexOf(OPEN_BRACE);
  if (open < 0) return key;
  const close = key.indexOf(CLOSE_BRACE, open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.subarray(open + 1, close);
}

export function keySlot(key: Uint8Array): number {
  return crc32(hashTag(key)) % SLOT_COUNT;
}

export function isValidSlot(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < SLOT_COUNT;
}
