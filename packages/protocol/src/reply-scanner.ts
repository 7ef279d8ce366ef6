/**
 * Reply scanner for the proxy's backend side: finds where each RESP2 or RESP3 reply ends in a stream
 * of chunks and hands out the reply's raw bytes, without building JS values.
 *
 * Why not a full parser: the proxy forwards almost every reply to its client unchanged, so
 * decoding `$3\r\nbar\r\n` into a string only to encode it again is wasted work. The scanner
 * looks at each header line once, skips bulk payloads by length, tracks nesting with a small
 * stack of remaining element counts, and keeps its state across chunk boundaries, so every
 * byte is visited at most once however the stream is split. A reply wholly inside one chunk
 * is returned as a view of that chunk (zero copy); one that spans chunks is joined once.
 *
 * Merging (MGET across groups, DBSIZE sums) needs structure; `splitArrayReply` and
 * `parseIntegerReply` below read it from a complete reply.
 */
import { MalformedReplyError } from './errors.js';

const CR = 0x0d;
const LF = 0x0a;

export type ReplyHandler = (reply: Buffer) => void;

/** One-line reply types: + - : (RESP2) and _ , # ( (RESP3 null, double, boolean, big number). */
const SIMPLE_TYPES: boolean[] = [];
for (const c of '+-:_,#(') SIMPLE_TYPES[c.charCodeAt(0)] = true;

function parseSignedInt(buf: Buffer, start: number, end: number): number {
  let i = start;
  let negative = false;
  if (buf[i] === 0x2d) {
    negative = true;
    i++;
  }
  if (i >= end) return Number.NaN;
  let n = 0;
  for (; i < end; i++) {
    const c = buf[i]! - 0x30;
    if (c < 0 || c > 9) return Number.NaN;
    n = n * 10 + c;
  }
  return negative ? -n : n;
}

export class ReplyScanner {
  /** Pieces of the reply in progress that arrived in earlier chunks. */
  private parts: Buffer[] = [];
  private partsLength = 0;
  /** A header line cut by a chunk boundary. */
  private partialLine: Buffer | null = null;
  /** Remaining elements of each open array, innermost last. */
  private readonly stack: number[] = [];
  /** Bulk payload bytes (plus CRLF) still to skip. */
  private skip = 0;
  /** Limit on one reply's size; past it the stream is treated as broken. */
  private readonly maxReplyBytes: number;

  constructor(maxReplyBytes = 1024 * 1024 * 1024) {
    this.maxReplyBytes = maxReplyBytes;
  }

  /** Bytes held for a reply that is not complete yet. */
  get bufferedBytes(): number {
    return this.partsLength;
  }

  reset(): void {
    this.parts = [];
    this.partsLength = 0;
    this.partialLine = null;
    this.stack.length = 0;
    this.skip = 0;
  }

  /** Scans `chunk`, calling `onReply` with each complete top-level reply. */
  feed(chunk: Buffer, onReply: ReplyHandler): void {
    const len = chunk.length;
    let pos = 0;
    let replyStart = 0;
    while (pos < len) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, len - pos);
        // The payload ends in CRLF: check the CR when this chunk holds it (the LF is checked below).
        if (this.skip >= 2 && this.skip - take <= 1 && chunk[pos + this.skip - 2] !== CR) {
          throw new MalformedReplyError('bulk reply not terminated by CRLF');
        }
        pos += take;
        this.skip -= take;
        if (this.skip > 0) break;
        if (chunk[pos - 1] !== LF) throw new MalformedReplyError('bulk reply not terminated by CRLF');
      } else {
        const nl = chunk.indexOf(LF, pos);
        if (nl < 0) {
          this.partialLine = this.partialLine === null
            ? Buffer.from(chunk.subarray(pos))
            : Buffer.concat([this.partialLine, chunk.subarray(pos)]);
          if (this.partialLine.length > 64 * 1024) throw new MalformedReplyError('reply header line too long');
          pos = len;
          break;
        }
        let line: Buffer;
        let lineStart: number;
        let lineEnd: number; // index of CR
        if (this.partialLine !== null) {
          line = Buffer.concat([this.partialLine, chunk.subarray(pos, nl + 1)]);
          this.partialLine = null;
          lineStart = 0;
          lineEnd = line.length - 2;
        } else {
          line = chunk;
          lineStart = pos;
          lineEnd = nl - 1;
        }
        if (lineEnd < lineStart || line[lineEnd] !== CR) throw new MalformedReplyError('reply line not terminated by CRLF');
        pos = nl + 1;
        const type = line[lineStart];
        if (type === 0x24 /* $ */ || type === 0x3d /* = verbatim */ || type === 0x21 /* ! blob error */) {
          const n = parseSignedInt(line, lineStart + 1, lineEnd);
          if (Number.isNaN(n) || n < -1) throw new MalformedReplyError('invalid bulk length in reply');
          if (n > this.maxReplyBytes) throw new MalformedReplyError('bulk reply over the size limit');
          if (n >= 0) {
            this.skip = n + 2;
            continue;
          }
        } else if (type === 0x2a /* * */) {
          const n = parseSignedInt(line, lineStart + 1, lineEnd);
          if (Number.isNaN(n) || n < -1) throw new MalformedReplyError('invalid multibulk length in reply');
          if (n > 0) {
            this.stack.push(n);
            continue;
          }
        } else if (type === 0x25 /* % map */ || type === 0x7c /* | attribute */ || type === 0x7e /* ~ set */ || type === 0x3e /* > push */) {
          const n = parseSignedInt(line, lineStart + 1, lineEnd);
          if (Number.isNaN(n) || n < 0) throw new MalformedReplyError('invalid aggregate length in reply');
          // A map holds n keys and n values; an attribute's pairs belong to the value after
          // them, so it counts as one aggregate of 2n + 1 elements ending with that value.
          const elements = type === 0x25 ? 2 * n : type === 0x7c ? 2 * n + 1 : n;
          if (elements > 0) {
            this.stack.push(elements);
            continue;
          }
        } else if (!SIMPLE_TYPES[type!]) {
          throw new MalformedReplyError(`unexpected reply type byte 0x${(type ?? 0).toString(16)}`);
        }
      }
      // One element finished: close every array it completes.
      const stack = this.stack;
      let top = stack.length - 1;
      while (top >= 0) {
        const left = stack[top]! - 1;
        if (left > 0) {
          stack[top] = left;
          break;
        }
        stack.pop();
        top--;
      }
      if (top < 0) {
        let reply: Buffer;
        if (this.parts.length === 0) {
          reply = chunk.subarray(replyStart, pos);
        } else {
          this.parts.push(chunk.subarray(replyStart, pos));
          reply = Buffer.concat(this.parts, this.partsLength + pos - replyStart);
          this.parts = [];
          this.partsLength = 0;
        }
        replyStart = pos;
        onReply(reply);
      }
    }
    if (replyStart < len) {
      this.parts.push(chunk.subarray(replyStart, len));
      this.partsLength += len - replyStart;
      if (this.partsLength > this.maxReplyBytes) throw new MalformedReplyError('reply over the size limit');
    }
  }
}

/** True when a complete reply is an error (`-…`, or RESP3's blob error `!<len>…`). */
export function isErrorReply(reply: Uint8Array): boolean {
  return reply[0] === 0x2d || reply[0] === 0x21;
}

/** The message of an error reply, without the leading `-` (or blob header) and trailing CRLF. */
export function errorReplyMessage(reply: Buffer): string {
  if (reply[0] === 0x21) return reply.toString('utf8', reply.indexOf(LF) + 1, reply.length - 2);
  return reply.toString('utf8', 1, reply.length - 2);
}

/** The value of a complete `:<n>\r\n` reply, or null when the reply is not an integer. */
export function parseIntegerReply(reply: Buffer): bigint | null {
  if (reply[0] !== 0x3a) return null;
  // BigInt() alone would also accept '', spaces and 0x/0o/0b forms: check for [+-]digits first.
  const end = reply.length - 2;
  let i = reply[1] === 0x2d || reply[1] === 0x2b ? 2 : 1;
  if (i >= end) return null;
  for (; i < end; i++) {
    const c = reply[i]!;
    if (c < 0x30 || c > 0x39) return null;
  }
  return BigInt(reply.toString('latin1', 1, end));
}

/** The end offset of the RESP value starting at `pos` in a buffer that holds it whole. */
function valueEnd(buf: Buffer, pos: number): number {
  const nl = buf.indexOf(LF, pos);
  if (nl < 0) throw new MalformedReplyError('truncated reply');
  const type = buf[pos];
  if (type === 0x24 || type === 0x3d || type === 0x21) {
    const n = parseSignedInt(buf, pos + 1, nl - 1);
    return n < 0 ? nl + 1 : nl + 1 + n + 2;
  }
  if (type === 0x2a || type === 0x25 || type === 0x7e || type === 0x3e || type === 0x7c) {
    const n = parseSignedInt(buf, pos + 1, nl - 1);
    const elements = type === 0x25 ? 2 * n : type === 0x7c ? 2 * n + 1 : n;
    let p = nl + 1;
    for (let i = 0; i < elements; i++) p = valueEnd(buf, p);
    return p;
  }
  return nl + 1;
}

/**
 * The elements of a complete array reply, each as its own raw RESP bytes (views of `reply`).
 * Returns null when the reply is not an array (an error, say) or is the null array.
 */
export function splitArrayReply(reply: Buffer): Buffer[] | null {
  if (reply[0] !== 0x2a) return null;
  return splitElements(reply, 1);
}

/**
 * The elements of a complete aggregate reply of any kind: an array, a set, a push, or a map
 * (whose keys and values come flat, key first, as RESP2 sends them). Null for anything else.
 */
export function splitAggregateReply(reply: Buffer): Buffer[] | null {
  const type = reply[0];
  if (type === 0x2a || type === 0x7e || type === 0x3e) return splitElements(reply, 1);
  if (type === 0x25) return splitElements(reply, 2);
  return null;
}

function splitElements(reply: Buffer, perEntry: number): Buffer[] | null {
  const nl = reply.indexOf(LF);
  const n = parseSignedInt(reply, 1, nl - 1) * perEntry;
  if (!(n >= 0)) return null;
  const out = new Array<Buffer>(n);
  let p = nl + 1;
  for (let i = 0; i < n; i++) {
    const end = valueEnd(reply, p);
    out[i] = reply.subarray(p, end);
    p = end;
  }
  return out;
}
