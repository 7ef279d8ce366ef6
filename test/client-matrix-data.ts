/**
 * The data-type scenarios of the client matrix (not a test file itself): for each type, a
 * list of steps written with each library's own typed API (node-redis `zRangeWithScores`,
 * ioredis `zrange(…, 'WITHSCORES')`), so the values checked are exactly what the client
 * decodes — maps, doubles, sets and nulls included.
 *
 * Every step runs twice with the same client options: against a plain redis-server and
 * through the proxy. Each decoded value must equal redis's (deep equality of what the client
 * returned), and steps with a `check` also assert the value itself in a client-independent
 * form (so that the comparison never passes on two equally wrong answers). Steps whose reply
 * depends on the clock (TTL) are `exact: false` and only checked.
 *
 * Invariant: the keys of one run start with the run's prefix and multi-key steps use one
 * hash tag, so runs never share keys and every step is valid through the proxy.
 */
import { RESP_TYPES } from 'redis';
import { expect } from 'vitest';
import type { Dual } from './client-matrix-clients.js';

export interface Step extends Dual<Promise<unknown>> {
  /** The command, for failure messages. */
  name: string;
  /** Whether the reply must equal redis's (false for values that depend on the clock). */
  exact?: boolean;
  /** A client-independent assertion on the decoded value. */
  check?: (v: unknown) => void;
  /**
   * What of the value is compared with redis's, when not all of it: the order of a set's
   * members follows each server's own hash seed, so set replies are compared sorted.
   */
  view?: (v: unknown) => unknown;
}

/** Key names of one run: `key('h')` = `<prefix>:h`; `tagged('a')` share one slot. */
export interface Keys {
  key(name: string): string;
  tagged(name: string): string;
}

export function keysFor(prefix: string): Keys {
  return { key: (n) => `${prefix}:${n}`, tagged: (n) => `{${prefix}}:${n}` };
}

// -----------------------------------------------------------------------------------------
// Client-independent views of decoded values

/** A decoded value with Buffers as strings and Maps as objects. */
export function plainValue(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(plainValue(k)), plainValue(x)]));
  if (v instanceof Set) return [...v].map(plainValue);
  if (Array.isArray(v)) return v.map(plainValue);
  if (v !== null && typeof v === 'object' && !(v instanceof Error)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainValue(x)]));
  }
  return v;
}

/** A map reply as a record, however the client shaped it (object, Map, or flat [k, v, …]). */
export function rec(v: unknown): Record<string, unknown> {
  const p = plainValue(v);
  if (Array.isArray(p)) {
    const out: Record<string, unknown> = {};
    for (let i = 0; i + 1 < p.length; i += 2) out[String(p[i])] = p[i + 1];
    return out;
  }
  if (p !== null && typeof p === 'object') return p as Record<string, unknown>;
  throw new Error(`not a map reply: ${JSON.stringify(p)}`);
}

/** A number however the client decoded it ("1.5", 1.5, "inf"). */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  const s = String(plainValue(v));
  if (/^[+]?inf$/i.test(s)) return Infinity;
  if (/^-inf$/i.test(s)) return -Infinity;
  const n = Number(s);
  if (s === '' || Number.isNaN(n)) throw new Error(`not a number: ${JSON.stringify(v)}`);
  return n;
}

/** A boolean however the client decoded it (true, 1). */
const truthy = (v: unknown): boolean => v === true || v === 1;

const byJson = (a: unknown, b: unknown): number => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);

/** A set reply with its members sorted (an Array, a Set, or a SCAN page of either shape). */
function unordered(v: unknown): unknown {
  if (Array.isArray(v)) {
    // An ioredis SSCAN page: [cursor, members].
    if (v.length === 2 && typeof v[0] === 'string' && Array.isArray(v[1])) return [v[0], [...v[1]].sort(byJson)];
    return [...v].sort(byJson);
  }
  if (v instanceof Set) return new Set([...v].sort(byJson));
  if (v !== null && typeof v === 'object' && 'members' in v) return { ...v, members: unordered((v as { members: unknown }).members) };
  return v;
}

const is = (want: unknown) => (v: unknown) => expect(plainValue(v)).toEqual(want);
const isNum = (want: number) => (v: unknown) => expect(num(v)).toBe(want);
const isNear = (want: number, digits: number) => (v: unknown) => expect(num(v)).toBeCloseTo(want, digits);
const isSorted = (want: string[]) => (v: unknown) => expect((plainValue(v) as string[]).map(String).sort()).toEqual(want);
const isBools = (want: boolean[]) => (v: unknown) => expect((v as unknown[]).map(truthy)).toEqual(want);

/** [member, score] pairs from a WITHSCORES reply: node-redis objects, flat or nested arrays. */
function scored(v: unknown): [string, number][] {
  const value = plainValue(v);
  // node-redis answers a single pop with one {value, score}.
  const p = (Array.isArray(value) ? value : [value]) as unknown[];
  if (p.length > 0 && typeof p[0] === 'object' && p[0] !== null && !Array.isArray(p[0])) {
    return (p as { value: string; score: number }[]).map((e) => [String(e.value), num(e.score)]);
  }
  if (p.length > 0 && Array.isArray(p[0])) return (p as unknown[][]).map((e) => [String(e[0]), num(e[1])]);
  const out: [string, number][] = [];
  for (let i = 0; i + 1 < p.length; i += 2) out.push([String(p[i]), num(p[i + 1])]);
  return out;
}
const isScored = (want: [string, number][]) => (v: unknown) => expect(scored(v)).toEqual(want);

/** Stream entries as [id, {field: value}] from node-redis objects or ioredis arrays. */
function entries(v: unknown): [string, Record<string, unknown>][] {
  return (plainValue(v) as unknown[]).map((e) => {
    if (Array.isArray(e)) return [String(e[0]), rec(e[1])];
    const o = e as { id: string; message: Record<string, unknown> };
    return [o.id, rec(o.message)];
  });
}

/** XREAD's reply as {stream: entries}: node-redis [{name, messages}] / a map, ioredis [[name, entries]]. */
function streams(v: unknown): Record<string, [string, Record<string, unknown>][]> {
  if (v === null) return {};
  const p = plainValue(v);
  const out: Record<string, [string, Record<string, unknown>][]> = {};
  if (Array.isArray(p)) {
    for (const s of p) {
      if (Array.isArray(s)) out[String(s[0])] = entries(s[1]);
      else out[String((s as { name: string }).name)] = entries((s as { messages: unknown }).messages);
    }
    return out;
  }
  for (const [name, list] of Object.entries(p as Record<string, unknown>)) out[name] = entries(list);
  return out;
}

// -----------------------------------------------------------------------------------------
// Steps per type

/** A value with bytes that a sloppy decoder gets wrong: CRLF, UTF-8, and a `$`. */
const TRICKY = 'a\r\nb é ✓ $5';
/** A fixed moment in the future, so that EXPIRETIME is exact on both servers. */
const EXPIRE_AT = 4_102_444_800; // 2100-01-01T00:00:00Z

function strings({ key }: Keys): Step[] {
  const s = key('str');
  const n = key('n');
  return [
    { name: 'SET', nr: (c) => c.set(s, 'hello'), io: (c) => c.set(s, 'hello'), check: is('OK') },
    { name: 'GET', nr: (c) => c.get(s), io: (c) => c.get(s), check: is('hello') },
    { name: 'APPEND', nr: (c) => c.append(s, ' world'), io: (c) => c.append(s, ' world'), check: is(11) },
    { name: 'GETRANGE', nr: (c) => c.getRange(s, 0, 4), io: (c) => c.getrange(s, 0, 4), check: is('hello') },
    { name: 'SETRANGE', nr: (c) => c.setRange(s, 6, 'WORLD'), io: (c) => c.setrange(s, 6, 'WORLD'), check: is(11) },
    { name: 'STRLEN', nr: (c) => c.strLen(s), io: (c) => c.strlen(s), check: is(11) },
    { name: 'SET GET', nr: (c) => c.set(s, TRICKY, { GET: true }), io: (c) => c.set(s, TRICKY, 'GET'), check: is('hello WORLD') },
    { name: 'GET binary-safe', nr: (c) => c.get(s), io: (c) => c.get(s), check: is(TRICKY) },
    { name: 'SET empty', nr: (c) => c.set(key('empty'), ''), io: (c) => c.set(key('empty'), ''), check: is('OK') },
    { name: 'GET empty', nr: (c) => c.get(key('empty')), io: (c) => c.get(key('empty')), check: is('') },
    { name: 'GET missing', nr: (c) => c.get(key('nope')), io: (c) => c.get(key('nope')), check: is(null) },
    { name: 'SET NX exists', nr: (c) => c.set(s, 'x', { condition: 'NX' }), io: (c) => c.set(s, 'x', 'NX'), check: is(null) },
    { name: 'INCR', nr: (c) => c.incr(n), io: (c) => c.incr(n), check: is(1) },
    { name: 'INCRBY', nr: (c) => c.incrBy(n, 41), io: (c) => c.incrby(n, 41), check: is(42) },
    { name: 'DECR', nr: (c) => c.decr(n), io: (c) => c.decr(n), check: is(41) },
    { name: 'INCRBYFLOAT', nr: (c) => c.incrByFloat(key('f'), 1.5), io: (c) => c.incrbyfloat(key('f'), 1.5), check: isNum(1.5) },
    { name: 'INCR not a number', nr: (c) => c.incr(s), io: (c) => c.incr(s) },
    { name: 'GETDEL', nr: (c) => c.getDel(n), io: (c) => c.getdel(n), check: is('41') },
    { name: 'EXISTS after GETDEL', nr: (c) => c.exists(n), io: (c) => c.exists(n), check: is(0) },
    { name: 'TYPE', nr: (c) => c.type(s), io: (c) => c.type(s), check: is('string') },
  ];
}

function hashes({ key }: Keys): Step[] {
  const h = key('h');
  return [
    {
      name: 'HSET',
      nr: (c) => c.hSet(h, { f1: 'v1', f2: TRICKY, f3: '3' }),
      io: (c) => c.hset(h, { f1: 'v1', f2: TRICKY, f3: '3' }),
      check: is(3),
    },
    { name: 'HGET', nr: (c) => c.hGet(h, 'f1'), io: (c) => c.hget(h, 'f1'), check: is('v1') },
    { name: 'HGETALL', nr: (c) => c.hGetAll(h), io: (c) => c.hgetall(h), check: (v) => expect(rec(v)).toEqual({ f1: 'v1', f2: TRICKY, f3: '3' }) },
    { name: 'HGETALL missing', nr: (c) => c.hGetAll(key('nope')), io: (c) => c.hgetall(key('nope')), check: (v) => expect(rec(v)).toEqual({}) },
    { name: 'HMGET', nr: (c) => c.hmGet(h, ['f1', 'nope', 'f3']), io: (c) => c.hmget(h, 'f1', 'nope', 'f3'), check: is(['v1', null, '3']) },
    { name: 'HINCRBY', nr: (c) => c.hIncrBy(h, 'f3', 2), io: (c) => c.hincrby(h, 'f3', 2), check: is(5) },
    { name: 'HINCRBYFLOAT', nr: (c) => c.hIncrByFloat(h, 'fl', 0.25), io: (c) => c.hincrbyfloat(h, 'fl', 0.25), check: isNum(0.25) },
    { name: 'HEXISTS', nr: (c) => c.hExists(h, 'f1'), io: (c) => c.hexists(h, 'f1'), check: (v) => expect(truthy(v)).toBe(true) },
    { name: 'HLEN', nr: (c) => c.hLen(h), io: (c) => c.hlen(h), check: is(4) },
    { name: 'HKEYS', nr: (c) => c.hKeys(h), io: (c) => c.hkeys(h), check: isSorted(['f1', 'f2', 'f3', 'fl']) },
    { name: 'HVALS', nr: (c) => c.hVals(h), io: (c) => c.hvals(h), check: isSorted(['0.25', '5', TRICKY, 'v1'].sort()) },
    {
      name: 'HRANDFIELD count WITHVALUES',
      nr: (c) => c.hRandFieldCountWithValues(h, 10),
      io: (c) => c.hrandfield(h, 10, 'WITHVALUES'),
    },
    { name: 'HSCAN', nr: (c) => c.hScan(h, '0'), io: (c) => c.hscan(h, '0') },
    { name: 'HDEL', nr: (c) => c.hDel(h, ['f1', 'nope']), io: (c) => c.hdel(h, 'f1', 'nope'), check: is(1) },
    { name: 'HSETNX', nr: (c) => c.hSetNX(h, 'f2', 'x'), io: (c) => c.hsetnx(h, 'f2', 'x'), check: (v) => expect(truthy(v)).toBe(false) },
  ];
}

function lists({ key, tagged }: Keys): Step[] {
  const l = key('l');
  const [src, dst] = [tagged('src'), tagged('dst')];
  return [
    { name: 'RPUSH', nr: (c) => c.rPush(l, ['a', 'b', 'c', 'b']), io: (c) => c.rpush(l, 'a', 'b', 'c', 'b'), check: is(4) },
    { name: 'LPUSH', nr: (c) => c.lPush(l, 'z'), io: (c) => c.lpush(l, 'z'), check: is(5) },
    { name: 'LRANGE', nr: (c) => c.lRange(l, 0, -1), io: (c) => c.lrange(l, 0, -1), check: is(['z', 'a', 'b', 'c', 'b']) },
    { name: 'LINDEX', nr: (c) => c.lIndex(l, -1), io: (c) => c.lindex(l, -1), check: is('b') },
    { name: 'LLEN', nr: (c) => c.lLen(l), io: (c) => c.llen(l), check: is(5) },
    { name: 'LPOS', nr: (c) => c.lPos(l, 'b'), io: (c) => c.lpos(l, 'b'), check: is(2) },
    { name: 'LPOS COUNT', nr: (c) => c.lPosCount(l, 'b', 0), io: (c) => c.lpos(l, 'b', 'COUNT', 0), check: is([2, 4]) },
    { name: 'LINSERT', nr: (c) => c.lInsert(l, 'BEFORE', 'c', 'x'), io: (c) => c.linsert(l, 'BEFORE', 'c', 'x'), check: is(6) },
    { name: 'LSET', nr: (c) => c.lSet(l, 0, 'y'), io: (c) => c.lset(l, 0, 'y'), check: is('OK') },
    { name: 'LPOP count', nr: (c) => c.lPopCount(l, 2), io: (c) => c.lpop(l, 2), check: is(['y', 'a']) },
    { name: 'RPOP', nr: (c) => c.rPop(l), io: (c) => c.rpop(l), check: is('b') },
    { name: 'LREM', nr: (c) => c.lRem(l, 0, 'x'), io: (c) => c.lrem(l, 0, 'x'), check: is(1) },
    { name: 'LPOP missing', nr: (c) => c.lPop(key('nope')), io: (c) => c.lpop(key('nope')), check: is(null) },
    { name: 'RPUSH src', nr: (c) => c.rPush(src, ['1', '2']), io: (c) => c.rpush(src, '1', '2'), check: is(2) },
    { name: 'LMOVE', nr: (c) => c.lMove(src, dst, 'LEFT', 'RIGHT'), io: (c) => c.lmove(src, dst, 'LEFT', 'RIGHT'), check: is('1') },
    { name: 'LRANGE dst', nr: (c) => c.lRange(dst, 0, -1), io: (c) => c.lrange(dst, 0, -1), check: is(['1']) },
  ];
}

function sets({ key, tagged }: Keys): Step[] {
  const s = key('s');
  const [a, b] = [tagged('sa'), tagged('sb')];
  return [
    { name: 'SADD', nr: (c) => c.sAdd(s, ['a', 'b', 'c']), io: (c) => c.sadd(s, 'a', 'b', 'c'), check: is(3) },
    { name: 'SADD again', nr: (c) => c.sAdd(s, 'a'), io: (c) => c.sadd(s, 'a'), check: is(0) },
    { name: 'SMEMBERS', nr: (c) => c.sMembers(s), io: (c) => c.smembers(s), check: isSorted(['a', 'b', 'c']), view: unordered },
    { name: 'SISMEMBER', nr: (c) => c.sIsMember(s, 'a'), io: (c) => c.sismember(s, 'a'), check: (v) => expect(truthy(v)).toBe(true) },
    { name: 'SMISMEMBER', nr: (c) => c.smIsMember(s, ['a', 'x']), io: (c) => c.smismember(s, 'a', 'x'), check: isBools([true, false]) },
    { name: 'SCARD', nr: (c) => c.sCard(s), io: (c) => c.scard(s), check: is(3) },
    { name: 'SREM', nr: (c) => c.sRem(s, ['c', 'x']), io: (c) => c.srem(s, 'c', 'x'), check: is(1) },
    { name: 'SMEMBERS missing', nr: (c) => c.sMembers(key('nope')), io: (c) => c.smembers(key('nope')), check: is([]) },
    { name: 'SADD a', nr: (c) => c.sAdd(a, ['1', '2', '3']), io: (c) => c.sadd(a, '1', '2', '3'), check: is(3) },
    { name: 'SADD b', nr: (c) => c.sAdd(b, ['2', '3', '4']), io: (c) => c.sadd(b, '2', '3', '4'), check: is(3) },
    { name: 'SINTER', nr: (c) => c.sInter([a, b]), io: (c) => c.sinter(a, b), check: isSorted(['2', '3']), view: unordered },
    { name: 'SUNION', nr: (c) => c.sUnion([a, b]), io: (c) => c.sunion(a, b), check: isSorted(['1', '2', '3', '4']), view: unordered },
    { name: 'SDIFF', nr: (c) => c.sDiff([a, b]), io: (c) => c.sdiff(a, b), check: isSorted(['1']), view: unordered },
    { name: 'SINTERCARD', nr: (c) => c.sInterCard([a, b]), io: (c) => c.sintercard(2, a, b), check: is(2) },
    { name: 'SSCAN', nr: (c) => c.sScan(s, '0'), io: (c) => c.sscan(s, '0'), view: unordered },
  ];
}

function sortedSets({ key, tagged }: Keys): Step[] {
  const z = key('z');
  const [a, b] = [tagged('za'), tagged('zb')];
  return [
    {
      name: 'ZADD',
      nr: (c) => c.zAdd(z, [{ score: 1, value: 'a' }, { score: 2.5, value: 'b' }, { score: 3, value: 'c' }]),
      io: (c) => c.zadd(z, 1, 'a', 2.5, 'b', 3, 'c'),
      check: is(3),
    },
    { name: 'ZSCORE', nr: (c) => c.zScore(z, 'b'), io: (c) => c.zscore(z, 'b'), check: isNum(2.5) },
    { name: 'ZSCORE missing', nr: (c) => c.zScore(z, 'nope'), io: (c) => c.zscore(z, 'nope'), check: is(null) },
    { name: 'ZINCRBY', nr: (c) => c.zIncrBy(z, 0.5, 'a'), io: (c) => c.zincrby(z, 0.5, 'a'), check: isNum(1.5) },
    { name: 'ZRANGE', nr: (c) => c.zRange(z, 0, -1), io: (c) => c.zrange(z, 0, -1), check: is(['a', 'b', 'c']) },
    {
      name: 'ZRANGE WITHSCORES',
      nr: (c) => c.zRangeWithScores(z, 0, -1),
      io: (c) => c.zrange(z, 0, -1, 'WITHSCORES'),
      check: isScored([['a', 1.5], ['b', 2.5], ['c', 3]]),
    },
    {
      name: 'ZRANGEBYSCORE WITHSCORES',
      nr: (c) => c.zRangeByScoreWithScores(z, 2, '+inf'),
      io: (c) => c.zrangebyscore(z, 2, '+inf', 'WITHSCORES'),
      check: isScored([['b', 2.5], ['c', 3]]),
    },
    { name: 'ZRANK', nr: (c) => c.zRank(z, 'c'), io: (c) => c.zrank(z, 'c'), check: is(2) },
    { name: 'ZREVRANK', nr: (c) => c.zRevRank(z, 'c'), io: (c) => c.zrevrank(z, 'c'), check: is(0) },
    { name: 'ZCARD', nr: (c) => c.zCard(z), io: (c) => c.zcard(z), check: is(3) },
    { name: 'ZCOUNT', nr: (c) => c.zCount(z, 1, 2.5), io: (c) => c.zcount(z, 1, 2.5), check: is(2) },
    {
      name: 'ZMSCORE',
      nr: (c) => c.zmScore(z, ['a', 'nope']),
      io: (c) => c.zmscore(z, 'a', 'nope'),
      check: (v) => expect((v as unknown[]).map((x) => (x === null ? null : num(x)))).toEqual([1.5, null]),
    },
    { name: 'ZADD inf', nr: (c) => c.zAdd(z, { score: Infinity, value: 'top' }), io: (c) => c.zadd(z, '+inf', 'top'), check: is(1) },
    { name: 'ZSCORE inf', nr: (c) => c.zScore(z, 'top'), io: (c) => c.zscore(z, 'top'), check: isNum(Infinity) },
    { name: 'ZPOPMIN', nr: (c) => c.zPopMin(z), io: (c) => c.zpopmin(z), check: isScored([['a', 1.5]]) },
    { name: 'ZPOPMAX count', nr: (c) => c.zPopMaxCount(z, 2), io: (c) => c.zpopmax(z, 2), check: isScored([['top', Infinity], ['c', 3]]) },
    {
      name: 'ZADD a',
      nr: (c) => c.zAdd(a, [{ score: 1, value: 'x' }, { score: 2, value: 'y' }]),
      io: (c) => c.zadd(a, 1, 'x', 2, 'y'),
      check: is(2),
    },
    {
      name: 'ZADD b',
      nr: (c) => c.zAdd(b, [{ score: 10, value: 'y' }, { score: 20, value: 'z' }]),
      io: (c) => c.zadd(b, 10, 'y', 20, 'z'),
      check: is(2),
    },
    { name: 'ZINTER WITHSCORES', nr: (c) => c.zInterWithScores([a, b]), io: (c) => c.zinter(2, a, b, 'WITHSCORES'), check: isScored([['y', 12]]) },
    { name: 'ZUNIONSTORE', nr: (c) => c.zUnionStore(tagged('zu'), [a, b]), io: (c) => c.zunionstore(tagged('zu'), 2, a, b), check: is(3) },
  ];
}

function streamSteps({ key }: Keys): Step[] {
  const x = key('x');
  return [
    { name: 'XADD', nr: (c) => c.xAdd(x, '1-1', { f: 'v1' }), io: (c) => c.xadd(x, '1-1', 'f', 'v1'), check: is('1-1') },
    { name: 'XADD 2', nr: (c) => c.xAdd(x, '2-1', { f: TRICKY, g: '2' }), io: (c) => c.xadd(x, '2-1', 'f', TRICKY, 'g', '2'), check: is('2-1') },
    { name: 'XLEN', nr: (c) => c.xLen(x), io: (c) => c.xlen(x), check: is(2) },
    {
      name: 'XRANGE',
      nr: (c) => c.xRange(x, '-', '+'),
      io: (c) => c.xrange(x, '-', '+'),
      check: (v) => expect(entries(v)).toEqual([['1-1', { f: 'v1' }], ['2-1', { f: TRICKY, g: '2' }]]),
    },
    {
      name: 'XREVRANGE COUNT',
      nr: (c) => c.xRevRange(x, '+', '-', { COUNT: 1 }),
      io: (c) => c.xrevrange(x, '+', '-', 'COUNT', 1),
      check: (v) => expect(entries(v)).toEqual([['2-1', { f: TRICKY, g: '2' }]]),
    },
    {
      name: 'XREAD',
      nr: (c) => c.xRead({ key: x, id: '1-1' }),
      io: (c) => c.xread('STREAMS', x, '1-1'),
      check: (v) => expect(streams(v)).toEqual({ [x]: [['2-1', { f: TRICKY, g: '2' }]] }),
    },
    { name: 'XREAD nothing new', nr: (c) => c.xRead({ key: x, id: '2-1' }), io: (c) => c.xread('STREAMS', x, '2-1'), check: (v) => expect(streams(v)).toEqual({}) },
    { name: 'XGROUP CREATE', nr: (c) => c.xGroupCreate(x, 'g', '0'), io: (c) => c.xgroup('CREATE', x, 'g', '0'), check: is('OK') },
    {
      name: 'XREADGROUP',
      nr: (c) => c.xReadGroup('g', 'c1', { key: x, id: '>' }, { COUNT: 1 }),
      io: (c) => c.xreadgroup('GROUP', 'g', 'c1', 'COUNT', 1, 'STREAMS', x, '>'),
      check: (v) => expect(streams(v)).toEqual({ [x]: [['1-1', { f: 'v1' }]] }),
    },
    { name: 'XPENDING', nr: (c) => c.xPending(x, 'g'), io: (c) => c.xpending(x, 'g') },
    { name: 'XACK', nr: (c) => c.xAck(x, 'g', '1-1'), io: (c) => c.xack(x, 'g', '1-1'), check: is(1) },
    {
      name: 'XINFO STREAM',
      nr: (c) => c.xInfoStream(x),
      io: (c) => c.xinfo('STREAM', x),
      check: (v) => {
        const info = rec(v);
        expect(num(info['length'])).toBe(2);
        expect(String(info['last-generated-id'])).toBe('2-1');
        expect(num(info['groups'])).toBe(1);
      },
    },
    {
      name: 'XINFO GROUPS',
      nr: (c) => c.xInfoGroups(x),
      io: (c) => c.xinfo('GROUPS', x),
      check: (v) => {
        const groups = v as unknown[];
        expect(groups).toHaveLength(1);
        const g = rec(groups[0]);
        expect([String(g['name']), num(g['consumers']), num(g['pending']), String(g['last-delivered-id'])]).toEqual(['g', 1, 0, '1-1']);
      },
    },
    { name: 'XTRIM', nr: (c) => c.xTrim(x, 'MAXLEN', 1), io: (c) => c.xtrim(x, 'MAXLEN', 1), check: is(1) },
    { name: 'XDEL', nr: (c) => c.xDel(x, '2-1'), io: (c) => c.xdel(x, '2-1'), check: is(1) },
  ];
}

function hyperLogLog({ tagged }: Keys): Step[] {
  const [a, b, m] = [tagged('hll1'), tagged('hll2'), tagged('hllm')];
  return [
    { name: 'PFADD', nr: (c) => c.pfAdd(a, ['a', 'b', 'c', 'd']), io: (c) => c.pfadd(a, 'a', 'b', 'c', 'd'), check: (v) => expect(truthy(v)).toBe(true) },
    { name: 'PFADD again', nr: (c) => c.pfAdd(a, 'a'), io: (c) => c.pfadd(a, 'a'), check: (v) => expect(truthy(v)).toBe(false) },
    { name: 'PFCOUNT', nr: (c) => c.pfCount(a), io: (c) => c.pfcount(a), check: is(4) },
    { name: 'PFADD b', nr: (c) => c.pfAdd(b, ['d', 'e']), io: (c) => c.pfadd(b, 'd', 'e') },
    { name: 'PFCOUNT two keys', nr: (c) => c.pfCount([a, b]), io: (c) => c.pfcount(a, b), check: is(5) },
    { name: 'PFMERGE', nr: (c) => c.pfMerge(m, [a, b]), io: (c) => c.pfmerge(m, a, b), check: is('OK') },
    { name: 'PFCOUNT merged', nr: (c) => c.pfCount(m), io: (c) => c.pfcount(m), check: is(5) },
  ];
}

function bitmaps({ key }: Keys): Step[] {
  const b = key('bits');
  return [
    { name: 'SETBIT', nr: (c) => c.setBit(b, 7, 1), io: (c) => c.setbit(b, 7, 1), check: is(0) },
    { name: 'SETBIT far', nr: (c) => c.setBit(b, 100, 1), io: (c) => c.setbit(b, 100, 1), check: is(0) },
    { name: 'GETBIT', nr: (c) => c.getBit(b, 7), io: (c) => c.getbit(b, 7), check: is(1) },
    { name: 'BITCOUNT', nr: (c) => c.bitCount(b), io: (c) => c.bitcount(b), check: is(2) },
    { name: 'BITPOS', nr: (c) => c.bitPos(b, 1), io: (c) => c.bitpos(b, 1), check: is(7) },
    {
      name: 'BITFIELD',
      nr: (c) =>
        c.bitField(b, [
          { operation: 'GET', encoding: 'u8', offset: 0 },
          { operation: 'INCRBY', encoding: 'u8', offset: 8, increment: 200 },
          { operation: 'SET', encoding: 'i8', offset: 16, value: -5 },
          { operation: 'GET', encoding: 'i8', offset: 16 },
        ]),
      io: (c) => c.bitfield(b, 'GET', 'u8', 0, 'INCRBY', 'u8', 8, 200, 'SET', 'i8', 16, -5, 'GET', 'i8', 16),
      check: is([1, 200, 0, -5]),
    },
    {
      name: 'GET bitmap bytes',
      nr: (c) => c.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).get(b),
      io: (c) => c.getBuffer(b),
      // bit 7 → 0x01; u8 at bit 8 → 200; i8 at bit 16 → -5; bit 100 → byte 12, 0x08.
      check: (v) => expect((v as Buffer).toString('hex')).toBe(`01c8fb${'00'.repeat(9)}08`),
    },
  ];
}

function geo({ key }: Keys): Step[] {
  const g = key('geo');
  return [
    {
      name: 'GEOADD',
      nr: (c) =>
        c.geoAdd(g, [
          { longitude: 13.361389, latitude: 38.115556, member: 'Palermo' },
          { longitude: 15.087269, latitude: 37.502669, member: 'Catania' },
        ]),
      io: (c) => c.geoadd(g, 13.361389, 38.115556, 'Palermo', 15.087269, 37.502669, 'Catania'),
      check: is(2),
    },
    { name: 'GEODIST', nr: (c) => c.geoDist(g, 'Palermo', 'Catania', 'km'), io: (c) => c.geodist(g, 'Palermo', 'Catania', 'km'), check: isNear(166.2742, 3) },
    {
      name: 'GEOPOS',
      nr: (c) => c.geoPos(g, ['Palermo', 'nope']),
      io: (c) => c.geopos(g, 'Palermo', 'nope'),
      check: (v) => {
        const [pos, missing] = plainValue(v) as unknown[];
        const xy = Array.isArray(pos) ? pos : [(pos as { longitude: unknown }).longitude, (pos as { latitude: unknown }).latitude];
        expect(num(xy[0])).toBeCloseTo(13.361389, 5);
        expect(num(xy[1])).toBeCloseTo(38.115556, 5);
        expect(missing).toBeNull();
      },
    },
    { name: 'GEOHASH', nr: (c) => c.geoHash(g, 'Palermo'), io: (c) => c.geohash(g, 'Palermo'), check: is(['sqc8b49rny0']) },
    {
      name: 'GEOSEARCH WITHDIST WITHCOORD',
      nr: (c) => c.geoSearchWith(g, { longitude: 15, latitude: 37 }, { radius: 200, unit: 'km' }, ['WITHDIST', 'WITHCOORD'], { SORT: 'ASC' }),
      io: (c) => c.geosearch(g, 'FROMLONLAT', 15, 37, 'BYRADIUS', 200, 'km', 'ASC', 'WITHDIST', 'WITHCOORD'),
      check: (v) => {
        const found = (plainValue(v) as unknown[]).map((e) => (Array.isArray(e) ? String(e[0]) : String((e as { member: string }).member)));
        expect(found).toEqual(['Catania', 'Palermo']);
      },
    },
  ];
}

function ttls({ key }: Keys): Step[] {
  const t = key('t');
  const inRange = (lo: number, hi: number) => (v: unknown) => {
    expect(num(v)).toBeGreaterThanOrEqual(lo);
    expect(num(v)).toBeLessThanOrEqual(hi);
  };
  return [
    { name: 'SET EX', nr: (c) => c.set(t, 'v', { EX: 100 }), io: (c) => c.set(t, 'v', 'EX', 100), check: is('OK') },
    { name: 'TTL', nr: (c) => c.ttl(t), io: (c) => c.ttl(t), exact: false, check: inRange(1, 100) },
    { name: 'PTTL', nr: (c) => c.pTTL(t), io: (c) => c.pttl(t), exact: false, check: inRange(1, 100_000) },
    { name: 'EXPIRE NX (has a TTL)', nr: (c) => c.expire(t, 500, 'NX'), io: (c) => c.expire(t, 500, 'NX'), check: (v) => expect(truthy(v)).toBe(false) },
    { name: 'EXPIRE GT', nr: (c) => c.expire(t, 500, 'GT'), io: (c) => c.expire(t, 500, 'GT'), check: (v) => expect(truthy(v)).toBe(true) },
    { name: 'TTL after EXPIRE', nr: (c) => c.ttl(t), io: (c) => c.ttl(t), exact: false, check: inRange(101, 500) },
    { name: 'PERSIST', nr: (c) => c.persist(t), io: (c) => c.persist(t), check: (v) => expect(truthy(v)).toBe(true) },
    { name: 'TTL none', nr: (c) => c.ttl(t), io: (c) => c.ttl(t), check: is(-1) },
    { name: 'TTL missing', nr: (c) => c.ttl(key('nope')), io: (c) => c.ttl(key('nope')), check: is(-2) },
    { name: 'EXPIREAT', nr: (c) => c.expireAt(t, EXPIRE_AT), io: (c) => c.expireat(t, EXPIRE_AT), check: (v) => expect(truthy(v)).toBe(true) },
    { name: 'EXPIRETIME', nr: (c) => c.expireTime(t), io: (c) => c.expiretime(t), check: is(EXPIRE_AT) },
    { name: 'PEXPIRETIME', nr: (c) => c.pExpireTime(t), io: (c) => c.pexpiretime(t), check: is(EXPIRE_AT * 1000) },
    { name: 'GETEX PERSIST', nr: (c) => c.getEx(t, { type: 'PERSIST' }), io: (c) => c.getex(t, 'PERSIST'), check: is('v') },
    { name: 'EXPIRETIME none', nr: (c) => c.expireTime(t), io: (c) => c.expiretime(t), check: is(-1) },
    { name: 'PEXPIRE', nr: (c) => c.pExpire(t, 1), io: (c) => c.pexpire(t, 1), check: (v) => expect(truthy(v)).toBe(true) },
  ];
}

/** The data-type scenarios, by their matrix row name. */
export const DATA_SCENARIOS: Record<string, (k: Keys) => Step[]> = {
  strings,
  hashes,
  lists,
  sets,
  'sorted sets': sortedSets,
  streams: streamSteps,
  HyperLogLog: hyperLogLog,
  bitmaps,
  geo,
  TTLs: ttls,
};
