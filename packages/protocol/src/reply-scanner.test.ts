/**
 * ReplyScanner frames backend replies by hand on the hot path, so it is tested at every chunk
 * boundary (whole, byte by byte, split at every offset) and fuzzed with generated nested
 * replies, using redis-parser as an independent oracle. Random tests are seeded; the seed is
 * in the failure message.
 */
import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { MalformedReplyError, ProtocolError } from './errors.js';
import { ReplyScanner, errorReplyMessage, isErrorReply, parseIntegerReply, splitAggregateReply, splitArrayReply } from './reply-scanner.js';

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

type Reply =
  | { t: 'simple'; v: string }
  | { t: 'error'; v: string }
  | { t: 'int'; v: bigint }
  | { t: 'bulk'; v: Buffer | null }
  | { t: 'array'; v: Reply[] | null };

/** Our own encoder (not resp.ts), so the tests share no code with what they test. */
function encodeReply(r: Reply): Buffer {
  switch (r.t) {
    case 'simple':
      return b(`+${r.v}\r\n`);
    case 'error':
      return b(`-${r.v}\r\n`);
    case 'int':
      return b(`:${r.v}\r\n`);
    case 'bulk':
      return r.v === null ? b('$-1\r\n') : Buffer.concat([b(`$${r.v.length}\r\n`), r.v, b('\r\n')]);
    case 'array':
      return r.v === null ? b('*-1\r\n') : Buffer.concat([b(`*${r.v.length}\r\n`), ...r.v.map(encodeReply)]);
  }
}

/** What redis-parser (returnBuffers, stringNumbers) yields for a reply, errors as `{ error }`. */
function expectedOracleValue(r: Reply): unknown {
  switch (r.t) {
    case 'simple':
      return b(r.v);
    case 'error':
      return { error: r.v };
    case 'int':
      return r.v.toString();
    case 'bulk':
      return r.v;
    case 'array':
      return r.v === null ? null : r.v.map(expectedOracleValue);
  }
}

function normalizeOracle(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(normalizeOracle);
  if (v instanceof Error) return { error: v.message };
  return v;
}

/**
 * A compact string form of a normalized value: vitest's deep equality on thousands of
 * Buffers is slow, string comparison is not, and a mismatch still shows which value differs.
 */
function fingerprint(v: unknown): string {
  if (v === null) return 'null';
  if (Buffer.isBuffer(v)) return `b:${v.toString('hex')}`;
  if (Array.isArray(v)) return `[${v.map(fingerprint).join(',')}]`;
  if (typeof v === 'string') return `s:${v}`;
  if (typeof v === 'object' && 'error' in v) return `e:${JSON.stringify((v as { error: string }).error)}`;
  return `?${String(v)}`;
}

/** Every top-level value redis-parser finds in `input`, in order; throws on a fatal error. */
function oracleParse(input: Buffer): unknown[] {
  const out: unknown[] = [];
  let fatal: Error | null = null;
  const parser = new RedisParser({
    returnBuffers: true,
    stringNumbers: true,
    returnReply: (reply) => out.push(normalizeOracle(reply)),
    returnError: (err) => out.push(normalizeOracle(err)),
    returnFatalError: (err) => {
      fatal = err;
    },
  });
  parser.execute(input);
  if (fatal !== null) throw fatal;
  return out;
}

interface ScanResult {
  replies: Buffer[];
  error: unknown;
}

/** Feeds `chunks`, copying each reply; checks bufferedBytes equals the incomplete tail after every feed. */
function scan(chunks: readonly Buffer[], scanner = new ReplyScanner()): ScanResult {
  const replies: Buffer[] = [];
  let fed = 0;
  let consumed = 0;
  try {
    for (const chunk of chunks) {
      fed += chunk.length;
      scanner.feed(chunk, (reply) => {
        consumed += reply.length;
        replies.push(Buffer.from(reply));
      });
      if (scanner.bufferedBytes !== fed - consumed) {
        throw new Error(`bufferedBytes ${scanner.bufferedBytes}, but ${fed - consumed} bytes are unconsumed`);
      }
    }
  } catch (err) {
    return { replies, error: err };
  }
  return { replies, error: null };
}

function scanOrThrow(chunks: readonly Buffer[], scanner?: ReplyScanner): Buffer[] {
  const r = scan(chunks, scanner);
  if (r.error !== null) throw r.error;
  return r.replies;
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

/** First difference between two lists of raw replies, or null. */
function diffReplies(got: readonly Buffer[], want: readonly Buffer[]): string | null {
  if (got.length !== want.length) return `got ${got.length} replies, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (!got[i]!.equals(want[i]!)) {
      return `reply ${i}: ${JSON.stringify(got[i]!.toString('latin1').slice(0, 200))} != ${JSON.stringify(want[i]!.toString('latin1').slice(0, 200))}`;
    }
  }
  return null;
}

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

const SPECIAL = [0x0d, 0x0a, 0x2a, 0x24, 0x2d, 0x2b, 0x3a, 0x30, 0x39, 0x00, 0xff, 0x20];

function randomBytes(r: () => number, len: number): Buffer {
  const buf = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) buf[i] = r() < 0.35 ? SPECIAL[intIn(r, 0, SPECIAL.length - 1)]! : intIn(r, 0, 255);
  return buf;
}

/** A line without CR or LF, with the framing characters in it. */
function randomLine(r: () => number): string {
  const chars = 'abcXYZ 019*$:+-_{}';
  let s = '';
  const n = intIn(r, 0, 20);
  for (let i = 0; i < n; i++) s += chars[intIn(r, 0, chars.length - 1)];
  return s;
}

function randomInt(r: () => number): bigint {
  const k = r();
  if (k < 0.2) return BigInt(intIn(r, -3, 3));
  if (k < 0.3) return r() < 0.5 ? 9223372036854775807n : -9223372036854775808n;
  const hi = BigInt(intIn(r, 0, 0x7fffffff));
  const lo = BigInt(intIn(r, 0, 0xffffffff));
  const v = (hi << 32n) | lo;
  return (r() < 0.5 ? -v : v) >> BigInt(intIn(r, 0, 62));
}

function randomReply(r: () => number, depth: number): Reply {
  const k = r();
  if (depth > 0 && k < 0.25) {
    if (r() < 0.1) return { t: 'array', v: r() < 0.5 ? null : [] };
    return { t: 'array', v: Array.from({ length: intIn(r, 1, 6) }, () => randomReply(r, depth - 1)) };
  }
  if (k < 0.35) return { t: 'simple', v: randomLine(r) };
  if (k < 0.45) return { t: 'error', v: `ERR ${randomLine(r)}` };
  if (k < 0.6) return { t: 'int', v: randomInt(r) };
  if (k < 0.65) return { t: 'bulk', v: null };
  const q = r();
  const len = q < 0.1 ? 0 : q < 0.9 ? intIn(r, 1, 40) : q < 0.997 ? intIn(r, 41, 2000) : intIn(r, 16_000, 70_000);
  return { t: 'bulk', v: randomBytes(r, len) };
}

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

function expectMalformed(fn: () => unknown, message?: string): void {
  let thrown: unknown = null;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(MalformedReplyError);
  expect(thrown).toBeInstanceOf(ProtocolError);
  expect((thrown as ProtocolError).code).toBe('EBADREPLY');
  if (message !== undefined) expect((thrown as Error).message).toBe(message);
}

// A hand-written stream covering every reply shape.
const SHAPES: [string, string][] = [
  ['simple', '+OK\r\n'],
  ['empty simple', '+\r\n'],
  ['error', '-ERR unknown command `FOO`, with args beginning with: \r\n'],
  ['error with a code', '-MOVED 3999 127.0.0.1:6381\r\n'],
  ['integer', ':1000\r\n'],
  ['negative integer', ':-42\r\n'],
  ['bulk', '$6\r\nfoobar\r\n'],
  ['empty bulk', '$0\r\n\r\n'],
  ['null bulk', '$-1\r\n'],
  ['bulk holding CRLF, * and $', '$14\r\n\r\n*1\r\n$3\r\n:1\r\n\r\n'],
  ['empty array', '*0\r\n'],
  ['null array', '*-1\r\n'],
  ['flat array', '*3\r\n$3\r\nfoo\r\n$-1\r\n:7\r\n'],
  ['array of bulks holding CRLF', '*2\r\n$5\r\n*2\r\n$\r\n$4\r\n\r\n\r\n\r\n'],
  ['nested 3 levels', '*3\r\n*2\r\n*3\r\n+a\r\n:1\r\n$1\r\nb\r\n*0\r\n*-1\r\n-ERR x\r\n'],
  ['array ending in nested empties', '*2\r\n:1\r\n*1\r\n*1\r\n*0\r\n'],
  ['array with an error element', '*2\r\n-ERR inner\r\n+OK\r\n'],
];

// ---------------------------------------------------------------------------------------------

describe('ReplyScanner: reply shapes', () => {
  it.each(SHAPES)('%s: one reply, exactly its bytes, nothing buffered', (_name, text) => {
    const input = b(text);
    const scanner = new ReplyScanner();
    expect(scanOrThrow([input], scanner)).toEqual([input]);
    expect(scanner.bufferedBytes).toBe(0);
    // Sanity check of the hand-written bytes: the oracle reads exactly one value from them.
    expect(oracleParse(input)).toHaveLength(1);
  });

  it.each(SHAPES)('%s: any prefix is incomplete (no reply, all of it buffered)', (_name, text) => {
    const input = b(text);
    for (let cut = 0; cut < input.length; cut++) {
      const scanner = new ReplyScanner();
      expect(scanOrThrow([input.subarray(0, cut)], scanner), `cut ${cut}`).toEqual([]);
      expect(scanner.bufferedBytes).toBe(cut);
    }
  });

  it('returns a reply that sits whole in the chunk as a view of it (zero copy)', () => {
    const chunk = b('+OK\r\n*2\r\n$3\r\nfoo\r\n:1\r\n');
    const replies: Buffer[] = [];
    new ReplyScanner().feed(chunk, (reply) => replies.push(reply));
    expect(replies.map(String)).toEqual(['+OK\r\n', '*2\r\n$3\r\nfoo\r\n:1\r\n']);
    expect(replies[1]!.buffer).toBe(chunk.buffer);
    expect(replies[1]!.byteOffset).toBe(chunk.byteOffset + 5);
  });
});

/** RESP3 shapes (redis-parser, the oracle above, reads RESP2 only): framed by hand. */
const RESP3_SHAPES: Array<[string, string]> = [
  ['null', '_\r\n'],
  ['double', ',3.14\r\n'],
  ['infinite double', ',-inf\r\n'],
  ['boolean', '#t\r\n'],
  ['big number', '(3492890328409238509324850943850943825024385\r\n'],
  ['verbatim string', '=15\r\ntxt:Some string\r\n'],
  ['blob error', '!21\r\nSYNTAX invalid syntax\r\n'],
  ['map', '%2\r\n+first\r\n:1\r\n+second\r\n,2.5\r\n'],
  ['empty map', '%0\r\n'],
  ['set', '~3\r\n$1\r\na\r\n_\r\n#f\r\n'],
  ['push', '>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n'],
  ['map of arrays of maps', '%1\r\n$1\r\nk\r\n*2\r\n%1\r\n+a\r\n_\r\n~0\r\n'],
  ['attribute before a value', '|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n:9\r\n'],
  ['attribute inside an array', '*2\r\n|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n:1\r\n'],
];

describe('ReplyScanner: RESP3 shapes', () => {
  it.each(RESP3_SHAPES)('%s: one reply, exactly its bytes, nothing buffered', (_name, text) => {
    const input = b(text);
    const scanner = new ReplyScanner();
    expect(scanOrThrow([input], scanner)).toEqual([input]);
    expect(scanner.bufferedBytes).toBe(0);
  });

  it.each(RESP3_SHAPES)('%s: any prefix is incomplete, and every split point frames it the same', (_name, text) => {
    const input = b(text);
    for (let cut = 0; cut < input.length; cut++) {
      expect(scanOrThrow([input.subarray(0, cut)]), `cut ${cut}`).toEqual([]);
      expect(scanOrThrow(splitAt(input, cut)), `split at ${cut}`).toEqual([input]);
    }
  });

  it('a stream of every RESP3 shape is split into exactly those replies', () => {
    const all = RESP3_SHAPES.map(([, t]) => b(t));
    expect(scanOrThrow([Buffer.concat(all)], new ReplyScanner())).toEqual(all);
  });

  it('splitAggregateReply reads maps flat, sets and pushes like arrays; errorReplyMessage reads blob errors', () => {
    expect(splitAggregateReply(b('%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n_\r\n'))!.map(String)).toEqual(['+a\r\n', ':1\r\n', '+b\r\n', '*1\r\n_\r\n']);
    expect(splitAggregateReply(b('~2\r\n,1.5\r\n#t\r\n'))!.map(String)).toEqual([',1.5\r\n', '#t\r\n']);
    expect(splitAggregateReply(b('>1\r\n=7\r\ntxt:abc\r\n'))!.map(String)).toEqual(['=7\r\ntxt:abc\r\n']);
    expect(splitAggregateReply(b('+OK\r\n'))).toBeNull();
    expect(isErrorReply(b('!3\r\nERR\r\n'))).toBe(true);
    expect(errorReplyMessage(b('!9\r\nERR x\r\ny z\r\n'))).toBe('ERR x\r\ny z');
  });
});

describe('ReplyScanner: every chunk boundary', () => {
  const replies = SHAPES.map(([, text]) => b(text));
  const stream = Buffer.concat(replies);

  it('a stream of every shape: whole and byte by byte', () => {
    expect(diffReplies(scanOrThrow([stream]), replies)).toBeNull();
    expect(diffReplies(scanOrThrow(bytewise(stream)), replies)).toBeNull();
  });

  it('a stream of every shape: split at every offset', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = diffReplies(scanOrThrow(splitAt(stream, cut)), replies);
      if (d !== null) expect(d, `split at ${cut}`).toBeNull();
    }
  });

  it('nested replies: split at every pair of offsets (three chunks)', () => {
    const sub = [b(SHAPES[14]![1]), b(SHAPES[13]![1]), b(SHAPES[9]![1])];
    const input = Buffer.concat(sub);
    for (let i = 0; i <= input.length; i++) {
      for (let j = i; j <= input.length; j++) {
        const d = diffReplies(scanOrThrow(splitAt(input, i, j)), sub);
        if (d !== null) expect(d, `split at ${i}, ${j}`).toBeNull();
      }
    }
  });

  it('reset() drops a partial reply and scanning starts afresh', () => {
    const scanner = new ReplyScanner();
    const got: string[] = [];
    scanner.feed(b('*3\r\n$3\r\nfoo\r\n$5\r\nab'), (r) => got.push(String(r)));
    expect(scanner.bufferedBytes).toBe(19);
    scanner.reset();
    expect(scanner.bufferedBytes).toBe(0);
    scanner.feed(b('+OK\r\n'), (r) => got.push(String(r)));
    expect(got).toEqual(['+OK\r\n']);
  });
});

describe('ReplyScanner: large replies', () => {
  it('a 3 MB bulk in 64 KB chunks: one reply, exact bytes, joined once', () => {
    const value = randomBytes(prng(3), 3 * 1024 * 1024);
    const reply = encodeReply({ t: 'bulk', v: value });
    const input = Buffer.concat([reply, b('+OK\r\n')]);
    const original = Buffer.concat;
    let copied = 0;
    const spy = vi.spyOn(Buffer, 'concat').mockImplementation((list: readonly Uint8Array[], totalLength?: number) => {
      const out = original(list, totalLength);
      copied += out.length;
      return out;
    });
    let got: Buffer[];
    try {
      got = scanOrThrow(chunked(input, 64 * 1024)); // also checks bufferedBytes after every chunk
    } finally {
      spy.mockRestore();
    }
    expect(got).toHaveLength(2);
    expect(got[0]!.equals(reply)).toBe(true);
    expect(got[1]!.toString()).toBe('+OK\r\n');
    expect(copied).toBeLessThanOrEqual(2 * input.length);
  });

  it('a large bulk inside a nested array, with a cut inside its length line', () => {
    const big = randomBytes(prng(4), 200_000);
    const reply = encodeReply({ t: 'array', v: [{ t: 'int', v: 1n }, { t: 'array', v: [{ t: 'bulk', v: big }, { t: 'simple', v: 'x' }] }] });
    const cut = reply.indexOf('$200000') + 4;
    for (const size of [64 * 1024, 999, 13]) {
      const chunks = [reply.subarray(0, cut), ...chunked(reply.subarray(cut), size)];
      expect(diffReplies(scanOrThrow(chunks), [reply])).toBeNull();
    }
  });
});

describe('ReplyScanner: malformed input', () => {
  const cases: [string, string, string | undefined][] = [
    ['unknown type byte', '?foo\r\n', 'unexpected reply type byte 0x3f'],
    ['unknown type byte', '@1\r\n+a\r\n+b\r\n', 'unexpected reply type byte 0x40'],
    ['negative map length', '%-1\r\n', 'invalid aggregate length in reply'],
    ['empty line', '\r\n', undefined],
    ['bad type byte inside an array', '*2\r\n+OK\r\n?x\r\n', 'unexpected reply type byte 0x3f'],
    ['non-numeric bulk length', '$abc\r\n', 'invalid bulk length in reply'],
    ['empty bulk length', '$\r\n', 'invalid bulk length in reply'],
    ['bulk length -2', '$-2\r\n', 'invalid bulk length in reply'],
    ['non-numeric array length', '*x\r\n', 'invalid multibulk length in reply'],
    ['array length -2', '*-2\r\n', 'invalid multibulk length in reply'],
    ['line ended by a bare LF', '+OK\n', 'reply line not terminated by CRLF'],
    ['bulk longer than its length', '$3\r\nfooXY', 'bulk reply not terminated by CRLF'],
    ['bulk followed by CR CR', '$3\r\nfoo\r\r\n', 'bulk reply not terminated by CRLF'],
    ['bulk followed by a bare LF', '$3\r\nfoo\n+OK\r\n', 'bulk reply not terminated by CRLF'],
    ['bulk followed by junk and LF', '$3\r\nfooX\n', 'bulk reply not terminated by CRLF'],
    ['bulk in an array followed by junk and LF', '*2\r\n$1\r\naZ\n:1\r\n', 'bulk reply not terminated by CRLF'],
  ];

  it.each(cases)('%s → MalformedReplyError, whole and byte by byte', (_name, text, message) => {
    expectMalformed(() => scanOrThrow([b(text)]), message);
    expectMalformed(() => scanOrThrow(bytewise(b(text))), message);
  });

  it('delivers the replies before the bad one', () => {
    const r = scan([b('+OK\r\n:1\r\n?x\r\n+later\r\n')]);
    expect(r.replies.map(String)).toEqual(['+OK\r\n', ':1\r\n']);
    expect(r.error).toBeInstanceOf(MalformedReplyError);
  });

  it('a bulk over the size limit is refused from its length line', () => {
    expect(scanOrThrow([b(`$100\r\n${'x'.repeat(100)}\r\n`)], new ReplyScanner(100))).toHaveLength(1);
    expectMalformed(() => scanOrThrow([b('$101\r\n')], new ReplyScanner(100)), 'bulk reply over the size limit');
  });

  it('a reply that grows past the size limit is refused', () => {
    const input = b(`*1000\r\n${'+x\r\n'.repeat(40)}`);
    expectMalformed(() => scanOrThrow([input], new ReplyScanner(100)), 'reply over the size limit');
    expectMalformed(() => scanOrThrow(bytewise(input), new ReplyScanner(100)), 'reply over the size limit');
  });

  it('a header line that never ends is refused', () => {
    const input = b(`+${'a'.repeat(70_000)}`);
    expectMalformed(() => scanOrThrow(chunked(input, 1024)), 'reply header line too long');
    expectMalformed(() => scanOrThrow([input]), 'reply header line too long');
  });
});

describe('ReplyScanner: fuzz against redis-parser', () => {
  it('1000 random nested replies, at random split points, come out as the original bytes', () => {
    const seed = 0xfeed5;
    const r = prng(seed);
    const models = Array.from({ length: 1000 }, () => randomReply(r, 3));
    const encoded = models.map(encodeReply);
    const stream = Buffer.concat(encoded);
    const wantValues = models.map((m) => fingerprint(expectedOracleValue(m)));

    // The oracle reads our encoding as the model says.
    expect(oracleParse(stream).map(fingerprint)).toEqual(wantValues);

    // Each reply the scanner emits is one whole value: the one the model describes.
    const whole = scan([stream]);
    expect(whole.error).toBeNull();
    expect(whole.replies.map((reply) => oracleParse(reply).map(fingerprint))).toEqual(wantValues.map((v) => [v]));

    // However the stream is split, the scanner emits exactly the original replies' bytes.
    for (const maxChunk of [stream.length, 1, 7, 200, 1500, 70_000]) {
      const ctx = `seed ${seed} maxChunk ${maxChunk}`;
      const chunks = maxChunk === stream.length ? [stream] : maxChunk === 1 ? bytewise(stream) : randomChunks(r, stream, maxChunk);
      const res = scan(chunks);
      expect(res.error, ctx).toBeNull();
      expect(diffReplies(res.replies, encoded), ctx).toBeNull();
    }
  });

  it('each random reply is framed the same at every split offset', () => {
    const seed = 0xfeed6;
    const r = prng(seed);
    for (let n = 0; n < 40; n++) {
      const model = randomReply(r, 3);
      const reply = encodeReply(model);
      if (reply.length > 400) continue;
      expect(oracleParse(reply).map(fingerprint)).toEqual([fingerprint(expectedOracleValue(model))]);
      for (let cut = 0; cut <= reply.length; cut++) {
        const d = diffReplies(scanOrThrow(splitAt(reply, cut)), [reply]);
        if (d !== null) expect(d, `seed ${seed} reply ${n} cut ${cut}`).toBeNull();
      }
    }
  });

  it('splitArrayReply gives back every element of random arrays', () => {
    const seed = 0xfeed7;
    const r = prng(seed);
    for (let n = 0; n < 500; n++) {
      const elements = Array.from({ length: intIn(r, 0, 8) }, () => randomReply(r, 2));
      const reply = encodeReply({ t: 'array', v: elements });
      const parts = splitArrayReply(reply);
      const d = parts === null ? 'null' : diffReplies(parts, elements.map(encodeReply));
      if (d !== null) expect(d, `seed ${seed} array ${n}`).toBeNull();
    }
  });
});

describe('splitArrayReply', () => {
  it('splits an array into its elements as views of the reply', () => {
    const reply = b('*4\r\n$3\r\nfoo\r\n$-1\r\n*2\r\n:1\r\n+x\r\n$4\r\n\r\n*1\r\n');
    const parts = splitArrayReply(reply);
    expect(parts?.map(String)).toEqual(['$3\r\nfoo\r\n', '$-1\r\n', '*2\r\n:1\r\n+x\r\n', '$4\r\n\r\n*1\r\n']);
    expect(parts![2]!.buffer).toBe(reply.buffer);
  });

  it('returns [] for the empty array and null for non-arrays and the null array', () => {
    expect(splitArrayReply(b('*0\r\n'))).toEqual([]);
    expect(splitArrayReply(b('*-1\r\n'))).toBeNull();
    expect(splitArrayReply(b('-ERR no\r\n'))).toBeNull();
    expect(splitArrayReply(b('+OK\r\n'))).toBeNull();
    expect(splitArrayReply(b('$2\r\n*1\r\n'))).toBeNull();
  });
});

describe('parseIntegerReply', () => {
  it.each([
    [':0\r\n', 0n],
    [':1\r\n', 1n],
    [':-42\r\n', -42n],
    [':9223372036854775807\r\n', 9223372036854775807n],
    [':-9223372036854775808\r\n', -9223372036854775808n],
    [':18446744073709551616\r\n', 18446744073709551616n], // never rounded through a JS number
  ])('%j → %s', (text, want) => {
    expect(parseIntegerReply(b(text))).toBe(want);
  });

  it.each(['+1\r\n', '$1\r\n1\r\n', '-1\r\n', '*1\r\n:1\r\n'])('%j is not an integer reply → null', (text) => {
    expect(parseIntegerReply(b(text))).toBeNull();
  });

  it.each([':\r\n', ':abc\r\n', ':1.5\r\n', ':0x10\r\n', ': 7\r\n', ':-\r\n', ':1e3\r\n', ':12 \r\n'])(
    'malformed integer %j → null',
    (text) => {
      expect(parseIntegerReply(b(text))).toBeNull();
    },
  );
});

describe('isErrorReply / errorReplyMessage', () => {
  it('recognises error replies only', () => {
    expect(isErrorReply(b('-ERR wrong\r\n'))).toBe(true);
    expect(isErrorReply(new Uint8Array([0x2d, 0x45, 0x0d, 0x0a]))).toBe(true);
    for (const text of ['+OK\r\n', ':-1\r\n', '$4\r\n-ERR\r\n', '*1\r\n-ERR x\r\n', '$-1\r\n']) {
      expect(isErrorReply(b(text)), text).toBe(false);
    }
    expect(isErrorReply(new Uint8Array(0))).toBe(false);
  });

  it('extracts the message without the dash and CRLF', () => {
    expect(errorReplyMessage(b('-MOVED 3999 127.0.0.1:6381\r\n'))).toBe('MOVED 3999 127.0.0.1:6381');
    expect(errorReplyMessage(b('-\r\n'))).toBe('');
  });
});
