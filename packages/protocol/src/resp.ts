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

/** A command (array of bulk strings), as a client would send it. */
export function encodeCommand(args: readonly (Uint8Array | string)[]): Buffer {
  const parts: Uint8Array[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const body = typeof arg === 'string' ? Buffer.from(arg) : arg;
    parts.push(Buffer.from(`$${body.length}\r\n`), body, CRLF);
  }
  return Buffer.concat(parts);
}
