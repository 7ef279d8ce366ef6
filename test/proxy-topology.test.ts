/**
 * The proxy and etcd: a slot reassignment is picked up live while clients keep going; a
 * product without slots answers `-ERR slot N is offline`; /healthz and /metrics; the proxy's
 * registration in etcd; and an etcd outage does not take the data path down, and changes
 * made after etcd returns are followed again.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerRole, Store } from '@reborn/coordinator';
import { assignSlots, startCluster, startProxy, stopAll, waitFor, type Cluster, type ProxyProcess } from '@reborn/testkit';
import { RawClient, RespError, dataReady, groupsHolding, keysInSlots, masterClients, parsePrometheus, slotOf } from './helpers.js';

let cluster: Cluster;
let proxy: ProxyProcess;
let masters: Redis[];

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1 });
  proxy = cluster.proxies[0]!;
  masters = masterClients(cluster);
  await dataReady(proxy.port);
});

afterAll(stopAll);

interface Load {
  ops: number[];
  errors: string[];
  /** Reads of keys whose slot never moved that did not return the value just written. */
  wrong: string[];
  stop(): Promise<void>;
}

/**
 * `n` clients, each in a SET-then-GET loop over `moving` and `fixed` keys. Any error reply is
 * recorded; reads are checked only for `fixed` keys (a key whose slot moves without a
 * migration legitimately reads the new group's empty value right at the switch).
 */
function runLoad(n: number, moving: string[], fixed: string[]): Load {
  const load: Load = { ops: new Array<number>(n).fill(0), errors: [], wrong: [], stop: async () => undefined };
  let running = true;
  const loops = Array.from({ length: n }, async (_, c) => {
    const client = proxy.client({ maxRetriesPerRequest: 0 });
    const mine = (keys: string[]) => keys.filter((_, i) => i % n === c);
    const [mov, fix] = [mine(moving), mine(fixed)];
    for (let i = 0; running; i++) {
      const j = Math.floor(i / 2);
      const key = i % 2 === 0 ? mov[j % mov.length]! : fix[j % fix.length]!;
      const value = `c${c}-${i}`;
      try {
        await client.set(key, value);
        const got = await client.get(key);
        if (fix.includes(key) && got !== value) load.wrong.push(`${key}: wrote ${value}, read ${got}`);
      } catch (err) {
        load.errors.push(`${key}: ${(err as Error).message}`);
      }
      load.ops[c]!++;
    }
    client.disconnect();
  });
  load.stop = async () => {
    running = false;
    await Promise.all(loops);
  };
  return load;
}

/** Waits until every load client has done `more` further iterations. */
async function progress(load: Load, more: number, timeoutMs = 20_000): Promise<void> {
  const target = load.ops.map((n) => n + more);
  await waitFor(() => load.ops.every((n, i) => n >= target[i]!), { what: `${more} more iterations per client`, timeoutMs });
}

let probeSeq = 0;
/** Writes a fresh key of slots [from, to] through the proxy; resolves with the groups holding it. */
async function probe(client: Redis, from: number, to: number): Promise<number[]> {
  const [key] = keysInSlots(`topo:probe:${probeSeq++}:`, from, to, 1);
  await client.set(key!, 'p');
  return groupsHolding(masters, key!);
}

describe('hot topology change', () => {
  it('slots reassigned in etcd are served by the new group without a restart, while 4 clients run', async () => {
    // Slots 0..63 start in group 1 and move to group 2; 600..1023 (group 2) never move.
    const moving = keysInSlots('topo:mv:', 0, 63, 16);
    const fixed = [...keysInSlots('topo:fx:', 64, 511, 8), ...keysInSlots('topo:fx2:', 600, 1023, 8)];
    const client = proxy.client();
    expect(await probe(client, 0, 63)).toEqual([1]);

    const load = runLoad(4, moving, fixed);
    try {
      await progress(load, 50);
      await assignSlots(cluster.store, 0, 63, 2);
      await waitFor(async () => (await probe(client, 0, 63)).includes(2), { what: 'new writes to land in group 2' });
      // Let every client's request in flight at the switch complete, then watch group 1:
      // from now on, nothing is written there for the moved slots.
      await progress(load, 2);
      const before = await masters[0]!.mget(...moving);
      await progress(load, 40);
      expect(await masters[0]!.mget(...moving)).toEqual(before);
      // ...and the clients' writes of those keys went to group 2.
      expect(await masters[1]!.exists(...moving)).toBe(moving.length);
      // Every slot of the range moved, not just the probed ones.
      const perSlot = Array.from({ length: 64 }, (_, s) => keysInSlots(`topo:each:${s}:`, s, s, 1)[0]!);
      for (const k of perSlot) await client.set(k, 'x');
      expect(await Promise.all(perSlot.map((k) => groupsHolding(masters, k)))).toEqual(perSlot.map(() => [2]));
    } finally {
      await load.stop();
    }
    expect(load.errors).toEqual([]);
    expect(load.wrong).toEqual([]);
    expect(Math.min(...load.ops)).toBeGreaterThan(90);
  });
});

describe('admin endpoint', () => {
  it('/healthz answers 200 with ready', async () => {
    const body = JSON.parse(await proxy.adminGet('/healthz')) as { ready?: unknown };
    expect(body.ready).toBe(true);
  });

  it('once /healthz answers 200, data commands are served (no "proxy not ready")', async () => {
    // addProxy() returns as soon as /healthz says 200: what a load balancer or an operator's
    // script waits for before sending traffic.
    const fresh = await cluster.addProxy();
    try {
      const c = await RawClient.connect(fresh.port);
      const reply = await c.call('SET', 'topo:first-command', 'v');
      c.destroy();
      expect(reply instanceof RespError ? reply.message : reply).toBe('OK');
    } finally {
      await fresh.stop();
    }
  });

  it('/metrics is Prometheus text with per-command counters and latency histograms', async () => {
    const client = proxy.client();
    await client.get('topo:metrics'); // the series exist from here on
    const before = parsePrometheus(await proxy.metrics());
    const getCount = 'reborn_proxy_commands_total{cmd="get"}';
    expect(before.get(getCount)).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 25; i++) await client.get('topo:metrics');
    await client.set('topo:metrics', 'v');
    const after = parsePrometheus(await proxy.metrics());
    expect(after.get(getCount)! - before.get(getCount)!).toBeGreaterThanOrEqual(25);

    // The histogram: cumulative buckets ending in +Inf, equal to _count.
    const les = [...after.keys()]
      .filter((k) => k.startsWith('reborn_proxy_command_duration_seconds_bucket{cmd="get",'))
      .map((k) => [/le="([^"]+)"/.exec(k)![1]!, after.get(k)!] as const);
    expect(les.length).toBeGreaterThan(2);
    expect(les.at(-1)![0]).toBe('+Inf');
    for (let i = 1; i < les.length; i++) expect(les[i]![1]).toBeGreaterThanOrEqual(les[i - 1]![1]);
    expect(les.at(-1)![1]).toBe(after.get('reborn_proxy_command_duration_seconds_count{cmd="get"}'));
    expect(after.get('reborn_proxy_command_duration_seconds_count{cmd="set"}')).toBeGreaterThanOrEqual(1);

    expect(after.get('reborn_proxy_ready')).toBe(1);
    for (const g of cluster.groups) expect(after.get(`reborn_proxy_backend_up{addr="${g.master.addr}"}`)).toBe(1);
  });
});

describe('registration in etcd', () => {
  it('a proxy is listed under the product while it runs and disappears when it stops', async () => {
    const listed = await cluster.store.listProxies();
    const me = listed.find((p) => p.addr === proxy.addr);
    expect(me).toMatchObject({ adminAddr: proxy.adminAddr, pid: proxy.pid, state: 'online' });

    const extra = await cluster.addProxy();
    await waitFor(async () => (await cluster.store.listProxies()).some((p) => p.addr === extra.addr), {
      what: 'the new proxy to register',
    });
    await extra.stop();
    await waitFor(async () => !(await cluster.store.listProxies()).some((p) => p.addr === extra.addr), {
      what: 'the stopped proxy to vanish from etcd',
    });
    expect((await cluster.store.listProxies()).some((p) => p.addr === proxy.addr)).toBe(true);
  });
});

describe('a product without slots', () => {
  it('answers -ERR slot N is offline, then serves once slots are assigned', async () => {
    const product = `empty${Date.now().toString(36)}`;
    const lonely = await startProxy({ etcd: cluster.etcd.clientUrl, product });
    await dataReady(lonely.port);
    const store = await Store.open({ endpoints: [cluster.etcd.clientUrl], product });
    try {
      expect(JSON.parse(await lonely.adminGet('/healthz'))).toMatchObject({ ready: true });
      const client = lonely.client({ maxRetriesPerRequest: 0 });
      expect(await client.ping()).toBe('PONG');
      for (const key of ['topo:offline', '{user9}.x', 'another']) {
        await expect(client.get(key)).rejects.toThrow(`ERR slot ${slotOf(key)} is offline`);
        await expect(client.set(key, 'v')).rejects.toThrow(`ERR slot ${slotOf(key)} is offline`);
      }
      await expect(client.mget('topo:offline', 'another')).rejects.toThrow(/^ERR slot \d+ is offline/);
      await expect(client.del('topo:offline', 'another')).rejects.toThrow(/^ERR slot \d+ is offline/);

      // Give the product a group and its slots: the same proxy serves at once.
      await store.putGroup({ id: 1, servers: [{ addr: cluster.groups[0]!.master.addr, role: ServerRole.Master }] });
      await assignSlots(store, 0, 1023, 1);
      await waitFor(async () => (await client.set('topo:offline', 'now-online')) === 'OK', { what: 'the slots to come online' });
      expect(await masters[0]!.get('topo:offline')).toBe('now-online');
    } finally {
      await store.close();
      await lonely.stop();
    }
  });
});

describe('etcd outage', () => {
  it('the data path keeps working without etcd, and follows changes made after it returns', async () => {
    const moving = keysInSlots('topo:etcd-mv:', 512, 575, 16); // group 2, moved to 1 below
    const fixed = keysInSlots('topo:etcd-fx:', 600, 1023, 16);
    const client = proxy.client({ maxRetriesPerRequest: 0 });
    expect(await probe(client, 512, 575)).toEqual([2]);
    const load = runLoad(2, moving, fixed);
    try {
      await progress(load, 20);
      await cluster.etcd.kill();
      expect(cluster.etcd.running).toBe(false);
      await progress(load, 200);
      // New connections are served too.
      const fresh = proxy.client({ maxRetriesPerRequest: 0 });
      expect(await fresh.set('topo:during-outage', 'ok')).toBe('OK');
      expect(await fresh.get('topo:during-outage')).toBe('ok');
      expect(JSON.parse(await proxy.adminGet('/healthz'))).toMatchObject({ ready: true });

      await cluster.etcd.restart();
      // The store's own client reconnects; retry the write until etcd takes it.
      await waitFor(() => assignSlots(cluster.store, 512, 575, 1), { what: 'etcd to take the slot change', timeoutMs: 20_000 });
      await waitFor(async () => (await probe(client, 512, 575)).includes(1), {
        what: 'the proxy to follow a change made after etcd returned',
        timeoutMs: 20_000,
      });
      await progress(load, 10);
    } finally {
      await load.stop();
    }
    expect(load.errors).toEqual([]);
    expect(load.wrong).toEqual([]);
    for (const k of moving) {
      await client.set(k, 'after-etcd');
      expect(await groupsHolding(masters, k)).toContain(1);
      expect(await masters[0]!.get(k)).toBe('after-etcd');
    }
  });
});
