/**
 * The compiled command table against a live redis-server used as an oracle: for a corpus of
 * commands, and for a sweep over every key-bearing command of the table, extractKeyIndexes()
 * must name exactly the keys `COMMAND GETKEYS` names.
 *
 * The server is this file's own (free port, temp dir, no persistence), stopped in afterAll.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_COMMANDS } from './generated.js';
import {
  allCommands,
  blocksConnection,
  checkArity,
  CommandFlag,
  extractKeyIndexes,
  KeyExtractionError,
  lookupCommand,
  lookupCommandByName,
  resolveCommand,
  type CommandInfo,
} from './keys.js';
import { commandPolicies, policyFor, policyNames, PROXY_EXTRA_COMMANDS } from './policy.js';
import type { CommandSpec } from './types.js';

// --- a private redis-server --------------------------------------------------------------

let server: ChildProcess | undefined;
let dir: string | undefined;
let redis: Redis | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'reborn-keys-test-'));
  const port = await freePort();
  const child = spawn(
    process.env.REDIS_SERVER ?? 'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  server = child;
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {}); // refused connects while the server starts are retried below
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    try {
      await client.connect();
      await client.ping();
      redis = client;
      return;
    } catch (err) {
      client.disconnect();
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function stopRedis(): Promise<void> {
  redis?.disconnect();
  const child = server;
  if (child !== undefined && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}

beforeAll(startRedis);
afterAll(stopRedis);

// --- helpers ------------------------------------------------------------------------------

const bytes = (args: readonly string[]): Buffer[] => args.map((a) => Buffer.from(a));

type Oracle = { keys: string[] } | { error: string };

async function oracle(args: readonly string[]): Promise<Oracle> {
  try {
    const reply = (await redis!.call('COMMAND', 'GETKEYS', ...args)) as string[];
    return { keys: reply };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

type Ours = { keys: string[] } | { thrown: KeyExtractionError } | { unresolved: true };

function ours(args: readonly string[]): Ours {
  const argv = bytes(args);
  const info = resolveCommand(argv);
  if (info === undefined) return { unresolved: true };
  try {
    return { keys: extractKeyIndexes(info, argv).map((i) => args[i]!) };
  } catch (err) {
    if (err instanceof KeyExtractionError) return { thrown: err };
    throw err;
  }
}

/**
 * Agreement: the same keys when Redis finds keys. When Redis finds none or refuses the
 * arguments ("Invalid arguments specified for command"), we must not invent keys: we find
 * none either, or throw a KeyExtractionError (invalid numkeys — Redis's fallback parsers are
 * laxer than the commands themselves, see the numkeys tests). Returns a description of the
 * disagreement, or undefined.
 */
async function disagreement(args: readonly string[]): Promise<string | undefined> {
  const want = await oracle(args);
  const got = ours(args);
  const label = args.join(' ');
  const show = (o: Ours): string =>
    'keys' in o ? JSON.stringify(o.keys) : 'thrown' in o ? `throws ${o.thrown.reason}` : 'unresolved';
  if ('keys' in want && want.keys.length > 0) {
    if ('keys' in got && JSON.stringify(got.keys) === JSON.stringify(want.keys)) return undefined;
    return `${label}: redis ${JSON.stringify(want.keys)}, ours ${show(got)}`;
  }
  if ('thrown' in got || ('keys' in got && got.keys.length === 0)) return undefined;
  return `${label}: redis ${'keys' in want ? '[]' : want.error}, ours ${show(got)}`;
}

async function expectAgreement(args: readonly string[]): Promise<void> {
  expect(await disagreement(args)).toBeUndefined();
}

// --- the corpus ---------------------------------------------------------------------------

const CORPUS: string[][] = [
  ['GET', 'k'],
  ['SET', 'k', 'v'],
  ['SET', 'k', 'v', 'GET'],
  ['SET', 'k', 'v', 'EX', '10', 'NX', 'GET'],
  ['GETEX', 'k', 'PERSIST'],
  ['APPEND', 'k', 'v'],
  ['INCRBYFLOAT', 'k', '1.5'],
  ['LCS', 'a', 'b', 'LEN'],
  ['MSET', 'a', '1', 'b', '2', 'c', '3'],
  ['MSETNX', 'a', '1', '{a}b', '2'],
  ['MGET', 'a', 'b', 'c'],
  ['DEL', 'a'],
  ['DEL', 'a', 'b', 'c', 'd'],
  ['UNLINK', 'a', 'b'],
  ['EXISTS', 'a', 'a', 'b'],
  ['TOUCH', 'x', 'y'],
  ['EVAL', 'return 1', '0'],
  ['EVAL', 'return 1', '1', 'k1'],
  ['EVAL', 'return 1', '3', 'k1', 'k2', 'k3', 'arg1', 'arg2'],
  ['EVALSHA', 'abc', '2', 'k1', 'k2', 'a'],
  ['EVAL_RO', 'return 1', '1', 'k1', 'a'],
  ['EVALSHA_RO', 'abc', '0', 'a'],
  ['FCALL', 'f', '2', 'k1', 'k2', 'a'],
  ['FCALL_RO', 'f', '0'],
  ['ZUNIONSTORE', 'dst', '2', 'z1', 'z2', 'WEIGHTS', '1', '2'],
  ['ZINTERSTORE', 'dst', '3', 'z1', 'z2', 'z3', 'AGGREGATE', 'MAX'],
  ['ZDIFFSTORE', 'dst', '1', 'z1'],
  ['ZINTER', '2', 'z1', 'z2', 'WITHSCORES'],
  ['ZUNION', '1', 'z1'],
  ['ZDIFF', '3', 'z1', 'z2', 'z3'],
  ['ZINTERCARD', '2', 'z1', 'z2', 'LIMIT', '5'],
  ['ZRANGESTORE', 'dst', 'src', '0', '-1'],
  ['ZADD', 'z', '1', 'm'],
  ['ZMPOP', '2', 'z1', 'z2', 'MIN', 'COUNT', '2'],
  ['BZMPOP', '0', '2', 'z1', 'z2', 'MAX'],
  ['BZPOPMIN', 'z1', 'z2', '0'],
  ['SINTERCARD', '2', 's1', 's2'],
  ['SINTERCARD', '3', 's1', 's2', 's3', 'LIMIT', '1'],
  ['SINTERSTORE', 'dst', 's1', 's2'],
  ['SUNION', 's1', 's2', 's3'],
  ['SMOVE', 's1', 's2', 'm'],
  ['LMPOP', '2', 'l1', 'l2', 'LEFT'],
  ['LMPOP', '1', 'l1', 'RIGHT', 'COUNT', '3'],
  ['BLMPOP', '0', '2', 'l1', 'l2', 'LEFT'],
  ['BLPOP', 'l1', 'l2', 'l3', '0'],
  ['BRPOPLPUSH', 'src', 'dst', '0'],
  ['LMOVE', 'src', 'dst', 'LEFT', 'RIGHT'],
  ['BLMOVE', 'src', 'dst', 'LEFT', 'RIGHT', '0'],
  ['RPOPLPUSH', 'src', 'dst'],
  ['XADD', 's', '*', 'f', 'v'],
  ['XADD', 's', 'MAXLEN', '~', '100', '*', 'f', 'v'],
  ['XREAD', 'STREAMS', 's1', '0'],
  ['XREAD', 'COUNT', '10', 'STREAMS', 's1', 's2', 's3', '0', '0', '0'],
  ['XREAD', 'BLOCK', '0', 'STREAMS', 's1', 's2', '$', '$'],
  ['XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', 's1', '>'],
  ['XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', '1', 'STREAMS', 's1', 's2', '>', '>'],
  ['XGROUP', 'CREATE', 's', 'g', '$', 'MKSTREAM'],
  ['XINFO', 'STREAM', 's', 'FULL'],
  ['XAUTOCLAIM', 's', 'g', 'c', '0', '0'],
  ['GEORADIUS', 'g', '0', '0', '1', 'km'],
  ['GEORADIUS', 'g', '0', '0', '1', 'km', 'STORE', 'dst'],
  ['GEORADIUS', 'g', '0', '0', '1', 'km', 'STOREDIST', 'dst2'],
  ['GEORADIUS', 'g', '0', '0', '1', 'km', 'STORE', 'dst', 'STOREDIST', 'dst2'],
  ['GEORADIUSBYMEMBER', 'g', 'm', '1', 'km', 'STORE', 'dst'],
  ['GEOSEARCHSTORE', 'dst', 'src', 'FROMMEMBER', 'm', 'BYRADIUS', '1', 'km'],
  ['SORT', 'k'],
  ['SORT', 'k', 'ALPHA', 'STORE', 'dst'],
  ['SORT', 'k', 'BY', 'w_*', 'GET', '#', 'GET', 'o_*', 'LIMIT', '0', '10', 'STORE', 'dst'],
  ['SORT', 'k', 'STORE', 'a', 'STORE', 'b'],
  ['SORT_RO', 'k', 'BY', 'w_*'],
  ['MIGRATE', 'host', '6379', 'k', '0', '5000'],
  ['MIGRATE', 'host', '6379', '', '0', '5000', 'COPY', 'KEYS', 'a', 'b', 'c'],
  ['OBJECT', 'ENCODING', 'k'],
  ['OBJECT', 'FREQ', 'k'],
  ['MEMORY', 'USAGE', 'k', 'SAMPLES', '5'],
  ['BITOP', 'AND', 'dst', 'a', 'b', 'c'],
  ['BITFIELD', 'k', 'GET', 'u8', '0'],
  ['BITCOUNT', 'k', '0', '-1'],
  ['RENAME', 'a', 'b'],
  ['RENAMENX', 'a', 'a'],
  ['COPY', 'a', 'b', 'REPLACE'],
  ['DUMP', 'k'],
  ['RESTORE', 'k', '0', 'payload', 'REPLACE'],
  ['PFMERGE', 'dst', 'h1', 'h2'],
  ['PFCOUNT', 'h1', 'h2'],
  ['HSET', 'h', 'f', 'v', 'f2', 'v2'],
  ['HMGET', 'h', 'f1', 'f2'],
  ['EXPIRE', 'k', '10', 'NX'],
  ['WATCH', 'a', 'b'],
  ['SPUBLISH', 'chan', 'msg'],
  ['SSUBSCRIBE', 'c1', 'c2'],
];

describe('extractKeyIndexes against COMMAND GETKEYS', () => {
  it('has a corpus of at least 60 commands', () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(60);
  });

  for (const args of CORPUS) {
    it(args.join(' '), async () => {
      await expectAgreement(args);
    });
  }

  it('agrees on a sweep over every key-bearing command of the table', async () => {
    const problems: string[] = [];
    let checked = 0;
    for (const spec of REDIS_COMMANDS) {
      for (const cmd of [spec, ...(spec.subcommands ?? [])]) {
        if (cmd.keySpecs.length === 0) continue;
        for (const args of sweepArgs(cmd)) {
          const problem = await disagreement(args);
          if (problem !== undefined) problems.push(problem);
          checked++;
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(400);
  });
});

/**
 * Argument lists for one command: `name [sub] a1 a2 …` at several lengths, with every
 * numkeys position holding 1 or 2, and with each begin keyword inserted.
 */
function sweepArgs(cmd: CommandSpec): string[][] {
  const head = cmd.name.split('|');
  const minArgc = Math.abs(cmd.arity);
  const lengths = cmd.arity > 0 ? [cmd.arity] : [minArgc, minArgc + 1, minArgc + 2, minArgc + 3, minArgc + 5];
  const out: string[][] = [];
  for (const numkeys of ['1', '2']) {
    for (const argc of lengths) {
      const args = [...head];
      for (let i = head.length; i < argc; i++) args.push(`a${i}`);
      for (const ks of cmd.keySpecs) {
        if ('index' in ks.begin && 'keynum' in ks.find) {
          const at = ks.begin.index + ks.find.keynum.keynumIdx;
          if (at < args.length) args[at] = numkeys;
        }
      }
      out.push(args);
      for (const ks of cmd.keySpecs) {
        if (!('keyword' in ks.begin)) continue;
        const at = ks.begin.startFrom > 0 ? Math.max(ks.begin.startFrom, head.length) : args.length + ks.begin.startFrom;
        if (at < head.length || at >= args.length) continue;
        const withKeyword = [...args];
        withKeyword[at] = ks.begin.keyword;
        out.push(withKeyword);
      }
    }
  }
  return out;
}

// --- numkeys and bounds -------------------------------------------------------------------

describe('invalid numkeys and malformed key positions', () => {
  // [command, what extractKeyIndexes does: the KeyExtractionError reason, or the keys found]
  const cases: Array<[string[], string | string[]]> = [
    [['EVAL', 'return 1', 'abc', 'k'], 'numkeys-not-integer'],
    [['EVAL', 'return 1', '01', 'k'], 'numkeys-not-integer'],
    [['EVAL', 'return 1', '+1', 'k'], 'numkeys-not-integer'],
    [['EVAL', 'return 1', '', 'k'], 'numkeys-not-integer'],
    [['EVAL', 'return 1', '99999999999999999999999', 'k'], 'numkeys-not-integer'],
    [['EVAL', 'return 1', '-1', 'k'], 'numkeys-negative'],
    [['EVAL', 'return 1', '2', 'k'], 'numkeys-too-large'],
    [['EVAL', 'return 1', '9007199254740993', 'k'], 'numkeys-too-large'],
    [['FCALL', 'f', '3', 'k'], 'numkeys-too-large'],
    [['ZUNIONSTORE', 'd', '3', 'a', 'b'], 'numkeys-too-large'],
    [['ZINTER', 'x', 'a'], 'numkeys-not-integer'],
    [['SINTERCARD', '-5', 'a'], 'numkeys-negative'],
    [['LMPOP', 'x', 'a', 'LEFT'], 'numkeys-not-integer'],
    [['XREAD', 'STREAMS', 's'], 'syntax'],
    [['XREAD', 'COUNT', '1', 'STREAMS', 's'], 'syntax'],
    // A keyword in the last position is not searched (Redis neither): no key from that spec.
    [['XREAD', 'COUNT', '1', 'STREAMS'], []],
    [['GEORADIUS', 'g', '0', '0', '1', 'km', 'STORE'], ['g']],
  ];
  for (const [args, expected] of cases) {
    it(`${args.join(' ')} → ${JSON.stringify(expected)}`, async () => {
      const got = ours(args);
      if (typeof expected === 'string') {
        expect('thrown' in got && got.thrown.reason).toBe(expected);
        if ('thrown' in got) {
          expect(got.thrown.code).toBe('EKEYS');
          expect(`ERR ${got.thrown.message}`).toBe(got.thrown.redisMessage);
        }
      } else {
        expect(got).toEqual({ keys: expected });
      }
      // Redis refuses every one of these when run, so refusing (or routing by the keys we
      // did find and letting the backend refuse) loses nothing.
      const reply = await redis!.call(args[0]!, ...args.slice(1)).then(
        () => null,
        (e: Error) => e.message,
      );
      expect(reply, 'redis refuses it too').toMatch(/^(ERR|WRONGTYPE|NOSCRIPT)/);
    });
  }

  it('answers the messages Redis answers for EVAL', async () => {
    for (const [numkeys, reason] of [['abc', 'numkeys-not-integer'], ['-1', 'numkeys-negative'], ['3', 'numkeys-too-large']] as const) {
      const args = ['EVAL', 'return 1', numkeys, 'k'];
      const got = ours(args);
      expect('thrown' in got && got.thrown.reason).toBe(reason);
      const err = await redis!.call('EVAL', 'return 1', numkeys, 'k').then(
        () => '',
        (e: Error) => e.message,
      );
      if ('thrown' in got) expect(err).toBe(got.thrown.redisMessage);
    }
  });

  it('treats numkeys 0 as no keys from that spec (Redis then answers the command itself)', () => {
    expect(ours(['EVAL', 's', '0'])).toEqual({ keys: [] });
    expect(ours(['ZUNIONSTORE', 'dst', '0', 'x'])).toEqual({ keys: ['dst'] });
  });

  it('reports ranges that run past the arguments when arity was not checked first', () => {
    const info = lookupCommandByName('get')!;
    expect(() => extractKeyIndexes(info, bytes(['GET']))).toThrow(KeyExtractionError);
  });
});

// --- lookup -------------------------------------------------------------------------------

describe('lookup', () => {
  it('is case-insensitive on raw bytes', () => {
    for (const name of ['get', 'GET', 'Get', 'gEt']) expect(lookupCommand(Buffer.from(name))?.name).toBe('get');
    expect(lookupCommand(Buffer.from('ZRANGEBYSCORE'))?.name).toBe('zrangebyscore');
    expect(lookupCommand(Buffer.from('restore-asking'))?.name).toBe('restore-asking');
    expect(lookupCommand(new Uint8Array(Buffer.from('xxgetxx')).subarray(2, 5))?.name).toBe('get');
  });

  it('returns undefined for unknown names, empty names and near misses', () => {
    for (const name of ['', 'gett', 'ge', 'g\u00c5t', 'getx'.repeat(20), 'get ', 'client|setname']) {
      expect(lookupCommand(Buffer.from(name, 'latin1')), JSON.stringify(name)).toBeUndefined();
    }
    // Only A-Z fold: '\r' (0x0d) differs from '-' (0x2d) by the case bit but is no letter.
    expect(lookupCommand(Buffer.from('restore\rasking', 'latin1'))).toBeUndefined();
    expect(lookupCommand(Buffer.from('RESTORE-ASKING', 'latin1'))?.name).toBe('restore-asking');
  });

  it('finds every command and subcommand of the table', () => {
    let n = 0;
    for (const spec of REDIS_COMMANDS) {
      expect(lookupCommand(Buffer.from(spec.name.toUpperCase()))?.spec.name).toBe(spec.name);
      n++;
      for (const sub of spec.subcommands ?? []) {
        const [container, subName] = sub.name.split('|') as [string, string];
        expect(resolveCommand(bytes([container.toUpperCase(), subName.toUpperCase(), 'x']))?.name).toBe(sub.name);
        n++;
      }
    }
    expect(allCommands().length).toBe(REDIS_COMMANDS.length);
    expect(n).toBeGreaterThan(300);
  });

  it('resolves containers to their subcommands', () => {
    expect(resolveCommand(bytes(['client', 'SETNAME', 'x']))?.name).toBe('client|setname');
    expect(resolveCommand(bytes(['Client', 'setinfo', 'LIB-NAME', 'x']))?.name).toBe('client|setinfo');
    expect(resolveCommand(bytes(['OBJECT', 'encoding', 'k']))?.name).toBe('object|encoding');
    // No or unknown subcommand: the container, whose arity/policy produce the refusal.
    const bare = resolveCommand(bytes(['CLIENT']))!;
    expect(bare.name).toBe('client');
    expect(checkArity(bare, 1)).toBe(false);
    const unknown = resolveCommand(bytes(['CLIENT', 'NOPE']))!;
    expect(unknown.name).toBe('client');
    expect(unknown.policy).toEqual({ kind: 'unsupported', reason: 'unknown subcommand' });
    // Commands without subcommands ignore args[1].
    expect(resolveCommand(bytes(['GET', 'setname']))?.name).toBe('get');
    expect(resolveCommand(bytes(['NOPE']))).toBeUndefined();
    expect(resolveCommand([])).toBeUndefined();
    expect(lookupCommandByName('CLIENT SETNAME')?.name).toBe('client|setname');
    expect(lookupCommandByName('memory|usage')?.name).toBe('memory|usage');
  });

  it('checks arity the Redis way', () => {
    const get = lookupCommandByName('get')!;
    expect([1, 2, 3].map((n) => checkArity(get, n))).toEqual([false, true, false]);
    const mset = lookupCommandByName('mset')!;
    expect([2, 3, 4, 5].map((n) => checkArity(mset, n))).toEqual([false, true, true, true]);
  });

  it('carries flags, the fast path and the policy', () => {
    const get = lookupCommandByName('get')!;
    expect(get.readonly && !get.write && (get.flags & CommandFlag.fast) !== 0).toBe(true);
    expect([get.firstKey, get.lastKey, get.step, get.multiKey]).toEqual([1, 1, 1, false]);
    const mset = lookupCommandByName('mset')!;
    expect([mset.firstKey, mset.lastKey, mset.step, mset.multiKey]).toEqual([1, -1, 2, true]);
    const evalInfo = lookupCommandByName('eval')!;
    expect([evalInfo.firstKey, evalInfo.noMandatoryKeys, evalInfo.movableKeys]).toEqual([0, true, true]);
    expect(lookupCommandByName('blpop')!.blocking).toBe(true);
    expect(lookupCommandByName('sort')!.incompleteKeys).toBe(true);
    expect(lookupCommandByName('mget')!.policy).toEqual({ kind: 'split', merge: 'mget' });
    expect(lookupCommandByName('spublish')!.hasKeys).toBe(false);
  });

  it('knows which requests would block a backend connection', () => {
    const check = (args: string[]): boolean => {
      const argv = bytes(args);
      return blocksConnection(resolveCommand(argv)!, argv);
    };
    expect(check(['BLPOP', 'l', '0'])).toBe(true);
    expect(check(['XREAD', 'STREAMS', 's', '0'])).toBe(false);
    expect(check(['XREAD', 'block', '100', 'STREAMS', 's', '0'])).toBe(true);
    expect(check(['XREAD', 'STREAMS', 'block', '0'])).toBe(false);
    expect(check(['XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', '0', 'STREAMS', 's', '>'])).toBe(true);
    expect(check(['XREADGROUP', 'GROUP', 'block', 'block', 'COUNT', 'block', 'STREAMS', 's', '>'])).toBe(false);
    expect(check(['XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', '1', 'NOACK', 'BLOCK', '5', 'STREAMS', 's', '>'])).toBe(true);
    // GROUP after other options (redis accepts any order), its names never read as keywords.
    expect(check(['XREADGROUP', 'NOACK', 'GROUP', 'STREAMS', 'c', 'BLOCK', '0', 'STREAMS', 's', '>'])).toBe(true);
    expect(check(['XREADGROUP', 'COUNT', '1', 'GROUP', 'STREAMS', 'c', 'BLOCK', '0', 'STREAMS', 's', '>'])).toBe(true);
    expect(check(['XREADGROUP', 'COUNT', '1', 'GROUP', 'g', 'BLOCK', 'STREAMS', 's', '>'])).toBe(false);
    expect(check(['GET', 'k'])).toBe(false);
  });
});

// --- policies -----------------------------------------------------------------------------

describe('policies', () => {
  const tableNames = (): string[] => {
    const names: string[] = [];
    for (const spec of [...REDIS_COMMANDS, ...PROXY_EXTRA_COMMANDS]) {
      names.push(spec.name);
      for (const sub of spec.subcommands ?? []) names.push(sub.name);
    }
    return names;
  };

  it('covers every command and subcommand of the table, and nothing else', () => {
    const table = new Set(tableNames());
    const explicit = new Set(policyNames());
    expect([...table].filter((n) => !explicit.has(n))).toEqual([]);
    expect([...explicit].filter((n) => !table.has(n))).toEqual([]);
    expect(commandPolicies().map((e) => e.name).sort()).toEqual([...table].sort());
  });

  it('splits exactly MGET, MSET, DEL, UNLINK, EXISTS, TOUCH', () => {
    const split = commandPolicies()
      .filter((e) => e.policy.kind === 'split')
      .map((e) => e.name)
      .sort();
    expect(split).toEqual(['del', 'exists', 'mget', 'mset', 'touch', 'unlink']);
    expect(policyFor('MSETNX').kind).toBe('route');
  });

  it('refuses unknown names conservatively', () => {
    expect(policyFor('nosuchcommand')).toEqual({ kind: 'unsupported', reason: 'unknown command' });
    expect(policyFor('client|nosuch')).toEqual({ kind: 'unsupported', reason: 'unknown command' });
    expect(policyFor('constructor')).toEqual({ kind: 'unsupported', reason: 'unknown command' });
    expect(policyFor('GET')).toEqual({ kind: 'route' });
  });

  it('routes key-bearing commands only, and every routed command has keys', () => {
    for (const { name, policy, spec } of commandPolicies()) {
      const info = lookupCommandByName(name)!;
      expect(info, name).toBeDefined();
      // PUBLISH/SPUBLISH are routed by their channel, which is not a key.
      if ((policy.kind === 'route' && policy.channel !== true) || policy.kind === 'split') expect(info.hasKeys, name).toBe(true);
      // Blocking commands are routed (the proxy gives each its own backend connection).
      if (info.blocking) expect(policy.kind, name).toBe('route');
      // Pub/sub: answered by the proxy's hub (pubsub.ts), or routed by channel.
      if (spec.flags.includes('pubsub')) expect(policy.kind === 'local' || (policy.kind === 'route' && policy.channel === true), name).toBe(true);
      if (policy.kind === 'unsupported') expect(policy.reason.length, name).toBeGreaterThan(5);
    }
  });

  it('routes exactly PUBLISH and SPUBLISH by channel', () => {
    const byChannel = commandPolicies()
      .filter(({ policy }) => policy.kind === 'route' && policy.channel === true)
      .map(({ name }) => name);
    expect(byChannel.sort()).toEqual(['publish', 'spublish']);
  });

  it('answers keyspace-wide commands locally (fan-out over every master)', () => {
    for (const name of ['keys', 'scan', 'flushdb', 'flushall', 'randomkey']) expect(policyFor(name).kind, name).toBe('local');
  });

  it('compiled infos carry the same policy', () => {
    const infos: CommandInfo[] = [];
    for (const info of allCommands()) infos.push(info, ...(info.subcommands?.values() ?? []));
    for (const info of infos) expect(info.policy, info.name).toBe(policyFor(info.name));
  });
});
