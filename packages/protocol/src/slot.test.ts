/**
 * Slot hashing must never change: every deployed cluster's data placement depends on it. The
 * rule (docs/architecture.md §3, step 4 "Slot") is slot = crc32(tag) % 1024 with IEEE CRC-32 and the Redis Cluster
 * hash-tag rule. The expected values below come from a table-driven CRC-32 written here
 * (polynomial 0xEDB88320), independent of node:zlib, which slot.ts uses.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SLOT, SLOT_COUNT, hashTag, isValidSlot, keySlot } from './slot.js';

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function referenceCrc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of bytes) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The Redis Cluster rule, written out independently: first `{`, then the first `}` after it. */
function referenceTag(key: Uint8Array): Uint8Array {
  let open = -1;
  for (let i = 0; i < key.length; i++) {
    if (key[i] === 0x7b) {
      open = i;
      break;
    }
  }
  if (open < 0) return key;
  for (let j = open + 1; j < key.length; j++) {
    if (key[j] === 0x7d) return j === open + 1 ? key : key.slice(open + 1, j);
  }
  return key;
}

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('reference CRC-32 (sanity check of the test itself)', () => {
  it('gives the standard check values', () => {
    expect(referenceCrc32(bytes('123456789'))).toBe(0xcbf43926);
    expect(referenceCrc32(bytes(''))).toBe(0);
    expect(referenceCrc32(bytes('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
  });
});

describe('keySlot / hashTag: pinned vectors', () => {
  // [key, hashed bytes, crc32 of the hashed bytes, slot]
  const vectors: [string, Buffer, Buffer, number, number][] = [
    ['foo', bytes('foo'), bytes('foo'), 0x8c736521, 289],
    ['bar', bytes('bar'), bytes('bar'), 0x76ff8caa, 170],
    ['{user1000}.following', bytes('{user1000}.following'), bytes('user1000'), 0x125adb66, 870],
    ['{user1000}.followers', bytes('{user1000}.followers'), bytes('user1000'), 0x125adb66, 870],
    ['foo{}{bar} (empty tag: whole key)', bytes('foo{}{bar}'), bytes('foo{}{bar}'), 0x89342359, 857],
    ['foo{{bar}}zap (tag "{bar")', bytes('foo{{bar}}zap'), bytes('{bar'), 0x14c4ad39, 313],
    ['foo{bar}{zap} (first tag only)', bytes('foo{bar}{zap}'), bytes('bar'), 0x76ff8caa, 170],
    ['{} (empty tag: whole key)', bytes('{}'), bytes('{}'), 0xa3a6bf43, 835],
    ['empty key', bytes(''), bytes(''), 0, 0],
    ['{ (no closing brace)', bytes('{'), bytes('{'), 0x15d54739, 825],
    ['a{b (no closing brace)', bytes('a{b'), bytes('a{b'), 0xd923d84c, 76],
    ['}{a} (a `}` before the `{` is ignored)', bytes('}{a}'), bytes('a'), 0xe8b7be43, 579],
    ['binary 00 ff', Buffer.from([0x00, 0xff]), Buffer.from([0x00, 0xff]), 0x6cdbfd72, 370],
    ['binary tag {00 ff}A', Buffer.from([0x7b, 0x00, 0xff, 0x7d, 0x41]), Buffer.from([0x00, 0xff]), 0x6cdbfd72, 370],
  ];

  it.each(vectors)('%s', (_name, key, tag, crc, slot) => {
    // The vector itself is consistent with the reference implementation…
    expect(referenceTag(key)).toEqual(tag);
    expect(referenceCrc32(tag)).toBe(crc);
    expect(crc % 1024).toBe(slot);
    // …and slot.ts agrees with it.
    expect(Buffer.from(hashTag(key))).toEqual(tag);
    expect(keySlot(key)).toBe(slot);
    // A plain Uint8Array (a copy, not a Buffer) gives the same answer.
    const u8 = new Uint8Array(key);
    expect(Buffer.isBuffer(u8)).toBe(false);
    expect(keySlot(u8)).toBe(slot);
    expect(Buffer.from(hashTag(u8))).toEqual(tag);
  });

  it('keys sharing a hash tag share a slot', () => {
    expect(keySlot(bytes('{user1000}.following'))).toBe(keySlot(bytes('{user1000}.followers')));
    expect(keySlot(bytes('{user1000}.following'))).toBe(keySlot(bytes('user1000')));
    expect(keySlot(bytes('x{user1000}y{z}'))).toBe(keySlot(bytes('user1000')));
  });

  it('hashTag returns a view of the key, not a copy', () => {
    const key = bytes('abc{tag}def');
    const tag = hashTag(key);
    expect(tag.buffer).toBe(key.buffer);
    expect(tag.byteOffset).toBe(key.byteOffset + 4);
    expect(tag.length).toBe(3);
    const whole = bytes('nobraces');
    expect(hashTag(whole)).toBe(whole);
  });
});

describe('keySlot: properties', () => {
  function prng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it('matches the reference on random binary keys, within 0..1023, same for Buffer and Uint8Array', () => {
    const seed = 1024;
    const r = prng(seed);
    const BRACES = [0x7b, 0x7d];
    const seen = new Set<number>();
    // Collected and asserted once: an expect() per check would dominate the run time.
    const failures: string[] = [];
    for (let n = 0; n < 5000; n++) {
      const len = Math.floor(r() * 24);
      const u8 = new Uint8Array(len);
      // Braces are common so that every branch of the tag rule is reached.
      for (let i = 0; i < len; i++) u8[i] = r() < 0.2 ? BRACES[Math.floor(r() * 2)]! : Math.floor(r() * 256);
      const buf = Buffer.from(u8);
      const want = referenceCrc32(referenceTag(u8)) % 1024;
      const got = keySlot(u8);
      // A key that is a view into a larger buffer hashes only its own bytes.
      const padded = Buffer.concat([Buffer.from('{pad}'), buf, Buffer.from('{x}')]);
      const results = [got, keySlot(buf), keySlot(padded.subarray(5, 5 + len))];
      if (results.some((s) => s !== want) || !(Number.isInteger(got) && got >= 0 && got <= MAX_SLOT)) {
        failures.push(`seed ${seed} key ${buf.toString('hex')}: got ${results.join('/')}, want ${want}`);
      }
      seen.add(got);
    }
    expect(failures).toEqual([]);
    // 5000 keys over 1024 slots reach most of them: the modulus really is 1024.
    expect(seen.size).toBeGreaterThan(900);
    expect(Math.max(...seen)).toBeGreaterThan(1000);
  });
});

describe('slot constants', () => {
  it('has 1024 slots, 0..1023', () => {
    expect(SLOT_COUNT).toBe(1024);
    expect(MAX_SLOT).toBe(1023);
    expect(isValidSlot(0)).toBe(true);
    expect(isValidSlot(1023)).toBe(true);
    for (const bad of [-1, 1024, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) expect(isValidSlot(bad), String(bad)).toBe(false);
  });
});
