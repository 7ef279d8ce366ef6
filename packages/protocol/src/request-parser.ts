/**
 * Request parser for the proxy's client side: RESP multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
 * and inline commands (`PING\r\n`, as typed into telnet).
 *
 * Why hand-written and not redis-parser: this runs for every request the proxy sees, and it
 * gives the proxy two things redis-parser cannot. (1) Every argument is a zero-copy view into
 * the socket's chunk, and (2) the request's raw bytes (`raw`) are returned too, so a request
 * routed unchanged is forwarded to the backend without being encoded again. redis-parser is
 * still used — as the oracle the tests compare this parser with.
 *
 * Bounds (argument count, argument size, inline line length) are checked before anything is
 * buffered, so a hostile client cannot make the proxy allocate past them. Any error is final
 * for the connection: after malformed input there is no way to find the next request.
 *
 * Buffering: a request split across chunks keeps its partial bytes. When a long bulk is
 * awaited, chunks are collected in a list and joined once the bulk is complete, so a 50 MB
 * value arriving in 64 KB chunks costs one copy, not hundreds. A multibulk request cut after
 * some complete arguments keeps them (as views) and resumes at the first incomplete one, so a
 * request with many small arguments spread over many chunks is parsed once, not once per chunk.
 */
import { MalformedRequestError, RequestTooLargeError } from './errors.js';

export interface ParserLimits {
  /** Largest accepted bulk argument, in bytes (Redis: proto-max-bulk-len). */
  maxBulkLength: number;
  /** Most arguments in one multibulk request. */
  maxMultibulkLength: number;
  /** Longest inline command line, in bytes (Redis: 64 KiB). */
  maxInlineLength: number;
}

export const DEFAULT_PARSER_LIMITS: ParserLimits = {
  maxBulkLength: 512 * 1024 * 1024,
  maxMultibulkLength: 1024 * 1024,
  maxInlineLength: 64 * 1024,
};

/**
 * Called once per complete request. `args` are views into the input (valid as long as the
 * caller keeps them); `raw` is the request's exact bytes when it was multibulk, or null for
 * inline requests (which must be re-encoded before they are forwarded). Returning `false`
 * stops parsing after this request: the rest stays buffered until `feed` is called again
 * (with an empty chunk to just continue) — how a caller bounds its pipeline mid-chunk.
 */
export type RequestHandler = (args: Buffer[], raw: Buffer | null) => boolean | void;

/** A multibulk request of which the header and `args` have arrived, but not the rest. */
interface PartialMultibulk {
  count: number;
  args: Buffer[];
  /** How many of `args` are complete. */
  done: number;
  /** The bytes of the header and of `args`, for `raw`, in the order they arrived. */
  rawParts: Buffer[];
  rawLength: number;
}

const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOLLAR = 0x24;

/** Result of parsing a decimal length: the value, or -2 when the line is not a valid number. */
function parseLength(buf: Buffer, start: number, end: number): number {
  if (start >= end) return -2;
  let i = start;
  let negative = false;
  if (buf[i] === 0x2d) {
    negative = true;
    i++;
    if (i >= end) return -2;
  }
  // Redis's string2ll: no leading zeros ("01"), and no "-0".
  if (buf[i] === 0x30 && (negative || i + 1 < end)) return -2;
  let n = 0;
  for (; i < end; i++) {
    const c = buf[i]! - 0x30;
    if (c < 0 || c > 9) return -2;
    n = n * 10 + c;
    // Past 2^53 digits stop being exact; any such length is over every bound anyway.
    if (n > Number.MAX_SAFE_INTEGER / 10) return Number.MAX_SAFE_INTEGER;
  }
  return negative ? (n === 1 ? -1 : -2 - n) : n;
}

export class RequestParser {
  private readonly limits: ParserLimits;
  /** Bytes of an incomplete request carried over from earlier chunks. */
  private pending: Buffer | null = null;
  /** Chunks collected while waiting for `awaitBytes` bytes in total. */
  private collected: Buffer[] = [];
  private collectedLength = 0;
  private awaitBytes = 0;
  /** Set while a multibulk request is incomplete; `pending`/`collected` then hold only its tail. */
  private partial: PartialMultibulk | null = null;
  /** Set when the handler returned false: stop after the current request. */
  private stopRequested = false;

  constructor(limits: Partial<ParserLimits> = {}) {
    this.limits = { ...DEFAULT_PARSER_LIMITS, ...limits };
  }

  /** Bytes held for an incomplete request (for memory accounting and tests). */
  get bufferedBytes(): number {
    return (this.pending?.length ?? 0) + this.collectedLength + (this.partial?.rawLength ?? 0);
  }

  /**
   * Parses every complete request in `chunk` (plus what earlier chunks left), calling
   * `onRequest` for each in order. Throws MalformedRequestError or RequestTooLargeError.
   */
  feed(chunk: Buffer, onRequest: RequestHandler): void {
    let buf: Buffer;
    if (chunk.length === 0 && this.awaitBytes === 0 && this.pending !== null) {
      buf = this.pending;
    } else if (this.awaitBytes > 0) {
      this.collected.push(chunk);
      this.collectedLength += chunk.length;
      if (this.collectedLength < this.awaitBytes) return;
      buf = Buffer.concat(this.collected, this.collectedLength);
      this.collected = [];
      this.collectedLength = 0;
      this.awaitBytes = 0;
    } else if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
    } else {
      buf = chunk;
    }
    this.pending = null;

    let pos = 0;
    const len = buf.length;
    while (pos < len) {
      const next =
        this.partial !== null || buf[pos] === STAR ? this.parseMultibulk(buf, pos, onRequest) : this.parseInline(buf, pos, onRequest);
      if (next < 0) {
        // Incomplete: the parser says where the bytes it still needs start.
        pos = -1 - next;
        break;
      }
      pos = next;
      if (this.stopRequested) {
        this.stopRequested = false;
        break;
      }
    }
    if (pos < len) {
      // Keep only the unparsed tail; a view would pin the whole chunk, so copy small tails.
      const tail = buf.subarray(pos);
      if (this.awaitBytes > 0) {
        this.collected.push(tail);
        this.collectedLength = tail.length;
      } else {
        this.pending = tail.length < 4096 ? Buffer.from(tail) : tail;
      }
    }
  }

  /** True when input is buffered (complete requests left after a stop, or a partial one). */
  get hasBuffered(): boolean {
    return this.pending !== null || this.partial !== null || this.collectedLength > 0;
  }

  /** Drops buffered input (on reset after an error, or on close). */
  reset(): void {
    this.stopRequested = false;
    this.pending = null;
    this.collected = [];
    this.collectedLength = 0;
    this.awaitBytes = 0;
    this.partial = null;
  }

  /**
   * Returns the offset after the request, or `-1 - tailStart` when more input is needed, where
   * `tailStart` is the offset of the first byte that must be kept for the next attempt. Resumes
   * `this.partial` when it is set (then `start` is where its first missing argument begins).
   */
  private parseMultibulk(buf: Buffer, start: number, onRequest: RequestHandler): number {
    const len = buf.length;
    let lineEnd: number;
    let count: number;
    let args: Buffer[];
    let i: number;
    let pos: number;
    const resumed = this.partial;
    if (resumed !== null) {
      this.partial = null;
      count = resumed.count;
      args = resumed.args;
      i = resumed.done;
      pos = start;
    } else {
      lineEnd = buf.indexOf(LF, start);
      if (lineEnd < 0) {
        if (len - start > this.limits.maxInlineLength) {
          throw new MalformedRequestError('Protocol error: too big mbulk count string');
        }
        return -1 - start;
      }
      if (buf[lineEnd - 1] !== CR) throw new MalformedRequestError('Protocol error: invalid multibulk length');
      count = parseLength(buf, start + 1, lineEnd - 1);
      // -2 is parseLength's "not a number"; any other negative count is skipped, as Redis does.
      if (count === -2) throw new MalformedRequestError('Protocol error: invalid multibulk length');
      if (count > this.limits.maxMultibulkLength) {
        throw new RequestTooLargeError('Protocol error: invalid multibulk length');
      }
      pos = lineEnd + 1;
      // `*0` and negative counts are empty requests: Redis skips them silently.
      if (count <= 0) return pos;
      // Past 1024 the array grows as arguments arrive: a header alone must not allocate much.
      args = count <= 1024 ? new Array<Buffer>(count) : [];
      i = 0;
    }

    for (; i < count; i++) {
      if (pos >= len) return this.needMore(buf, start, pos, count, args, i, resumed, 0);
      if (buf[pos] !== DOLLAR) {
        throw new MalformedRequestError(`Protocol error: expected '$', got '${String.fromCharCode(buf[pos]!)}'`);
      }
      lineEnd = buf.indexOf(LF, pos);
      if (lineEnd < 0) {
        if (len - pos > 32) throw new MalformedRequestError('Protocol error: invalid bulk length');
        return this.needMore(buf, start, pos, count, args, i, resumed, 0);
      }
      if (buf[lineEnd - 1] !== CR) throw new MalformedRequestError('Protocol error: invalid bulk length');
      const size = parseLength(buf, pos + 1, lineEnd - 1);
      if (size < 0) throw new MalformedRequestError('Protocol error: invalid bulk length');
      if (size > this.limits.maxBulkLength) throw new RequestTooLargeError('Protocol error: invalid bulk length');
      const dataStart = lineEnd + 1;
      const dataEnd = dataStart + size;
      if (dataEnd + 2 > len) return this.needMore(buf, start, pos, count, args, i, resumed, dataEnd + 2);
      if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) {
        throw new MalformedRequestError('Protocol error: expected CRLF after bulk argument');
      }
      args[i] = buf.subarray(dataStart, dataEnd);
      pos = dataEnd + 2;
    }
    let raw = buf.subarray(start, pos);
    if (resumed !== null) {
      // The request spanned chunks: join its pieces, once.
      resumed.rawParts.push(raw);
      raw = Buffer.concat(resumed.rawParts, resumed.rawLength + raw.length);
    }
    if (onRequest(args, raw) === false) this.stopRequested = true;
    return pos;
  }

  /**
   * Records that the request is incomplete: its header and `args` (whose bytes are
   * `buf[start, argStart)` plus what `resumed` held) are kept, and parsing will resume at the
   * argument starting at `argStart`. When the missing part is a large bulk (`needEnd` known
   * and well past the buffer), switch to collecting chunks.
   */
  private needMore(
    buf: Buffer,
    start: number,
    argStart: number,
    count: number,
    args: Buffer[],
    done: number,
    resumed: PartialMultibulk | null,
    needEnd: number,
  ): number {
    const partial = resumed ?? { count, args, done, rawParts: [], rawLength: 0 };
    partial.done = done;
    if (argStart > start) {
      partial.rawParts.push(buf.subarray(start, argStart));
      partial.rawLength += argStart - start;
    }
    this.partial = partial;
    if (needEnd - buf.length > 16 * 1024) this.awaitBytes = needEnd - argStart;
    return -1 - argStart;
  }

  private parseInline(buf: Buffer, start: number, onRequest: RequestHandler): number {
    const lineEnd = buf.indexOf(LF, start);
    if (lineEnd < 0) {
      if (buf.length - start > this.limits.maxInlineLength) {
        throw new RequestTooLargeError('Protocol error: too big inline request');
      }
      return -1 - start;
    }
    if (lineEnd - start > this.limits.maxInlineLength) {
      throw new RequestTooLargeError('Protocol error: too big inline request');
    }
    const end = lineEnd > start && buf[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
    const args = splitInlineArgs(buf.subarray(start, end));
    if (args.length > this.limits.maxMultibulkLength) {
      throw new RequestTooLargeError('Protocol error: invalid multibulk length');
    }
    if (args.length > 0 && onRequest(args, null) === false) this.stopRequested = true;
    return lineEnd + 1;
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/**
 * Splits an inline command line the way Redis' sdssplitargs does: words separated by
 * spaces, "double quotes" with \n \r \t \b \a \\ \" \xHH escapes, 'single quotes' with \'.
 * A closing quote must be followed by a space or the end of the line.
 */
export function splitInlineArgs(line: Buffer): Buffer[] {
  const args: Buffer[] = [];
  const len = line.length;
  let i = 0;
  while (true) {
    while (i < len && isSpace(line[i]!)) i++;
    if (i >= len) return args;
    const c = line[i]!;
    if (c !== 0x22 && c !== 0x27) {
      const s = i;
      while (i < len && !isSpace(line[i]!) && line[i] !== 0x22 && line[i] !== 0x27) i++;
      if (i < len && !isSpace(line[i]!)) {
        // A quote in the middle of a word: fall back to the quoted-word path for the rest.
        const word = readQuotedWord(line, s);
        args.push(word.value);
        i = word.end;
      } else {
        args.push(line.subarray(s, i));
      }
      continue;
    }
    const word = readQuotedWord(line, i);
    args.push(word.value);
    i = word.end;
  }
}

function readQuotedWord(line: Buffer, start: number): { value: Buffer; end: number } {
  const out: number[] = [];
  const len = line.length;
  let i = start;
  let inDouble = false;
  let inSingle = false;
  for (;;) {
    if (i >= len) {
      if (inDouble || inSingle) throw new MalformedRequestError('Protocol error: unbalanced quotes in request');
      return { value: Buffer.from(out), end: i };
    }
    const c = line[i]!;
    if (inDouble) {
      if (c === 0x5c && i + 3 < len && line[i + 1] === 0x78 && hexValue(line[i + 2]!) >= 0 && hexValue(line[i + 3]!) >= 0) {
        out.push(hexValue(line[i + 2]!) * 16 + hexValue(line[i + 3]!));
        i += 4;
      } else if (c === 0x5c && i + 1 < len) {
        const e = line[i + 1]!;
        out.push(e === 0x6e ? 0x0a : e === 0x72 ? 0x0d : e === 0x74 ? 0x09 : e === 0x62 ? 0x08 : e === 0x61 ? 0x07 : e);
        i += 2;
      } else if (c === 0x22) {
        if (i + 1 < len && !isSpace(line[i + 1]!)) {
          throw new MalformedRequestError('Protocol error: unbalanced quotes in request');
        }
        return { value: Buffer.from(out), end: i + 1 };
      } else {
        out.push(c);
        i++;
      }
    } else if (inSingle) {
      if (c === 0x5c && i + 1 < len && line[i + 1] === 0x27) {
        out.push(0x27);
        i += 2;
      } else if (c === 0x27) {
        if (i + 1 < len && !isSpace(line[i + 1]!)) {
          throw new MalformedRequestError('Protocol error: unbalanced quotes in request');
        }
        return { value: Buffer.from(out), end: i + 1 };
      } else {
        out.push(c);
        i++;
      }
    } else if (isSpace(c)) {
      return { value: Buffer.from(out), end: i };
    } else if (c === 0x22) {
      inDouble = true;
      i++;
    } else if (c === 0x27) {
      inSingle = true;
      i++;
    } else {
      out.push(c);
      i++;
    }
  }
}
