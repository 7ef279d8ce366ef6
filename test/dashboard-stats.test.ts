/**
 * The live numbers of the dashboard's REST API against a real cluster (etcd, two groups of
 * master + replica, one reborn-proxy): GET /api/stats turns the proxies' cumulative admin
 * counters into total, per-proxy and per-slot QPS, and reports a proxy that does not answer
 * without failing; GET /api/servers is INFO of every server (role, replication lag, memory,
 * keys) with an error for a dead one; GET /api/events lists the HA agents' events.
 */
import { createServer, type Server, type Socket } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stats, createApi, type ApiServer } from '@reborn/config';
import { AgentEventKind, AgentStore, ProxyState, encodeProxy } from '@reborn/coordinator';
import { keySlot } from '@reborn/protocol';
import { freePort, startCluster, waitFor, type Cluster } from '@reborn/testkit';

let cluster: Cluster;
let server: ApiServer;
// A TCP server that accepts and never answers: a hung proxy admin port.
let silent: Server;
const silentSockets = new Set<Socket>();
// The timeout of the Stats that reads the hung proxy; the real proxy is read without one.
const PROXY_TIMEOUT_MS = 300;

async function get(path: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`http://${server.address}${path}`, { signal: AbortSignal.timeout(30_000) });
  const body = await res.json();
  expect({ path, status: res.status }).toEqual({ path, status: 200 });
  return body;
}

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
  server = await createApi({ store: cluster.store, logger: pino({ level: 'silent' }) }).listen('127.0.0.1:0');
  silent = createServer((s) => {
    silentSockets.add(s);
    s.on('close', () => silentSockets.delete(s));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  for (const s of silentSockets) s.destroy();
  await new Promise<void>((resolve) => (silent ? silent.close(() => resolve()) : resolve()));
  await server?.close();
  await cluster?.stop();
});

describe('GET /api/stats', () => {
  it('per-proxy and per-slot QPS from two samples, after traffic through the proxy', async () => {
    const proxy = cluster.proxies[0]!;
    const [registered] = await cluster.store.listProxies();
    const first = await get('/api/stats');
    expect(first.proxies).toHaveLength(1);
    expect(first.proxies[0]).toMatchObject({ id: registered!.id, addr: proxy.addr, adminAddr: proxy.adminAddr, ok: true, fenced: false, ready: true });
    expect(first.slotQps).toHaveLength(1024);

    const c = proxy.client();
    const keys = ['stats:a', 'stats:b', '{stats}:c'];
    for (let i = 0; i < 50; i++) for (const k of keys) await c.set(k, String(i));
    const before = first.proxies[0].commands as number;

    const second = await get('/api/stats');
    const p = second.proxies[0];
    expect(p.ok).toBe(true);
    expect(p.commands).toBeGreaterThanOrEqual(before + 150);
    expect(p.sessions).toBeGreaterThanOrEqual(1);
    expect(p.qps).toBeGreaterThan(0);
    expect(p.windowMs).toBeGreaterThan(0);
    expect(second.qps).toBe(p.qps);
    // Exactly the slots of the keys written got requests.
    const hot = new Set(keys.map((k) => keySlot(Buffer.from(k))));
    for (let s = 0; s < 1024; s++) {
      if (hot.has(s)) expect({ s, hot: second.slotQps[s] > 0 }).toEqual({ s, hot: true });
      else expect({ s, qps: second.slotQps[s] }).toEqual({ s, qps: 0 });
    }
    c.disconnect();
  });

  it('a registered proxy that does not answer is reported as such; the others still are', async () => {
    const hungPort = (silent.address() as { port: number }).port;
    const deadPort = await freePort();
    const ghost = (id: string, adminPort: number) =>
      encodeProxy({ id, addr: '127.0.0.1:1', adminAddr: `127.0.0.1:${adminPort}`, pid: 1, host: 'test', startedAt: new Date().toISOString(), state: ProxyState.Online });
    await cluster.store.etcd.put(cluster.store.paths.proxy('ghost-hung')).value(ghost('ghost-hung', hungPort)).exec();
    await cluster.store.etcd.put(cluster.store.paths.proxy('ghost-dead')).value(ghost('ghost-dead', deadPort)).exec();
    // Only the hung proxy's requests get PROXY_TIMEOUT_MS: the real proxy, on a loaded machine,
    // may take longer than that, and that must not make this test fail.
    const hungAddr = `127.0.0.1:${hungPort}`;
    const stats = new Stats(cluster.store, {
      proxyTimeoutMs: PROXY_TIMEOUT_MS,
      fetch: (url, init) => (String(url).includes(hungAddr) ? fetch(url, init) : fetch(url, { ...init, signal: AbortSignal.timeout(30_000) })),
    });
    try {
      const st = await stats.proxies();
      const byId = Object.fromEntries(st.proxies.map((p: { id: string }) => [p.id, p]));
      expect(byId['ghost-hung']).toMatchObject({ ok: false, error: `no answer within ${PROXY_TIMEOUT_MS} ms`, qps: null, sessions: null });
      expect(byId['ghost-dead']).toMatchObject({ ok: false, error: `connect ECONNREFUSED 127.0.0.1:${deadPort}`, qps: null });
      expect(st.proxies.filter((p: { ok: boolean }) => p.ok)).toHaveLength(1);
    } finally {
      await cluster.store.etcd.delete().key(cluster.store.paths.proxy('ghost-hung')).exec();
      await cluster.store.etcd.delete().key(cluster.store.paths.proxy('ghost-dead')).exec();
    }
  });
});

describe('GET /api/servers', () => {
  it('INFO of every server: role as it reports it, replication lag, memory, keys', async () => {
    const c = cluster.proxies[0]!.client();
    const N = 200;
    for (let i = 0; i < N; i++) await c.set(`srv:${i}`, 'v');
    c.disconnect();
    // Replicas catch up: lag 0 bytes on both.
    const sv = await waitFor(async () => {
      const b = await get('/api/servers');
      return b.servers.every((s: { lagBytes: number | null; role: string }) => s.role === 'master' || s.lagBytes === 0) ? b : null;
    }, { what: 'replicas caught up', timeoutMs: 20_000 });
    expect(sv.servers).toHaveLength(4);
    expect(sv.down).toBe(0);
    expect(sv.healthError).toBeNull();
    for (const g of cluster.groups) {
      const m = sv.servers.find((s: { addr: string }) => s.addr === g.master.addr);
      const r = sv.servers.find((s: { addr: string }) => s.addr === g.replicas[0]!.addr);
      const masterKeys = await g.master.client().dbsize();
      expect(m).toMatchObject({ group: g.id, role: 'master', ok: true, actualRole: 'master', lagBytes: null, keys: masterKeys });
      expect(m.usedMemory).toBeGreaterThan(0);
      expect(r).toMatchObject({ group: g.id, role: 'replica', ok: true, actualRole: 'replica', masterAddr: g.master.addr, linkUp: true, lagBytes: 0 });
      expect(typeof r.lastIoSeconds).toBe('number');
      expect(r.offset).toMatch(/^\d+$/);
    }
    // The total counts masters only: every key once.
    expect(sv.keys).toBeGreaterThanOrEqual(N);
    expect(sv.keys).toBe(sv.servers.filter((s: { role: string }) => s.role === 'master').reduce((n: number, s: { keys: number }) => n + s.keys, 0));
  });

  it('a server that does not answer has an error string; the rest are read', async () => {
    const deadAddr = `127.0.0.1:${await freePort()}`;
    await cluster.store.putGroup({ id: 9, servers: [{ addr: deadAddr, role: 'master' }] });
    try {
      const sv = await get('/api/servers');
      expect(sv.servers).toHaveLength(5);
      expect(sv.down).toBe(1);
      const dead = sv.servers.find((s: { addr: string }) => s.addr === deadAddr);
      expect(dead).toMatchObject({ group: 9, role: 'master', ok: false, actualRole: null, keys: null });
      expect(dead.error).toBe(`redis ${deadAddr}: cannot connect: connect ECONNREFUSED ${deadAddr}`);
      expect(sv.servers.filter((s: { ok: boolean }) => s.ok)).toHaveLength(4);
    } finally {
      await cluster.store.deleteGroup(9);
    }
  });
});

describe('GET /api/events', () => {
  it('lists the HA events in sequence order', async () => {
    expect(await get('/api/events')).toEqual([]);
    const agents = new AgentStore(cluster.store);
    const written = await agents.appendEvent({
      kind: AgentEventKind.Failover,
      at: new Date().toISOString(),
      agent: 'agent-test',
      group: 1,
      message: 'group 1: master 127.0.0.1:1 down, promoted 127.0.0.1:2',
      data: { oldMaster: '127.0.0.1:1', newMaster: '127.0.0.1:2', downForMs: 3100, tookMs: 40, lostBytesEstimate: 0 },
    });
    await agents.appendEvent({ kind: AgentEventKind.ServerOnline, at: new Date().toISOString(), agent: 'agent-test', message: 'back' });
    const events = await get('/api/events');
    expect(events.map((e: { seq: number; kind: string }) => [e.seq, e.kind])).toEqual([
      [written!.seq, 'failover'],
      [written!.seq + 1, 'server_online'],
    ]);
    expect(events[0]).toEqual(written);
  });
});
