/**
 * RequestParser is on the hot path and splits requests by hand, so (STYLE.md "Hot path") it is
 * tested at every chunk boundary — whole, byte by byte, split at every offset — and fuzzed
 * against redis-parser as an oracle. Every random test is seeded, and the seed is in the
 * failure message, so a failure can be replayed.
 */
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MalformedRequestError, ProtocolError, RequestTooLargeError } from './errors.js';
import { RequestParser, splitInlineArgs, type ParserLimits } from './request-parser.js';

// redis-parser is CommonJS without type declarations: load it through require with a typed shape.
interface RedisParserOptions {
  returnReply: (reply: unknown) => void;
  returnError: (err: Error) => void;
  returnFatalError?: (err: Error) => void;
  returnBuffers?: boolean;
  stringNumbers?: boolean;
}
type RedisParserCtor = new (options: RedisParserOptions) => { execute(buf: Buffer): void };
const RedisParser = createRequire(import.meta.url)('redis-parser') as RedisParserCtor;

// ---------------------------------------------------------------------------------------------
// helpers

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Our own encoder (not resp.ts), so the tests do not share code with what they test. */
function encode(args: readonly (Buffer | string)[]): Buffer {
  const bodies = args.map((a) => (typeof a === 'string' ? b(a) : a));
  let total = `*${bodies.length}\r\n`.length;
  for (const body of bodies) total += `$${body.length}\r\n`.length + body.length + 2;
  const out = Buffer.allocUnsafe(total);
  let p = out.write(`*${bodies.length}\r\n`, 0, 'latin1');
  for (const body of bodies) {
    p += out.write(`$${body.length}\r\n`, p, 'latin1');
    p += body.copy(out, p);
    out[p++] = 0x0d;
    out[p++] = 0x0a;
  }
  return out;
}

interface Parsed {
  args: Buffer[];
  raw: Buffer | null;
}

interface RunResult {
  requests: Parsed[];
  error: unknown;
  /** Largest bufferedBytes minus bytes fed so far seen after any feed (must be <= 0). */
  maxOverBuffer: number;
}

/** Feeds `chunks` in order; copies every request (a later chunk must not be able to change it). */
function run(chunks: readonly Buffer[], limits: Partial<ParserLimits> = {}): RunResult {
  const parser = new RequestParser(limits);
  const requests: Parsed[] = [];
  let fed = 0;
  let maxOverBuffer = Number.NEGATIVE_INFINITY;
  try {
    for (const chunk of chunks) {
      fed += chunk.length;
      parser.feed(chunk, (args, raw) => {
        requests.push({ args: args.map((a) => Buffer.from(a)), raw: raw === null ? null : Buffer.from(raw) });
      });
      maxOverBuffer = Math.max(maxOverBuffer, parser.bufferedBytes - fed);
    }
  } catch (err) {
    return { requests, error: err, maxOverBuffer };
  }
  return { requests, error: null, maxOverBuffer };
}

function parseOrThrow(chunks: readonly Buffer[], limits: Partial<ParserLimits> = {}): Parsed[] {
  const r = run(chunks, limits);
  if (r.error !== null) throw r.error;
  return r.requests;
}

function splitAt(input: Buffer, ...offsets: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const o of offsets) {
    out.push(input.subarray(prev, o));
    prev = o;
  }
  out.push(input.subarray(prev));
  return out;
}

function bytewise(input: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i++) out.push(input.subarray(i, i + 1));
  return out;
}

function chunked(input: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i += size) out.push(input.subarray(i, i + size));
  return out;
}

/** Describes the first difference between two request lists, or returns null. */
function diffRequests(got: readonly Parsed[], want: readonly Parsed[]): string | null {
  if (got.length !== want.length) return `got ${got.length} requests, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (g.args.length !== w.args.length) return `request ${i}: ${g.args.length} args, want ${w.args.length}`;
    for (let j = 0; j < w.args.length; j++) {
      if (!g.args[j]!.equals(w.args[j]!)) {
        return `request ${i} arg ${j}: ${JSON.stringify(g.args[j]!.toString('latin1'))} != ${JSON.stringify(w.args[j]!.toString('latin1'))}`;
      }
    }
    if ((g.raw === null) !== (w.raw === null) || (g.raw !== null && !g.raw.equals(w.raw!))) {
      return `request ${i}: raw ${g.raw === null ? 'null' : JSON.stringify(g.raw.toString('latin1'))} != ${w.raw === null ? 'null' : JSON.stringify(w.raw.toString('latin1'))}`;
    }
  }
  return null;
}

const strs = (p: Parsed): string[] => p.args.map((a) => a.toString('latin1'));

/** Deterministic PRNG (mulberry32). */
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
const intIn = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

/** Bytes that matter to RESP framing, drawn more often than chance would. */
const SPECIAL = [0x0d, 0x0a, 0x2a, 0x24, 0x2d, 0x2b, 0x3a, 0x30, 0x31, 0x39, 0x00, 0xff, 0x20, 0x22, 0x27, 0x5c];

function randomBytes(r: () => number, len: number): Buffer {
  const buf = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) buf[i] = r() < 0.35 ? SPECIAL[intIn(r, 0, SPECIAL.length - 1)]! : intIn(r, 0, 255);
  return buf;
}

function randomArg(r: () => number): Buffer {
  const k = r();
  // Mostly small, some medium, a few past the parser's 16 KiB "collect chunks" threshold.
  const len = k < 0.1 ? 0 : k < 0.8 ? intIn(r, 1, 16) : k < 0.995 ? intIn(r, 17, 300) : intIn(r, 16_000, 40_000);
  return randomBytes(r, len);
}

function randomCommand(r: () => number): Buffer[] {
  const n = r() < 0.9 ? intIn(r, 1, 5) : intIn(r, 6, 40);
  return Array.from({ length: n }, () => randomArg(r));
}

/** Random cut points; `maxChunk` bounds each chunk's size. */
function randomChunks(r: () => number, input: Buffer, maxChunk: number): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < input.length) {
    const n = intIn(r, 1, maxChunk);
    out.push(input.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

/** All replies redis-parser finds in `input` (fed whole); bulk strings copied out of its buffers. */
function oracleParse(input: Buffer): { replies: unknown[]; errors: Error[] } {
  const replies: unknown[] = [];
  const errors: Error[] = [];
  const copy = (v: unknown): unknown =>
    Buffer.isBuffer(v) ? Buffer.from(v) : Array.isArray(v) ? v.map(copy) : v;
  const parser = new RedisParser({
    returnBuffers: true,
    stringNumbers: true,
    returnReply: (reply) => replies.push(copy(reply)),
    returnError: (err) => errors.push(err),
    returnFatalError: (err) => errors.push(err),
  });
  parser.execute(input);
  return { replies, errors };
}

/** Asserts `fn` throws an error of `cls` with `code` (and `message`, when given). */
function expectProtocolError(
  fn: () => unknown,
  cls: typeof MalformedRequestError | typeof RequestTooLargeError,
  message?: string,
): void {
  let thrown: unknown = null;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(cls);
  expect(thrown).toBeInstanceOf(ProtocolError);
  expect((thrown as ProtocolError).code).toBe(cls === MalformedRequestError ? 'EPROTO' : 'ETOOLARGE');
  if (message !== undefined) expect((thrown as Error).message).toBe(message);
}

// ---------------------------------------------------------------------------------------------

describe('RequestParser: multibulk', () => {
  it('parses one request into its arguments and its exact raw bytes', () => {
    const input = b('*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n');
    const [req, ...rest] = parseOrThrow([input]);
    expect(rest).toHaveLength(0);
    expect(strs(req!)).toEqual(['SET', 'key', 'value']);
    expect(req!.raw).toEqual(input);
  });

  it('hands out zero-copy views of the chunk when a request sits whole in it', () => {
    const chunk = b('*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n');
    const parser = new RequestParser();
    const seen: { args: Buffer[]; raw: Buffer | null }[] = [];
    parser.feed(chunk, (args, raw) => seen.push({ args, raw }));
    expect(seen).toHaveLength(1);
    const { args, raw } = seen[0]!;
    expect(raw).not.toBeNull();
    expect(raw!.buffer).toBe(chunk.buffer);
    expect(raw!.byteOffset).toBe(chunk.byteOffset);
    expect(args[1]!.buffer).toBe(chunk.buffer);
    expect(args[1]!.byteOffset).toBe(chunk.byteOffset + chunk.indexOf('foo'));
    expect(parser.bufferedBytes).toBe(0);
  });

  it('parses binary arguments holding CRLF, `*`, `$`, NUL and 0xff, and empty arguments', () => {
    const args = [b('SET'), b('k\r\n*1\r\n$3\r\n'), Buffer.from([0, 0xff, 0x0d, 0x0a, 0x0a, 0x0d]), b(''), b('\r\n')];
    const input = encode(args);
    const [req] = parseOrThrow([input]);
    expect(req!.args).toEqual(args);
    expect(req!.raw).toEqual(input);
  });

  it('parses many pipelined requests from one chunk, in order, each with its own raw bytes', () => {
    const commands = Array.from({ length: 500 }, (_, i) => ['INCRBY', `counter:${i}`, String(i * 7)]);
    const encoded = commands.map((c) => encode(c));
    const requests = parseOrThrow([Buffer.concat(encoded)]);
    expect(requests.map(strs)).toEqual(commands);
    expect(diffRequests(requests, commands.map((c, i) => ({ args: c.map(b), raw: encoded[i]! })))).toBeNull();
  });

  it('ignores negative counts like *-10, as redis does', () => {
    const parser = new RequestParser();
    const got: string[][] = [];
    parser.feed(b('*-10\r\n*-2\r\n*1\r\n$4\r\nPING\r\n'), (args) => got.push(args.map(String)));
    expect(got).toEqual([['PING']]);
    expect(parser.hasBuffered).toBe(false);
  });

  it('ignores *0 and *-1 (and leaves nothing buffered)', () => {
    const parser = new RequestParser();
    const got: string[][] = [];
    parser.feed(b('*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*0\r\n'), (args) => got.push(args.map(String)));
    expect(got).toEqual([['PING']]);
    expect(parser.bufferedBytes).toBe(0);
  });

  it('does not call back for an incomplete request and buffers exactly its bytes', () => {
    const parser = new RequestParser();
    const input = encode(['SET', 'k', 'v']);
    let calls = 0;
    parser.feed(input.subarray(0, input.length - 1), () => calls++);
    expect(calls).toBe(0);
    expect(parser.bufferedBytes).toBe(input.length - 1);
    parser.feed(input.subarray(input.length - 1), () => calls++);
    expect(calls).toBe(1);
    expect(parser.bufferedBytes).toBe(0);
  });

  it('reset() drops a buffered partial request', () => {
    const parser = new RequestParser();
    const got: string[][] = [];
    parser.feed(b('*2\r\n$3\r\nGET\r\n$3\r\nfo'), (args) => got.push(args.map(String)));
    expect(parser.bufferedBytes).toBeGreaterThan(0);
    parser.reset();
    expect(parser.bufferedBytes).toBe(0);
    parser.feed(b('*1\r\n$4\r\nPING\r\n'), (args) => got.push(args.map(String)));
    expect(got).toEqual([['PING']]);
  });
});

describe('RequestParser: inline commands', () => {
  it('parses PING\\r\\n and PING\\n with a null raw', () => {
    for (const line of ['PING\r\n', 'PING\n']) {
      const requests = parseOrThrow([b(line)]);
      expect(requests).toEqual([{ args: [b('PING')], raw: null }]);
    }
  });

  it('parses quoted arguments', () => {
    const [req] = parseOrThrow([b('set k "a b"\r\n')]);
    expect(strs(req!)).toEqual(['set', 'k', 'a b']);
    expect(req!.raw).toBeNull();
  });

  it('ignores empty and blank lines', () => {
    const requests = parseOrThrow([b('\r\n\n  \r\n\t\nPING\r\n\r\n')]);
    expect(requests.map(strs)).toEqual([['PING']]);
  });

  it('throws MalformedRequestError on unbalanced quotes', () => {
    expectProtocolError(() => parseOrThrow([b('set k "a b\r\n')]), MalformedRequestError, 'Protocol error: unbalanced quotes in request');
    expectProtocolError(() => parseOrThrow([b("set k 'a\r\n")]), MalformedRequestError, 'Protocol error: unbalanced quotes in request');
  });

  it('mixes with multibulk requests in one pipeline', () => {
    const input = Buffer.concat([b('PING\r\n'), encode(['GET', 'a']), b('ECHO "x y"\n'), encode(['DEL', 'b'])]);
    const requests = parseOrThrow([input]);
    expect(requests.map(strs)).toEqual([['PING'], ['GET', 'a'], ['ECHO', 'x y'], ['DEL', 'b']]);
    expect(requests.map((r) => r.raw)).toEqual([null, encode(['GET', 'a']), null, encode(['DEL', 'b'])]);
  });
});

describe('splitInlineArgs', () => {
  const cases: [string, string[]][] = [
    ['', []],
    ['   \t ', []],
    ['PING', ['PING']],
    ['  set   k \t v  ', ['set', 'k', 'v']],
    ['set k "a b"', ['set', 'k', 'a b']],
    ['"" x', ['', 'x']],
    ["'' x", ['', 'x']],
    ['"\\x41\\x4a\\x7a"', ['AJz']],
    ['"\\x4g"', ['x4g']], // not a hex escape: `\x` is an ordinary escape of `x`
    ['"a\\nb\\rc\\td\\be\\af\\\\g\\"h"', ['a\nb\rc\td\be\x07f\\g"h']],
    ["'it\\'s'", ["it's"]],
    ["'a\\nb'", ['a\\nb']], // no escapes in single quotes, except \'
    ['\'a "b" c\'', ['a "b" c']],
    ['"it\'s"', ["it's"]],
    ['foo"bar baz" qux', ['foobar baz', 'qux']], // a quote inside a word opens a quoted part
    ['"a" "b"', ['a', 'b']],
  ];
  it.each(cases)('splits %j', (line, want) => {
    expect(splitInlineArgs(b(line)).map((a) => a.toString('latin1'))).toEqual(want);
  });

  it('passes non-ASCII bytes through unchanged', () => {
    const line = Buffer.from([0x73, 0x20, 0xff, 0x00, 0x80, 0x20, 0x22, 0xc3, 0xa9, 0x22]);
    expect(splitInlineArgs(line)).toEqual([b('s'), Buffer.from([0xff, 0x00, 0x80]), Buffer.from([0xc3, 0xa9])]);
  });

  it.each(['"abc', "'abc", '"a"b', "'a'b", '"abc\\', 'set k "v', 'x "a\\"'])('rejects unbalanced %j', (line) => {
    expectProtocolError(() => splitInlineArgs(b(line)), MalformedRequestError, 'Protocol error: unbalanced quotes in request');
  });
});

describe('RequestParser: every chunk boundary', () => {
  // Each entry: a request (or pipeline) and what it must parse to.
  const corpus: { name: string; input: Buffer; want: Parsed[] }[] = [];
  const mb = (...args: (string | Buffer)[]): Parsed => ({
    args: args.map((a) => (typeof a === 'string' ? b(a) : a)),
    raw: encode(args),
  });
  const inline = (...args: string[]): Parsed => ({ args: args.map(b), raw: null });
  for (const p of [
    mb('PING'),
    mb('SET', 'key', 'value'),
    mb('SET', 'k\r\n', Buffer.from([0x0d, 0x0a, 0x2a, 0x24, 0x00, 0xff])),
    mb('GET', ''),
    mb('', '', ''),
    mb('MSET', ...Array.from({ length: 12 }, (_, i) => `k${i}`)),
    mb('SET', 'big', 'x'.repeat(300)),
  ]) {
    corpus.push({ name: strs(p).join(' ').slice(0, 40), input: p.raw!, want: [p] });
  }
  const pipeline = [mb('GET', 'a'), inline('PING'), mb('SET', '*1', '$2\r\n'), inline('set', 'k', 'a b'), mb('DEL', 'x', 'y')];
  const pipelineInput = Buffer.concat([
    pipeline[0]!.raw!,
    b('PING\r\n'),
    b('*0\r\n'),
    pipeline[2]!.raw!,
    b('\r\nset k "a b"\n'),
    pipeline[4]!.raw!,
  ]);
  corpus.push({ name: 'mixed pipeline', input: pipelineInput, want: pipeline });

  it.each(corpus)('$name: whole, byte by byte and split at every offset', ({ input, want }) => {
    expect(diffRequests(parseOrThrow([input]), want)).toBeNull();
    expect(diffRequests(parseOrThrow(bytewise(input)), want)).toBeNull();
    for (let cut = 0; cut <= input.length; cut++) {
      const d = diffRequests(parseOrThrow(splitAt(input, cut)), want);
      if (d !== null) expect(d, `split at ${cut}`).toBeNull();
    }
  });

  it('mixed pipeline: split at every pair of offsets (three chunks)', () => {
    const { input, want } = corpus[corpus.length - 1]!;
    for (let i = 0; i <= input.length; i++) {
      for (let j = i; j <= input.length; j++) {
        const d = diffRequests(parseOrThrow(splitAt(input, i, j)), want);
        if (d !== null) expect(d, `split at ${i}, ${j}`).toBeNull();
      }
    }
  });

  it('buffers exactly the bytes of the incomplete request at every offset', () => {
    const requests = [encode(['SET', 'a', 'b'.repeat(40)]), encode(['GET', 'a']), encode(['MGET', 'a', 'b', 'c'])];
    const input = Buffer.concat(requests);
    const ends: number[] = [];
    let acc = 0;
    for (const r of requests) ends.push((acc += r.length));
    for (let cut = 0; cut <= input.length; cut++) {
      const parser = new RequestParser();
      parser.feed(input.subarray(0, cut), () => {});
      const consumed = Math.max(0, ...ends.filter((e) => e <= cut));
      expect(parser.bufferedBytes, `cut at ${cut}`).toBe(cut - consumed);
    }
  });
});

describe('RequestParser: errors', () => {
  const malformed: [string, string, string][] = [
    ['non-numeric multibulk length', '*abc\r\n', 'Protocol error: invalid multibulk length'],
    ['empty multibulk length', '*\r\n', 'Protocol error: invalid multibulk length'],
    ['multibulk line ended by a bare LF', '*1\n$4\r\nPING\r\n', 'Protocol error: invalid multibulk length'],
    // Redis's string2ll: no leading zeros, no "-0".
    ['multibulk length with a leading zero', '*01\r\n$4\r\nPING\r\n', 'Protocol error: invalid multibulk length'],
    ['multibulk length -0', '*-0\r\n', 'Protocol error: invalid multibulk length'],
    ['bulk length with a leading zero', '*1\r\n$04\r\nPING\r\n', 'Protocol error: invalid bulk length'],
    ['a simple string where a bulk is expected', '*1\r\n+foo\r\n', "Protocol error: expected '$', got '+'"],
    ['an inline word where a bulk is expected', '*2\r\n$3\r\nGET\r\nfoo\r\n', "Protocol error: expected '$', got 'f'"],
    ['negative bulk length', '*1\r\n$-5\r\nhello\r\n', 'Protocol error: invalid bulk length'],
    ['null bulk inside a request', '*1\r\n$-1\r\n', 'Protocol error: invalid bulk length'],
    ['non-numeric bulk length', '*1\r\n$3x\r\nfoo\r\n', 'Protocol error: invalid bulk length'],
    ['empty bulk length', '*1\r\n$\r\n\r\n', 'Protocol error: invalid bulk length'],
    ['bulk line ended by a bare LF', '*1\r\n$3\nfoo\r\n', 'Protocol error: invalid bulk length'],
    ['bulk length line that never ends', `*1\r\n$${'1'.repeat(40)}`, 'Protocol error: invalid bulk length'],
    ['bulk data longer than its length', '*1\r\n$3\r\nfooXY\r\n', 'Protocol error: expected CRLF after bulk argument'],
    ['bulk data followed by CR and not LF', '*1\r\n$3\r\nfoo\rX', 'Protocol error: expected CRLF after bulk argument'],
    ['bulk data followed by a bare LF', '*2\r\n$3\r\nfoo\n$1\r\nx\r\n', 'Protocol error: expected CRLF after bulk argument'],
  ];

  it.each(malformed)('%s → MalformedRequestError, whole and byte by byte', (_name, input, message) => {
    expectProtocolError(() => parseOrThrow([b(input)]), MalformedRequestError, message);
    expectProtocolError(() => parseOrThrow(bytewise(b(input))), MalformedRequestError, message);
  });

  it('delivers the requests before the error, then throws', () => {
    const r = run([Buffer.concat([encode(['GET', 'a']), b('PING\r\n'), b('*1\r\n+x\r\n'), encode(['GET', 'b'])])]);
    expect(r.requests.map(strs)).toEqual([['GET', 'a'], ['PING']]);
    expect(r.error).toBeInstanceOf(MalformedRequestError);
  });

  it('an over-long multibulk count line is rejected before its newline arrives', () => {
    const limits = { maxInlineLength: 64 };
    expectProtocolError(() => parseOrThrow([b(`*${'1'.repeat(70)}`)], limits), MalformedRequestError, 'Protocol error: too big mbulk count string');
  });

  describe('configured limits → RequestTooLargeError', () => {
    it('too many arguments in a multibulk request, detected from the header alone', () => {
      const limits = { maxMultibulkLength: 3 };
      expect(parseOrThrow([encode(['a', 'b', 'c'])], limits).map(strs)).toEqual([['a', 'b', 'c']]);
      // Only the header has arrived: the parser must not wait for the arguments to refuse it.
      expectProtocolError(() => parseOrThrow([b('*4\r\n')], limits), RequestTooLargeError, 'Protocol error: invalid multibulk length');
      expectProtocolError(() => parseOrThrow([b(`*${Number.MAX_SAFE_INTEGER}\r\n`)]), RequestTooLargeError);
    });

    it('too long a bulk argument, detected from its length line alone', () => {
      const limits = { maxBulkLength: 10 };
      expect(parseOrThrow([encode(['x'.repeat(10)])], limits).map(strs)).toEqual([['x'.repeat(10)]]);
      expectProtocolError(() => parseOrThrow([b('*1\r\n$11\r\n')], limits), RequestTooLargeError, 'Protocol error: invalid bulk length');
      // Default limit: 512 MiB.
      expectProtocolError(() => parseOrThrow([b(`*1\r\n$${512 * 1024 * 1024 + 1}\r\n`)]), RequestTooLargeError);
    });

    it('too long an inline line, with or without its newline', () => {
      const limits = { maxInlineLength: 16 };
      expect(parseOrThrow([b(`${'a'.repeat(16)}\n`)], limits).map(strs)).toEqual([['a'.repeat(16)]]);
      expect(parseOrThrow([b(`${'a'.repeat(15)}\r\n`)], limits).map(strs)).toEqual([['a'.repeat(15)]]);
      expectProtocolError(() => parseOrThrow([b(`${'a'.repeat(17)}\n`)], limits), RequestTooLargeError, 'Protocol error: too big inline request');
      // No newline yet: refused as soon as more than the limit is buffered.
      expectProtocolError(() => parseOrThrow([b('a'.repeat(17))], limits), RequestTooLargeError, 'Protocol error: too big inline request');
      expectProtocolError(() => parseOrThrow(bytewise(b('a'.repeat(17))), limits), RequestTooLargeError);
      // Exactly the limit without a newline is still waiting.
      const waiting = run([b('a'.repeat(16))], limits);
      expect(waiting.error).toBeNull();
      expect(waiting.requests).toEqual([]);
    });

    it('too many inline arguments', () => {
      const limits = { maxMultibulkLength: 3 };
      expect(parseOrThrow([b('a b c\r\n')], limits).map(strs)).toEqual([['a', 'b', 'c']]);
      expectProtocolError(() => parseOrThrow([b('a b c d\r\n')], limits), RequestTooLargeError);
    });
  });
});

describe('RequestParser: large requests', () => {
  afterEach(() => vi.restoreAllMocks());

  /** Sums the bytes Buffer.concat produces while `fn` runs (copies made by the parser). */
  function bytesConcatenated(fn: () => void): number {
    const original = Buffer.concat;
    let total = 0;
    const spy = vi.spyOn(Buffer, 'concat').mockImplementation((list: readonly Uint8Array[], totalLength?: number) => {
      const out = original(list, totalLength);
      total += out.length;
      return out;
    });
    try {
      fn();
    } finally {
      spy.mockRestore();
    }
    return total;
  }

  it('a 5 MB bulk in 64 KB chunks: one request, exact bytes, buffer tracks what was received', () => {
    const r = prng(5);
    const value = randomBytes(r, 5 * 1024 * 1024);
    const input = encode(['SET', 'big', value]);
    const parser = new RequestParser();
    const got: Parsed[] = [];
    let fed = 0;
    const copied = bytesConcatenated(() => {
      for (const chunk of chunked(input, 64 * 1024)) {
        fed += chunk.length;
        parser.feed(chunk, (args, raw) => got.push({ args, raw }));
        if (fed < input.length) {
          expect(parser.bufferedBytes).toBe(fed);
        }
      }
    });
    expect(got).toHaveLength(1);
    expect(got[0]!.args[2]!.equals(value)).toBe(true);
    expect(got[0]!.raw!.equals(input)).toBe(true);
    expect(parser.bufferedBytes).toBe(0);
    // One join of the collected chunks, not one per chunk (which would be ~80x the size).
    expect(copied).toBeLessThanOrEqual(2 * input.length);
  });

  it('two large bulks in one request, a split header, and requests pipelined after them', () => {
    const r = prng(6);
    const v1 = randomBytes(r, 300_000);
    const v2 = randomBytes(r, 200_000);
    const input = Buffer.concat([encode(['MSET', 'a', v1, 'b', v2]), encode(['GET', 'a']), b('PING\r\n')]);
    for (const size of [64 * 1024, 1000, 7, 300_003]) {
      // Start with an odd cut inside the first length line, then fixed-size chunks.
      const head = input.indexOf('$300000') + 3;
      const chunks = [input.subarray(0, head), ...chunked(input.subarray(head), size)];
      const requests = parseOrThrow(chunks);
      expect(requests.map((q) => q.args.length)).toEqual([5, 2, 1]);
      expect(requests[0]!.args[2]!.equals(v1)).toBe(true);
      expect(requests[0]!.args[4]!.equals(v2)).toBe(true);
      expect(requests[0]!.raw!.equals(encode(['MSET', 'a', v1, 'b', v2]))).toBe(true);
      expect(strs(requests[1]!)).toEqual(['GET', 'a']);
      expect(strs(requests[2]!)).toEqual(['PING']);
    }
  });

  it('a request with 100 000 small arguments in 64 KB chunks costs linear work', () => {
    const args = Array.from({ length: 100_000 }, (_, i) => b(`key:${i}:${'v'.repeat(i % 40)}`));
    const input = encode(args);
    const parser = new RequestParser();
    const got: Parsed[] = [];
    let fed = 0;
    const copied = bytesConcatenated(() => {
      for (const chunk of chunked(input, 64 * 1024)) {
        fed += chunk.length;
        parser.feed(chunk, (a, raw) => got.push({ args: a, raw }));
        if (fed < input.length) expect(parser.bufferedBytes).toBe(fed);
      }
    });
    expect(got).toHaveLength(1);
    expect(diffRequests(got, [{ args, raw: input }])).toBeNull();
    // Re-joining everything received so far on every chunk would copy ~30x the input.
    expect(copied).toBeLessThanOrEqual(3 * input.length);
  });

  it('100 000 empty arguments in 1 KB chunks cost linear work', () => {
    // 600 KB that took 23 s when each chunk re-joined and re-parsed the request from its start.
    const input = encode(Array.from({ length: 100_000 }, () => b('')));
    const parser = new RequestParser();
    const got: Parsed[] = [];
    const copied = bytesConcatenated(() => {
      for (const chunk of chunked(input, 1024)) parser.feed(chunk, (args, raw) => got.push({ args, raw }));
    });
    expect(got).toHaveLength(1);
    expect(got[0]!.args).toHaveLength(100_000);
    expect(got[0]!.args.every((a) => a.length === 0)).toBe(true);
    expect(got[0]!.raw!.equals(input)).toBe(true);
    expect(copied).toBeLessThanOrEqual(3 * input.length);
  });
});

describe('RequestParser: differential fuzz against redis-parser', () => {
  it('2000 random commands, at random split points, match the oracle and the originals', () => {
    const seed = 0x5eed1;
    const r = prng(seed);
    const commands = Array.from({ length: 2000 }, () => randomCommand(r));
    const input = Buffer.concat(commands.map((c) => encode(c)));
    const want: Parsed[] = commands.map((c) => ({ args: c, raw: encode(c) }));

    // The oracle agrees with our encoder and the originals.
    const oracle = oracleParse(input);
    expect(oracle.errors).toEqual([]);
    expect(oracle.replies).toHaveLength(commands.length);
    const fromOracle = oracle.replies.map((rep, i) => ({ args: rep as Buffer[], raw: want[i]!.raw }));
    expect(diffRequests(fromOracle, want)).toBeNull();

    for (const maxChunk of [input.length, 7, 100, 1500, 70_000]) {
      const chunks = maxChunk === input.length ? [input] : randomChunks(r, input, maxChunk);
      const res = run(chunks);
      expect(res.error, `seed ${seed} maxChunk ${maxChunk}`).toBeNull();
      expect(diffRequests(res.requests, want), `seed ${seed} maxChunk ${maxChunk}`).toBeNull();
      expect(res.maxOverBuffer).toBeLessThanOrEqual(0);
    }
  });

  it('each random command is parsed the same at every split offset', () => {
    const seed = 0x5eed2;
    const r = prng(seed);
    for (let n = 0; n < 60; n++) {
      const cmd = Array.from({ length: intIn(r, 1, 4) }, () => randomBytes(r, intIn(r, 0, 12)));
      const input = encode(cmd);
      const want: Parsed[] = [{ args: cmd, raw: input }];
      const oracle = oracleParse(input).replies as Buffer[][];
      expect(oracle).toEqual([cmd]);
      for (let cut = 0; cut <= input.length; cut++) {
        const d = diffRequests(parseOrThrow(splitAt(input, cut)), want);
        if (d !== null) expect(d, `seed ${seed} command ${n} cut ${cut}`).toBeNull();
      }
    }
  });
});

describe('RequestParser: garbage fuzz', () => {
  const ALPHABET = b('*$-+:0123456789\r\n\r\n\r\n "\'\\xabcPING ');

  function garbage(r: () => number): Buffer {
    const kind = r();
    if (kind < 0.4) {
      // Bytes from the framing alphabet, which reach far deeper into the parser than noise.
      const len = intIn(r, 0, 120);
      const out = Buffer.allocUnsafe(len);
      for (let i = 0; i < len; i++) out[i] = ALPHABET[intIn(r, 0, ALPHABET.length - 1)]!;
      return out;
    }
    if (kind < 0.55) return randomBytes(r, intIn(r, 0, 200));
    // A valid pipeline (sometimes truncated) with a few bytes flipped or replaced.
    const valid = Buffer.concat(Array.from({ length: intIn(r, 1, 3) }, () => encode(Array.from({ length: intIn(r, 1, 4) }, () => randomBytes(r, intIn(r, 0, 20))))));
    const out = Buffer.from(valid.subarray(0, r() < 0.5 ? valid.length : intIn(r, 0, valid.length)));
    const flips = intIn(r, 1, 3);
    for (let i = 0; i < flips && out.length > 0; i++) {
      const at = intIn(r, 0, out.length - 1);
      out[at] = r() < 0.5 ? out[at]! ^ (1 << intIn(r, 0, 7)) : ALPHABET[intIn(r, 0, ALPHABET.length - 1)]!;
    }
    return out;
  }

  it('5000 random inputs: requests, waiting, or a ProtocolError — nothing else, never slow', () => {
    const seed = 0xbad5eed;
    const r = prng(seed);
    const limitsChoices: Partial<ParserLimits>[] = [{}, { maxBulkLength: 64, maxMultibulkLength: 8, maxInlineLength: 32 }];
    let errors = 0;
    let slowest = 0;
    // Collected and asserted once: an expect() per check would dominate the run time.
    const failures: string[] = [];
    for (let n = 0; n < 5000 && failures.length < 10; n++) {
      const input = garbage(r);
      const limits = limitsChoices[n % 2]!;
      const fail = (what: string): void => {
        failures.push(`seed ${seed} input ${n} ${JSON.stringify(input.toString('latin1'))}: ${what}`);
      };
      const start = performance.now();
      const whole = run([input], limits);
      const split = run(randomChunks(r, input, 9), limits);
      const bytes = run(bytewise(input), limits);
      slowest = Math.max(slowest, performance.now() - start);

      for (const [name, res] of [['whole', whole], ['split', split], ['bytes', bytes]] as const) {
        if (res.error !== null) {
          errors++;
          const e = res.error;
          const ok =
            (e instanceof MalformedRequestError && e.code === 'EPROTO') || (e instanceof RequestTooLargeError && e.code === 'ETOOLARGE');
          if (!ok) fail(`${name}: threw ${String(e)}, not a ProtocolError subclass with its code`);
        }
        // Never holds more than it was given.
        if (res.maxOverBuffer > 0) fail(`${name}: buffered ${res.maxOverBuffer} bytes more than fed`);
      }
      // However the input is split, the same requests come out and it fails the same way.
      for (const [name, res] of [['split', split], ['bytes', bytes]] as const) {
        const d = diffRequests(res.requests, whole.requests);
        if (d !== null) fail(`${name} differs from whole: ${d}`);
        const code = (res.error as ProtocolError | null)?.code ?? 'none';
        const wholeCode = (whole.error as ProtocolError | null)?.code ?? 'none';
        if (code !== wholeCode) fail(`${name} ended with ${code}, whole with ${wholeCode}`);
      }
    }
    expect(failures).toEqual([]);
    // The generator must actually reach the error paths.
    expect(errors).toBeGreaterThan(1000);
    // Each input takes well under a millisecond; the bound only catches a hang or a blow-up.
    expect(slowest).toBeLessThan(1000);
  });
});
