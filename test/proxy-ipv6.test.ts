/**
 * IPv6 end to end: two redis groups bound on [::1], a reborn-proxy listening on [::1]
 * (`--addr [::1]:0`), etcd as usual, and a client connecting over ::1. Every place the proxy
 * reaches a backend by its `host:port` from etcd must drop the brackets of an IPv6 host
 * before connecting — the shared pools (SET/GET/MGET over both groups), MIGRATE's target on a
 * migrating slot (the key moves from one [::1] server to the other) and the pub/sub feeds.
 *
 * No IPv6 loopback on the machine is a failure with a clear message, never a skip.
 */
import { networkInterfaces } from 'node:os';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { splitAddr } from '@reborn/coordinator';
import { startCluster, waitFor, type Cluster, type ProxyProcess } from '@reborn/testkit';
import { keysOfGroup } from './helpers.js';

const LOOPBACK6 = '::1';

let cluster: Cluster;
let proxy: ProxyProcess;
/** The proxy's client port on [::1], as it registered itself in etcd. */
let port: number;
const clients: Redis[] = [];

function hasIpv6Loopback(): boolean {
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((a) => a.family === 'IPv6' && a.address === LOOPBACK6));
}

/** A client of the proxy over IPv6, disconnected after the tests. */
function client6(): Redis {
  const c = new Redis({ host: LOOPBACK6, port, maxRetriesPerRequest: 1 });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  if (!hasIpv6Loopback()) {
    throw new Error('this machine has no IPv6 loopback address (::1): `ip -6 addr show dev lo` lists none; the IPv6 test needs it');
  }
  cluster = await startCluster({ groups: 2, proxies: 0, redisHost: LOOPBACK6 });
  proxy = await cluster.addProxy(['--addr', `[${LOOPBACK6}]:0`]);
  const registered = await waitFor(async () => (await cluster.store.listProxies()).find((p) => p.addr.startsWith('[::1]:')), {
    what: 'the proxy registered with its [::1] address',
  });
  port = splitAddr(registered.addr).port;
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.stop();
});

/** How many slots the proxy currently routes as migrating. */
async function migratingSlots(): Promise<number> {
  const states = (JSON.parse(await proxy.adminGet('/api/proxy')) as { slots: Record<string, number> }).slots;
  return states['migrating'] ?? 0;
}

describe('reborn over IPv6', () => {
  it('runs its backends on [::1] and registers its [::1] address', async () => {
    for (const g of cluster.groups) expect(g.master.addr).toMatch(/^\[::1\]:\d+$/);
    const groups = await cluster.store.listGroups();
    expect(groups.flatMap((g) => g.servers.map((s) => s.addr)).every((a) => a.startsWith('[::1]:'))).toBe(true);
    expect(port).toBeGreaterThan(0);
  });

  it('SET, GET and MGET across both groups', async () => {
    const r = client6();
    const [k1] = keysOfGroup('v6:', 1, 1);
    const [k2] = keysOfGroup('v6:', 2, 1);
    expect(await r.set(k1!, 'one')).toBe('OK');
    expect(await r.set(k2!, 'two')).toBe('OK');
    expect(await r.get(k1!)).toBe('one');
    expect(await r.mget(k1!, k2!, 'v6:missing')).toEqual(['one', 'two', null]);
    // Each key went to its own group's [::1] master.
    const m1 = cluster.groups[0]!.master.client();
    const m2 = cluster.groups[1]!.master.client();
    try {
      expect(await m1.get(k1!)).toBe('one');
      expect(await m2.get(k2!)).toBe('two');
    } finally {
      m1.disconnect();
      m2.disconnect();
    }
  });

  it('moves a key of a migrating slot from one [::1] master to the other (MIGRATE to a bare ::1)', async () => {
    const slot = keySlot(Buffer.from('m6'));
    const src = (await cluster.store.getSlot(slot)).group;
    const dst = src === 1 ? 2 : 1;
    const source = cluster.groups.find((g) => g.id === src)!.master.client();
    const target = cluster.groups.find((g) => g.id === dst)!.master.client();
    try {
      await source.set('{m6}k', 'in-source');
      await cluster.store.putSlots([{ id: slot, state: 'migrating', group: dst, from: src, to: dst }]);
      await waitFor(async () => (await migratingSlots()) === 1, { what: 'the proxy to see the slot migrating' });
      const r = client6();
      expect(await r.get('{m6}k')).toBe('in-source');
      expect(await source.exists('{m6}k')).toBe(0);
      expect(await target.get('{m6}k')).toBe('in-source');
      await cluster.store.putSlots([{ id: slot, state: 'online', group: dst }]);
      await waitFor(async () => (await migratingSlots()) === 0, { what: 'the proxy to see the slot online' });
      expect(await r.get('{m6}k')).toBe('in-source');
    } finally {
      source.disconnect();
      target.disconnect();
    }
  });

  it('delivers pub/sub messages through the [::1] feeds', async () => {
    const sub = client6();
    const pub = client6();
    const got: string[] = [];
    sub.on('message', (channel: string, message: string) => got.push(`${channel}=${message}`));
    expect(await sub.subscribe('v6:news')).toBe(1);
    // A message published before the feed's subscription reached redis would be lost:
    // publish until one arrives, then check the rest arrive in order.
    await waitFor(async () => (await pub.publish('v6:news', 'hello')) >= 1 && got.length > 0, { what: 'a first message over IPv6' });
    for (let i = 0; i < 5; i++) await pub.publish('v6:news', `m${i}`);
    await waitFor(() => got.includes('v6:news=m4'), { what: 'five more messages' });
    expect(got.filter((m) => m !== 'v6:news=hello')).toEqual(['v6:news=m0', 'v6:news=m1', 'v6:news=m2', 'v6:news=m3', 'v6:news=m4']);
  });
});
