/**
 * A vanished topology is an alarm, never adopted silently — against real etcd, redis,
 * proxies and an HA agent:
 *
 * 1. etcd restarted on an empty data dir: the running proxy keeps serving its table and says
 *    so (/healthz 203, reborn_topology_alarm, one error log line); the HA leader — the agent
 *    that was a follower until then, the leader is killed — keeps checking the servers it
 *    knew and suspends failover (a master killed meanwhile is not failed over); a newly
 *    started proxy refuses with `proxy not ready: …`, never `slot N is offline`; the REST
 *    API's overview lists every alarm.
 * 2. restoreTopology writes the saved topology back: every alarm clears, the new proxy
 *    serves, and failover resumes (the master killed during the alarm is failed over).
 * 3. etcd restored from a backup (its data dir, as a snapshot restore would bring it back)
 *    clears the alarm too.
 * 4. Deleting the product's keys raises the alarm at once (the watch sees the deletes), and a
 *    restore clears it.
 * 5. A brand-new product (no identity, nobody serving): a proxy serves (`slot N is offline`);
 *    it steps back when an older serving proxy shows up, and serves once the product exists.
 */
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, restoreTopology, saveTopology, type ApiServer, type SavedTopology } from '@reborn/config';
import { Store } from '@reborn/coordinator';
import { ProxyProcess, freePort, startCluster, startProxy, stopAll, tempDir, waitFor, type Cluster } from '@reborn/testkit';
import { startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';
import { keysOfGroup, parsePrometheus } from './helpers.js';

const HA_ARGS = ['--ha', '--down-after-ms', '1500', '--lease-ttl', '3', '--etcd-timeout-ms', '1000'];
/** Long enough for a lease to be lost and re-registered on a loaded machine. */
const SLOW = { timeoutMs: 45_000, intervalMs: 100 };

let cluster: Cluster;
/** The agent that leads from the first loss on (a follower before it). */
let agent: AgentProcess;
let agents: AgentProcess[] = [];
let oldProxy: ProxyProcess;
let newProxy: ProxyProcess | null = null;
let client: Redis;
let saved: SavedTopology;
/** reborn-config's REST API, in-process, for GET /api/overview. */
let api: ApiServer;
const keys1 = keysOfGroup('ti:g1:', 1, 10);
const keys2 = keysOfGroup('ti:g2:', 2, 10);

interface Health {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

async function healthz(p: ProxyProcess): Promise<Health> {
  const res = await fetch(`http://${p.adminAddr}/healthz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.json() };
}

/** The value of the proxy's (or agent's) reborn_topology_alarm series for `reason`. */
function alarmGauge(metrics: string, reason: string): number | undefined {
  for (const [series, value] of parsePrometheus(metrics)) {
    if (series.startsWith('reborn_topology_alarm{') && series.includes(`reason="${reason}"`)) return value;
  }
  return undefined;
}

/**
 * Starts a proxy without waiting for it to be ready (testkit's startProxy waits for 200): a
 * proxy that must refuse answers 503. Ready enough once its /healthz answers with its pid.
 */
async function spawnProxy(): Promise<ProxyProcess> {
  const port = await freePort();
  let adminPort = await freePort();
  while (adminPort === port) adminPort = await freePort();
  const p = new ProxyProcess(port, adminPort, { etcd: cluster.etcd.clientUrl, product: cluster.product });
  await waitFor(async () => (await healthz(p)).body.pid === p.pid, { timeoutMs: 20_000, what: 'the new proxy to answer /healthz' });
  return p;
}

/** Every key still reads its value through `port`'s proxy. */
async function allReadable(c: Redis, ks: readonly string[]): Promise<boolean> {
  const values = await Promise.all(ks.map((k) => c.get(k)));
  return values.every((v, i) => v === `v:${ks[i]}`);
}

async function wipeEtcd(): Promise<void> {
  await cluster.etcd.kill('SIGTERM');
  await rm(cluster.etcd.dir, { recursive: true, force: true });
  await cluster.etcd.restart();
}

async function waitAlarmed(p: ProxyProcess, what: string): Promise<Health> {
  return waitFor(async () => {
    const h = await healthz(p);
    return h.status === 203 && h.body.topologyAlarm !== null ? h : null;
  }, { ...SLOW, what });
}

async function waitClear(p: ProxyProcess, what: string): Promise<void> {
  await waitFor(async () => {
    const h = await healthz(p);
    return h.status === 200 && h.body.topologyAlarm === null;
  }, { ...SLOW, what });
}

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
  oldProxy = cluster.proxies[0]!;
  client = oldProxy.client({ maxRetriesPerRequest: 0 });
  for (const k of [...keys1, ...keys2]) await client.set(k, `v:${k}`);
  agents = await Promise.all(['ti-a', 'ti-b'].map((id) => startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id, args: HA_ARGS })));
  // Both know the groups: the leader from its rounds, the follower from its periodic reads.
  await waitFor(async () => {
    const ha = await Promise.all(agents.map(async (a) => (await a.api('GET', '/api/ha')).body));
    return ha.some((h) => h.leader && h.servers.length === 4) && ha.every((h) => h.knownGroups === 2);
  }, { timeoutMs: 30_000, intervalMs: 100, what: 'a leader checking 4 servers and both agents knowing 2 groups' });
  saved = await saveTopology(cluster.store);
  api = await createApi({ store: cluster.store, logger: pino({ level: 'silent' }) }).listen('127.0.0.1:0');
}, 120_000);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function overviewAlarm(): Promise<any> {
  const res = await fetch(`http://${api.address}/api/overview`, { signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { topologyAlarm: unknown }).topologyAlarm;
}

afterAll(async () => {
  await api?.close();
  await Promise.all(agents.map((a) => a.stop()));
  await newProxy?.stop();
  await stopAll();
});

describe('a vanished topology', () => {
  it('etcd restarted empty: the running proxy keeps serving and raises the alarm, the HA leader suspends failover, a new proxy refuses', async () => {
    expect(saved.identity.generation).toBe((await cluster.store.getIdentity())?.generation);
    expect((await healthz(oldProxy)).body.topologyAlarm).toBeNull();
    await wipeEtcd();
    const backAt = Date.now();

    // The running proxy: same table, alarm on /healthz (203), /metrics and in one log line.
    const h = await waitAlarmed(oldProxy, 'the running proxy to raise its alarm');
    const alarmMs = Date.now() - backAt;
    expect(h.body).toMatchObject({ ready: true, degraded: true, topologyAlarm: { reason: 'identity_vanished' } });
    expect(h.body.topologyAlarm.message).toContain(saved.identity.generation);
    expect(await allReadable(client, [...keys1, ...keys2])).toBe(true);
    expect(alarmGauge(await oldProxy.metrics(), 'identity_vanished')).toBe(1);
    expect(alarmGauge(await oldProxy.metrics(), 'identity_changed')).toBe(0);

    // The leader dies; the follower, which never led, takes over in the new etcd: alarm up,
    // failover suspended, the 4 servers it knew (from its reads as a follower) checked.
    const leader = (await Promise.all(agents.map(async (a) => ((await a.api('GET', '/api/ha')).body.leader ? a : null)))).find((a) => a !== null);
    agent = agents.find((a) => a !== (leader ?? agents[0]))!;
    await (leader ?? agents[0]!).kill();
    await waitLeader(agent, 30_000);
    const ha = await waitFor(async () => {
      const r = await agent.api('GET', '/api/ha');
      return r.body.leader === true && r.body.topologyAlarm?.reason === 'identity_vanished' ? r.body : null;
    }, { ...SLOW, what: 'the HA leader to raise its alarm' });
    expect(ha.failover).toBe('suspended');
    expect(ha.servers).toHaveLength(4);
    expect(ha.topologyAlarm.effect).toMatch(/failover suspended until the topology is back: the HA leader checks the 4 servers of the last known 2 group/);
    expect((await agent.api('GET', '/healthz')).body).toMatchObject({ degraded: true, failover: 'suspended', topologyAlarm: { reason: 'identity_vanished' } });
    expect(alarmGauge((await agent.api('GET', '/metrics')).body as string, 'identity_vanished')).toBe(1);

    // A master dies during the alarm: checked, reported, not failed over.
    const g2 = cluster.groups[1]!;
    await g2.master.kill('SIGKILL');
    await waitFor(() => agent.records().some((r) => r['msg'] === 'master down, but failover is suspended by the topology alarm: not failing over'), {
      ...SLOW,
      what: 'the leader to report the suspended failover',
    });
    const down = (await agent.api('GET', '/api/ha')).body.servers.find((s: { addr: string }) => s.addr === g2.master.addr);
    expect(down).toMatchObject({ up: false, down: true });
    expect((await cluster.store.getGroup(2))).toBeNull(); // nothing written into the empty etcd

    // A new proxy: refuses with the reason, never "slot N is offline".
    newProxy = await spawnProxy();
    const nh = await waitFor(async () => {
      const r = await healthz(newProxy!);
      return r.status === 503 && r.body.topologyAlarm?.reason === 'topology_missing' ? r : null;
    }, { ...SLOW, what: 'the new proxy to refuse (older proxies registered again)' });
    expect(nh.body.reason).toMatch(/^proxy not ready: etcd holds no slots, no groups and no identity for product .* while other proxies are registered and serving \(.*\)/);
    const fresh = newProxy.client({ maxRetriesPerRequest: 0, enableReadyCheck: false });
    const err = await fresh.get(keys1[0]!).then(() => null, (e: Error) => e.message);
    expect(err).toMatch(/^ERR proxy not ready: etcd holds no slots/);
    expect(err).not.toMatch(/offline/);
    // Keyspace-wide commands refuse too: "0 keys" would be a lie.
    for (const ask of [() => fresh.dbsize(), () => fresh.keys('*'), () => fresh.scan('0')]) {
      expect(await ask().then(() => null, (e: Error) => e.message)).toMatch(/^ERR proxy not ready: etcd holds no slots/);
    }

    // The REST API (and so the dashboard banner) shows all three, and what etcd alone says.
    const o = await waitFor(async () => {
      const t = await overviewAlarm();
      return t.processes.length === 3 ? t : null;
    }, { ...SLOW, what: 'the overview to list the three alarms' });
    expect(o.alarmed).toBe(true);
    expect(o.identity).toBeNull();
    expect(o.etcd).toMatch(/no slots, no groups and no identity/);
    const reasons = Object.fromEntries(o.processes.map((p: { kind: string; id: string; reason: string }) => [`${p.kind} ${p.id}`, p.reason]));
    expect(reasons).toEqual({
      [`proxy ${h.body.id}`]: 'identity_vanished',
      [`proxy ${nh.body.id}`]: 'topology_missing',
      [`agent ${agent.id}`]: 'identity_vanished',
    });

    console.log(`[topology-identity] etcd back empty → running proxy alarmed after ${alarmMs} ms`);
    // One error line per transition, however many checks ran meanwhile.
    const alarms = oldProxy.logRecords().filter((r) => typeof r['msg'] === 'string' && (r['msg'] as string).startsWith('topology alarm:'));
    expect(alarms.map((r) => [r['level'], r['reason']])).toEqual([[50, 'identity_vanished']]);
  }, 180_000);

  it('restoreTopology clears every alarm: the new proxy serves and failover resumes', async () => {
    const t0 = Date.now();
    const report = await restoreTopology(cluster.store, JSON.parse(JSON.stringify(saved)));
    const restoreMs = Date.now() - t0;
    expect(report).toMatchObject({ unchanged: false, forced: false, generation: saved.identity.generation, assignedSlots: 1024 });

    await waitClear(oldProxy, 'the running proxy to clear its alarm');
    await waitClear(newProxy!, 'the new proxy to serve');
    console.log(`[topology-identity] restoreTopology took ${restoreMs} ms; both proxies serving without alarm ${Date.now() - t0} ms after it started`);
    const fresh = newProxy!.client({ maxRetriesPerRequest: 0, enableReadyCheck: false });
    // The new proxy opens its backend connections now; on a starved machine the first connect
    // may time out (an error reply, never a wrong value): wait for the reads, do not race them.
    await waitFor(() => allReadable(fresh, keys1), { ...SLOW, what: 'group 1 keys served by the new proxy' });
    expect(alarmGauge(await oldProxy.metrics(), 'identity_vanished')).toBe(0);
    expect(oldProxy.logRecords().some((r) => String(r['msg']).startsWith('topology alarm cleared'))).toBe(true);

    // Failover resumes: group 2's master, killed during the alarm, is failed over now.
    const g2 = cluster.groups[1]!;
    await waitFor(async () => (await cluster.store.getGroup(2))?.servers[0]?.addr === g2.replicas[0]!.addr, { ...SLOW, what: 'group 2 failed over after the restore' });
    const ha = (await agent.api('GET', '/api/ha')).body;
    expect(ha).toMatchObject({ topologyAlarm: null, failover: 'active' });
    const o = await overviewAlarm();
    expect(o).toMatchObject({ alarmed: false, etcd: null, processes: [], identity: saved.identity });
    for (const c of [client, fresh]) await waitFor(() => allReadable(c, keys2), { ...SLOW, what: 'group 2 keys served by its new master' });
  }, 180_000);

  it('etcd restored from a backup of its data dir (as from a snapshot) clears the alarm', async () => {
    const backup = await tempDir('reborn-etcd-backup-');
    try {
      // A file-level backup of the stopped member: what a snapshot restore brings back too.
      await cluster.etcd.kill('SIGTERM');
      await cp(cluster.etcd.dir, join(backup.dir, 'data'), { recursive: true });
      await cluster.etcd.restart();
      await wipeEtcd();
      await waitAlarmed(oldProxy, 'the alarm after the second loss');
      await waitAlarmed(newProxy!, 'the alarm of the proxy that started during the first loss');

      await cluster.etcd.kill('SIGTERM');
      await rm(cluster.etcd.dir, { recursive: true, force: true });
      await cp(join(backup.dir, 'data'), cluster.etcd.dir, { recursive: true });
      await cluster.etcd.restart();
      await waitClear(oldProxy, 'the running proxy to clear its alarm after etcd was restored');
      await waitClear(newProxy!, 'the other proxy to clear its alarm after etcd was restored');
      expect(await allReadable(client, [...keys1, ...keys2])).toBe(true);
    } finally {
      await backup.remove();
    }
  }, 180_000);

  it("deleting the product's keys raises the alarm at once; a restore clears it", async () => {
    const again = await saveTopology(cluster.store);
    expect(again.identity).toEqual(saved.identity);
    await cluster.store.etcd.delete().prefix(cluster.store.paths.root).exec();
    const h = await waitAlarmed(oldProxy, 'the alarm after the keys were deleted');
    expect(['topology_vanished', 'identity_vanished']).toContain(h.body.topologyAlarm.reason);
    expect(await allReadable(client, [...keys1, ...keys2])).toBe(true);
    await restoreTopology(cluster.store, JSON.parse(JSON.stringify(again)));
    await waitClear(oldProxy, 'the alarm to clear after the restore');
    await waitClear(newProxy!, 'the other proxy to clear its alarm after the restore');
  }, 120_000);
});

describe('a brand-new product', () => {
  it('a proxy serves it; steps back when an older serving proxy shows up; serves once the product exists', async () => {
    const product = `new${process.pid}`;
    const store = await Store.open({ endpoints: [cluster.etcd.clientUrl], product });
    try {
      const p = await startProxy({ etcd: cluster.etcd.clientUrl, product });
      const c = p.client({ maxRetriesPerRequest: 0, enableReadyCheck: false });
      expect((await healthz(p)).body.topologyAlarm).toBeNull();
      expect(await c.get('k').catch((e: Error) => e.message)).toMatch(/^ERR slot \d+ is offline$/);

      // Registrations of proxies that started earlier and serve: etcd lost this product.
      const older = await store.registerProxy(
        { id: 'older', addr: '127.0.0.1:1', adminAddr: '127.0.0.1:2', pid: process.pid, host: 'test', startedAt: new Date(Date.now() - 3_600_000).toISOString(), state: 'online' },
        5,
      );
      const h = await waitFor(async () => {
        const r = await healthz(p);
        return r.status === 503 ? r : null;
      }, { ...SLOW, what: 'the proxy to step back' });
      expect(h.body.topologyAlarm.reason).toBe('topology_missing');
      expect(h.body.reason).toContain('(older)');
      expect(await c.get('k').catch((e: Error) => e.message)).toMatch(/^ERR proxy not ready: etcd holds no slots/);
      // The registration follows /healthz by one etcd write: wait for it, do not race it.
      await waitFor(async () => (await store.listProxies()).find((x) => x.id === h.body.id)?.state === 'starting', {
        ...SLOW,
        what: "the proxy's registration to say starting",
      });

      // The product gets created (an identity with it): the proxy takes it.
      await store.putGroup({ id: 1, servers: [{ addr: cluster.groups[0]!.master.addr, role: 'master' }] });
      await store.putSlots(Array.from({ length: 1024 }, (_, id) => ({ id, state: 'online' as const, group: 1 })));
      await waitFor(async () => (await healthz(p)).status === 200, { ...SLOW, what: 'the proxy to serve the new product' });
      // putSlots writes in chunks: the proxy may be healthy with k's slot not yet assigned.
      await waitFor(async () => (await c.set('k', 'v').catch(() => null)) === 'OK', { ...SLOW, what: "k's slot to come online" });
      await older.close();
      await p.stop();
    } finally {
      await store.close();
    }
  }, 120_000);
});
