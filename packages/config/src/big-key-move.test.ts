/**
 * Big keys moved in chunks (big-key-detect.ts, chunk-copy.ts, big-key-move.ts) against real
 * etcd and redis (two groups, a master and a replica each, no proxy registered: the key hold's
 * barrier has no one to wait for). Each type is copied exactly — value, TTL, a stream's ids,
 * counters and consumer groups — with no temporary key left and the source key gone; a move
 * interrupted after each step is finished by a fresh mover's recovery; a target whose master
 * changes mid-copy gets the key on its new master.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Barrier, Moves, ServerRole, type KeyMove } from '@reborn/coordinator';
import { startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { findBigKeys, withoutBig, type BigKeyInfo } from './big-key-detect.js';
import { BigKeyMover, tempKeyName, type BigKeyMoveOptions, type BigKeyStep } from './big-key-move.js';
import { ChunkSizer } from './chunk-copy.js';
import { keySlot } from '@reborn/protocol';

let cluster: Cluster;
let a: Redis;
let b: Redis;
let guardKey: string;
const logger = pino({ level: process.env['REBORN_TEST_LOGS'] ? 'info' : 'silent' });

/** Stops the move at a step (the test's stand-in for a crash there). */
class Stop extends Error {}

function mover(extra: Partial<BigKeyMoveOptions> = {}): BigKeyMover {
  return new BigKeyMover({
    store: cluster.store,
    barrier: new Barrier(cluster.store),
    taskId: 'm-test',
    lead: { signal: new AbortController().signal, guardKey, lose: () => {} },
    log: logger,
    redis: {},
    opts: { barrierTimeoutMs: 1000, waitTimeoutMs: 1000, maxSourceLatencyMs: () => 10 },
    ...extra,
  });
}

/** The key's whole value, TTL aside, as a digest: every element, and a stream's ids, counters and groups. */
async function digest(c: Redis, key: Buffer): Promise<string> {
  const type = await c.type(key);
  const flat = async (...args: (string | Buffer)[]) => ((await c.callBuffer(args[0] as string, ...args.slice(1))) as Buffer[]).map((x) => x.toString('hex'));
  const pairs = (items: string[]) => items.flatMap((x, i) => (i % 2 === 0 ? [`${x}=${items[i + 1]}`] : []));
  let v: unknown;
  switch (type) {
    case 'hash': v = pairs(await flat('HGETALL', key)).sort(); break;
    case 'set': v = (await flat('SMEMBERS', key)).sort(); break;
    case 'zset': v = await flat('ZRANGE', key, '0', '-1', 'WITHSCORES'); break;
    case 'list': v = await flat('LRANGE', key, '0', '-1'); break;
    case 'string': v = ((await c.getBuffer(key)) ?? Buffer.alloc(0)).toString('hex'); break;
    case 'stream': {
      const info = (await c.call('XINFO', 'STREAM', key)) as unknown[];
      const pick = (list: unknown[], names: string[]) => names.map((n) => list[list.indexOf(n) + 1]);
      const groups = ((await c.call('XINFO', 'GROUPS', key)) as unknown[][]).map((g) => pick(g, ['name', 'last-delivered-id', 'entries-read', 'pending', 'consumers', 'lag']));
      v = { entries: await c.call('XRANGE', key, '-', '+'), info: pick(info, ['length', 'last-generated-id', 'max-deleted-entry-id', 'entries-added']), groups };
      break;
    }
    default: v = type;
  }
  return `${type}:${createHash('sha256').update(JSON.stringify(v)).digest('hex')}`;
}

/** Keys named like the temporary keys, on every server of both groups. */
async function tempKeys(): Promise<string[]> {
  const out: string[] = [];
  for (const g of cluster.groups) {
    for (const s of [g.master, ...g.replicas]) out.push(...(await s.client().keys('__reborn:move:*')));
  }
  return out;
}

async function moveRecords(): Promise<KeyMove[]> {
  return (await new Moves(cluster.store).list()).map((s) => s.move);
}

async function bigInfo(key: Buffer): Promise<BigKeyInfo> {
  const [info] = await findBigKeys(a, [key], 1);
  expect(info).toBeDefined();
  return info!;
}

/** Loads `n` items with `add(pipeline, i)` in pipelines of 10 000. */
async function load(n: number, add: (p: ReturnType<Redis['pipeline']>, i: number) => void): Promise<void> {
  for (let i = 0; i < n; i += 10_000) {
    const p = a.pipeline();
    for (let j = i; j < Math.min(n, i + 10_000); j++) add(p, j);
    const res = (await p.exec()) ?? [];
    expect(res.filter(([e]) => e)).toEqual([]);
  }
}

async function bigHash(key: string, fields: number, ttlMs?: number): Promise<Buffer> {
  const k = Buffer.from(key);
  await load(fields / 100, (p, i) => {
    const args: string[] = [];
    for (let j = i * 100; j < (i + 1) * 100; j++) args.push(`field:${j}`, `value-${j}-${'x'.repeat(j % 13)}`);
    p.hset(k, ...args);
  });
  if (ttlMs !== undefined) await a.pexpire(k, ttlMs);
  return k;
}

/** Moves `key` from group 1 to group 2 and checks the result: value, expiry, nothing left behind. */
async function moveAndCheck(key: Buffer): Promise<void> {
  const before = await digest(a, key);
  const expiry = Number(await a.call('PEXPIRETIME', key));
  expect(await mover().move(await bigInfo(key), 1, 2)).toBe('moved');
  expect(await a.exists(key)).toBe(0);
  expect(await digest(b, key)).toBe(before);
  expect(Number(await b.call('PEXPIRETIME', key))).toBe(expiry);
  expect(await tempKeys()).toEqual([]);
  expect(await moveRecords()).toEqual([]);
}

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 0 });
  a = cluster.groups[0]!.master.client();
  b = cluster.groups[1]!.master.client();
  // The runner's campaign key stands in as the lead guard: present, so guarded writes go through.
  guardKey = `/reborn-test/${cluster.product}/runner`;
  await cluster.store.etcd.put(guardKey).value('test');
});

beforeEach(async () => {
  // Every test starts from the groups as startCluster made them (one test fails group 2 over).
  await a.flushall();
  await b.flushall();
  await cluster.store.etcd.delete().prefix(cluster.store.paths.moves).exec(); // a failed test's leftovers
});

afterAll(async () => {
  await stopAll();
});

describe('findBigKeys', () => {
  it('reports only keys in a large encoding over the threshold, with type and size', async () => {
    await a.set('small', 'v');
    await a.hset('compact', 'f', 'v'); // listpack: never measured
    await a.set('raw', 'x'.repeat(200_000));
    await bigHash('h', 20_000);
    const keys = ['small', 'compact', 'raw', 'h', 'missing'].map((k) => Buffer.from(k));
    const big = await findBigKeys(a, keys, 100_000);
    expect(big.map((x) => [x.key.toString(), x.type, x.size])).toEqual([['raw', 'string', 200_000], ['h', 'hash', 20_000]]);
    expect(big.every((x) => x.bytes >= 100_000)).toBe(true);
    expect(withoutBig(keys, big).map(String)).toEqual(['small', 'compact', 'missing']);
    expect(await findBigKeys(a, keys, 1 << 30)).toEqual([]);
  });

  it('sizes chunks toward the latency target', () => {
    const s = new ChunkSizer(10, 16, 1000, 100);
    s.observe(40); // 4× too slow: shrinks in proportion
    expect(s.size).toBe(20);
    s.observe(1); // well under: grows by half
    expect(s.size).toBe(30);
    for (let i = 0; i < 20; i++) s.observe(100);
    expect(s.size).toBe(16);
  });

  it('names the temporary key in the key\'s slot', () => {
    for (const k of ['plain', '{user1}:profile', 'a{b', Buffer.from([0xff, 0x00, 0x7b, 0x41])]) {
      const key = Buffer.isBuffer(k) ? k : Buffer.from(k);
      expect(keySlot(tempKeyName('m-1.x', key))).toBe(keySlot(key));
    }
    expect(tempKeyName('m-1.x', Buffer.from('{}x}')).toString()).toBe('__reborn:move:m-1.x');
  });
});

describe('BigKeyMover: each type copied exactly', () => {
  it('a hash of 200k fields with a TTL', async () => {
    await moveAndCheck(await bigHash('{tag}:hash', 200_000, 3_600_000));
  });

  it('a set, a zset with equal and infinite scores, a list', async () => {
    const set = Buffer.from('set');
    await load(60_000, (p, i) => p.sadd(set, `member-${i}`));
    await moveAndCheck(set);

    const zset = Buffer.from([0xfe, 0x00, 0x7b, 0x7a]); // binary name
    await load(60_000, (p, i) => p.zadd(zset, i % 3 === 0 ? '5' : String(i / 7), `m${i}`));
    await a.zadd(zset, '+inf', 'top', '-inf', 'bottom', '0.1', 'tenth');
    await a.pexpire(zset, 7_200_000);
    await moveAndCheck(zset);

    const list = Buffer.from('list');
    await load(100_000, (p, i) => p.rpush(list, `item-${i % 1000}`)); // repeats: order matters
    await moveAndCheck(list);
  });

  it('a string of several MB', async () => {
    const s = Buffer.from('blob');
    const piece = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < piece.length; i++) piece[i] = (i * 31 + 7) & 0xff;
    for (let i = 0; i < 6; i++) await a.append(s, Buffer.concat([piece, Buffer.from([i])]));
    await a.pexpire(s, 600_000);
    await moveAndCheck(s);
  });

  it('a stream with a consumer group without pending entries: ids, counters, groups', async () => {
    const s = Buffer.from('events');
    await load(30_000, (p, i) => p.xadd(s, `${1000 + i}-${i % 3}`, 'n', String(i), 'pad', 'y'.repeat(i % 20)));
    await a.xdel(s, '1005-2', '1010-1'); // gaps: max-deleted-entry-id is copied
    await a.xgroup('CREATE', s, 'readers', '0', 'ENTRIESREAD', '0');
    const read = (await a.xreadgroup('GROUP', 'readers', 'alice', 'COUNT', 500, 'STREAMS', s, '>')) as [string, [string, string[]][]][];
    await a.xack(s, 'readers', ...read[0]![1].map(([id]) => id));
    await a.xgroup('CREATE', s, 'late', '$');
    await moveAndCheck(s);
    const groups = (await b.call('XINFO', 'GROUPS', s)) as unknown[][];
    expect(groups.map((g) => g[1])).toEqual(['late', 'readers']);
    const consumers = (await b.call('XINFO', 'CONSUMERS', s, 'readers')) as unknown[][];
    expect(consumers.map((c) => c[1])).toEqual(['alice']);
  });

  it('a stream with pending entries is left to MIGRATE (its pending list cannot be copied)', async () => {
    const s = Buffer.from('jobs');
    await load(5000, (p, i) => p.xadd(s, '*', 'n', String(i)));
    await a.xgroup('CREATE', s, 'workers', '0');
    await a.xreadgroup('GROUP', 'workers', 'w1', 'COUNT', 10, 'STREAMS', s, '>');
    expect(await mover().move(await bigInfo(s), 1, 2)).toBe('migrate');
    expect(await a.exists(s)).toBe(1);
    expect(await moveRecords()).toEqual([]);
  });
});

describe('BigKeyMover: interrupted moves are finished by the next one', () => {
  const steps: BigKeyStep[] = ['held', 'copied', 'swapped', 'unlinked'];
  for (const step of steps) {
    it(`stopped once "${step}" is durable: the key ends whole on the target, nothing left`, async () => {
      const key = await bigHash('{r}:hash', 30_000, 3_600_000);
      const before = await digest(a, key);
      const stopAt = async (s: BigKeyStep) => {
        if (s === step) throw new Stop(s);
      };
      await expect(mover({ afterStep: stopAt }).move(await bigInfo(key), 1, 2)).rejects.toBeInstanceOf(Stop);
      expect(await moveRecords()).toHaveLength(1);

      const next = mover();
      expect(await next.recover()).toBe(1);
      if (step === 'held') {
        // Rolled back (the acks may not all have been in): the key is still on the source; the next scan pass moves it.
        expect(await a.exists(key)).toBe(1);
        expect(await moveRecords()).toEqual([]);
        expect(await next.move(await bigInfo(key), 1, 2)).toBe('moved');
      }
      expect(await a.exists(key)).toBe(0);
      expect(await digest(b, key)).toBe(before);
      expect(await b.pttl(key)).toBeGreaterThan(3_000_000);
      expect(await tempKeys()).toEqual([]);
      expect(await moveRecords()).toEqual([]);
    });
  }

  it('a failing task releases its holds: undone before the rename, finished after it', async () => {
    const key = await bigHash('fail', 30_000);
    const before = await digest(a, key);
    const stopAt = (step: BigKeyStep) => async (s: BigKeyStep) => {
      if (s === step) throw new Stop(s);
    };
    await expect(mover({ afterStep: stopAt('copied') }).move(await bigInfo(key), 1, 2)).rejects.toBeInstanceOf(Stop);
    await mover().releaseForFailure();
    expect([await a.exists(key), await b.exists(key)]).toEqual([1, 0]);
    expect(await tempKeys()).toEqual([]);
    expect(await moveRecords()).toEqual([]);

    await expect(mover({ afterStep: stopAt('swapped') }).move(await bigInfo(key), 1, 2)).rejects.toBeInstanceOf(Stop);
    await mover().releaseForFailure();
    expect([await a.exists(key), await b.exists(key)]).toEqual([0, 1]);
    expect(await digest(b, key)).toBe(before);
    expect(await tempKeys()).toEqual([]);
    expect(await moveRecords()).toEqual([]);
  });

  it('stopped in the middle of the copy: the half-copied temporary key is replaced by a whole copy', async () => {
    const key = await bigHash('mid', 60_000);
    const before = await digest(a, key);
    let chunks = 0;
    const stopMidway = () => {
      if (++chunks === 3) throw new Stop('mid-copy');
    };
    await expect(mover({ onChunk: stopMidway }).move(await bigInfo(key), 1, 2)).rejects.toBeInstanceOf(Stop);
    const [rec] = await moveRecords();
    expect(rec).toMatchObject({ state: 'copying', kind: 'big-key', hold: true });
    expect(await b.exists(Buffer.from(rec!.tmp!, 'hex'))).toBe(1); // half a copy, under its temporary name
    expect(await b.exists(key)).toBe(0);

    expect(await mover().recover()).toBe(1);
    expect(await a.exists(key)).toBe(0);
    expect(await digest(b, key)).toBe(before);
    expect(await tempKeys()).toEqual([]);
    expect(await moveRecords()).toEqual([]);
  });

  it('a target whose master changes mid-copy gets the key on its new master', async () => {
    const key = await bigHash('failover', 60_000);
    const before = await digest(a, key);
    const g2 = cluster.groups[1]!;
    const [oldMaster, newMaster] = [g2.master, g2.replicas[0]!];
    let chunks = 0;
    const failOverOnce = async () => {
      if (++chunks !== 2) return;
      // Group 2 fails over: its replica takes over, the old master follows it.
      await newMaster.client().call('REPLICAOF', 'NO', 'ONE');
      await cluster.store.putGroup({ id: 2, servers: [{ addr: newMaster.addr, role: ServerRole.Master }, { addr: oldMaster.addr, role: ServerRole.Replica }] });
      await oldMaster.client().call('REPLICAOF', ...newMaster.addr.split(':'));
    };
    const first = mover({ onChunk: failOverOnce, masterCheckMs: 0 });
    await expect(first.move(await bigInfo(key), 1, 2)).rejects.toMatchObject({ code: 'EWAIT', message: expect.stringMatching(/no longer the master of group 2/) });
    expect(await mover().recover()).toBe(1);

    const nb = newMaster.client();
    expect(await a.exists(key)).toBe(0);
    expect(await digest(nb, key)).toBe(before);
    // The old master, now a replica, converges on the new master's data: no temporary key there either.
    await waitFor(async () => (await digest(oldMaster.client(), key)) === before, { what: 'old master in sync', timeoutMs: 30_000 });
    expect(await tempKeys()).toEqual([]);
    expect(await moveRecords()).toEqual([]);

    // Back as startCluster made it, for the other tests.
    await oldMaster.client().call('REPLICAOF', 'NO', 'ONE');
    await cluster.store.putGroup({ id: 2, servers: [{ addr: oldMaster.addr, role: ServerRole.Master }, { addr: newMaster.addr, role: ServerRole.Replica }] });
    await newMaster.client().call('REPLICAOF', ...oldMaster.addr.split(':'));
  });
});
