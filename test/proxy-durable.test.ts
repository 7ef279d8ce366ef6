/**
 * `--durable`: the proxy acknowledges a write only once a replica has it (one WAIT behind each
 * write batch). Two groups with one replica each, and a third group added later with no
 * replica at all (slots 1000..1023), whose writes are acknowledged as usual.
 *
 * "On the replica the moment it is acknowledged" is checked by reading the replica right
 * after the reply, and — so that the test does not depend on replication simply being fast —
 * with a stopped replica (SIGSTOP): the write is applied on the master, yet the client hears
 * nothing until the replica runs again.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerRole } from '@reborn/coordinator';
import { assignSlots, startCluster, startRedis, stopAll, waitFor, type Cluster, type ProxyProcess, type RedisServer } from '@reborn/testkit';
import { RawClient, RespError, cmd, dataReady, initialOwner, plain, slotOf, within } from './helpers.js';

const HANG_MS = 10_000;
/** Slots given to the replica-less group 3. */
const G3_FIRST = 1000;
const G3_LAST = 1023;

let cluster: Cluster;
/** The cluster's proxy: --durable --durable-timeout 500. */
let proxy: ProxyProcess;
/** --durable with a long timeout, for the stopped-replica test. */
let patient: ProxyProcess;
let client: Redis;
let group3: RedisServer;
/** Direct clients: masters[gid - 1], replicas[gid - 1] (groups 1 and 2). */
let masters: Redis[];
let replicas: Redis[];
let master3: Redis;

function groupOf(key: string): number {
  const slot = slotOf(key);
  return slot >= G3_FIRST && slot <= G3_LAST ? 3 : initialOwner(slot, 2);
}

/** `n` keys `<prefix><i>` owned by group `gid` (1, 2 or 3). */
function keysIn(prefix: string, gid: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (groupOf(`${prefix}${i}`) === gid) out.push(`${prefix}${i}`);
  return out;
}

beforeAll(async () => {
  [cluster, group3] = await Promise.all([
    startCluster({ groups: 2, replicas: 1, proxyArgs: ['--durable', '--durable-timeout', '500'] }),
    startRedis(),
  ]);
  proxy = cluster.proxies[0]!;
  patient = await cluster.addProxy(['--durable', '--durable-timeout', '20000', '--backend-timeout', '30000']);
  await Promise.all([dataReady(proxy.port), dataReady(patient.port)]);
  client = proxy.client();
  masters = cluster.groups.map((g) => g.master.client());
  replicas = cluster.groups.map((g) => g.replicas[0]!.client());
  master3 = group3.client();

  // A third group, master only, added while the proxies run, owning slots 1000..1023.
  await cluster.store.putGroup({ id: 3, servers: [{ addr: group3.addr, role: ServerRole.Master }] });
  await assignSlots(cluster.store, G3_FIRST, G3_LAST, 3);
  const probe = keysIn('durable:probe:', 3, 1)[0]!;
  for (const p of [proxy, patient]) {
    const c = p.client();
    await waitFor(
      async () => {
        await c.set(probe, p.addr);
        return (await master3.get(probe)) === p.addr;
      },
      { what: `proxy ${p.addr} routing slots ${G3_FIRST}..${G3_LAST} to group 3` },
    );
    c.disconnect();
  }
  await master3.del(probe);
});

afterAll(stopAll);

/** Reads `keys` from the replica of their group (groups 1 and 2), in the order given. */
async function fromReplicas(keys: readonly string[]): Promise<(string | null)[]> {
  const out = new Map<string, string | null>();
  for (const gid of [1, 2]) {
    const mine = keys.filter((k) => groupOf(k) === gid);
    if (mine.length === 0) continue;
    const values = await replicas[gid - 1]!.mget(...mine);
    mine.forEach((k, i) => out.set(k, values[i] ?? null));
  }
  return keys.map((k) => out.get(k) ?? null);
}

/** The address of the replica of `key`'s group (groups 1 and 2): what the durable error names. */
function replicaOf(key: string): string {
  return cluster.groups[groupOf(key) - 1]!.replicas[0]!.addr;
}

async function blockedOn(m: Redis): Promise<number> {
  return Number(/^blocked_clients:(\d+)/m.exec(await m.info('clients'))?.[1] ?? NaN);
}

describe('acknowledged writes are on the replica', () => {
  it('each acknowledged SET can be read from the replica right away', async () => {
    const keys = [...keysIn('d:one:', 1, 100), ...keysIn('d:one:', 2, 100)];
    for (const k of keys) {
      expect(await client.set(k, `v-${k}`)).toBe('OK');
      const [onReplica] = await fromReplicas([k]);
      expect(onReplica, `${k} on the replica of group ${groupOf(k)} after its OK`).toBe(`v-${k}`);
    }
  });

  /**
   * Stops the replica of group `gid`, sends `args` through the long-timeout proxy, waits until
   * `applied()` sees the write on the master(s), gives the proxy one more turn (a PING it
   * answers itself), and checks the client has heard nothing; then resumes the replica and
   * returns the reply, which must now come.
   */
  async function heldUntilReplicaRuns(gid: number, args: string[], applied: () => Promise<boolean>): Promise<unknown> {
    const replica = cluster.groups[gid - 1]!.replicas[0]!;
    const c = await RawClient.connect(patient.port);
    try {
      await replica.pause();
      try {
        c.write(cmd(...args));
        await waitFor(applied, { what: `${args[0]} applied on the master` });
        const other = await RawClient.connect(patient.port);
        expect(plain(await other.call('PING'))).toBe('PONG');
        other.destroy();
        expect(c.replies.map(plain), `${args.join(' ')} acknowledged while the replica of group ${gid} was stopped`).toEqual([]);
      } finally {
        replica.resume();
      }
      return plain(await c.one(HANG_MS));
    } finally {
      c.destroy();
    }
  }

  it('a write is not acknowledged while the replica is stopped, and is once it runs again', async () => {
    const [key] = keysIn('d:stopped:', 1, 1);
    // Applied on the master, which holds the proxy's WAIT for the replica.
    const applied = async () => (await masters[0]!.get(key!)) === 'held' && (await blockedOn(masters[0]!)) >= 1;
    expect(await heldUntilReplicaRuns(1, ['SET', key!, 'held'], applied)).toBe('OK');
    expect(await replicas[0]!.get(key!)).toBe('held');
  });

  it('an MSET split over both groups is acknowledged only once the stopped replica of one group has its part', async () => {
    const [a, b] = [keysIn('d:msplit:', 1, 1)[0]!, keysIn('d:msplit:', 2, 1)[0]!];
    const applied = async () => (await masters[0]!.get(a)) === 'A' && (await masters[1]!.get(b)) === 'B';
    expect(await heldUntilReplicaRuns(2, ['MSET', a, 'A', b, 'B'], applied)).toBe('OK');
    expect(await fromReplicas([a, b])).toEqual(['A', 'B']);
  });

  it('a blocking command that writes (BLPOP popping an element) is not acknowledged before the replica has the pop', async () => {
    const [key] = keysIn('d:bpop:', 1, 1);
    await client.rpush(key!, 'a', 'b');
    expect(await replicas[0]!.lrange(key!, 0, -1)).toEqual(['a', 'b']);
    const applied = async () => JSON.stringify(await masters[0]!.lrange(key!, 0, -1)) === '["b"]';
    expect(await heldUntilReplicaRuns(1, ['BLPOP', key!, '5'], applied)).toEqual([key, 'a']);
    expect(await replicas[0]!.lrange(key!, 0, -1)).toEqual(['b']);
  });

  it('an EXEC under WATCH (its own pinned connection) is not acknowledged while the replica is stopped', async () => {
    const [key] = keysIn('d:watch:', 1, 1);
    const replica = cluster.groups[0]!.replicas[0]!;
    const c = await RawClient.connect(patient.port);
    try {
      expect(plain(await c.call('WATCH', key!))).toBe('OK');
      expect(plain(await c.call('MULTI'))).toBe('OK');
      expect(plain(await c.call('SET', key!, 'cas'))).toBe('QUEUED');
      await replica.pause();
      try {
        c.write(cmd('EXEC'));
        await waitFor(async () => (await masters[0]!.get(key!)) === 'cas', { what: 'EXEC applied on the master' });
        const other = await RawClient.connect(patient.port);
        expect(plain(await other.call('PING'))).toBe('PONG');
        other.destroy();
        expect(c.replies.length, 'EXEC acknowledged while the replica was stopped').toBe(3);
      } finally {
        replica.resume();
      }
      expect(plain(await c.one(HANG_MS))).toEqual(['OK']);
      expect(await replicas[0]!.get(key!)).toBe('cas');
    } finally {
      c.destroy();
    }
  });

  it('a write pipelined with the UNWATCH that ends its WATCH is acknowledged once the replica has it', async () => {
    const [key] = keysIn('d:unwatch:', 1, 1);
    const c = await RawClient.connect(patient.port);
    try {
      c.write(Buffer.concat([cmd('WATCH', key!), cmd('SET', key!, 'pinned'), cmd('UNWATCH')]));
      expect((await c.next(3, HANG_MS)).map(plain)).toEqual(['OK', 'OK', 'OK']);
      expect(await replicas[0]!.get(key!)).toBe('pinned');
    } finally {
      c.destroy();
    }
  });

  it('1000 pipelined writes are all acknowledged and all on the replicas', async () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `d:pipe:${i}`).filter((k) => groupOf(k) !== 3);
    const p = client.pipeline();
    for (const k of keys) p.set(k, `p-${k}`);
    const res = (await p.exec()) ?? [];
    expect(res.filter(([e]) => e !== null).map(([e]) => String(e))).toEqual([]);
    expect(res.map(([, v]) => v)).toEqual(keys.map(() => 'OK'));
    expect(await fromReplicas(keys)).toEqual(keys.map((k) => `p-${k}`));
    expect(new Set(keys.map(groupOf))).toEqual(new Set([1, 2]));
  });

  it('other write commands (INCR, HSET, RPUSH, DEL, MSET over both groups) are on the replica when acknowledged', async () => {
    const [a, b] = [keysIn('d:mix:', 1, 1)[0]!, keysIn('d:mix:', 2, 1)[0]!];
    expect(await client.incr(`${a}:n`)).toBe(1);
    expect(await replicas[groupOf(`${a}:n`) - 1]!.get(`${a}:n`)).toBe('1');
    expect(await client.hset(`${b}:h`, 'f', 'v')).toBe(1);
    expect(await replicas[groupOf(`${b}:h`) - 1]!.hget(`${b}:h`, 'f')).toBe('v');
    expect(await client.rpush(`${a}:l`, 'x', 'y')).toBe(2);
    expect(await replicas[groupOf(`${a}:l`) - 1]!.lrange(`${a}:l`, 0, -1)).toEqual(['x', 'y']);
    expect(await client.mset(a, 'ma', b, 'mb')).toBe('OK');
    expect(await fromReplicas([a, b])).toEqual(['ma', 'mb']);
    expect(await client.del(a, b)).toBe(2);
    expect(await fromReplicas([a, b])).toEqual([null, null]);
  });
});

describe('reads', () => {
  it('reads succeed without waiting for replicas, even while every replica is stopped', async () => {
    const keys = [...keysIn('d:read:', 1, 20), ...keysIn('d:read:', 2, 20)];
    await client.mset(...keys.flatMap((k) => [k, `r-${k}`]));
    const stopped = cluster.groups.map((g) => g.replicas[0]!);
    await Promise.all(stopped.map((r) => r.pause()));
    try {
      // A write now would fail after 500 ms (no replica confirms); reads must not.
      const p = client.pipeline();
      for (const k of keys) p.get(k);
      p.mget(...keys);
      p.exists(...keys);
      p.strlen(keys[0]!);
      const res = await within(p.exec(), HANG_MS, 'reads with stopped replicas');
      expect((res ?? []).map(([e, v]) => (e ? `error: ${e.message}` : v))).toEqual([
        ...keys.map((k) => `r-${k}`),
        keys.map((k) => `r-${k}`),
        keys.length,
        `r-${keys[0]!}`.length,
      ]);
    } finally {
      for (const r of stopped) r.resume();
    }
  });
});

describe('a group without replicas', () => {
  it('acknowledges writes normally in durable mode', async () => {
    const keys = keysIn('d:g3:', 3, 200);
    for (const k of keys.slice(0, 20)) expect(await client.set(k, `g3-${k}`)).toBe('OK');
    const p = client.pipeline();
    for (const k of keys.slice(20)) p.set(k, `g3-${k}`);
    const res = (await p.exec()) ?? [];
    expect(res.map(([e, v]) => (e ? `error: ${e.message}` : v))).toEqual(keys.slice(20).map(() => 'OK'));
    expect(await master3.mget(...keys)).toEqual(keys.map((k) => `g3-${k}`));
    // One pipeline over all three groups: every write acknowledged, groups 1 and 2 on their replicas.
    const mixed = [...keysIn('d:mix3:', 1, 30), ...keysIn('d:mix3:', 2, 30), ...keysIn('d:mix3:', 3, 30)];
    const q = client.pipeline();
    for (const k of mixed) q.set(k, `m-${k}`);
    expect(((await q.exec()) ?? []).map(([e, v]) => (e ? `error: ${e.message}` : v))).toEqual(mixed.map(() => 'OK'));
    const g12 = mixed.filter((k) => groupOf(k) !== 3);
    expect(await fromReplicas(g12)).toEqual(g12.map((k) => `m-${k}`));
  });
});

describe('replicas gone', () => {
  it('after SIGKILL of the replicas, a write gets the durable error; reads and the replica-less group still work', async () => {
    const [k1, k2] = [keysIn('d:dead:', 1, 1)[0]!, keysIn('d:dead:', 2, 1)[0]!];
    const [k3] = keysIn('d:dead:', 3, 1);
    await client.mset(k1, 'before', k2, 'before');
    for (const r of replicas) r.disconnect(); // no reconnect attempts to dead servers
    await Promise.all(cluster.groups.map((g) => g.replicas[0]!.kill('SIGKILL')));

    const c = await RawClient.connect(proxy.port);
    try {
      for (const k of [k1, k2]) {
        const r = await c.call('SET', k, 'after');
        expect(r, `SET ${k} (group ${groupOf(k)})`).toBeInstanceOf(RespError);
        expect((r as RespError).message).toBe(`ERR durable write not confirmed: 0 of 1 in-sync replicas (${replicaOf(k)}) acknowledged within 500 ms`);
      }
      expect(plain(await c.call('INCR', `${k1}:n`))).toEqual({ err: `ERR durable write not confirmed: 0 of 1 in-sync replicas (${replicaOf(`${k1}:n`)}) acknowledged within 500 ms` });
      // A group with no replica is not affected.
      expect(plain(await c.call('SET', k3!, 'after'))).toBe('OK');
      expect(await master3.get(k3!)).toBe('after');
      // Reads are answered.
      expect(plain(await c.call('EXISTS', k1, k2, k3!))).toBe(3);
    } finally {
      c.destroy();
    }
  });
});
