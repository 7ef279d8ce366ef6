/**
 * Failover end to end, under a steady write load: etcd, two groups (master + replica each), a
 * reborn-proxy, and the real reborn-agent with --ha --down-after-ms 1500. kill -9 of group 1's
 * master → the agent promotes the replica, rewrites the group in etcd (the proxy switches),
 * writes to group 1 succeed again; the old master restarted comes back as a replica of the
 * new one. The write outage and the lost acknowledged writes are measured and reported (no
 * thresholds: without --durable, asynchronous replication may lose some).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { keysOfGroup } from './helpers.js';
import { WriteLoad, replication, startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';

let cluster: Cluster;
let agent: AgentProcess;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
  agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: 'ha-1', args: ['--ha', '--down-after-ms', '1500'] });
});

afterAll(async () => {
  await agent?.stop();
  await stopAll();
});

describe('reborn-agent failover', () => {
  it('promotes the replica of a killed master, switches proxies, demotes the old master when it returns', async () => {
    await waitLeader(agent);
    const g1 = cluster.groups[0]!;
    const oldMaster = g1.master;
    const replica = g1.replicas[0]!;
    const proxy = cluster.proxies[0]!;

    const keys = [
      ...keysOfGroup('fo:g1:', 1, 3).map((key) => ({ key, group: 1 })),
      ...keysOfGroup('fo:g2:', 2, 2).map((key) => ({ key, group: 2 })),
    ];
    const load = new WriteLoad(proxy.port, keys);
    load.start();
    await waitFor(() => load.succeededSince(1, Date.now() - 100) && load.succeededSince(2, Date.now() - 100), { what: 'writes flowing to both groups' });
    await new Promise((r) => setTimeout(r, 1000)); // a second of steady load before the crash

    const killedAt = Date.now();
    await oldMaster.kill('SIGKILL');

    // The group in etcd now names the replica as master, the old master as a replica.
    const group = await waitFor(
      async () => {
        const g = await cluster.store.getGroup(1);
        return g?.servers[0]?.addr === replica.addr ? g : null;
      },
      { timeoutMs: 20_000, intervalMs: 50, what: 'group 1 switched to the replica in etcd' },
    );
    const switchedAt = Date.now();
    expect(group.servers).toEqual([
      { addr: replica.addr, role: 'master' },
      { addr: oldMaster.addr, role: 'replica' },
    ]);
    expect((await replication(replica.port)).get('role')).toBe('master');

    // Writes to group 1 work again through the proxy.
    await waitFor(() => load.succeededSince(1, switchedAt), { timeoutMs: 15_000, intervalMs: 20, what: 'writes to group 1 succeed again' });
    const outage = load.outages.find((o) => o.group === 1 && o.firstErrorAt >= killedAt - 50);
    expect(outage?.recoveredAt).toBeTruthy();
    const outageSeconds = (outage!.recoveredAt! - outage!.firstErrorAt) / 1000;

    // The event in etcd, and the log line (both come just after the group switch: wait for them).
    const fo = await waitFor(
      async () => ((await agent.api('GET', '/api/events')).body as any[]).find((e) => e.kind === 'failover' && e.group === 1),
      { timeoutMs: 15_000, intervalMs: 50, what: 'the failover event' },
    );
    expect(fo).toMatchObject({ agent: 'ha-1', data: { group: 1, oldMaster: oldMaster.addr, newMaster: replica.addr } });
    expect(typeof fo.data.newMasterOffset).toBe('number');
    expect(typeof fo.data.oldMasterOffset).toBe('number');
    const logged = await waitFor(
      () => agent.records().find((r) => typeof r['msg'] === 'string' && (r['msg'] as string).startsWith('failover: group 1')),
      { timeoutMs: 15_000, intervalMs: 50, what: 'the failover log line' },
    );
    expect(logged).toMatchObject({ component: 'ha', group: 1, oldMaster: oldMaster.addr, newMaster: replica.addr });

    // The old master comes back (empty, as a master) and is made a replica of the new one.
    await oldMaster.restart();
    await waitFor(
      async () => {
        const info = await replication(oldMaster.port);
        return info.get('role') === 'slave' && info.get('master_port') === String(replica.port) && info.get('master_link_status') === 'up';
      },
      { timeoutMs: 20_000, intervalMs: 50, what: 'old master replicating from the new master' },
    );
    const demoted = agent.records().find((r) => r['server'] === oldMaster.addr && typeof r['msg'] === 'string' && (r['msg'] as string).startsWith('REPLICAOF sent'));
    expect(demoted).toMatchObject({ returning: true, was: 'master', master: replica.addr });
    // etcd still has the replica as master: nothing flapped back.
    expect((await cluster.store.getGroup(1))?.servers[0]).toEqual({ addr: replica.addr, role: 'master' });

    await load.stop();
    // Final values, read through the proxy, against what was acknowledged.
    const c = proxy.client({ maxRetriesPerRequest: 0, enableReadyCheck: false });
    let lostG1 = 0;
    let lostByRegression = 0;
    const rows: string[] = [];
    for (const s of load.stats) {
      const final = Number(await c.get(s.key));
      const lost = Math.max(0, s.acked - final);
      if (s.group === 1) lostG1 += lost;
      lostByRegression += s.regressions;
      rows.push(`${s.key} (group ${s.group}): acked ${s.acked}, errors ${s.errors}, final ${final}, lost ${lost}`);
      // Group 2 was never failed over: nothing it acknowledged may be missing.
      if (s.group === 2) expect(final).toBeGreaterThanOrEqual(s.acked);
    }
    const ackedTotal = load.stats.reduce((n, s) => n + s.acked, 0);
    console.log(
      [
        `[agent-failover] write outage for group 1 after kill -9: ${outageSeconds.toFixed(3)} s ` +
          `(${outage!.errors} failed INCRs; first error "${outage!.firstError}")`,
        `[agent-failover] kill → etcd switch: ${((switchedAt - killedAt) / 1000).toFixed(3)} s; agent: downForMs ${fo.data.downForMs}, tookMs ${fo.data.tookMs}`,
        `[agent-failover] acknowledged INCRs: ${ackedTotal}; lost acknowledged writes in group 1: ${lostG1} ` +
          `(by reply regression: ${lostByRegression}); lostBytesEstimate ${fo.data.lostBytesEstimate} ` +
          `(old master offset ${fo.data.oldMasterOffset}, new master offset ${fo.data.newMasterOffset})`,
        ...rows.map((r) => `[agent-failover]   ${r}`),
      ].join('\n'),
    );
  }, 120_000);

  it('records a dead replica offline and re-points it when it returns', async () => {
    const g2 = cluster.groups[1]!;
    const replica = g2.replicas[0]!;
    const healthKey = `/reborn/${cluster.product}/agents/servers/${replica.addr}`;
    await replica.kill('SIGKILL');
    await waitFor(async () => JSON.parse((await cluster.store.etcd.get(healthKey).string()) ?? '{}').state === 'offline', {
      timeoutMs: 15_000,
      intervalMs: 50,
      what: 'replica recorded offline',
    });
    // It stays in its group as a replica; the master is untouched.
    expect((await cluster.store.getGroup(2))?.servers).toEqual([
      { addr: g2.master.addr, role: 'master' },
      { addr: replica.addr, role: 'replica' },
    ]);
    // The leader writes the health record first and appends the event just after: wait for it.
    const offline = await waitFor(
      async () => ((await agent.api('GET', '/api/events')).body as any[]).find((e) => e.kind === 'server_offline' && e.data.server === replica.addr),
      { timeoutMs: 15_000, intervalMs: 50, what: 'the server_offline event' },
    );
    expect(offline).toMatchObject({ group: 2 });

    // Restarted, it comes up as an empty master (REPLICAOF was not in its config): the agent
    // points it back at its master and records it online.
    await replica.restart();
    await waitFor(
      async () => {
        const info = await replication(replica.port);
        return info.get('role') === 'slave' && info.get('master_port') === String(g2.master.port) && info.get('master_link_status') === 'up';
      },
      { timeoutMs: 20_000, intervalMs: 50, what: 'replica replicating from its master again' },
    );
    await waitFor(async () => JSON.parse((await cluster.store.etcd.get(healthKey).string()) ?? '{}').state === 'online', {
      timeoutMs: 10_000,
      what: 'replica recorded online',
    });
    // The leader's view catches up at its next check.
    const seen = await waitFor(async () => {
      const s = ((await agent.api('GET', '/api/ha')).body.servers as any[]).find((x) => x.addr === replica.addr);
      return s?.redisRole === 'slave' ? s : null;
    }, { what: 'the leader to see the replica as a replica' });
    expect(seen).toMatchObject({ group: 2, up: true, down: false, offline: false });
  }, 60_000);
});
