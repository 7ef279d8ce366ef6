/**
 * Multi-key commands: the six the proxy splits per group and merges (MGET, MSET, DEL, UNLINK,
 * EXISTS, TOUCH) answer like one redis, duplicates and missing keys included; the others
 * answer -CROSSSLOT across slots and work with hash tags; scripts are loaded on every master
 * and their keys land in the right group.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, startRedis, stopAll } from '@reborn/testkit';
import { dataReady, groupsHolding, initialOwner, keysInSlots, keysOfGroup, masterClients, slotOf } from './helpers.js';

const CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot";

let proxy: Redis;
let reference: Redis;
let masters: Redis[];

beforeAll(async () => {
  const [c, ref] = await Promise.all([startCluster({ groups: 2, proxies: 1 }), startRedis()]);
  await dataReady(c.proxies[0]!.port);
  proxy = c.proxies[0]!.client();
  reference = ref.client();
  masters = masterClients(c);
});

afterAll(stopAll);

async function both(args: (string | number)[]): Promise<{ proxy: unknown; redis: unknown }> {
  const run = async (c: Redis) => {
    try {
      return await c.call(String(args[0]), ...args.slice(1).map(String));
    } catch (err) {
      return { err: (err as Error).message };
    }
  };
  return { proxy: await run(proxy), redis: await run(reference) };
}

/** Same command on the proxy and the reference redis: the replies must be equal. */
async function sameAsRedis(...args: (string | number)[]): Promise<unknown> {
  const r = await both(args);
  expect(r.proxy, args.join(' ')).toEqual(r.redis);
  return r.proxy;
}

/** Keys in different groups and, separately, different slots of the same group. */
const g1 = keysOfGroup('mk:g1:', 1, 300);
const g2 = keysOfGroup('mk:g2:', 2, 300);
const [a1, b1] = [g1[0]!, g1.find((k) => slotOf(k) !== slotOf(g1[0]!))!];
const [a2] = [g2[0]!];

describe('split commands across slots and groups', () => {
  it('MSET and MGET of 500 keys over both groups, with missing keys and duplicates', async () => {
    const keys = [...g1.slice(0, 250), ...g2.slice(0, 250)].sort(); // interleaved groups
    const kv = keys.flatMap((k) => [k, `val-${k}`]);
    expect(await sameAsRedis('MSET', ...kv)).toBe('OK');
    const query = [...keys, 'mk:missing:1', keys[3]!, keys[499]!, keys[3]!, 'mk:missing:2', keys[0]!];
    const values = await sameAsRedis('MGET', ...query);
    expect(values).toEqual(query.map((k) => (k.startsWith('mk:missing') ? null : `val-${k}`)));
    // Each key is on its owner's master and nowhere else.
    const holders = await Promise.all(keys.map((k) => groupsHolding(masters, k)));
    expect(holders).toEqual(keys.map((k) => [initialOwner(slotOf(k), 2)]));
    // MSET with a duplicated key: the last value wins, as in redis.
    await sameAsRedis('MSET', a1, 'first', a2, 'x', a1, 'second');
    expect(await sameAsRedis('MGET', a1, a2)).toEqual(['second', 'x']);
  });

  it('EXISTS and TOUCH count duplicates and skip missing keys, over both groups', async () => {
    await sameAsRedis('MSET', a1, '1', b1, '2', a2, '3');
    expect(await sameAsRedis('EXISTS', a1, a2, 'mk:missing', a1, b1, a2, a2)).toBe(6);
    expect(await sameAsRedis('TOUCH', a1, a2, 'mk:missing', a2, b1)).toBe(4);
    expect(await sameAsRedis('EXISTS', 'mk:missing')).toBe(0);
    const many = [...g1.slice(0, 250), ...g2.slice(0, 250)];
    await sameAsRedis('MSET', ...many.flatMap((k) => [k, 'v']));
    expect(await sameAsRedis('EXISTS', ...many, ...many.slice(0, 10), 'mk:missing')).toBe(510);
  });

  it('DEL and UNLINK delete on every group, counting each key once', async () => {
    await sameAsRedis('MSET', a1, '1', b1, '2', a2, '3');
    expect(await sameAsRedis('DEL', a1, a2, 'mk:missing', a1, a2)).toBe(2);
    expect(await sameAsRedis('UNLINK', b1, b1, 'mk:missing')).toBe(1);
    expect(await Promise.all([a1, b1, a2].map((k) => groupsHolding(masters, k)))).toEqual([[], [], []]);
    const many = [...g1.slice(0, 250), ...g2.slice(0, 250)];
    await sameAsRedis('MSET', ...many.flatMap((k) => [k, 'v']));
    expect(await sameAsRedis('DEL', ...many.slice(0, 300), 'mk:missing')).toBe(300);
    expect(await sameAsRedis('UNLINK', ...many)).toBe(200);
    expect(await Promise.all(masters.map((m) => m.exists(...many)))).toEqual([0, 0]);
  });

  it('split commands keep their order inside a pipeline', async () => {
    const p = proxy.pipeline();
    p.mset(a1, 'A', a2, 'B');
    p.mget(a2, a1, 'mk:missing');
    p.del(a1, a2);
    p.exists(a1, a2);
    p.mget(a1, a2);
    const replies = (await p.exec())!.map(([err, r]) => err ?? r);
    expect(replies).toEqual(['OK', ['B', 'A', null], 2, 0, [null, null]]);
  });

  it('a wrong-arity MSET is refused like redis', async () => {
    await sameAsRedis('MSET', a1, '1', a2);
    await sameAsRedis('MGET');
    await sameAsRedis('DEL');
  });
});

describe('CROSSSLOT', () => {
  // Two keys in different groups, and two keys in different slots of the same group: both
  // must be refused, since a slot (not a group) is what migrates.
  const pairs: [label: string, k1: string, k2: string][] = [
    ['different groups', a1, a2],
    ['same group, different slots', a1, b1],
  ];
  for (const [label, k1, k2] of pairs) {
    it(`RENAME, SINTERSTORE, ZUNIONSTORE, RPOPLPUSH, EVAL, MSETNX are refused across slots (${label})`, async () => {
      expect(slotOf(k1)).not.toBe(slotOf(k2));
      await proxy.del(k1, k2);
      await proxy.set(k1, 'v');
      const refused: (string | number)[][] = [
        ['RENAME', k1, k2],
        ['RENAMENX', k1, k2],
        ['SINTERSTORE', k1, k2],
        ['ZUNIONSTORE', k1, 2, k1, k2],
        ['RPOPLPUSH', k1, k2],
        ['LMOVE', k1, k2, 'LEFT', 'LEFT'],
        ['EVAL', 'return 1', 2, k1, k2],
        ['EVALSHA', 'ffffffffffffffffffffffffffffffffffffffff', 2, k1, k2],
        ['MSETNX', k1, '1', k2, '2'],
        ['SUNION', k1, k2],
        ['PFCOUNT', k1, k2],
        ['COPY', k1, k2],
      ];
      for (const args of refused) {
        let reply: unknown;
        try {
          reply = await proxy.call(String(args[0]), ...args.slice(1).map(String));
        } catch (err) {
          reply = { err: (err as Error).message };
        }
        expect([args[0], reply]).toEqual([args[0], { err: CROSSSLOT }]);
      }
      // Nothing was written by the refused commands.
      expect(await proxy.exists(k2)).toBe(0);
      expect(await proxy.get(k1)).toBe('v');
      await proxy.del(k1);
    });
  }

  it('the same commands with a shared hash tag run and answer like redis', async () => {
    const t = (s: string) => `{mk-tag}${s}`;
    await sameAsRedis('DEL', t('a'), t('b'), t('c'), t('l1'), t('l2'), t('z'), t('s1'), t('s2'));
    await sameAsRedis('SET', t('a'), 'v');
    expect(await sameAsRedis('RENAME', t('a'), t('b'))).toBe('OK');
    expect(await sameAsRedis('MSETNX', t('a'), '1', t('c'), '2')).toBe(1);
    expect(await sameAsRedis('MSETNX', t('a'), '1', t('new'), '2')).toBe(0);
    await sameAsRedis('SADD', t('s1'), 'a', 'b', 'c');
    await sameAsRedis('SADD', t('s2'), 'b', 'c', 'd');
    expect(await sameAsRedis('SINTERSTORE', t('s3'), t('s1'), t('s2'))).toBe(2);
    await sameAsRedis('ZADD', t('z1'), 1, 'a', 2, 'b');
    expect(await sameAsRedis('ZUNIONSTORE', t('z'), 2, t('z1'), t('s2'))).toBe(4);
    await sameAsRedis('ZRANGE', t('z'), 0, -1, 'WITHSCORES');
    await sameAsRedis('RPUSH', t('l1'), 'x', 'y');
    expect(await sameAsRedis('RPOPLPUSH', t('l1'), t('l2'))).toBe('y');
    expect(await sameAsRedis('EVAL', "return redis.call('get', KEYS[1]) .. ARGV[1]", 2, t('b'), t('c'), '!')).toBe('v!');
    // All of it sits on the master of the tag's group.
    const owner = initialOwner(slotOf(t('x')), 2);
    expect(await masters[owner - 1]!.exists(t('b'), t('c'), t('s3'), t('z'), t('l2'))).toBe(5);
    expect(await masters[2 - owner]!.exists(t('b'), t('c'), t('s3'), t('z'), t('l2'))).toBe(0);
  });
});

describe('scripts', () => {
  const body = "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])";

  it('SCRIPT LOAD loads on every master; EVALSHA works on keys of any group', async () => {
    await proxy.script('FLUSH');
    const sha = (await proxy.script('LOAD', body)) as string;
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(await Promise.all(masters.map((m) => m.script('EXISTS', sha)))).toEqual([[1], [1]]);
    for (const k of [...g1.slice(10, 15), ...g2.slice(10, 15)]) {
      expect(await proxy.evalsha(sha, 1, k, `by-sha-${k}`)).toBe(`by-sha-${k}`);
      expect(await groupsHolding(masters, k)).toEqual([initialOwner(slotOf(k), 2)]);
    }
    const unknown = 'ffffffffffffffffffffffffffffffffffffffff';
    expect(await proxy.script('EXISTS', sha, unknown)).toEqual([1, 0]);
  });

  it('SCRIPT EXISTS says 1 only when every master has the script', async () => {
    const onlyOne = "return 'only on group 1'";
    const sha = (await masters[0]!.script('LOAD', onlyOne)) as string;
    expect(await masters[1]!.script('EXISTS', sha)).toEqual([0]);
    expect(await proxy.script('EXISTS', sha)).toEqual([0]);
    // EVALSHA on a key of the group without it answers NOSCRIPT, like redis.
    await expect(proxy.evalsha(sha, 1, g2[20]!)).rejects.toThrow(/^NOSCRIPT/);
    expect(await proxy.evalsha(sha, 1, g1[20]!)).toBe('only on group 1');
  });

  it('EVAL with keys runs on the group of its keys; EVAL with 0 keys runs', async () => {
    for (const k of [g1[30]!, g2[30]!]) {
      expect(await proxy.eval(body, 1, k, 'from-eval')).toBe('from-eval');
      expect(await groupsHolding(masters, k)).toEqual([initialOwner(slotOf(k), 2)]);
    }
    expect(await proxy.eval('return 42', 0)).toBe(42);
    expect(await proxy.eval("return redis.call('ping')", 0)).toBe('PONG');
    expect(await proxy.eval('return {ARGV[1], ARGV[2]}', 0, 'a', 'b')).toEqual(['a', 'b']);
    // A script's error reaches the client as an error.
    await expect(proxy.eval("return redis.call('incr', KEYS[1])", 1, g1[30]!)).rejects.toThrow(/not an integer/);
  });

  it('keys of one slot from different names (hash tags) work in one script', async () => {
    const keys = keysInSlots('{script-tag}', 0, 1023, 1).concat(['{script-tag}other']);
    expect(await proxy.eval("return redis.call('mset', KEYS[1], 'a', KEYS[2], 'b')", 2, ...keys)).toBe('OK');
    expect(await proxy.mget(...keys)).toEqual(['a', 'b']);
  });
});
