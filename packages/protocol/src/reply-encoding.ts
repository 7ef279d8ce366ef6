/**
 * Replies the proxy builds itself, in the protocol the client's session speaks: RESP2, or
 * RESP3 after `HELLO 3`.
 *
 * Replies that come from a backend are never re-encoded: each session's requests go over
 * backend connections that speak its own protocol, so those bytes pass through unchanged
 * (docs/architecture.md, "RESP2 and RESP3"). Only what the proxy makes or merges goes
 * through here, and each helper gives the shape Redis 7 gives in that protocol: a map is a
 * flat array in RESP2, a set an array, a double a bulk string, a boolean an integer, a
 * verbatim string a bulk string, a push an array, and every null `$-1`/`*-1` in RESP2 and
 * `_` in RESP3.
 */
import { encodeArrayOfEncoded, encodeBulk, NULL_ARRAY, NULL_BULK } from './resp.js';

export type Protocol = 2 | 3;

export const NULL3 = Buffer.from('_\r\n');
const TRUE3 = Buffer.from('#t\r\n');
const FALSE3 = Buffer.from('#f\r\n');
const ONE2 = Buffer.from(':1\r\n');
const ZERO2 = Buffer.from(':0\r\n');

function aggregate(type: string, count: number, items: readonly Uint8Array[]): Buffer {
  return Buffer.concat([Buffer.from(`${type}${count}\r\n`), ...items]);
}

/** The null of a bulk string: `$-1` (RESP2) or `_` (RESP3). */
export function nullBulk(proto: Protocol): Buffer {
  return proto === 3 ? NULL3 : NULL_BULK;
}

/** The null of an array (EXEC aborted by WATCH, a timed-out blocking pop): `*-1` or `_`. */
export function nullArray(proto: Protocol): Buffer {
  return proto === 3 ? NULL3 : NULL_ARRAY;
}

/** A map from already-encoded keys and values given flat (k1, v1, k2, v2, …). */
export function encodeMap(proto: Protocol, flat: readonly Uint8Array[]): Buffer {
  if (flat.length % 2 !== 0) throw new Error('a map needs as many values as keys');
  return proto === 3 ? aggregate('%', flat.length / 2, flat) : encodeArrayOfEncoded(flat);
}

/** A map whose keys are strings, from [key, encoded value] entries. */
export function encodeMapOf(proto: Protocol, entries: ReadonlyArray<readonly [string, Uint8Array]>): Buffer {
  const flat: Uint8Array[] = [];
  for (const [k, v] of entries) flat.push(encodeBulk(k), v);
  return encodeMap(proto, flat);
}

export function encodeSet(proto: Protocol, items: readonly Uint8Array[]): Buffer {
  return proto === 3 ? aggregate('~', items.length, items) : encodeArrayOfEncoded(items);
}

/** An out-of-band push (pub/sub messages, invalidations): `>` in RESP3, an array in RESP2. */
export function encodePush(proto: Protocol, items: readonly Uint8Array[]): Buffer {
  return proto === 3 ? aggregate('>', items.length, items) : encodeArrayOfEncoded(items);
}

export function encodeBool(proto: Protocol, value: boolean): Buffer {
  if (proto === 3) return value ? TRUE3 : FALSE3;
  return value ? ONE2 : ZERO2;
}

/** A double the way Redis prints it: `inf`, `-inf`, `nan`, or the shortest exact decimal. */
export function encodeDouble(proto: Protocol, value: number): Buffer {
  const text = Number.isNaN(value) ? 'nan' : value === Infinity ? 'inf' : value === -Infinity ? '-inf' : String(value);
  return proto === 3 ? Buffer.from(`,${text}\r\n`) : encodeBulk(text);
}

/** Human-readable text (INFO, CLIENT LIST): RESP3's verbatim string `=<len>\r\ntxt:…`. */
export function encodeVerbatim(proto: Protocol, text: string | Uint8Array, format = 'txt'): Buffer {
  if (proto !== 3) return encodeBulk(text);
  const body = typeof text === 'string' ? Buffer.from(text) : text;
  return Buffer.concat([Buffer.from(`=${body.length + 4}\r\n${format}:`), body, Buffer.from('\r\n')]);
}

/**
 * A push frame turned into what a session of `proto` expects: pub/sub feeds speak RESP2,
 * whose messages are arrays, and a RESP3 client must get them as pushes. Both frames have
 * the same body, so only the type byte changes (on a copy: the frame is shared by sessions).
 */
export function asPush(proto: Protocol, frame: Buffer): Buffer {
  if (proto === 2 || frame[0] !== 0x2a) return frame;
  const out = Buffer.from(frame);
  out[0] = 0x3e;
  return out;
}
