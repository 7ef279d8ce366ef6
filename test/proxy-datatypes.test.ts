/**
 * Every data type's common commands through the proxy answer exactly what a direct redis
 * answers: each scenario runs the same command list against the proxy (2 groups) and against
 * a stand-alone reference redis-server, and the reply lists must be equal. Then binary safety,
 * a 1 MB value, and that every key really lives on the master of the group owning its slot.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { startCluster, startRedis, stopAll, type Cluster } from '@reborn/testkit';
import { dataReady, groupsHolding, initialOwner, masterClients, slotOf } from './helpers.js';

type Cmd = (string | number)[];

let cluster: Cluster;
let proxy: Redis;
let reference: Redis;
let masters: Redis[];

beforeAll(async () => {
  const [c, ref] = await Promise.all([startCluster({ groups: 2, proxies: 1 }), startRedis()]);
  cluster = c;
  await dataReady(c.proxies[0]!.port);
  // stringNumbers: integer replies as strings, so a 64-bit value that a proxy mangled (or
  // rounded through a JS number) cannot hide behind ioredis' own rounding.
  proxy = c.proxies[0]!.client({ stringNumbers: true });
  reference = ref.client({ stringNumbers: true });
  masters = masterClients(c);
});

afterAll(stopAll);

/** Replies whose element order depends on redis' per-process hash seed. */
const UNORDERED = new Set(['SMEMBERS', 'SUNION', 'SDIFF', 'SINTER']);

function normalize(name: string, reply: unknown): unknown {
  if (UNORDERED.has(name) && Array.isArray(reply)) return [...(reply as string[])].sort();
  if (name === 'SSCAN' && Array.isArray(reply)) return [reply[0], [...(reply[1] as string[])].sort()];
  return reply;
}

async function runAll(c: Redis, cmds: Cmd[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const [name, ...args] of cmds) {
    try {
      out.push(normalize(String(name), await c.call(String(name), ...args.map(String))));
    } catch (err) {
      out.push({ err: (err as Error).message });
    }
  }
  return out;
}

/** Runs `cmds` on the proxy and on the reference redis; the replies must be the same. */
async function sameAsRedis(cmds: Cmd[], expectedErrors = 0): Promise<unknown[]> {
  const viaProxy = await runAll(proxy, cmds);
  const direct = await runAll(reference, cmds);
  const labelled = (rs: unknown[]) => rs.map((r, i) => [cmds[i]!.join(' '), r]);
  expect(labelled(viaProxy)).toEqual(labelled(direct));
  // The reference itself must have behaved as the scenario intends (no typo'd commands).
  const errors = direct.filter((r) => typeof r === 'object' && r !== null && 'err' in r);
  expect(errors, JSON.stringify(errors)).toHaveLength(expectedErrors);
  return viaProxy;
}

describe('data types through the proxy answer like redis', () => {
  it('strings: SET EX/NX/XX/GET, GETEX, INCRBY, INCRBYFLOAT, APPEND, GETRANGE, SETRANGE, STRLEN, GETDEL, SETNX, MSETNX', async () => {
    await sameAsRedis(
      [
        ['SET', 'str:a', 'hello'],
        ['SET', 'str:a', 'world', 'NX'],
        ['SET', 'str:a', 'world', 'XX', 'GET'],
        ['SET', 'str:b', 'v', 'EX', 1000],
        ['SET', 'str:b', 'w', 'NX', 'GET'],
        ['GET', 'str:b'],
        ['GETEX', 'str:b', 'PERSIST'],
        ['TTL', 'str:b'],
        ['GETEX', 'str:missing', 'EX', 10],
        ['SET', 'str:c', 'x', 'PX', 0], // invalid expire time
        ['INCRBY', 'str:n', 5],
        ['INCRBY', 'str:n', -12],
        ['DECRBY', 'str:n', 3],
        ['INCR', 'str:n'],
        ['DECR', 'str:n'],
        ['INCRBY', 'str:big', '9223372036854775806'],
        ['INCR', 'str:big'],
        ['GET', 'str:big'],
        ['INCR', 'str:big'], // overflow error
        ['INCR', 'str:a'], // not an integer
        ['INCRBYFLOAT', 'str:f', '10.5'],
        ['INCRBYFLOAT', 'str:f', '0.1'],
        ['INCRBYFLOAT', 'str:f', '-5e2'],
        ['INCRBYFLOAT', 'str:f', '3.0e3'],
        ['APPEND', 'str:ap', 'foo'],
        ['APPEND', 'str:ap', 'bar'],
        ['GETRANGE', 'str:ap', 1, -2],
        ['GETRANGE', 'str:ap', 100, 200],
        ['SETRANGE', 'str:ap', 10, 'X'],
        ['STRLEN', 'str:ap'],
        ['GETRANGE', 'str:ap', 5, 11],
        ['SUBSTR', 'str:ap', 0, 2],
        ['GETDEL', 'str:ap'],
        ['GETDEL', 'str:ap'],
        ['EXISTS', 'str:ap'],
        ['SETNX', 'str:nx', 1],
        ['SETNX', 'str:nx', 2],
        ['GET', 'str:nx'],
        ['SETEX', 'str:se', 100, 'v'],
        ['PSETEX', 'str:pse', 100000, 'v'],
        ['MGET', 'str:se', 'str:pse'],
        ['MSETNX', '{str}a', 1, '{str}b', 2],
        ['MSETNX', '{str}b', 'x', '{str}c', 3],
        ['MGET', '{str}a', '{str}b', '{str}c'],
        ['LCS', '{str}a', '{str}b'],
        ['TYPE', 'str:a'],
        ['OBJECT', 'ENCODING', 'str:n'],
      ],
      3,
    );
  });

  it('lists: LPUSH, RPUSH, LRANGE, LPOP count, LMOVE (same slot), LPOS, LINSERT, LSET, LTRIM', async () => {
    await sameAsRedis(
      [
        ['RPUSH', 'list:a', 'a', 'b', 'c'],
        ['LPUSH', 'list:a', 'z', 'y'],
        ['LRANGE', 'list:a', 0, -1],
        ['LPOP', 'list:a', 2],
        ['LPOP', 'list:missing', 2],
        ['RPUSH', 'list:a', 'b', 'x', 'b'],
        ['LPOS', 'list:a', 'b'],
        ['LPOS', 'list:a', 'b', 'RANK', 2],
        ['LPOS', 'list:a', 'b', 'COUNT', 0],
        ['LPOS', 'list:a', 'nope'],
        ['LINSERT', 'list:a', 'BEFORE', 'x', 'w'],
        ['LINSERT', 'list:a', 'AFTER', 'nope', 'q'],
        ['LRANGE', 'list:a', 0, -1],
        ['LINDEX', 'list:a', -1],
        ['LSET', 'list:a', 0, 'S'],
        ['LSET', 'list:a', 99, 'S'], // out of range
        ['LREM', 'list:a', 0, 'b'],
        ['LTRIM', 'list:a', 0, 2],
        ['LRANGE', 'list:a', 0, -1],
        ['LLEN', 'list:a'],
        ['RPOP', 'list:a'],
        ['LPUSHX', 'list:missing', 'v'],
        ['RPUSH', '{lm}src', 1, 2, 3],
        ['LMOVE', '{lm}src', '{lm}dst', 'LEFT', 'RIGHT'],
        ['LMOVE', '{lm}src', '{lm}dst', 'RIGHT', 'LEFT'],
        ['RPOPLPUSH', '{lm}src', '{lm}dst'],
        ['LRANGE', '{lm}dst', 0, -1],
        ['LLEN', '{lm}src'],
        ['LMPOP', 2, '{lm}src', '{lm}dst', 'RIGHT', 'COUNT', 2],
        ['GET', 'list:a'], // WRONGTYPE
      ],
      2,
    );
  });

  it('hashes: HSET multi, HGETALL, HINCRBY, HSCAN and friends', async () => {
    await sameAsRedis([
      ['HSET', 'hash:a', 'f1', 'v1', 'f2', 'v2', 'n', 10],
      ['HSET', 'hash:a', 'f1', 'V1', 'f3', 'v3'],
      ['HGETALL', 'hash:a'],
      ['HINCRBY', 'hash:a', 'n', -15],
      ['HINCRBYFLOAT', 'hash:a', 'fl', '1.5'],
      ['HGET', 'hash:a', 'f1'],
      ['HMGET', 'hash:a', 'f1', 'nope', 'f2'],
      ['HDEL', 'hash:a', 'f2', 'nope'],
      ['HLEN', 'hash:a'],
      ['HEXISTS', 'hash:a', 'f3'],
      ['HKEYS', 'hash:a'],
      ['HVALS', 'hash:a'],
      ['HSETNX', 'hash:a', 'f1', 'x'],
      ['HSTRLEN', 'hash:a', 'f1'],
      ['HSCAN', 'hash:a', 0],
      ['HSCAN', 'hash:a', 0, 'MATCH', 'f*', 'COUNT', 100],
      ['HGETALL', 'hash:missing'],
    ]);
  });

  it('sets: SADD, SMEMBERS, SINTERSTORE (same slot), SMISMEMBER, SSCAN', async () => {
    await sameAsRedis([
      ['SADD', '{set}a', 1, 2, 3, 'x', 'y'],
      ['SADD', '{set}b', 2, 3, 'y', 'z'],
      ['SADD', '{set}a', 1],
      ['SMEMBERS', '{set}a'],
      ['SINTERSTORE', '{set}c', '{set}a', '{set}b'],
      ['SMEMBERS', '{set}c'],
      ['SUNION', '{set}a', '{set}b'],
      ['SDIFF', '{set}a', '{set}b'],
      ['SINTERCARD', 2, '{set}a', '{set}b'],
      ['SMISMEMBER', '{set}a', 1, 'nope', 'y'],
      ['SISMEMBER', '{set}b', 'z'],
      ['SCARD', '{set}a'],
      ['SREM', '{set}a', 1, 'nope'],
      ['SADD', 'set:ints', 5, 3, 9, 1],
      ['SSCAN', 'set:ints', 0],
      ['SSCAN', 'set:ints', 0, 'MATCH', '*', 'COUNT', 100],
      ['SMOVE', '{set}a', '{set}b', 'x'],
      ['SMEMBERS', '{set}b'],
    ]);
  });

  it('sorted sets: ZADD, ZRANGE BYSCORE, ZUNIONSTORE (same slot), ZMPOP', async () => {
    await sameAsRedis([
      ['ZADD', '{zs}a', 1, 'one', 2, 'two', 3, 'three', 4, 'four'],
      ['ZADD', '{zs}b', 10, 'two', 20, 'five'],
      ['ZADD', '{zs}a', 'XX', 'CH', 5, 'four', 9, 'nine'],
      ['ZRANGE', '{zs}a', '(1', 3, 'BYSCORE'],
      ['ZRANGE', '{zs}a', '-inf', '+inf', 'BYSCORE', 'LIMIT', 1, 2, 'WITHSCORES'],
      ['ZRANGE', '{zs}a', 0, -1, 'REV'],
      ['ZRANGEBYSCORE', '{zs}a', 2, '+inf'],
      ['ZUNIONSTORE', '{zs}u', 2, '{zs}a', '{zs}b', 'WEIGHTS', 1, 2],
      ['ZRANGE', '{zs}u', 0, -1, 'WITHSCORES'],
      ['ZINTERSTORE', '{zs}i', 2, '{zs}a', '{zs}b', 'AGGREGATE', 'MAX'],
      ['ZRANGE', '{zs}i', 0, -1, 'WITHSCORES'],
      ['ZMPOP', 2, '{zs}none', '{zs}a', 'MIN', 'COUNT', 2],
      ['ZMPOP', 1, '{zs}none', 'MAX'],
      ['ZSCORE', '{zs}a', 'three'],
      ['ZINCRBY', '{zs}a', '2.5', 'three'],
      ['ZMSCORE', '{zs}a', 'three', 'nope'],
      ['ZRANK', '{zs}a', 'four'],
      ['ZCARD', '{zs}a'],
      ['ZCOUNT', '{zs}u', '-inf', '+inf'],
      ['ZREM', '{zs}u', 'two', 'nope'],
      ['ZPOPMAX', '{zs}u'],
    ]);
  });

  it('streams: XADD, XRANGE, XLEN, XGROUP CREATE, XREADGROUP (no BLOCK), XACK', async () => {
    await sameAsRedis(
      [
        ['XADD', 'stream:a', '1-1', 'f', 'v1'],
        ['XADD', 'stream:a', '1-2', 'f', 'v2'],
        ['XADD', 'stream:a', '2-0', 'f', 'v3', 'g', 'w'],
        ['XADD', 'stream:a', '1-0', 'f', 'too small'],
        ['XLEN', 'stream:a'],
        ['XRANGE', 'stream:a', '-', '+'],
        ['XRANGE', 'stream:a', '1-2', '+', 'COUNT', 1],
        ['XREVRANGE', 'stream:a', '+', '-', 'COUNT', 2],
        ['XGROUP', 'CREATE', 'stream:a', 'g1', 0],
        ['XGROUP', 'CREATE', 'stream:a', 'g1', 0], // BUSYGROUP
        ['XGROUP', 'CREATE', 'stream:new', 'g1', '$', 'MKSTREAM'],
        ['XREADGROUP', 'GROUP', 'g1', 'c1', 'COUNT', 2, 'STREAMS', 'stream:a', '>'],
        ['XACK', 'stream:a', 'g1', '1-1', '9-9'],
        ['XPENDING', 'stream:a', 'g1'],
        ['XREADGROUP', 'GROUP', 'g1', 'c1', 'STREAMS', 'stream:a', 0],
        ['XREADGROUP', 'GROUP', 'g1', 'c2', 'STREAMS', 'stream:a', '>'],
        ['XREAD', 'COUNT', 10, 'STREAMS', 'stream:a', 0],
        ['XDEL', 'stream:a', '1-2'],
        ['XTRIM', 'stream:a', 'MAXLEN', 1],
        ['XLEN', 'stream:a'],
        ['XLEN', 'stream:new'],
      ],
      2,
    );
  });

  it('geo: GEOADD, GEODIST, GEOSEARCH, GEOPOS', async () => {
    await sameAsRedis([
      ['GEOADD', 'geo:sicily', '13.361389', '38.115556', 'Palermo', '15.087269', '37.502669', 'Catania'],
      ['GEOADD', 'geo:sicily', 'NX', '13.5', '38.0', 'Palermo'],
      ['GEODIST', 'geo:sicily', 'Palermo', 'Catania', 'km'],
      ['GEODIST', 'geo:sicily', 'Palermo', 'nope'],
      ['GEOSEARCH', 'geo:sicily', 'FROMLONLAT', 15, 37, 'BYRADIUS', 200, 'km', 'ASC', 'WITHDIST', 'WITHCOORD'],
      ['GEOSEARCH', 'geo:sicily', 'FROMMEMBER', 'Palermo', 'BYBOX', 400, 400, 'km', 'DESC', 'COUNT', 1],
      ['GEOPOS', 'geo:sicily', 'Palermo', 'nope'],
      ['GEOHASH', 'geo:sicily', 'Catania'],
    ]);
  });

  it('HyperLogLog: PFADD, PFCOUNT, PFMERGE (same slot)', async () => {
    const [, , again, count, merged, mergedCount, union] = await sameAsRedis([
      ['PFADD', '{hll}a', 'a', 'b', 'c', 'd'],
      ['PFADD', '{hll}b', 'c', 'd', 'e'],
      ['PFADD', '{hll}a', 'a'],
      ['PFCOUNT', '{hll}a'],
      ['PFMERGE', '{hll}m', '{hll}a', '{hll}b'],
      ['PFCOUNT', '{hll}m'],
      ['PFCOUNT', '{hll}a', '{hll}b'],
    ]);
    expect([again, count, merged, mergedCount, union]).toEqual(['0', '4', 'OK', '5', '5']);
  });

  it('bitmaps: SETBIT, GETBIT, BITCOUNT, BITOP (same slot), BITPOS, BITFIELD', async () => {
    await sameAsRedis([
      ['SETBIT', '{bits}a', 7, 1],
      ['SETBIT', '{bits}a', 100, 1],
      ['SETBIT', '{bits}a', 7, 0],
      ['GETBIT', '{bits}a', 100],
      ['SET', '{bits}b', 'foobar'],
      ['BITCOUNT', '{bits}b'],
      ['BITCOUNT', '{bits}b', 1, 1],
      ['BITCOUNT', '{bits}b', 5, 30, 'BIT'],
      ['BITOP', 'OR', '{bits}or', '{bits}a', '{bits}b'],
      ['BITCOUNT', '{bits}or'],
      ['BITOP', 'AND', '{bits}and', '{bits}a', '{bits}b'],
      ['STRLEN', '{bits}and'],
      ['BITOP', 'NOT', '{bits}not', '{bits}b'],
      ['BITCOUNT', '{bits}not'],
      ['BITPOS', '{bits}b', 1],
      ['BITFIELD', 'bits:c', 'INCRBY', 'u8', 0, 200, 'GET', 'u8', 0],
      ['BITFIELD', 'bits:c', 'OVERFLOW', 'SAT', 'INCRBY', 'u8', 0, 200],
      ['BITFIELD_RO', 'bits:c', 'GET', 'u4', 0],
    ]);
  });

  it('expiry: EXPIRE (NX/GT), TTL, PERSIST, PEXPIREAT, EXPIRETIME', async () => {
    const future = Date.now() + 3_600_000;
    await sameAsRedis([
      ['SET', 'exp:a', 'v'],
      ['TTL', 'exp:a'],
      ['TTL', 'exp:none'],
      ['EXPIRE', 'exp:a', 1000],
      ['EXPIRE', 'exp:a', 2000, 'NX'],
      ['EXPIRE', 'exp:a', 2000, 'GT'],
      ['PERSIST', 'exp:a'],
      ['PERSIST', 'exp:a'],
      ['TTL', 'exp:a'],
      ['PEXPIREAT', 'exp:a', future],
      ['PEXPIRETIME', 'exp:a'],
      ['EXPIRETIME', 'exp:a'],
      ['PEXPIREAT', 'exp:none', future],
      ['PEXPIREAT', 'exp:a', Date.now() - 1000], // in the past: deleted
      ['EXISTS', 'exp:a'],
    ]);
    // The countdown itself, through the proxy only (the value depends on when it is read).
    await proxy.set('exp:b', 'v');
    expect(await proxy.expire('exp:b', 100)).toBe('1');
    const ttl = Number(await proxy.ttl('exp:b'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(100);
    const pttl = Number(await proxy.pttl('exp:b'));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(100_000);
    // And the TTL is set on the master that holds the key.
    const [owner] = await groupsHolding(masters, 'exp:b');
    expect(Number(await masters[owner! - 1]!.ttl('exp:b'))).toBeGreaterThan(0);
  });

  it('generic: TYPE, RENAME/COPY (same slot), DUMP/RESTORE round trip', async () => {
    await sameAsRedis([
      ['SET', '{gen}a', 'v'],
      ['RENAME', '{gen}a', '{gen}b'],
      ['COPY', '{gen}b', '{gen}c'],
      ['RENAMENX', '{gen}b', '{gen}c'],
      ['MGET', '{gen}a', '{gen}b', '{gen}c'],
      ['TYPE', '{gen}c'],
      ['TYPE', '{gen}none'],
    ]);
    await proxy.rpush('gen:list', 'a', 'b');
    const dump = await proxy.dumpBuffer('gen:list');
    expect(Buffer.isBuffer(dump)).toBe(true);
    expect(await proxy.restore('gen:copy', 0, dump!)).toBe('OK');
    expect(await proxy.lrange('gen:copy', 0, -1)).toEqual(['a', 'b']);
  });
});

describe('binary safety and size', () => {
  it('keys and values with every byte 0..255 and \\r\\n inside round-trip, on the right master', async () => {
    const entries = Array.from({ length: 256 }, (_, i) => {
      const key = Buffer.concat([Buffer.from('bin:'), Buffer.from([i, 0x0d, 0x0a, 255 - i, 0]), Buffer.from(`*1\r\n$4\r\n${i}`)]);
      const value = Buffer.concat([
        Buffer.from(Array.from({ length: 256 }, (_, b) => (b + i) % 256)),
        Buffer.from('\r\n$-1\r\n*2\r\n'),
      ]);
      return { key, value };
    });
    const p = proxy.pipeline();
    for (const { key, value } of entries) p.set(key, value);
    const setReplies = await p.exec();
    expect(setReplies?.map(([err, r]) => err ?? r)).toEqual(entries.map(() => 'OK'));

    for (const { key, value } of entries.slice(0, 32)) expect(await proxy.getBuffer(key)).toEqual(value);
    const all = await proxy.mgetBuffer(...entries.map((e) => e.key));
    expect(all).toEqual(entries.map((e) => e.value));
    expect(await proxy.strlen(entries[7]!.key)).toBe(String(entries[7]!.value.length));

    const holders = await Promise.all(entries.map((e) => groupsHolding(masters, e.key)));
    expect(holders).toEqual(entries.map((e) => [initialOwner(slotOf(e.key), 2)]));
    expect(new Set(holders.map((h) => h[0])).size).toBe(2); // both groups were exercised
    const { key, value } = entries[200]!;
    expect(await masters[initialOwner(slotOf(key), 2) - 1]!.getBuffer(key)).toEqual(value);

    // Binary hash fields and list elements too.
    const field = Buffer.from([0, 13, 10, 255]);
    await proxy.hset('bin:hash', field, entries[3]!.value);
    expect(await proxy.hgetBuffer('bin:hash', field)).toEqual(entries[3]!.value);
    await proxy.rpush('bin:list', entries[0]!.value, entries[255]!.value);
    expect(await proxy.lrangeBuffer('bin:list', 0, -1)).toEqual([entries[0]!.value, entries[255]!.value]);
  });

  it('a 1 MB value round-trips (SET, GET, APPEND, GETRANGE) and is stored intact', async () => {
    const big = randomBytes(1024 * 1024);
    expect(await proxy.set('big:one', big)).toBe('OK');
    expect((await proxy.getBuffer('big:one'))?.equals(big)).toBe(true);
    expect(await proxy.strlen('big:one')).toBe(String(big.length));
    const tail = randomBytes(1024 * 1024);
    expect(await proxy.append('big:one', tail)).toBe(String(2 * big.length));
    expect((await proxy.getrangeBuffer('big:one', big.length, -1)).equals(tail)).toBe(true);
    const owner = initialOwner(slotOf('big:one'), 2);
    expect((await masters[owner - 1]!.getBuffer('big:one'))?.equals(Buffer.concat([big, tail]))).toBe(true);
    // Several big values in flight at once, interleaved with small commands.
    const values = Array.from({ length: 4 }, () => randomBytes(1024 * 1024));
    const p = proxy.pipeline();
    values.forEach((v, i) => p.set(`big:${i}`, v).ping());
    values.forEach((_, i) => p.getBuffer(`big:${i}`));
    const replies = (await p.exec())!.map(([err, r]) => err ?? r);
    expect(replies.slice(0, 8)).toEqual(values.flatMap(() => ['OK', 'PONG']));
    replies.slice(8).forEach((r, i) => expect((r as Buffer).equals(values[i]!)).toBe(true));
  });
});

describe('placement', () => {
  it('slot = crc32(tag) % 1024 with the hash-tag rule, the same as keySlot', () => {
    expect(slotOf('123456789')).toBe(0xcbf43926 % 1024); // the IEEE crc32 check value
    const vectors = ['foo', '{user1}.name', '{user1}.mail', '{}x', 'a{}b{c}', '{a', 'x}y{', '{{a}}', '', '{user1}'];
    for (const k of vectors) expect(keySlot(Buffer.from(k)), k).toBe(slotOf(k));
    expect(slotOf('{user1}.name')).toBe(slotOf('user1'));
    expect(slotOf('{}x')).toBe(slotOf(Buffer.from('{}x'))); // `{}` hashes the whole key
    expect(slotOf('{}x')).not.toBe(slotOf('x'));
  });

  it('every key lands on the master of the group that owns its slot in etcd', async () => {
    const topo = await cluster.store.loadTopology();
    const keys = [
      ...Array.from({ length: 400 }, (_, i) => `land:${i}`),
      '{user1}.name',
      '{user1}.mail',
      '{}x',
      'a{}b{c}',
      '{a',
    ];
    const p = proxy.pipeline();
    for (const k of keys) p.set(k, k);
    await p.exec();
    const owners = keys.map((k) => topo.slots[slotOf(k)]!.group);
    const holders = await Promise.all(keys.map((k) => groupsHolding(masters, k)));
    expect(holders.map((h, i) => [keys[i], h])).toEqual(keys.map((k, i) => [k, [owners[i]]]));
    expect(new Set(owners)).toEqual(new Set([1, 2]));
    expect(holders[400]).toEqual(holders[401]); // one tag, one slot, one group
  });
});
