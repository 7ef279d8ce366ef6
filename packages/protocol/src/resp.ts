/**
 * RESP2 reply encoding. Small helpers used by every package that speaks to Redis clients.
 * Constant replies are preallocated once: the proxy sends them on its hot path.
 */
const CRLF = Buffer.from('\r\n');

export const OK = Buffer.from('+OK\r\n');
export const PONG = Buffer.from('+PONG\r\n');
export const QUEUED = Buffer.from('+QUEUED\r\n');
export const NULL_BULK = Buffer.from('$-1\r\n');
export const NULL_ARRAY = Buffer.from('*-1\r\n');
export const EMPTY_ARRAY = Buffer.from('*0\r\n');
export const ZERO = Buffer.from(':0\r\n');
export const ONE = Buffer.from(':1\r\n');

/** `-<message>\r\n`. CR/LF inside the message would break framing, so they become spaces. */
export function encodeError(message: string): Buffer {
  return Buffer.from(`-${message.replace(/[\r\n]/g, ' ')}\r\n`);
}

export function encodeSimple(text: string): Buffer {
  return Buffer.from(`+${text.replace(/[\r\n]/g, ' ')}\r\n`);
}

export function encodeInteger(n: number | bigint): Buffer {
  return Buffer.from(`:${n}\r\n`);
}

export function encodeBulk(value: Uint8Array | string | null): Buffer {
  if (value === null) return NULL_BULK;
  const body = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([Buffer.from(`$${body.length}\r\n`), body, CRLF]);
}

/** An array whose elements are already-encoded RESP values. */
export function encodeArrayOfEncoded(items: readonly Uint8Array[]): Buffer {
  return Buffer.concat([Buffer.from(`*${items.length}\r\n`), ...items]);
}

/** Decimal digits of a non-negative integer. */
function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Writes `<prefix><n>\r\n` at `o`; returns the offset after it. */
function writeHeader(out: Buffer, o: number, prefix: number, n: number): number {
  out[o++] = prefix;
  const d = digits(n);
  for (let i = d - 1; i >= 0; i--) {
    out[o + i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  o += d;
  out[o++] = 0x0d;
  out[o++] = 0x0a;
  return o;
}

/**
 * A command (array of bulk strings), as a client would send it. One allocation and one copy
 * of each argument: the proxy builds the parts of split commands (MGET, MSET, …) with it.
 */
export function encodeCommand(args: readonly (Uint8Array | string)[]): Buffer {
  const bodies = args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a));
  let size = 3 + digits(bodies.length);
  for (const b of bodies) size += 5 + digits(b.length) + b.length;
  const out = Buffer.allocUnsafe(size);
  let o = writeHeader(out, 0, 0x2a, bodies.length);
  for (const b of bodies) {
    o = writeHeader(out, o, 0x24, b.length);
    out.set(b, o);
    o += b.length;
    out[o++] = 0x0d;
    out[o++] = 0x0a;
  }
  return out;
}
