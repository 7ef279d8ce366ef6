/**
 * The proxy's side of moving keys between groups in pieces, against real etcd, redis and
 * reborn-proxy processes. The test plays the migration runner: it writes a migrating slot, a
 * key move record and a key-hold barrier action through coordinator's Store/Moves/Barrier,
 * and moves the keys itself with MIGRATE on the source master.
 *
 * - Key holds: every proxy acks the hold; a client's requests naming the held key wait (its
 *   later commands stay behind them, in order) while other keys of the slot are served;
 *   deleting the record releases them, routed by the slot's state then (the key is in the
 *   target). A short --key-hold-timeout answers -TRYAGAIN; a proxy started while the record
 *   exists holds the key from its first request.
 * - A target at maxmemory: reads of keys still in the source are answered, writes get an OOM
 *   error saying why, and nothing moved.
 * - BUSYKEY while a key is in both groups (copied, source copy not yet deleted) is retried
 *   until the source copy goes; one that never goes is still an error.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { Barrier, Moves, type KeyMove } from '@reborn/coordinator';
import { startCluster, waitFor, type Cluster, type ProxyProcess } from '@reborn/testkit';
import { groupsHolding, initialOwner, masterClients, parsePrometheus } from './helpers.js';

let cluster: Cluster;
let masters: Redis[];
let moves: Moves;
let barrier: Barrier;
let moveSeq = 0;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1 });
  masters = masterClients(cluster);
  moves = new Moves(cluster.store);
  barrier = new Barrier(cluster.store);
}, 60_000);

afterAll(async () => {
  for (const m of masters ?? []) m.disconnect();
  await cluster?.stop();
});

/** The slot of `key` and its groups: `from` owns it now (ids 1..2), `to` is the other. */
function groupsOf(key: string): { slot: number; from: number; to: number } {
  const slot = keySlot(Buffer.from(key));
  const from = initialOwner(slot, 2);
  return { slot, from, to: 3 - from };
}

function master(gid: number): Redis {
  return masters[gid - 1]!;
}

/**
 * Puts the slot of `key` into migrating from its owner to the other group, and waits (a slot
 * barrier action, as the runner writes) until every proxy applied it.
 */
async function startMigrating(key: string): Promise<{ slot: number; from: number; to: number }> {
  const g = groupsOf(key);
  const revision = await cluster.store.putSlots([{ id: g.slot, state: 'migrating', group: g.to, from: g.from, to: g.to }]);
  const action = await barrier.createAction([g.slot], revision, `migrate ${key}`);
  const { missing } = await barrier.waitForAcks(action, 20_000);
  expect(missing).toEqual([]);
  await barrier.deleteAction(action.seq);
  return g;
}

async function backOnline(key: string, gid: number): Promise<void> {
  await cluster.store.putSlots([{ id: keySlot(Buffer.from(key)), state: 'online', group: gid }]);
}

/** `MIGRATE` of `key` from group `from`'s master to group `to`'s, as the runner would move it. */
async function migrateKey(key: string, from: number, to: number, copy = false): Promise<string> {
  const target = cluster.groups[to - 1]!.master;
  const args = [target.host, target.port, '', 0, 5000, ...(copy ? ['COPY'] : []), 'KEYS', key];
  return (await master(from).call('MIGRATE', ...args)) as string;
}

/** Writes a big-key move record for `key` holding it, and a key-hold barrier action at its revision; resolves once every proxy acked. */
async function holdKey(key: string, from: number, to: number): Promise<string> {
  const id = `m1.${++moveSeq}`;
  const move: KeyMove = {
    id,
    task: 'm1',
    kind: 'big-key',
    slots: [keySlot(Buffer.from(key))],
    from,
    to,
    keys: [Buffer.from(key).toString('hex')],
    hold: true,
    state: 'holding',
    tmp: null,
    src: cluster.groups[from - 1]!.master.addr,
    dst: cluster.groups[to - 1]!.master.addr,
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
  };
  const revision = await moves.create(move);
  const action = await barrier.createAction(move.slots, revision, `hold ${key}`, id);
  expect(action.kind).toBe('keys');
  const { missing } = await barrier.waitForAcks(action, 20_000);
  expect(missing).toEqual([]);
  await barrier.deleteAction(action.seq);
  return id;
}

async function metric(proxy: ProxyProcess, name: string): Promise<number> {
  return parsePrometheus(await proxy.metrics()).get(name) ?? NaN;
}

/** Resolves once `proxy` holds `n` requests for key moves: they reached the hold, nothing answered them. */
async function heldRequests(proxy: ProxyProcess, n: number): Promise<void> {
  await waitFor(async () => (await metric(proxy, 'reborn_proxy_key_held_requests')) === n, { what: `${n} requests held for a key move` });
}

/** A promise with a flag saying whether it settled yet. */
function track<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  const promise = p.finally(() => (done = true));
  promise.catch(() => undefined);
  return { promise, settled: () => done };
}

describe('key holds during a big-key move', () => {
  it('holds requests naming the key, and only them, until the record is deleted; then they run in order in the target', async () => {
    const proxy = cluster.proxies[0]!;
    const big = '{kh1}big';
    const small = '{kh1}small';
    const writer = proxy.client();
    await writer.set(big, 'v1');
    await writer.set(small, 's1');
    const { from, to } = await startMigrating(big);
    const id = await holdKey(big, from, to);

    const view = JSON.parse(await proxy.adminGet('/api/proxy')) as { keyHolds: { moves: string[]; keys: number } };
    expect(view.keyHolds.moves).toContain(id);
    const held = proxy.client();
    // One client's pipeline: the GET waits for the move, the SET and GET after it wait behind it.
    const pipeline = track(held.pipeline().get(big).set(big, 'v2').get(big).exec());
    await heldRequests(proxy, 1);
    // Another key of the same slot flows, moved to the target on touch as usual.
    const other = proxy.client();
    expect(await other.get(small)).toBe('s1');
    expect(await groupsHolding(masters, small)).toEqual([to]);
    // A second client on the held key waits too (its read may run before or after the first
    // client's SET: two clients are not ordered).
    const second = track(other.get(big));
    await heldRequests(proxy, 2);
    expect(pipeline.settled()).toBe(false);
    expect(second.settled()).toBe(false);

    // The "runner" moves the key and ends the move.
    expect(await migrateKey(big, from, to)).toBe('OK');
    await moves.remove(id);
    const replies = await pipeline.promise;
    expect(replies).toEqual([[null, 'v1'], [null, 'OK'], [null, 'v2']]);
    expect(['v1', 'v2']).toContain(await second.promise);
    expect(await groupsHolding(masters, big)).toEqual([to]);
    expect(await metric(proxy, 'reborn_proxy_key_held_requests')).toBe(0);
    await backOnline(big, to);
    for (const c of [writer, held, other]) c.disconnect();
  });

  it('a request held longer than --key-hold-timeout gets TRYAGAIN, and a proxy started while the record exists holds the key from its first request', async () => {
    const key = '{kh2}big';
    const writer = cluster.proxies[0]!.client();
    await writer.set(key, 'v1');
    const { from, to } = await startMigrating(key);
    const id = await holdKey(key, from, to);

    const late = await cluster.addProxy(['--key-hold-timeout', '300']);
    try {
      const c = late.client();
      await expect(c.get(key)).rejects.toThrow(/^TRYAGAIN key "\{kh2\}big" is being moved between groups; try again$/);
      expect(await metric(late, 'reborn_proxy_key_hold_timeouts_total')).toBe(1);
      expect(await metric(late, 'reborn_proxy_held_keys')).toBe(1);
      // Released before its timeout, the same request is answered from the target.
      const get = track(c.get(key));
      await heldRequests(late, 1);
      expect(await migrateKey(key, from, to)).toBe('OK');
      await moves.remove(id);
      expect(await get.promise).toBe('v1');
      c.disconnect();
    } finally {
      await late.stop();
      cluster.proxies.splice(cluster.proxies.indexOf(late), 1);
    }
    await backOnline(key, to);
    writer.disconnect();
  });

  it('a key hold leaves the WATCHes of its slot alone (a slot barrier would abort them after --watch-grace)', async () => {
    const proxy = cluster.proxies[0]!;
    const big = '{kh4}big';
    const watched = '{kh4}w';
    const c = proxy.client();
    await c.set(big, 'v1');
    await c.set(watched, '1');
    const { from, to } = await startMigrating(big);
    expect(await c.watch(watched)).toBe('OK');
    const id = await holdKey(big, from, to);
    expect(await c.multi().incr(watched).exec()).toEqual([[null, 2]]);
    expect(await migrateKey(big, from, to)).toBe('OK');
    await moves.remove(id);
    expect(await c.get(big)).toBe('v1');
    await backOnline(big, to);
    c.disconnect();
  });

  it('a record that loses hold releases the key as a delete does', async () => {
    const proxy = cluster.proxies[0]!;
    const key = '{kh3}big';
    const c = proxy.client();
    await c.set(key, 'v1');
    const { from, to } = await startMigrating(key);
    const id = await holdKey(key, from, to);
    const get = track(proxy.client().get(key));
    await heldRequests(proxy, 1);
    const stored = (await moves.get(id))!;
    await moves.update(stored, { ...stored.move, hold: false });
    expect(await get.promise).toBe('v1');
    await moves.remove(id);
    await backOnline(key, to);
    c.disconnect();
  });
});

describe('a target at maxmemory', () => {
  it('reads of keys still in the source are answered, writes get an OOM error, nothing moves', async () => {
    const proxy = cluster.proxies[0]!;
    const c = proxy.client();
    const [a, b, none] = ['{oom}a', '{oom}b', '{oom}none'];
    await c.set(a, 'va');
    await c.rpush(b, 'x', 'y');
    const { from, to } = await startMigrating(a);
    const target = master(to);
    await target.config('SET', 'maxmemory', '1');
    try {
      expect(await c.get(a)).toBe('va');
      expect(await c.lrange(b, 0, -1)).toEqual(['x', 'y']);
      // Several keys: every one is still in the source.
      expect(await c.exists(a, b)).toBe(2);
      // A key that is nowhere: MIGRATE answers NOKEY, the target answers the read.
      expect(await c.get(none)).toBeNull();
      await expect(c.set(a, 'new')).rejects.toThrow(/^OOM the keys of migrating slot \d+ must move to the target group first.*OOM command not allowed/);
      expect(await groupsHolding(masters, a)).toEqual([from]);
      expect(await groupsHolding(masters, b)).toEqual([from]);
      expect(await metric(proxy, 'reborn_proxy_source_reads_total')).toBeGreaterThanOrEqual(3);
    } finally {
      await target.config('SET', 'maxmemory', '0');
    }
    // Room again: the write moves the key and lands in the target.
    expect(await c.set(a, 'new')).toBe('OK');
    expect(await groupsHolding(masters, a)).toEqual([to]);
    expect(await c.get(a)).toBe('new');
    await migrateKey(b, from, to);
    await backOnline(a, to);
    c.disconnect();
  });
});

describe('BUSYKEY on an on-touch MIGRATE', () => {
  it('is retried while the key is copied and not yet deleted in the source, then the command runs in the target', async () => {
    const proxy = cluster.proxies[0]!;
    const c = proxy.client();
    const key = '{busy}k';
    await c.set(key, 'v1');
    const { from, to } = await startMigrating(key);
    expect(await migrateKey(key, from, to, true)).toBe('OK');
    expect(await groupsHolding(masters, key)).toEqual([from, to].sort());
    const retriesBefore = await metric(proxy, 'reborn_proxy_busykey_retries_total');
    const incr = track(c.append(key, '+'));
    // The proxy is retrying: now the "runner" deletes the source copy, as after its replicas confirmed.
    await waitFor(async () => (await metric(proxy, 'reborn_proxy_busykey_retries_total')) > retriesBefore, { what: 'a BUSYKEY retry' });
    expect(incr.settled()).toBe(false);
    await master(from).del(key);
    expect(await incr.promise).toBe(3);
    expect(await master(to).get(key)).toBe('v1+');
    expect(await groupsHolding(masters, key)).toEqual([to]);
    await backOnline(key, to);
    c.disconnect();
  });

  it('a key that stays in both groups is still an error', async () => {
    const proxy = cluster.proxies[0]!;
    const c = proxy.client();
    const key = '{busy2}k';
    await c.set(key, 'v1');
    const { from, to } = await startMigrating(key);
    expect(await migrateKey(key, from, to, true)).toBe('OK');
    await expect(c.get(key)).rejects.toThrow(/BUSYKEY/);
    await proxy.waitForLog((r) => r.msg === 'MIGRATE answered BUSYKEY: a key exists in both groups of a migrating slot');
    await master(from).del(key);
    expect(await c.get(key)).toBe('v1');
    await backOnline(key, to);
    c.disconnect();
  });
});
