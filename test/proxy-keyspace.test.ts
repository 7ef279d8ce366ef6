/**
 * Keyspace-wide commands through the proxy, against real groups: SCAN over 2 and 3 groups
 * (every key at least once, MATCH / TYPE / COUNT, cursor errors, `redis-cli --scan`), SCAN
 * while a throttled migration moves keys from groups 1 and 2 to group 3 (every iteration still
 * returns every key), SCAN while a migration into a lower-numbered group starts or ends in the
 * middle of an iteration, KEYS (the union of the masters, bounded by --max-keys-reply),
 * RANDOMKEY, DBSIZE, FLUSHDB / FLUSHALL and --no-flush.
 *
 * Tests on a shared cluster start from masters they empty themselves (FLUSHALL on the redis
 * servers directly), so none depends on what an earlier one wrote.
 */
import { execFile } from 'node:child_process';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MigrationRunner, createMigration } from '@reborn/config';
import { Migrations, type MigrationTask } from '@reborn/coordinator';
import { startCluster, stopAll, waitFor, type Cluster, type ProxyProcess } from '@reborn/testkit';
import { RawClient, RespError, dataReady, initialOwner, keysOfGroup, masterClients, plain, slotOf } from './helpers.js';

/** Two groups: the main proxy, one with --max-keys-reply 100, one with --no-flush. */
let proxy: ProxyProcess;
let boundedKeys: ProxyProcess;
let noFlush: ProxyProcess;
let client: Redis;
let masters2: Redis[];
/** Three groups, one proxy: SCAN over three groups and SCAN during a migration. */
let three: Cluster;
let client3: Redis;
let masters3: Redis[];
/** Two groups, one proxy: migrations into the lower-numbered group while a SCAN iterates. */
let rev: Cluster;

beforeAll(async () => {
  const [c2, c3, cr] = await Promise.all([
    startCluster({ groups: 2, proxies: 0 }),
    startCluster({ groups: 3, proxies: 1 }),
    startCluster({ groups: 2, proxies: 1 }),
  ]);
  three = c3;
  rev = cr;
  [proxy, boundedKeys, noFlush] = await Promise.all([c2.addProxy(), c2.addProxy(['--max-keys-reply', '100']), c2.addProxy(['--no-flush'])]);
  await Promise.all([proxy, boundedKeys, noFlush, c3.proxies[0]!, cr.proxies[0]!].map((p) => dataReady(p.port)));
  client = proxy.client();
  client3 = c3.proxies[0]!.client();
  masters2 = masterClients(c2);
  masters3 = masterClients(c3);
});

afterAll(stopAll);

async function flushMasters(masters: Redis[]): Promise<void> {
  await Promise.all(masters.map((m) => m.flushall()));
}

/** Writes `keys` (value = key) through `c` in one pipeline; throws on any error reply. */
async function setAll(c: Redis, keys: readonly string[]): Promise<void> {
  const p = c.pipeline();
  for (const k of keys) p.set(k, k);
  const res = (await p.exec()) ?? [];
  const errors = res.filter(([e]) => e !== null);
  if (errors.length > 0) throw new Error(`${errors.length} SETs failed, first: ${String(errors[0]![0])}`);
  expect(res).toHaveLength(keys.length);
}

interface ScanResult {
  /** Every key returned, duplicates included, in order. */
  keys: string[];
  /** Keys per SCAN call. */
  batches: number[];
  /** Every cursor the proxy returned (the last is "0"). */
  cursors: string[];
}

/** One complete SCAN iteration (cursor 0 … 0) with `opts` after the cursor. */
async function fullScan(c: Redis, ...opts: (string | number)[]): Promise<ScanResult> {
  const out: ScanResult = { keys: [], batches: [], cursors: [] };
  let cursor = '0';
  do {
    const [next, got] = (await c.call('SCAN', cursor, ...opts.map(String))) as [string, string[]];
    out.keys.push(...got);
    out.batches.push(got.length);
    out.cursors.push(next);
    cursor = next;
    // An iteration that never ends is a bug, not a slow scan.
    if (out.batches.length > 1_000_000) throw new Error(`SCAN ${opts.join(' ')}: no end after 1 000 000 calls`);
  } while (cursor !== '0');
  return out;
}

/** `redis-cli --scan [args]` through the main proxy: the keys it prints. */
function redisCliScan(...args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', proxy.host, '-p', String(proxy.port), '--scan', ...args], { timeout: 80_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli failed: ${err.message}\n${stderr}`));
      else resolve(stdout.split('\n').filter((l) => l !== ''));
    });
  });
}

/** KEYS `pattern` on each master directly, as one set. */
async function keysOnMasters(masters: Redis[], pattern: string): Promise<Set<string>> {
  const all = await Promise.all(masters.map((m) => m.keys(pattern)));
  return new Set(all.flat());
}

function sorted(it: Iterable<string>): string[] {
  return [...it].sort();
}

function missingFrom(got: Iterable<string>, want: Iterable<string>): string[] {
  const have = new Set(got);
  return [...want].filter((k) => !have.has(k));
}

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    const v = await p;
    throw new Error(`expected an error reply, got ${JSON.stringify(v)}`);
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('expected an error reply')) throw err;
    return (err as Error).message;
  }
}

const N = 5000;
const K = Array.from({ length: N }, (_, i) => `k:${i}`);

describe('SCAN over two groups', () => {
  /** Typed keys next to the 5 000 strings: 40 hashes, lists, sets and sorted sets. */
  const typed = {
    hash: Array.from({ length: 40 }, (_, i) => `t:h:${i}`),
    list: Array.from({ length: 40 }, (_, i) => `t:l:${i}`),
    set: Array.from({ length: 40 }, (_, i) => `t:s:${i}`),
    zset: Array.from({ length: 40 }, (_, i) => `t:z:${i}`),
  };
  const everything = new Set([...K, ...Object.values(typed).flat()]);

  beforeAll(async () => {
    await flushMasters(masters2);
    await setAll(client, K);
    const p = client.pipeline();
    for (const k of typed.hash) p.hset(k, 'f', '1');
    for (const k of typed.list) p.rpush(k, 'a');
    for (const k of typed.set) p.sadd(k, 'a');
    for (const k of typed.zset) p.zadd(k, 1, 'a');
    const res = (await p.exec()) ?? [];
    expect(res.filter(([e]) => e !== null)).toEqual([]);
    // The keys really are spread over both groups, so the iteration must cross groups.
    const sizes = await Promise.all(masters2.map((m) => m.dbsize()));
    expect(sizes.every((n) => n > 1000), `keys per master: ${sizes.join(', ')}`).toBe(true);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(everything.size);
  });

  it('COUNT 100: the union of one full iteration is exactly the key set', async () => {
    const r = await fullScan(client, 'COUNT', 100);
    expect(missingFrom(r.keys, everything)).toEqual([]);
    expect(sorted(new Set(r.keys))).toEqual(sorted(everything));
    // Cursors are plain unsigned integers, and the iteration needed more than one call per group.
    expect(r.cursors.every((c) => /^\d+$/.test(c))).toBe(true);
    expect(r.batches.length).toBeGreaterThan(2);
  });

  it('MATCH returns exactly the matching keys', async () => {
    const r = await fullScan(client, 'MATCH', 'k:1*', 'COUNT', 100);
    const want = K.filter((k) => k.startsWith('k:1'));
    expect(want).toHaveLength(1111);
    expect(sorted(new Set(r.keys))).toEqual(sorted(want));
    const none = await fullScan(client, 'MATCH', 'no-such-prefix:*', 'COUNT', 1000);
    expect(none.keys).toEqual([]);
  });

  it('TYPE returns exactly the keys of that type, alone and with MATCH', async () => {
    for (const [type, keys] of Object.entries(typed)) {
      const r = await fullScan(client, 'COUNT', 100, 'TYPE', type);
      expect(sorted(new Set(r.keys)), `TYPE ${type}`).toEqual(sorted(keys));
    }
    const strings = await fullScan(client, 'TYPE', 'string', 'COUNT', 500);
    expect(sorted(new Set(strings.keys))).toEqual(sorted(K));
    const both = await fullScan(client, 'MATCH', 't:h:1*', 'TYPE', 'hash', 'COUNT', 100);
    expect(sorted(new Set(both.keys))).toEqual(sorted(typed.hash.filter((k) => k.startsWith('t:h:1'))));
  });

  it('COUNT is passed to the groups (honoured loosely, as by redis)', async () => {
    const small = await fullScan(client, 'COUNT', 10);
    const large = await fullScan(client, 'COUNT', 1000);
    expect(sorted(new Set(small.keys))).toEqual(sorted(everything));
    expect(sorted(new Set(large.keys))).toEqual(sorted(everything));
    // Redis returns about COUNT keys per call: many calls of a few keys vs. a few calls of many.
    expect(small.batches.length).toBeGreaterThan(5 * large.batches.length);
    expect(Math.max(...small.batches)).toBeLessThanOrEqual(100);
    expect(Math.max(...large.batches)).toBeGreaterThanOrEqual(500);
  });

  it('a malformed cursor answers ERR invalid cursor', async () => {
    const raw = await RawClient.connect(proxy.port);
    try {
      for (const bad of ['abc', '-1', '1.5', '', '12x', '99999999999999999999999999999999999999999999']) {
        const r = await raw.call('SCAN', bad);
        expect(r, `SCAN ${JSON.stringify(bad)}`).toBeInstanceOf(RespError);
        expect((r as RespError).message, `SCAN ${JSON.stringify(bad)}`).toMatch(/^ERR invalid cursor/);
      }
      // A well-formed cursor naming a group that does not exist is refused too, never answered
      // with some other group's keys.
      const r = await raw.call('SCAN', String(16384 * 7 + 999));
      expect(r).toBeInstanceOf(RespError);
      expect((r as RespError).message).toMatch(/^ERR invalid cursor/);
      // The connection is still usable.
      expect(plain(await raw.call('GET', 'k:1'))).toBe('k:1');
    } finally {
      raw.destroy();
    }
  });

  it('redis-cli --scan --pattern k:* lists every key', async () => {
    const lines = await redisCliScan('--pattern', 'k:*');
    expect(lines.filter((l) => !l.startsWith('k:'))).toEqual([]);
    expect(sorted(new Set(lines))).toEqual(sorted(K));
  });

  it('KEYS answers the union of the keys on the masters', async () => {
    for (const pattern of ['k:1*', 't:*', 'k:4?9', 'nothing:*']) {
      const viaProxy = (await client.keys(pattern)) as string[];
      const onMasters = await keysOnMasters(masters2, pattern);
      expect(viaProxy.length, `KEYS ${pattern}: no duplicates`).toBe(new Set(viaProxy).size);
      expect(sorted(viaProxy), `KEYS ${pattern}`).toEqual(sorted(onMasters));
    }
    expect(sorted((await client.keys('k:1*')) as string[])).toEqual(sorted(K.filter((k) => k.startsWith('k:1'))));
  });

  it('DBSIZE is the sum over every master', async () => {
    const sizes = await Promise.all(masters2.map((m) => m.dbsize()));
    expect(await client.dbsize()).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(await client.dbsize()).toBe(everything.size);
  });
});

describe('SCAN over three groups', () => {
  it('COUNT 100 returns every one of 5 000 keys spread over three groups', async () => {
    await flushMasters(masters3);
    const keys = Array.from({ length: N }, (_, i) => `k3:${i}`);
    await setAll(client3, keys);
    const sizes = await Promise.all(masters3.map((m) => m.dbsize()));
    expect(sizes.every((n) => n > 1000), `keys per master: ${sizes.join(', ')}`).toBe(true);
    const r = await fullScan(client3, 'COUNT', 100);
    expect(missingFrom(r.keys, keys)).toEqual([]);
    expect(sorted(new Set(r.keys))).toEqual(sorted(keys));
  });

  it('every full SCAN iteration during a throttled migration (groups 1 and 2 → 3) returns all 20 000 keys', { timeout: 90_000 }, async () => {
    await flushMasters(masters3);
    const keys = Array.from({ length: 20_000 }, (_, i) => `m:${i}`);
    for (let i = 0; i < keys.length; i += 5000) await setAll(client3, keys.slice(i, i + 5000));
    expect(await client3.dbsize()).toBe(keys.length);
    // Slots 0..682 belong to groups 1 and 2 (the testkit's even split of 3 groups).
    const moving = keys.filter((k) => initialOwner(slotOf(k), 3) !== 3);
    expect(moving.length).toBeGreaterThan(10_000);

    const task = await createMigration(three.store, { first: 0, last: 682, to: 3, throttle: 4000, batchSlots: 64 });
    expect(task.from).toEqual([1, 2]);
    const runner = new MigrationRunner({ store: three.store, logger: pino({ level: 'silent' }) });
    let finished = false;
    const run = runner.runTask(task.id).finally(() => {
      finished = true;
    });
    run.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile

    const problems: string[] = [];
    let iterations = 0;
    /** Iterations during which group 3's master gained keys: keys moved under the scan. */
    let movedUnder = 0;
    try {
      while (!finished) {
        const before = await masters3[2]!.dbsize();
        const r = await fullScan(client3, 'COUNT', 100);
        const after = await masters3[2]!.dbsize();
        // Only iterations that ended before the migration did count as "during".
        if (finished) break;
        iterations++;
        if (after > before) movedUnder++;
        const missing = missingFrom(r.keys, keys);
        if (missing.length > 0) problems.push(`iteration ${iterations}: ${missing.length} keys missing, e.g. ${missing.slice(0, 5).join(' ')}`);
        const foreign = r.keys.filter((k) => !k.startsWith('m:'));
        if (foreign.length > 0) problems.push(`iteration ${iterations}: unknown keys ${foreign.slice(0, 5).join(' ')}`);
      }
    } finally {
      const end = await run;
      expect(end.state, `migration ended ${end.state}: ${end.error}`).toBe('done');
    }
    expect(problems).toEqual([]);
    expect(iterations, 'complete SCAN iterations during the migration').toBeGreaterThanOrEqual(3);
    expect(movedUnder, 'iterations while keys were moving').toBeGreaterThanOrEqual(1);

    // The keys really moved: group 3 holds everything now, and a SCAN after the migration is complete.
    const sizes = await Promise.all(masters3.map((m) => m.dbsize()));
    expect(sizes).toEqual([0, 0, keys.length]);
    const last = await fullScan(client3, 'COUNT', 100);
    expect(sorted(new Set(last.keys))).toEqual(sorted(keys));
  });
});

describe('KEYS with --max-keys-reply 100', () => {
  it('answers up to 100 keys, then an error that says to use SCAN; SCAN still lists them all', async () => {
    await flushMasters(masters2);
    const keys = Array.from({ length: 500 }, (_, i) => `mk:${i}`);
    const first100 = keys.slice(0, 100);
    await setAll(client, first100);
    const c = boundedKeys.client();
    expect(sorted((await c.keys('*')) as string[])).toEqual(sorted(first100));

    await setAll(client, keys.slice(100));
    const msg = await errorOf(c.keys('*'));
    expect(msg).toMatch(/^ERR .*use SCAN/);
    expect(msg).toContain('100');
    // The bound is on the reply, not on the keyspace: a narrower pattern still answers.
    expect(sorted((await c.keys('mk:1?')) as string[])).toEqual(sorted(keys.filter((k) => /^mk:1\d$/.test(k))));
    const r = await fullScan(c, 'COUNT', 100);
    expect(sorted(new Set(r.keys))).toEqual(sorted(keys));
    // The proxy without the bound answers KEYS * in full.
    expect(sorted((await client.keys('*')) as string[])).toEqual(sorted(keys));
  });
});

describe('KEYS over the default bound (100 000)', () => {
  it('150 000 keys on one master: an error for KEYS, and the clients sharing its connections are unaffected', { timeout: 60_000 }, async () => {
    await flushMasters(masters2);
    const n = 150_000;
    for (let start = 0; start < n; start += 10_000) {
      const p = masters2[0]!.pipeline();
      for (let i = start; i < start + 10_000; i++) p.set(`big:${i}`, '1');
      await p.exec();
    }
    const others = Array.from({ length: 8 }, () => proxy.client());
    try {
      await Promise.all(others.map((o) => o.ping()));
      const busy = others.map(async (o) => {
        const p = o.pipeline();
        for (let i = 0; i < 200; i++) p.get(`big:${i}`);
        // Written straight into group 1's master: a key of a group-2 slot reads as nil.
        return ((await p.exec()) ?? []).filter(([err, v]) => err !== null || (v !== '1' && v !== null)).length;
      });
      const msg = await errorOf(client.keys('*'));
      expect(msg).toMatch(/^ERR KEYS would return more than 100000 keys; use SCAN/);
      expect(await Promise.all(busy)).toEqual(others.map(() => 0));
      expect(await client.dbsize()).toBe(n);
    } finally {
      others.forEach((o) => o.disconnect());
      await flushMasters(masters2);
    }
  });
});

describe('SCAN cursors', () => {
  it('stay below 2^63 over a group of 300 000 keys, and redis-cli --scan lists every key', { timeout: 90_000 }, async () => {
    await flushMasters(masters2);
    const n = 300_000;
    for (let start = 0; start < n; start += 20_000) {
      const p = masters2[0]!.pipeline();
      for (let i = start; i < start + 20_000; i++) p.set(`huge:${i}`, '1');
      await p.exec();
    }
    try {
      const r = await fullScan(client, 'COUNT', 1000);
      expect(r.cursors.filter((c) => BigInt(c) >= 2n ** 63n)).toEqual([]);
      expect(new Set(r.keys).size).toBe(n);
      // redis-cli parses cursors with saturation above 2^64: the case that broke.
      expect(new Set(await redisCliScan()).size).toBe(n);
    } finally {
      await flushMasters(masters2);
    }
  });

  it('an iteration whose calls alternate between two proxies finishes and returns every key', async () => {
    await flushMasters(masters2);
    const keys = Array.from({ length: 3000 }, (_, i) => `alt:${i}`);
    await setAll(client, keys);
    const other = boundedKeys.client();
    try {
      const seen = new Set<string>();
      let cursor = '0';
      let calls = 0;
      do {
        const c = calls % 2 === 0 ? client : other;
        const [next, got] = (await c.call('SCAN', cursor, 'COUNT', '100')) as [string, string[]];
        for (const k of got) seen.add(k);
        cursor = next;
        calls++;
        // Two passes at most (the main one and one conservative revisit): a hang detector.
        if (calls > 1000) throw new Error('SCAN alternating between proxies does not finish');
      } while (cursor !== '0');
      expect(sorted(seen)).toEqual(sorted(keys));
    } finally {
      other.disconnect();
    }
  });
});

describe('RANDOMKEY and DBSIZE', () => {
  it('RANDOMKEY is nil on an empty keyspace and DBSIZE 0', async () => {
    await flushMasters(masters2);
    expect(await client.randomkey()).toBeNull();
    expect(await client.dbsize()).toBe(0);
  });

  it('RANDOMKEY finds the only key even when most groups are empty', async () => {
    await flushMasters(masters2);
    for (const gid of [1, 2]) {
      await flushMasters(masters2);
      const [only] = keysOfGroup(`rk${gid}:`, gid, 1);
      await client.set(only!, 'x');
      for (let i = 0; i < 20; i++) expect(await client.randomkey(), `only key in group ${gid}`).toBe(only);
      expect(await client.dbsize()).toBe(1);
    }
  });

  it('RANDOMKEY returns existing keys from both groups', async () => {
    await flushMasters(masters2);
    const keys = [...keysOfGroup('rka:', 1, 50), ...keysOfGroup('rkb:', 2, 50)];
    await setAll(client, keys);
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const k = await client.randomkey();
      expect(keys).toContain(k);
      seen.add(k!);
    }
    const groups = new Set([...seen].map((k) => initialOwner(slotOf(k), 2)));
    expect(groups.size).toBe(2);
    expect(await client.dbsize()).toBe(keys.length);
  });
});

describe('FLUSHDB / FLUSHALL', () => {
  const fill = async (): Promise<string[]> => {
    const keys = [...keysOfGroup('fl1:', 1, 100), ...keysOfGroup('fl2:', 2, 100)];
    await setAll(client, keys);
    const sizes = await Promise.all(masters2.map((m) => m.dbsize()));
    expect(sizes.every((n) => n >= 100), `keys per master: ${sizes.join(', ')}`).toBe(true);
    return keys;
  };

  it('FLUSHDB (and FLUSHDB ASYNC) empties every master', async () => {
    await flushMasters(masters2);
    await fill();
    expect(await client.flushdb()).toBe('OK');
    expect(await Promise.all(masters2.map((m) => m.dbsize()))).toEqual([0, 0]);
    await fill();
    expect(await client.call('FLUSHDB', 'ASYNC')).toBe('OK');
    await waitFor(async () => (await Promise.all(masters2.map((m) => m.dbsize()))).every((n) => n === 0), {
      what: 'FLUSHDB ASYNC emptying the masters',
    });
    expect(await client.dbsize()).toBe(0);
  });

  it('FLUSHALL empties every master', async () => {
    await flushMasters(masters2);
    await fill();
    expect(await client.flushall()).toBe('OK');
    expect(await Promise.all(masters2.map((m) => m.dbsize()))).toEqual([0, 0]);
  });

  it('a proxy started with --no-flush refuses FLUSHDB and FLUSHALL and deletes nothing', async () => {
    await flushMasters(masters2);
    const keys = await fill();
    const c = noFlush.client();
    for (const args of [['FLUSHDB'], ['FLUSHALL'], ['flushdb', 'ASYNC'], ['FLUSHALL', 'SYNC']]) {
      const msg = await errorOf(c.call(args[0]!, ...args.slice(1)));
      expect(msg, args.join(' ')).toMatch(new RegExp(`^ERR ${args[0]!.toUpperCase()} is disabled on this proxy \\(--no-flush\\)`));
    }
    expect(await Promise.all(masters2.map((m) => m.dbsize()))).toEqual(
      [1, 2].map((g) => keys.filter((k) => initialOwner(slotOf(k), 2) === g).length),
    );
    expect(await c.mget(...keys)).toEqual(keys);
    // Other commands still work on it.
    expect(await c.dbsize()).toBe(keys.length);
  });
});

/**
 * SCAN's order is "sources of migrating slots before their targets", recomputed when the
 * iteration moves from one group to the next. A migration into a group with a LOWER id than
 * its source changes that order; one that starts or ends in the middle of an iteration must
 * not make the iteration skip a group: keys that never moved, and were there throughout,
 * must all be returned.
 */
describe('SCAN while a migration into a lower-numbered group starts or ends mid-iteration', () => {
  const plainKeys = Array.from({ length: 4000 }, (_, i) => `r:${i}`);
  let c: Redis;
  let revMasters: Redis[];

  beforeAll(async () => {
    c = rev.proxies[0]!.client();
    revMasters = masterClients(rev);
    await setAll(c, plainKeys);
    const sizes = await Promise.all(revMasters.map((m) => m.dbsize()));
    expect(sizes.every((n) => n > 1000), `keys per master: ${sizes.join(', ')}`).toBe(true);
  });

  /** A hash tag whose slot group 2 owns, with `n` keys in it; returns the slot and the keys. */
  async function slotOfGroup2(tagPrefix: string, n: number): Promise<{ slot: number; keys: string[] }> {
    let i = 0;
    while (initialOwner(slotOf(`${tagPrefix}${i}`), 2) !== 2) i++;
    const tag = `${tagPrefix}${i}`;
    const keys = Array.from({ length: n }, (_, j) => `{${tag}}:${j}`);
    await setAll(c, keys);
    return { slot: slotOf(tag), keys };
  }

  async function proxySlotStates(): Promise<Record<string, number>> {
    return (JSON.parse(await rev.proxies[0]!.adminGet('/api/proxy')) as { slots: Record<string, number> }).slots;
  }

  /**
   * Starts a throttled migration of `slot` (group 2 → 1), waits until the proxy serves it as
   * migrating, then pauses the task so it stays there.
   */
  async function startPausedMigration(slot: number): Promise<{ id: string; run: Promise<MigrationTask> }> {
    const task = await createMigration(rev.store, { first: slot, last: slot, to: 1, throttle: 5 });
    const runner = new MigrationRunner({ store: rev.store, logger: pino({ level: 'silent' }) });
    const run = runner.runTask(task.id);
    run.catch(() => undefined); // awaited by finish()
    await waitFor(async () => (await proxySlotStates()).migrating === 1, { timeoutMs: 20_000, what: `slot ${slot} migrating in the proxy` });
    await new Migrations(rev.store).update(task.id, (t) => ({ ...t, state: 'paused' }));
    return { id: task.id, run };
  }

  /** Resumes the task unthrottled, waits for it to end and for the proxy to see every slot online. */
  async function finish(m: { id: string; run: Promise<MigrationTask> }): Promise<void> {
    await new Migrations(rev.store).update(m.id, (t) => ({ ...t, state: 'running', throttle: 0 }));
    const end = await m.run;
    expect(end.state, `migration ended ${end.state}: ${end.error}`).toBe('done');
    await waitFor(async () => (await proxySlotStates()).online === 1024, { what: 'every slot online in the proxy' });
  }

  /** "group 1: n keys, group 2: m keys" by the initial owner of each key's slot. */
  function byGroup(keys: readonly string[]): string {
    const n = [1, 2].map((g) => keys.filter((k) => initialOwner(slotOf(k), 2) === g).length);
    return `group 1: ${n[0]} keys, group 2: ${n[1]} keys; the groups hold ${plainKeys.filter((k) => initialOwner(slotOf(k), 2) === 1).length} and ${plainKeys.filter((k) => initialOwner(slotOf(k), 2) === 2).length} plain keys`;
  }

  /** The group a proxy SCAN cursor points into: ((backend * 16384) + group) * 2^19 + pass. */
  function cursorGroup(cursor: string): bigint {
    return (BigInt(cursor) / 2n ** 19n) % 16384n;
  }

  async function scanFrom(cursor: string): Promise<string[]> {
    const keys: string[] = [];
    do {
      const [next, got] = (await c.call('SCAN', cursor, 'COUNT', 100)) as [string, string[]];
      keys.push(...got);
      cursor = next;
    } while (cursor !== '0');
    return keys;
  }

  it('a migration 2 → 1 that starts while the iteration is in group 1: group 2 is still scanned', { timeout: 60_000 }, async () => {
    const { slot, keys: moving } = await slotOfGroup2('revA', 100);
    // Groups are visited in id order: the first call scans group 1.
    const [cursor, first] = (await c.call('SCAN', '0', 'COUNT', 100)) as [string, string[]];
    expect(cursorGroup(cursor), 'the iteration starts in group 1').toBe(1n);
    const m = await startPausedMigration(slot);
    try {
      const rest = await scanFrom(cursor);
      const got = [...first, ...rest];
      // Not even the keys of the slot moving down into the already-scanned group may be missed.
      const missing = missingFrom(got, [...plainKeys, ...moving]);
      expect(missing.length, `keys missing (${byGroup(missing)}), e.g. ${missing.slice(0, 5).join(' ')}`).toBe(0);
      expect(got.filter((k) => !plainKeys.includes(k) && !moving.includes(k))).toEqual([]);
    } finally {
      await finish(m);
    }
  });

  it('a migration 2 → 1 that ends while the iteration is in group 2: group 1 is still scanned', { timeout: 60_000 }, async () => {
    const { slot, keys: moving } = await slotOfGroup2('revB', 100);
    const m = await startPausedMigration(slot);
    let finished = false;
    try {
      // Groups are visited in id order whatever migrates: the first call scans group 1.
      const [cursor, first] = (await c.call('SCAN', '0', 'COUNT', 100)) as [string, string[]];
      expect(cursorGroup(cursor), 'the iteration starts in group 1').toBe(1n);
      await finish(m);
      finished = true;
      const got = [...first, ...(await scanFrom(cursor))];
      const missing = missingFrom(got, [...plainKeys, ...moving]);
      expect(missing.length, `keys missing (${byGroup(missing)}), e.g. ${missing.slice(0, 5).join(' ')}`).toBe(0);
    } finally {
      if (!finished) await finish(m);
    }
  });
});
