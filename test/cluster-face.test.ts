/**
 * The Redis Cluster face (`--cluster-addr`) end to end: real etcd, two redis groups, proxies
 * with cluster addresses, and the cluster clients people use — node-redis `createCluster`
 * (RESP2 and RESP3), ioredis 5 and ioredis 6 `Cluster` — connecting with their defaults.
 * The map every proxy serves is the same and covers the 16384 slots; it follows proxies that
 * stop and join, and clients keep working across it.
 */
import { createCluster } from 'redis';
import { Cluster as Ioredis5Cluster } from 'ioredis';
import { Cluster as Ioredis6Cluster } from 'ioredis6';
import { startCluster, waitFor, type Cluster, type ProxyProcess } from '@reborn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, RespError, plain } from './helpers.js';
import { matrixRow } from './client-matrix.js';
import { IOREDIS5, IOREDIS6, NODE_REDIS } from './client-matrix-clients.js';

/** This file's row of the client compatibility table (README, `npm run gen:clients`). */
const CLUSTER_ROW = 'cluster mode through --cluster-addr';

interface MapEntry {
  from: number;
  to: number;
  addr: string;
  id: string;
}

async function rawCall(port: number, ...args: string[]): Promise<unknown> {
  const c = await RawClient.connect(port);
  try {
    const r = await c.call(...args);
    return r instanceof RespError ? r : plain(r);
  } finally {
    c.destroy();
  }
}

/** CLUSTER SLOTS of the face at `port`, one entry per range. */
async function mapAt(port: number): Promise<MapEntry[]> {
  const reply = (await rawCall(port, 'CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, string, unknown[]]]>;
  return reply.map(([from, to, [host, p, id]]) => ({ from, to, addr: `${host}:${p}`, id }));
}

/** Waits until every proxy in `proxies` serves the same map, of their cluster addresses. */
async function waitForMap(proxies: readonly ProxyProcess[]): Promise<MapEntry[]> {
  const want = proxies.map((p) => p.clusterAddr!).sort().join(' ');
  return waitFor(
    async () => {
      const maps = await Promise.all(proxies.map((p) => mapAt(p.clusterPort!)));
      const first = JSON.stringify(maps[0]);
      const same = maps.every((m) => JSON.stringify(m) === first);
      return same && maps[0]!.map((e) => e.addr).sort().join(' ') === want ? maps[0]! : null;
    },
    { timeoutMs: 60_000, what: `the map of ${want} on every proxy` },
  );
}

/** Commands served by each proxy so far (its admin /api/proxy). */
async function commandCounts(proxies: readonly ProxyProcess[]): Promise<number[]> {
  return Promise.all(proxies.map(async (p) => (JSON.parse(await p.adminGet('/api/proxy')) as { commands: number }).commands));
}

const N = 2000;
const keysOf = (prefix: string): string[] => Array.from({ length: N }, (_, i) => `${prefix}:k${i}`);
const valuesOf = (prefix: string): string[] => Array.from({ length: N }, (_, i) => `${prefix}-v${i}`);

type NodeRedisCluster = ReturnType<typeof createCluster>;
type IoredisCluster = Ioredis5Cluster | Ioredis6Cluster;

function nodeRedis(proxy: ProxyProcess, resp: 2 | 3): NodeRedisCluster {
  const c = createCluster({ rootNodes: [{ url: `redis://${proxy.clusterAddr}` }], RESP: resp });
  c.on('error', () => undefined); // node errors while a proxy stops are expected; commands say the rest
  return c;
}

async function nodeRedisWorkload(c: NodeRedisCluster, prefix: string): Promise<void> {
  const keys = keysOf(prefix);
  const values = valuesOf(prefix);
  expect(new Set(await Promise.all(keys.map((k, i) => c.set(k, values[i]!))))).toEqual(new Set(['OK']));
  expect(await Promise.all(keys.map((k) => c.get(k)))).toEqual(values);
  const tag = `{${prefix}}`;
  expect(await c.mSet([[`${tag}a`, '1'], [`${tag}b`, '2']])).toBe('OK');
  expect(await c.mGet([`${tag}a`, `${tag}b`, `${tag}none`])).toEqual(['1', '2', null]);
  expect(await c.multi().set(`${tag}p`, 'x').get(`${tag}p`).incr(`${tag}n`).execAsPipeline()).toEqual(['OK', 'x', 1]);
  expect(await c.multi().incr(`${tag}n`).get(`${tag}a`).exec()).toEqual([2, '1']);
}

async function ioredisWorkload(c: IoredisCluster, prefix: string): Promise<void> {
  const keys = keysOf(prefix);
  const values = valuesOf(prefix);
  expect(new Set(await Promise.all(keys.map((k, i) => c.set(k, values[i]!))))).toEqual(new Set(['OK']));
  expect(await Promise.all(keys.map((k) => c.get(k)))).toEqual(values);
  const tag = `{${prefix}}`;
  expect(await c.mset(`${tag}a`, '1', `${tag}b`, '2')).toBe('OK');
  expect(await c.mget(`${tag}a`, `${tag}b`, `${tag}none`)).toEqual(['1', '2', null]);
  const piped = await c.pipeline().set(`${tag}p`, 'x').get(`${tag}p`).incr(`${tag}n`).exec();
  expect(piped).toEqual([[null, 'OK'], [null, 'x'], [null, 1]]);
  expect(await c.multi().incr(`${tag}n`).get(`${tag}a`).exec()).toEqual([[null, 2], [null, '1']]);
}

async function readBack(get: (k: string) => Promise<string | null>, prefix: string): Promise<void> {
  expect(await Promise.all(keysOf(prefix).map(get))).toEqual(valuesOf(prefix));
}

describe('the Redis Cluster face', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({ groups: 2, proxies: 2, clusterFace: true });
    await waitForMap(cluster.proxies);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('every proxy serves the same map over all 16384 slots, in its own name; the plain port has no cluster support', async () => {
    const [a, b] = cluster.proxies as [ProxyProcess, ProxyProcess];
    const map = await waitForMap([a, b]);
    expect(map).toHaveLength(2);
    expect(map[0]!.from).toBe(0);
    expect(map[0]!.to + 1).toBe(map[1]!.from);
    expect(map[1]!.to).toBe(16383);
    for (const e of map) expect(e.id).toMatch(/^[0-9a-f]{40}$/);
    // Each proxy's MYID is its own entry; NODES marks it `myself`.
    for (const p of [a, b]) {
      const myId = await rawCall(p.clusterPort!, 'CLUSTER', 'MYID');
      expect(map.find((e) => e.addr === p.clusterAddr)?.id).toBe(myId);
      expect(await rawCall(p.clusterPort!, 'CLUSTER', 'NODES')).toMatch(new RegExp(`^${myId} ${p.clusterAddr}@0 myself,master `, 'm'));
      expect(await rawCall(p.clusterPort!, 'CLUSTER', 'INFO')).toMatch(/^cluster_state:ok\r\n[^]*cluster_known_nodes:2\r\n/);
    }
    const shards = (await rawCall(a.clusterPort!, 'CLUSTER', 'SHARDS')) as unknown[][];
    expect(shards.map((s) => s[1])).toEqual(map.map((e) => [e.from, e.to]));
    expect(await rawCall(a.port, 'CLUSTER', 'SLOTS')).toEqual(new RespError('ERR This instance has cluster support disabled'));
    expect(await rawCall(a.port, 'CLUSTER', 'KEYSLOT', 'foo')).toBe(12182);
    expect(await rawCall(a.clusterPort!, 'READONLY')).toBe('OK');
    // The registration names the address too (reborn-config proxy list shows it).
    const registered = await cluster.store.listProxies();
    expect(registered.map((p) => p.clusterAddr).sort()).toEqual([a.clusterAddr, b.clusterAddr].sort());
  });

  for (const resp of [2, 3] as const) {
    it(`node-redis createCluster (RESP${resp}): 2,000 keys over both proxies, hash-tagged MSET/MGET, a pipeline, MULTI`, matrixRow(NODE_REDIS, `RESP${resp}`, CLUSTER_ROW)(async () => {
      const before = await commandCounts(cluster.proxies);
      const c = nodeRedis(cluster.proxies[0]!, resp);
      try {
        await c.connect();
        expect(c.masters.map((m) => `${m.host}:${m.port}`).sort()).toEqual(cluster.proxies.map((p) => p.clusterAddr).sort());
        await nodeRedisWorkload(c, `nr${resp}`);
      } finally {
        await c.close();
      }
      // The client spread its keys over both proxies by the map (half each, give or take).
      const after = await commandCounts(cluster.proxies);
      for (const [i, n] of after.entries()) expect(n - before[i]!).toBeGreaterThan(N / 2);
    }));
  }

  // ioredis 6 speaks RESP3 by default, ioredis 5 RESP2.
  for (const [name, Ctor, client, protocol] of [['ioredis 5', Ioredis5Cluster, IOREDIS5, 'RESP2'], ['ioredis 6', Ioredis6Cluster, IOREDIS6, 'RESP3']] as const) {
    it(`${name} Cluster: 2,000 keys over both proxies, hash-tagged MSET/MGET, a pipeline, MULTI`, matrixRow(client, protocol, CLUSTER_ROW)(async () => {
      const before = await commandCounts(cluster.proxies);
      const c = new Ctor([{ host: '127.0.0.1', port: cluster.proxies[1]!.clusterPort! }]);
      try {
        await waitFor(() => c.status === 'ready', { timeoutMs: 30_000, what: `${name} ready` });
        expect(c.nodes('master').map((n) => `${n.options.host}:${n.options.port}`).sort()).toEqual(cluster.proxies.map((p) => p.clusterAddr).sort());
        await ioredisWorkload(c, name.replace(' ', ''));
      } finally {
        c.disconnect();
      }
      const after = await commandCounts(cluster.proxies);
      for (const [i, n] of after.entries()) expect(n - before[i]!).toBeGreaterThan(N / 2);
    }));
  }

  it('pub/sub and sharded pub/sub: subscribers on one proxy get what is published through another', async () => {
    const [a, b] = cluster.proxies as [ProxyProcess, ProxyProcess];
    const publisher = new Ioredis5Cluster([{ host: '127.0.0.1', port: a.clusterPort! }]);
    // ioredis delivers sharded messages of a Cluster only with its shardedSubscribers option.
    const ioSub = new Ioredis5Cluster([{ host: '127.0.0.1', port: b.clusterPort! }], { shardedSubscribers: true });
    const nrSub = nodeRedis(b, 2);
    const got: string[] = [];
    try {
      ioSub.on('message', (ch: string, m: string) => got.push(`io ${ch} ${m}`));
      ioSub.on('smessage', (ch: string, m: string) => got.push(`io ${ch} ${m}`));
      await Promise.all([ioSub.subscribe('news'), ioSub.ssubscribe('shard-news'), nrSub.connect()]);
      await nrSub.subscribe('news', (m) => got.push(`nr news ${m}`));
      await nrSub.sSubscribe('shard-news', (m) => got.push(`nr shard-news ${m}`));
      await publisher.publish('news', 'one');
      await publisher.spublish('shard-news', 'two');
      const want = ['io news one', 'io shard-news two', 'nr news one', 'nr shard-news two'];
      await waitFor(() => got.length >= want.length, { what: `${want.length} messages, got ${got.join(', ')}` });
      expect(got.sort()).toEqual(want);
    } finally {
      publisher.disconnect();
      ioSub.disconnect();
      await nrSub.close();
    }
  });

  it('a stopped proxy leaves the map and clients keep working; a new proxy joins it', async () => {
    const [a, b] = cluster.proxies as [ProxyProcess, ProxyProcess];
    const io = new Ioredis5Cluster([{ host: '127.0.0.1', port: a.clusterPort! }]);
    const nr = nodeRedis(a, 2);
    try {
      await Promise.all([nr.connect(), waitFor(() => io.status === 'ready', { timeoutMs: 30_000, what: 'ioredis ready' })]);
      await Promise.all([
        Promise.all(keysOf('churn').map((k, i) => io.set(k, valuesOf('churn')[i]!))),
        Promise.all(keysOf('churn-nr').map((k, i) => nr.set(k, valuesOf('churn-nr')[i]!))),
      ]);

      await b.stop();
      const shrunk = await waitForMap([a]);
      expect(shrunk).toEqual([{ from: 0, to: 16383, addr: a.clusterAddr, id: expect.stringMatching(/^[0-9a-f]{40}$/) }]);
      // ioredis refreshes when it finds no connection for a slot; node-redis once a node has
      // been reconnecting for a while. Then every key is read through the proxy left.
      await readBack((k) => io.get(k), 'churn');
      await waitFor(() => nr.masters.length === 1, { timeoutMs: 60_000, what: 'node-redis to drop the stopped proxy' });
      await readBack((k) => nr.get(k), 'churn-nr');
      expect(io.nodes('master').map((n) => n.options.port)).toEqual([a.clusterPort]);

      const c = await cluster.addProxy();
      const grown = await waitForMap([a, c]);
      expect(grown).toHaveLength(2);
      // Clients learn a grown map when they refresh: ioredis on request (or its
      // slotsRefreshInterval), a new node-redis client at connect.
      await new Promise<void>((resolve, reject) => io.refreshSlotsCache((err) => (err ? reject(err) : resolve())));
      expect(io.nodes('master').map((n) => n.options.port).sort()).toEqual([a.clusterPort, c.clusterPort].sort());
      await readBack((k) => io.get(k), 'churn');
      const fresh = nodeRedis(c, 2);
      try {
        await fresh.connect();
        expect(fresh.masters).toHaveLength(2);
        await readBack((k) => fresh.get(k), 'churn-nr');
      } finally {
        await fresh.close();
      }
    } finally {
      io.disconnect();
      await nr.close().catch(() => undefined);
    }
  }, 180_000);
});
