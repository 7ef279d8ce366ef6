/**
 * The in-sync replica set end to end: etcd, one group, a `--durable` reborn-proxy and the real
 * reborn-agent (--ha --down-after-ms 1500) under a steady INCR load (WriteLoad: one key per
 * connection, every acknowledged reply counted).
 *
 * - 1 master + 1 replica: the leader writes inSync [R]; kill -9 of the master → R promoted
 *   with inSync [] → durable writes work again at once (the proxy waits for nobody); the
 *   old master restarted on its port and dir becomes a replica and rejoins the set; kill -9
 *   of the new master → the old one promoted; nothing acknowledged is missing.
 * - 1 master + 2 replicas: a killed replica leaves the set (writes go on); then the master is
 *   killed → the remaining member is promoted; nothing lost.
 * - A frozen replica leaves the set (its lag, or its checks); writes go on without it; the master is
 *   killed and the frozen replica thawed (answering, stale) → the member is promoted, never
 *   the stale one. With the member killed too, nothing is promoted: failover_blocked, until
 *   the operator takes the dead member out of the group.
 *
 * "Nothing lost": every key's final value on the new master is at least the highest reply an
 * INCR on it was acknowledged with. Outages are measured and printed, never asserted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, stopAll, waitFor, type Cluster, type RedisServer } from '@reborn/testkit';
import { withServers } from '@reborn/coordinator';
import { keysOfGroup, parsePrometheus } from './helpers.js';
import { WriteLoad, replication, startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';

const DOWN_AFTER_MS = 1500;

const started: { agent?: AgentProcess; load?: WriteLoad; frozen?: RedisServer } = {};

afterEach(async () => {
  started.frozen?.resume();
  await started.load?.stop();
  await started.agent?.stop();
  await stopAll();
  started.agent = undefined;
  started.load = undefined;
  started.frozen = undefined;
});

interface Setup {
  cluster: Cluster;
  agent: AgentProcess;
  load: WriteLoad;
}

/** One group (a master and `replicas` replicas), a durable proxy, the HA agent, a write load not yet started. */
async function setup(replicas: number, label: string): Promise<Setup> {
  const cluster = await startCluster({ groups: 1, replicas, proxies: 1, proxyArgs: ['--durable'] });
  const agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: `isr-${label}`, args: ['--ha', '--down-after-ms', String(DOWN_AFTER_MS)] });
  started.agent = agent;
  await waitLeader(agent);
  const keys = keysOfGroup(`isr:${label}:`, 1, 4, 1).map((key) => ({ key, group: 1 }));
  const load = new WriteLoad(cluster.proxies[0]!.port, keys);
  started.load = load;
  return { cluster, agent, load };
}

async function inSyncOf(cluster: Cluster): Promise<readonly string[] | undefined> {
  return (await cluster.store.getGroup(1))?.inSync;
}

async function waitInSync(cluster: Cluster, want: string[], what: string): Promise<void> {
  await waitFor(async () => JSON.stringify(await inSyncOf(cluster)) === JSON.stringify(want), { timeoutMs: 30_000, intervalMs: 50, what });
}

async function waitMaster(cluster: Cluster, addr: string, what: string): Promise<number> {
  await waitFor(async () => (await cluster.store.getGroup(1))?.servers[0]?.addr === addr, { timeoutMs: 30_000, intervalMs: 50, what });
  return Date.now();
}

/** Waits until `n` more INCRs were acknowledged than now (writes flow). */
async function moreAcked(load: WriteLoad, n: number, what: string): Promise<void> {
  const acked = () => load.stats.reduce((s, k) => s + k.acked, 0);
  const target = acked() + n;
  await waitFor(() => acked() >= target, { timeoutMs: 30_000, intervalMs: 20, what });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AgentEvent = any;

async function events(agent: AgentProcess, kind: string): Promise<AgentEvent[]> {
  return ((await agent.api('GET', '/api/events')).body as { kind: string }[]).filter((e) => e.kind === kind);
}

/** The first `kind` event matching `pred`, waited for: the leader records it just after the etcd write a test sees. */
async function waitEvent(agent: AgentProcess, kind: string, pred: (e: AgentEvent) => boolean = () => true): Promise<AgentEvent> {
  return waitFor(async () => (await events(agent, kind)).find(pred), { timeoutMs: 15_000, intervalMs: 50, what: `a ${kind} event` });
}

/** Every key's value on `server` against its acknowledged INCRs; returns report lines. */
async function expectNothingLost(load: WriteLoad, server: RedisServer, label: string): Promise<string[]> {
  const c = server.client({ maxRetriesPerRequest: 0 });
  const rows: string[] = [];
  const lost: string[] = [];
  for (const s of load.stats) {
    const final = Number((await c.get(s.key)) ?? 0);
    rows.push(`[agent-insync] ${label}: ${s.key}: acked ${s.acked} (highest reply ${s.maxReply}), errors ${s.errors}, final ${final} on ${server.addr}`);
    if (final < s.maxReply || s.regressions > 0) lost.push(`${s.key}: final ${final} < acknowledged ${s.maxReply} (regressions ${s.regressions})`);
  }
  expect(lost).toEqual([]);
  return rows;
}

/** Writes `mb` MB through the proxy (SETs of 256 KB values). */
async function fill(cluster: Cluster, prefix: string, mb: number): Promise<void> {
  const c = cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 });
  const value = Buffer.alloc(256 * 1024, 'x');
  for (let i = 0; i < mb * 4; i++) await c.set(`${prefix}${i}`, value);
  c.disconnect();
}

function outageSince(load: WriteLoad, t: number): string {
  const o = load.outages.find((x) => x.firstErrorAt >= t - 50);
  if (!o) return 'no failed write';
  return o.recoveredAt === null ? `not recovered (${o.errors} errors)` : `${((o.recoveredAt - o.firstErrorAt) / 1000).toFixed(3)} s, ${o.errors} failed INCRs, first error "${o.firstError}"`;
}

describe('the in-sync set under failover', () => {
  it('1 master + 1 replica: promoted at once, writes resume, the old master rejoins, a second failover loses nothing', async () => {
    const { cluster, agent, load } = await setup(1, 'a');
    const g = cluster.groups[0]!;
    const [m, r] = [g.master, g.replicas[0]!];
    await waitInSync(cluster, [r.addr], 'the leader to write inSync [R]');
    load.start();
    await moreAcked(load, 200, 'durable writes flowing');

    const killed1 = Date.now();
    await m.kill('SIGKILL');
    const switched1 = await waitMaster(cluster, r.addr, 'R promoted');
    expect(await inSyncOf(cluster)).toEqual([]);
    // Durable writes need no replica now (inSync []): they work again without the old master.
    await waitFor(() => load.succeededSince(1, switched1), { timeoutMs: 20_000, intervalMs: 20, what: 'writes succeed again before the old master is back' });
    const outage1 = outageSince(load, killed1);

    // The old master, restarted empty on its port and dir, is re-pointed and rejoins.
    await m.restart();
    await waitFor(async () => (await replication(m.port)).get('master_link_status') === 'up', { timeoutMs: 30_000, intervalMs: 50, what: 'old master replicating from R' });
    await waitInSync(cluster, [m.addr], 'the old master to rejoin the in-sync set');
    const added = await waitEvent(agent, 'in_sync_added', (e) => e.data.server === m.addr);
    expect(added).toMatchObject({ group: 1, data: { inSync: [m.addr] } });
    await moreAcked(load, 200, 'writes acknowledged by the rejoined replica');

    const killed2 = Date.now();
    await r.kill('SIGKILL');
    const switched2 = await waitMaster(cluster, m.addr, 'the old master promoted again');
    await waitFor(() => load.succeededSince(1, switched2), { timeoutMs: 20_000, intervalMs: 20, what: 'writes succeed after the second failover' });
    const outage2 = outageSince(load, killed2);
    const second = await waitEvent(agent, 'failover', (e) => e.data.newMaster === m.addr);
    expect(second.data.why).toBe('the in-sync member with the highest offset');
    await load.stop();

    const rows = await expectNothingLost(load, m, 'a');
    console.log(
      [
        `[agent-insync] a: outage after kill -9 of the master: ${outage1}; kill → etcd switch ${((switched1 - killed1) / 1000).toFixed(3)} s`,
        `[agent-insync] a: outage after kill -9 of the second master: ${outage2}; kill → etcd switch ${((switched2 - killed2) / 1000).toFixed(3)} s`,
        ...rows,
      ].join('\n'),
    );
  }, 180_000);

  it('1 master + 2 replicas: a dead replica leaves the set, writes go on, the remaining member is promoted', async () => {
    const { cluster, agent, load } = await setup(2, 'b');
    const g = cluster.groups[0]!;
    const [m, r1, r2] = [g.master, g.replicas[0]!, g.replicas[1]!];
    await waitInSync(cluster, [r1.addr, r2.addr], 'inSync [R1, R2]');
    load.start();
    await moreAcked(load, 100, 'durable writes flowing');

    await r1.kill('SIGKILL');
    await waitInSync(cluster, [r2.addr], 'R1 removed from the set');
    const removed = await waitEvent(agent, 'in_sync_removed', (e) => e.data.server === r1.addr);
    expect(removed.data.reason).toMatch(/down|not attached|not online/);
    const removedAt = Date.now();
    await waitFor(() => load.succeededSince(1, removedAt), { timeoutMs: 20_000, intervalMs: 20, what: 'writes go on with one member' });
    await moreAcked(load, 100, 'more writes with one member');

    const killed = Date.now();
    await m.kill('SIGKILL');
    const switched = await waitMaster(cluster, r2.addr, 'the remaining member promoted');
    await waitFor(() => load.succeededSince(1, switched), { timeoutMs: 20_000, intervalMs: 20, what: 'writes succeed after the failover' });
    await load.stop();
    const rows = await expectNothingLost(load, r2, 'b');
    console.log([`[agent-insync] b: outage after kill -9 of the master: ${outageSince(load, killed)}`, ...rows].join('\n'));
  }, 180_000);

  it('a stale replica is never promoted: the in-sync member is', async () => {
    const { cluster, agent, load } = await setup(2, 'c');
    const g = cluster.groups[0]!;
    const [m, r1, r2] = [g.master, g.replicas[0]!, g.replicas[1]!];
    await waitInSync(cluster, [r1.addr, r2.addr], 'inSync [R1, R2]');
    load.start();
    await moreAcked(load, 100, 'durable writes flowing');

    // R2 freezes: it stops acknowledging, leaves the set, and misses what follows.
    started.frozen = r2;
    await r2.pause();
    await waitInSync(cluster, [r1.addr], 'the frozen R2 removed from the set');
    const removed = await waitEvent(agent, 'in_sync_removed', (e) => e.data.server === r2.addr);
    // Whichever comes first: its lag on the master, or its own checks confirming it down.
    expect(removed.data.reason).toMatch(/^lag \d+ s|^down$/);
    await moreAcked(load, 200, 'writes acknowledged without R2');
    // The kernel buffers the replication stream for a frozen replica: it would read all of it
    // when thawed. 24 MB of values overflow the socket buffers, so the rest waits in the
    // master's own output buffer — and dies with it.
    await fill(cluster, 'isr:c:fill:', 24);

    // The master dies and R2 thaws: it answers, stale. The member R1 is promoted.
    await m.kill('SIGKILL');
    r2.resume();
    started.frozen = undefined;
    await waitMaster(cluster, r1.addr, 'the member R1 promoted');
    const fo = await waitEvent(agent, 'failover', (e) => e.data.newMaster === r1.addr);
    expect(fo.data.why).toBe('the in-sync member with the highest offset');
    // R2 answered with a lower offset (or, if it had not thawed yet, did not answer at all).
    const stale = fo.data.candidates.find((c: { addr: string }) => c.addr === r2.addr);
    const chosen = fo.data.candidates.find((c: { addr: string }) => c.addr === r1.addr);
    expect(stale.offset).not.toBeNull();
    expect(stale.offset).toBeLessThan(chosen.offset);
    console.log(`[agent-insync] c: candidates at the failover: ${JSON.stringify(fo.data.candidates)}`);
    await load.stop();
    await expectNothingLost(load, r1, 'c');
  }, 180_000);

  it('only a stale replica answers: no promotion, failover_blocked, until the dead member leaves the group', async () => {
    const { cluster, agent, load } = await setup(2, 'd');
    const g = cluster.groups[0]!;
    const [m, r1, r2] = [g.master, g.replicas[0]!, g.replicas[1]!];
    await waitInSync(cluster, [r1.addr, r2.addr], 'inSync [R1, R2]');
    load.start();
    await moreAcked(load, 100, 'durable writes flowing');
    started.frozen = r2;
    await r2.pause();
    await waitInSync(cluster, [r1.addr], 'the frozen R2 removed from the set');
    await moreAcked(load, 200, 'writes acknowledged without R2');
    await load.stop();

    // The master first (the set is only changed while the master answers), then the member.
    await m.kill('SIGKILL');
    await r1.kill('SIGKILL');
    r2.resume();
    started.frozen = undefined;
    const blocked = await waitEvent(agent, 'failover_blocked');
    expect(blocked).toMatchObject({ group: 1, data: { master: m.addr, inSync: [r1.addr] } });
    // The leader keeps checking, every round, and never promotes the stale replica.
    const blockedRounds = async () => {
      const samples = parsePrometheus((await agent.api('GET', '/metrics')).body as string);
      return [...samples].find(([k]) => k.startsWith('reborn_agent_failovers_total{') && k.includes('group="1"') && k.includes('result="blocked"'))?.[1] ?? 0;
    };
    await waitFor(async () => (await blockedRounds()) >= 5, { timeoutMs: 30_000, intervalMs: 100, what: 'five blocked rounds' });
    expect((await cluster.store.getGroup(1))?.servers[0]?.addr).toBe(m.addr);
    expect((await replication(r2.port)).get('role')).toBe('slave');
    expect(await events(agent, 'failover_blocked')).toHaveLength(1); // once per outage
    expect(agent.records().some((r) => r['level'] === 50 && String(r['msg']).includes('no member of the in-sync set'))).toBe(true);

    // The operator accepts the loss: the dead member leaves the group (reborn-config server
    // remove does this), the set is empty, and the stale replica is promoted.
    const cur = (await cluster.store.getGroup(1))!;
    await cluster.store.putGroup(withServers(cur, cur.servers.filter((s) => s.addr !== r1.addr)));
    await waitMaster(cluster, r2.addr, 'R2 promoted once the operator removed the dead member');
    const fo = await waitEvent(agent, 'failover', (e) => e.data.newMaster === r2.addr);
    expect(fo.data.why).toBe('the in-sync set is empty: highest offset');
  }, 180_000);
});
