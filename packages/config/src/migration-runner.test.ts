/**
 * The migration runner against real etcd and redis (no proxies, except a registered fake one
 * that never acks). One cluster of two groups holds 20 000 keys of mixed types for the whole
 * file; each test moves some slots and then checks every key: it lives only on the group
 * its slot says, once, with its value and TTL.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import {
  Barrier,
  Migrations,
  NO_GROUP,
  SLOT_COUNT,
  ValidationError,
  offlineSlot,
  onlineSlot,
  proxyAclUser,
  type MigrationTask,
  type SlotInfo,
} from '@reborn/coordinator';
import { ManagedProcess, freePort, startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { FenceError, fenceProxy } from './fence.js';
import { MigrationRunner, createMigration } from './migration-runner.js';
import { executeRebalance, planRebalance } from './rebalance.js';
import { isRunnerAlive, waitForMigration } from './runner-api.js';

const KEYS = 20_000;
const TTL_BASE_MS = 3_600_000;

let cluster: Cluster;
let masters: Map<number, Redis>;
let migrations: Migrations;
const logLines: string[] = [];
let logger: Logger;

function keyOf(i: number): Buffer {
  if (i % 10 === 3) return Buffer.concat([Buffer.from([0xff, 0x00, 0x7b]), Buffer.from(`bin:${i}`)]);
  if (i % 10 === 5) return Buffer.from(`{user${i % 97}}:k${i}`);
  return Buffer.from(`key:${i}`);
}
const hasTtl = (i: number) => i % 7 === 0;

function ownerOf(slots: readonly SlotInfo[], key: Buffer): number {
  return slots[keySlot(key)]!.group;
}

async function preload(): Promise<void> {
  const slots = await cluster.store.listSlots();
  const pipes = new Map([...masters].map(([g, c]) => [g, c.pipeline()]));
  for (let i = 0; i < KEYS; i++) {
    const k = keyOf(i);
    const p = pipes.get(ownerOf(slots, k))!;
    switch (i % 5) {
      case 0: p.set(k, `v${i}`); break;
      case 1: p.hset(k, 'a', String(i), 'b', 'x'); break;
      case 2: p.rpush(k, String(i), 'l2'); break;
      case 3: p.sadd(k, String(i), 's2'); break;
      default: p.zadd(k, i, `m${i}`);
    }
    if (hasTtl(i)) p.pexpire(k, TTL_BASE_MS + i);
  }
  for (const p of pipes.values()) {
    const res = (await p.exec()) ?? [];
    expect(res.filter(([e]) => e)).toEqual([]);
  }
}

/**
 * Every slot online in one group; every key exactly once, on the master of the group its slot
 * names, with its value and TTL.
 */
async function verifyKeys(): Promise<void> {
  const slots = await cluster.store.listSlots();
  expect(slots.filter((s) => s.state !== 'online').map((s) => `${s.id}:${s.state}`)).toEqual([]);
  const where = new Map<string, number[]>();
  const misplaced: string[] = [];
  for (const [g, c] of masters) {
    let cursor = '0';
    do {
      const [next, keys] = await c.scanBuffer(cursor, 'COUNT', 2000);
      cursor = next.toString();
      for (const k of keys) {
        const hex = k.toString('hex');
        where.set(hex, [...(where.get(hex) ?? []), g]);
        if (ownerOf(slots, k) !== g) misplaced.push(`${k.toString('latin1')} (slot ${keySlot(k)}) on group ${g}`);
      }
    } while (cursor !== '0');
  }
  expect(misplaced.slice(0, 10)).toEqual([]);
  expect([...where.values()].filter((gs) => gs.length !== 1)).toEqual([]);
  expect(where.size).toBe(KEYS);

  const problems: string[] = [];
  const checks = new Map([...masters].map(([g, c]) => [g, { pipe: c.pipeline(), ids: [] as number[] }]));
  for (let i = 0; i < KEYS; i++) {
    const k = keyOf(i);
    const ch = checks.get(ownerOf(slots, k))!;
    ch.ids.push(i);
    switch (i % 5) {
      case 0: ch.pipe.get(k); break;
      case 1: ch.pipe.hgetall(k); break;
      case 2: ch.pipe.lrange(k, 0, -1); break;
      case 3: ch.pipe.smembers(k); break;
      default: ch.pipe.zrange(k, 0, -1, 'WITHSCORES');
    }
    ch.pipe.pttl(k);
  }
  for (const { pipe, ids } of checks.values()) {
    const res = (await pipe.exec()) ?? [];
    ids.forEach((i, n) => {
      const [err, value] = res[2 * n]!;
      const [, pttl] = res[2 * n + 1]!;
      const want = [`v${i}`, { a: String(i), b: 'x' }, [String(i), 'l2'], [String(i), 's2'], [`m${i}`, String(i)]][i % 5];
      const got = i % 5 === 3 && Array.isArray(value) ? [...(value as string[])].sort() : value;
      if (err || JSON.stringify(got) !== JSON.stringify(want)) problems.push(`key ${i}: ${String(err ?? JSON.stringify(got))}`);
      const ttl = Number(pttl);
      if (hasTtl(i) ? !(ttl > TTL_BASE_MS - 600_000 && ttl <= TTL_BASE_MS + i) : ttl !== -1) problems.push(`key ${i}: pttl ${ttl}`);
    });
  }
  expect(problems.slice(0, 10)).toEqual([]);
}

function runner(opts: Partial<ConstructorParameters<typeof MigrationRunner>[0]> = {}): MigrationRunner {
  return new MigrationRunner({ store: cluster.store, logger, leaseTtlSeconds: 2, barrierTimeoutMs: 1000, ...opts });
}

/** runTask, aborted after the test if still running (so a failed test cannot hold the election). */
const pending = new Set<{ ctl: AbortController; p: Promise<unknown> }>();
function run(r: MigrationRunner, id: string): Promise<MigrationTask> {
  const ctl = new AbortController();
  const p = r.runTask(id, { signal: ctl.signal });
  const entry = { ctl, p: p.catch(() => {}) };
  pending.add(entry);
  void p.finally(() => pending.delete(entry)).catch(() => {});
  return p;
}

afterEach(async () => {
  for (const e of pending) e.ctl.abort();
  await Promise.all([...pending].map((e) => e.p));
});

async function task(id: string): Promise<MigrationTask> {
  return (await migrations.get(id))!.task;
}

async function setState(id: string, state: MigrationTask['state']): Promise<void> {
  await migrations.update(id, (t) => ({ ...t, state }));
}

function slotsOf(first: number, last: number, all: readonly SlotInfo[]): SlotInfo[] {
  return all.slice(first, last + 1);
}

beforeAll(async () => {
  logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
  cluster = await startCluster({ groups: 2, proxies: 0 });
  masters = new Map(cluster.groups.map((g) => [g.id, g.master.client()]));
  migrations = new Migrations(cluster.store);
  await preload();
});

afterAll(async () => {
  if (process.env['REBORN_TEST_LOGS']) console.log(logLines.join(''));
  await stopAll();
});

describe('createMigration validation', () => {
  it('rejects bad ranges, unknown or masterless groups, offline slots and overlapping tasks', async () => {
    const { store } = cluster;
    const refused = async (p: Promise<unknown>, msg: RegExp) => {
      const err = await p.then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toMatch(msg);
    };
    await refused(createMigration(store, { first: 10, last: 5, to: 2 }), /invalid slot range 10\.\.5/);
    await refused(createMigration(store, { first: 0, last: 1024, to: 2 }), /invalid slot range 0\.\.1024/);
    await refused(createMigration(store, { first: -1, last: 3, to: 2 }), /invalid slot range/);
    await refused(createMigration(store, { first: 0, last: 3, to: 9 }), /group 9 does not exist/);
    await refused(createMigration(store, { first: 0, last: 3, to: 2, batchSlots: 0 }), /invalid batch size/);

    await store.putGroup({ id: 3, servers: [{ addr: '127.0.0.1:1', role: 'replica' }] });
    await refused(createMigration(store, { first: 0, last: 3, to: 3 }), /group 3 has no master/);
    await store.deleteGroup(3);

    await store.putSlots([offlineSlot(1000)]);
    await refused(createMigration(store, { first: 990, last: 1010, to: 1 }), /slot 1000 is offline: use slot set/);
    await store.putSlots([onlineSlot(1000, 2)]);

    const t = await createMigration(store, { first: 0, last: 9, to: 2 });
    expect(t).toMatchObject({ state: 'pending', from: [1], to: 2, slots: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
    expect(t.id).toMatch(/^m-\d{14}-[0-9a-f]{4}$/);
    await refused(createMigration(store, { first: 5, last: 20, to: 2 }), new RegExp(`slot 5 already belongs to active migration ${t.id}`));
    await migrations.delete(t.id);

    // Everything already in the target: stored, and already done.
    const noop = await createMigration(store, { first: 600, last: 610, to: 2 });
    expect(noop).toMatchObject({ state: 'done', slots: [] });
    expect((await task(noop.id)).state).toBe('done');
    await expect(waitForMigration(store, noop.id, () => {})).resolves.toMatchObject({ state: 'done' });

    // Slots already in the target are skipped; the others form the task.
    const mixed = await createMigration(store, { first: 510, last: 513, to: 2 });
    expect(mixed).toMatchObject({ slots: [510, 511], from: [1] });
    await migrations.delete(mixed.id);
  });
});

describe('MigrationRunner', () => {
  it('moves half of group 1 to group 2 with every key, value and TTL intact', async () => {
    const t = await createMigration(cluster.store, { first: 0, last: 255, to: 2 });
    const r = runner();
    const t0 = performance.now();
    const done = await run(r, t.id);
    const secs = (performance.now() - t0) / 1000;
    expect(done.state).toBe('done');
    expect(done.progress).toMatchObject({ slotsDone: 256, slotsTotal: 256, keysLeft: 0, currentSlots: [] });
    expect(done.progress.keysMoved).toBeGreaterThan(4000);
    expect(done.progress.bytesMoved).toBeGreaterThan(done.progress.keysMoved * 10); // DUMP payloads of the values
    expect(await masters.get(1)!.exists('__reborn:copying')).toBe(0); // every copy mark settled
    const slots = await cluster.store.listSlots();
    expect(slotsOf(0, 255, slots).every((s) => s.state === 'online' && s.group === 2)).toBe(true);
    expect(slotsOf(256, 511, slots).every((s) => s.group === 1)).toBe(true);
    console.log(`migrated ${done.progress.keysMoved} keys in 256 slots in ${secs.toFixed(2)} s: ${Math.round(done.progress.keysMoved / secs)} keys/s (runTask wall clock)`);
    await verifyKeys();
    expect(await new Barrier(cluster.store).listActions()).toEqual([]);
    expect(await isRunnerAlive(cluster.store)).toBe(false); // runTask resigned
  });

  it('pauses (slots stay migrating, nothing moves) and resumes to the end', async () => {
    const t = await createMigration(cluster.store, { first: 256, last: 383, to: 2, throttle: 1000 });
    const r = runner();
    const running = run(r, t.id);
    const moving = await waitFor(async () => {
      const cur = await task(t.id);
      return cur.progress.keysMoved > 200 && cur.progress.rate > 0 ? cur : null;
    }, { timeoutMs: 15_000, what: 'keys moving' });
    expect(moving.progress).toMatchObject({ slotsTotal: 128, currentSlots: expect.arrayContaining([256, 383]) });
    expect(moving.progress.rate).toBeLessThan(1500); // throttled to 1000 keys/s
    expect(moving.progress.keysLeft).toBeGreaterThan(0);
    expect(moving.progress.etaSeconds).toBeGreaterThan(0);
    await setState(t.id, 'paused');
    const paused = await waitFor(async () => {
      const cur = await task(t.id);
      return cur.progress.phase.startsWith('paused') ? cur : null;
    }, { timeoutMs: 5000, what: 'paused phase' });
    expect(paused.progress.phase).toMatch(/stay migrating 1→2/);
    const slots = await cluster.store.listSlots();
    expect(slotsOf(256, 383, slots).some((s) => s.state === 'migrating')).toBe(true);
    const keysOnA = await masters.get(1)!.dbsize();
    await new Promise((r) => setTimeout(r, 800));
    expect(await masters.get(1)!.dbsize()).toBe(keysOnA);
    expect((await task(t.id)).progress.keysMoved).toBe(paused.progress.keysMoved);

    await setState(t.id, 'running');
    const done = await running;
    expect(done.state).toBe('done');
    await verifyKeys();
  });

  it('cancel finishes the migrating batch, starts no other, and leaves every slot online in one group', async () => {
    const t = await createMigration(cluster.store, { first: 384, last: 511, to: 2, throttle: 2000, batchSlots: 16 });
    const r = runner();
    const running = run(r, t.id);
    await waitFor(async () => {
      const cur = await task(t.id);
      return cur.progress.slotsDone >= 16 && cur.progress.phase.startsWith('moving');
    }, { timeoutMs: 15_000, what: 'one batch done, the next one moving' });
    await setState(t.id, 'cancelling');
    const end = await running;
    expect(end.state).toBe('cancelled');
    expect(end.progress.phase).toMatch(/^cancelled: \d+ of 128 slot\(s\) moved to group 2 stay there/);
    const slots = slotsOf(384, 511, await cluster.store.listSlots());
    const moved = slots.filter((s) => s.group === 2).length;
    expect(moved).toBeGreaterThanOrEqual(32); // the finished batch and the one cancelled mid-way
    expect(moved % 16).toBe(0); // whole batches only
    expect(moved).toBeLessThan(128);
    expect(end.progress.slotsDone).toBe(moved);
    await verifyKeys();
  });

  it('a runner killed mid-task is resumed by the next one, with no key lost or duplicated', async () => {
    const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'migration-runner.js');
    expect(existsSync(dist), `${dist} missing: run "npx tsc -b" first`).toBe(true);
    const t = await createMigration(cluster.store, { first: 512, last: 767, to: 1, throttle: 1500, batchSlots: 32 });
    const script = `
      const { pino } = await import('pino');
      const { Store } = await import('@reborn/coordinator');
      const { MigrationRunner } = await import(${JSON.stringify(dist)});
      const store = await Store.open({ endpoints: [process.env.ETCD], product: process.env.PRODUCT });
      const runner = new MigrationRunner({ store, logger: pino({ level: 'warn' }), leaseTtlSeconds: 2 });
      const end = await runner.runTask(process.env.TASK);
      console.log('finished', end.state);
      await store.close();
    `;
    const child = new ManagedProcess({
      name: 'runner child',
      command: process.execPath,
      args: ['--input-type=module', '-e', script],
      cwd: join(dirname(fileURLToPath(import.meta.url)), '..'),
      env: { ...process.env, ETCD: cluster.etcd.clientUrl, PRODUCT: cluster.product, TASK: t.id },
    });
    await waitFor(async () => {
      const cur = await task(t.id);
      const slots = slotsOf(512, 767, await cluster.store.listSlots());
      return cur.progress.slotsDone >= 32 && slots.some((s) => s.state === 'migrating') && cur.progress.keysMoved > 0;
    }, { timeoutMs: 20_000, what: `child runner progress (child output: ${child.tail()})` });
    await child.terminate('SIGKILL');
    const mid = slotsOf(512, 767, await cluster.store.listSlots());
    expect(mid.some((s) => s.state === 'migrating')).toBe(true);
    expect((await task(t.id)).state).toBe('running');

    await migrations.update(t.id, (x) => ({ ...x, throttle: 0 }));
    const done = await run(runner(), t.id); // waits for the dead runner's lease, then resumes
    expect(done.state).toBe('done');
    expect(slotsOf(512, 767, await cluster.store.listSlots()).every((s) => s.state === 'online' && s.group === 1)).toBe(true);
    await verifyKeys();
  });

  it('a runner whose leadership vanishes stops writing, campaigns again and finishes', async () => {
    const t = await createMigration(cluster.store, { first: 864, last: 895, to: 1, throttle: 3000, batchSlots: 8 });
    const running = run(runner(), t.id);
    await waitFor(async () => (await task(t.id)).progress.slotsDone >= 8, { timeoutMs: 15_000, what: 'first batch' });
    // As if the lease had expired behind the runner's back (a long GC pause, a partition).
    const prefix = `election/${cluster.store.paths.runnerElection}/`;
    await cluster.store.etcd.delete().prefix(prefix).exec();
    const done = await running;
    expect(done.state).toBe('done');
    expect(logLines.some((l) => l.includes('"msg":"write refused: this runner no longer leads"'))).toBe(true);
    await verifyKeys();
  });

  it('fences a registered proxy that never acks the barrier, records it, then completes', async () => {
    const { store } = cluster;
    const reg = await store.registerProxy({
      id: 'ghost-1',
      addr: '127.0.0.1:1',
      adminAddr: '127.0.0.1:2',
      pid: 999_999,
      host: 'nowhere',
      startedAt: new Date().toISOString(),
      state: 'online',
    });
    // A member record, as a proxy writes before it serves: fencing it makes later barriers stop waiting for it.
    await new Barrier(store).putMember('ghost-1', { addr: '127.0.0.1:1' });
    try {
      const t = await createMigration(store, { first: 768, last: 799, to: 1 });
      const done = await run(runner({ barrierTimeoutMs: 300 }), t.id);
      expect(done.state).toBe('done');
      const user = proxyAclUser(cluster.product, 'ghost-1');
      for (const c of masters.values()) {
        const info = (await c.call('ACL', 'GETUSER', user)) as unknown[];
        const flags = info[info.indexOf('flags') + 1] as string[];
        expect(flags).toContain('off');
      }
      const fences = await new Barrier(store).listFences();
      const fence = fences.find((f) => f.proxyId === 'ghost-1');
      expect(fence).toBeDefined();
      expect(fence!.action).toBeGreaterThan(0);
      expect([...fence!.servers].sort()).toEqual(cluster.groups.map((g) => g.master.addr).sort());
      expect(fence!.reason).toMatch(/did not ack action \d+/);
      const logged = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'proxy fenced');
      expect(logged).toMatchObject({ proxyId: 'ghost-1', level: 40 });
      expect(await new Barrier(store).listActions()).toEqual([]);
      expect(await new Barrier(store).listMembers()).not.toContain('ghost-1');
      await verifyKeys();
    } finally {
      await reg.close();
    }
  });

  it('refuses to report a fence when a master cannot be fenced', async () => {
    const { store } = cluster;
    await store.putGroup({ id: 3, servers: [{ addr: `127.0.0.1:${await freePort()}`, role: 'master' }] });
    try {
      const err = await fenceProxy(store, { proxyId: 'ghost-2', groups: [1, 3], reason: 'test', logger }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FenceError);
      expect((err as FenceError).code).toBe('EFENCE');
      expect((err as FenceError).servers.map((s) => s.addr)).toEqual([(await store.getGroup(3))!.servers[0]!.addr]);
      expect((await new Barrier(store).listFences()).some((f) => f.proxyId === 'ghost-2')).toBe(false);
    } finally {
      await store.deleteGroup(3);
    }
  });

  it('waits out a hung target mid-move (restore timeouts; keys left on both sides are reconciled)', async () => {
    // Throttled so that the target hangs mid-move (a batch does not start while the target
    // does not answer PING: it would only turn the clients' requests for its slots into errors).
    const t = await createMigration(cluster.store, { first: 800, last: 831, to: 1, throttle: 100 });
    const target = cluster.groups[0]!.master;
    try {
      const done = run(runner({ migrateTimeoutMs: 300, waitTimeoutMs: 300, migrateKeys: 20 }), t.id);
      await waitFor(async () => (await task(t.id)).progress.keysMoved > 0, { timeoutMs: 30_000, what: 'keys moving' });
      await target.pause();
      // The task waits for the target instead of failing (a restore timed out against it).
      await waitFor(async () => /waiting for group 1/.test((await task(t.id)).progress.waiting ?? ''), { timeoutMs: 30_000, what: 'the task waiting for group 1' });
      expect((await task(t.id)).state).toBe('running');
      target.resume();
      await migrations.update(t.id, (cur) => ({ ...cur, throttle: 0 }));
      expect((await done).state).toBe('done');
      expect((await task(t.id)).progress.waiting).toBeUndefined();
    } finally {
      target.resume();
    }
    await verifyKeys();
  });

  it('waits for room on a target at maxmemory instead of running into OOM, then goes on by itself', async () => {
    const target = masters.get(1)!;
    const used = Number(/used_memory:(\d+)/.exec(await target.info('memory'))![1]);
    await target.config('SET', 'maxmemory', String(used + 16 * 1024));
    try {
      const t = await createMigration(cluster.store, { first: 896, last: 959, to: 1 });
      const done = run(runner(), t.id);
      await waitFor(async () => /waiting for room on group 1/.test((await task(t.id)).progress.waiting ?? ''), { timeoutMs: 30_000, what: 'the task waiting for room' });
      const waiting = await task(t.id);
      expect(waiting.state).toBe('running');
      expect(waiting.progress.waiting).toMatch(/maxmemory/);
      // The batch never started (no barrier, no key moved): nothing can run into OOM.
      expect(slotsOf(896, 959, await cluster.store.listSlots()).every((s) => s.state === 'online' && s.group === 2)).toBe(true);
      await target.config('SET', 'maxmemory', '0');
      expect((await done).state).toBe('done');
      expect((await task(t.id)).progress.waiting).toBeUndefined();
    } finally {
      await target.config('SET', 'maxmemory', '0');
    }
    await verifyKeys();
  });

  it('as a long-lived leader: runs new tasks, rebalances, resigns on stop', async () => {
    const r = runner({ pollIntervalMs: 100 });
    r.start();
    try {
      await waitFor(() => isRunnerAlive(cluster.store), { what: 'runner leader' });
      await waitFor(() => r.isLeader, { what: 'leadership' });
      // A second runner's runTask does not act while the leader does; it reports the leader's result.
      const t = await createMigration(cluster.store, { first: 832, last: 863, to: 1 });
      const other = await run(runner(), t.id);
      expect(other.state).toBe('done');

      const [groups, slots] = await Promise.all([cluster.store.listGroups(), cluster.store.listSlots()]);
      const plan = planRebalance(groups, slots);
      expect(plan.moves.length).toBeGreaterThan(0);
      const tasks = await executeRebalance(cluster.store, plan);
      const seen: string[] = [];
      for (const x of tasks) {
        const end = await waitForMigration(cluster.store, x.id, (p) => seen.push(p.state));
        expect(end.state).toBe('done');
      }
      expect(seen).toContain('done');
      const after = await cluster.store.listSlots();
      const count = (g: number) => after.filter((s) => s.group === g).length;
      expect(Math.abs(count(1) - count(2))).toBeLessThanOrEqual(1);
      expect(after.filter((s) => s.group === NO_GROUP)).toEqual([]);
    } finally {
      await r.stop();
    }
    expect(r.isLeader).toBe(false);
    expect(await isRunnerAlive(cluster.store)).toBe(false);
    await verifyKeys();
    expect(SLOT_COUNT).toBe(1024);
  });
});

describe('MigrationRunner with a real proxy', () => {
  let c2: Cluster;
  let client: Redis;

  beforeAll(async () => {
    c2 = await startCluster({ groups: 2, proxies: 1, proxyArgs: ['--auth', 'secret'] });
    client = c2.proxies[0]!.client({ password: 'secret', maxRetriesPerRequest: 0 });
  });

  afterAll(async () => {
    await c2?.stop();
  });

  const r2 = (opts: Partial<ConstructorParameters<typeof MigrationRunner>[0]> = {}) =>
    new MigrationRunner({ store: c2.store, logger, leaseTtlSeconds: 2, barrierTimeoutMs: 3000, ...opts });

  /** INCRs random counters through the proxy until stopped; returns the acknowledged counts. */
  function writer(keys: number, loops: number): { acked: () => number; stop: () => Promise<{ counts: number[]; errors: string[] }> } {
    const counts = new Array<number>(keys).fill(0);
    const errors: string[] = [];
    let stopping = false;
    let acked = 0;
    const loop = async () => {
      while (!stopping) {
        const i = Math.floor(Math.random() * keys);
        try {
          await client.incr(`ctr:{${i}}`);
          counts[i]!++;
          acked++;
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    };
    const all = Promise.all(Array.from({ length: loops }, loop));
    return {
      acked: () => acked,
      stop: async () => {
        stopping = true;
        await all;
        return { counts, errors };
      },
    };
  }

  async function expectCounts(counts: number[]): Promise<void> {
    const got = await client.mget(counts.map((_, i) => `ctr:{${i}}`));
    const wrong = counts.map((n, i) => [i, n, Number(got[i] ?? 0)]).filter(([, n, g]) => n !== g);
    expect(wrong.slice(0, 10)).toEqual([]);
    // And each counter lives only on the group its slot names.
    const slots = await c2.store.listSlots();
    for (const g of c2.groups) {
      const keys = await g.master.client().keys('ctr:*');
      const misplaced = keys.filter((k) => slots[keySlot(Buffer.from(k))]!.group !== g.id);
      expect(misplaced).toEqual([]);
    }
  }

  it('migrates under a live write load: the proxy acks the barrier, no acknowledged write is lost', async () => {
    const w = writer(500, 8);
    // Writes flowing before the migration and still after it (counted, not timed: a loaded
    // machine writes fewer in any fixed window).
    await waitFor(() => w.acked() >= 300, { what: 'writes before the migration' });
    const t = await createMigration(c2.store, { first: 0, last: 383, to: 2 });
    const done = await run(r2(), t.id);
    const atDone = w.acked();
    await waitFor(() => w.acked() >= atDone + 300, { what: 'writes after the migration' });
    const { counts, errors } = await w.stop();
    expect(done.state).toBe('done');
    expect(errors).toEqual([]);
    expect((await new Barrier(c2.store).listFences())).toEqual([]);
    await expectCounts(counts);
  });

  it('fences a stalled proxy, which then recovers and serves the new table', async () => {
    const proxy = c2.proxies[0]!;
    await proxy.pause();
    let t: MigrationTask;
    try {
      t = await createMigration(c2.store, { first: 600, last: 700, to: 1 });
      const done = await run(r2({ barrierTimeoutMs: 500 }), t.id);
      expect(done.state).toBe('done');
      const fences = await new Barrier(c2.store).listFences();
      expect(fences).toHaveLength(1);
      expect(fences[0]!.action).toBeGreaterThan(0);
      expect([...fences[0]!.servers].sort()).toEqual(c2.groups.map((g) => g.master.addr).sort());
    } finally {
      proxy.resume();
    }
    // On its next request the proxy finds itself fenced (AUTH refused), re-registers, reloads
    // the table, re-enables its user and clears the record; until then it answers errors.
    await waitFor(
      async () => {
        await client.set('probe', '1');
        return (await new Barrier(c2.store).listFences()).length === 0;
      },
      { timeoutMs: 15_000, what: `proxy recovery; proxy log:\n${proxy.logs.slice(-15).join('\n')}` },
    );
    const w = writer(500, 4);
    await waitFor(() => w.acked() >= 300, { what: 'writes after the recovery' });
    const { counts, errors } = await w.stop();
    expect(errors).toEqual([]);
    // Every counter written after the recovery is readable (a random 500-key spread in a short
    // window need not touch them all, so only the written ones are checked).
    expect(counts.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    const after = await client.mget(counts.map((_, i) => `ctr:{${i}}`));
    expect(counts.filter((n, i) => n > 0 && after[i] === null)).toEqual([]);
    const slots = await c2.store.listSlots();
    for (const g of c2.groups) {
      const keys = await g.master.client().keys('ctr:*');
      expect(keys.filter((k) => slots[keySlot(Buffer.from(k))]!.group !== g.id)).toEqual([]);
    }
  });
});
