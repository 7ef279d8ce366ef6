/**
 * Two reborn-agents with --ha: exactly one leads; kill -9 the leader and the other takes over
 * (the takeover time is reported) and still fails a master over. Then etcd hangs (SIGSTOP):
 * the leader stops acting before its lease could expire, and leads again once etcd is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { replication, startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';

let cluster: Cluster;
let agents: AgentProcess[] = [];
const HA_ARGS = ['--ha', '--down-after-ms', '1500', '--lease-ttl', '3', '--etcd-timeout-ms', '1000'];

beforeAll(async () => {
  cluster = await startCluster({ groups: 1, replicas: 1, proxies: 1 });
  agents = await Promise.all(
    ['ha-a', 'ha-b'].map((id) => startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id, args: HA_ARGS })),
  );
});

afterAll(async () => {
  cluster?.etcd.resume();
  await Promise.all(agents.map((a) => a.stop()));
  await stopAll();
});

async function leaders(): Promise<AgentProcess[]> {
  const live = agents.filter((a) => a.running);
  const flags = await Promise.all(live.map((a) => a.isLeader()));
  return live.filter((_, i) => flags[i]);
}

describe('reborn-agent HA leadership', () => {
  let survivor: AgentProcess;

  it('elects exactly one leader; when it is killed the other takes over and fails a master over', async () => {
    const [leader] = await waitFor(async () => {
      const l = await leaders();
      return l.length === 1 ? l : null;
    }, { timeoutMs: 20_000, intervalMs: 100, what: 'exactly one leader' });
    const follower = agents.find((a) => a !== leader)!;
    expect((await follower.api('GET', '/api/ha')).body).toMatchObject({ enabled: true, leader: false, leaderId: leader!.id });
    // Still exactly one a little later (no flapping).
    await new Promise((r) => setTimeout(r, 1500));
    expect((await leaders()).map((a) => a.id)).toEqual([leader!.id]);
    for (const a of agents) expect(a.records().filter((r) => r['msg'] === 'HA leadership lost; leader work stopped')).toEqual([]);

    const killedAt = Date.now();
    await leader!.kill();
    await waitLeader(follower, 20_000);
    const takeoverSeconds = (Date.now() - killedAt) / 1000;
    survivor = follower;
    expect(follower.records().some((r) => r['msg'] === 'HA leader elected')).toBe(true);

    const g = cluster.groups[0]!;
    const replica = g.replicas[0]!;
    const c = cluster.proxies[0]!.client({ maxRetriesPerRequest: 0, enableReadyCheck: false });
    await c.set('leader:k', 'before');
    const masterKilledAt = Date.now();
    await g.master.kill('SIGKILL');
    await waitFor(async () => (await cluster.store.getGroup(1))?.servers[0]?.addr === replica.addr, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'group 1 failed over by the new leader',
    });
    const failoverSeconds = (Date.now() - masterKilledAt) / 1000;
    expect((await replication(replica.port)).get('role')).toBe('master');
    await waitFor(async () => (await c.set('leader:k', 'after').catch(() => null)) === 'OK', { timeoutMs: 10_000, what: 'writes through the proxy work again' });
    expect(await c.get('leader:k')).toBe('after');
    const events = (await follower.api('GET', '/api/events')).body as any[];
    expect(events.find((e) => e.kind === 'failover')).toMatchObject({ agent: follower.id, group: 1, data: { newMaster: replica.addr } });
    console.log(`[agent-leader] leader ${leader!.id} killed → ${follower.id} leader after ${takeoverSeconds.toFixed(3)} s (lease TTL 3 s); master kill → etcd switch ${failoverSeconds.toFixed(3)} s`);
  }, 90_000);

  it('stops acting as leader when etcd stops answering, and leads again when it is back', async () => {
    await waitLeader(survivor);
    const pausedAt = Date.now();
    await cluster.etcd.pause();
    try {
      // The leader must give up before its 3 s lease could expire in etcd.
      await waitFor(async () => !(await survivor.isLeader()), { timeoutMs: 10_000, intervalMs: 50, what: 'leader steps down' });
      const stepDownSeconds = (Date.now() - pausedAt) / 1000;
      expect(stepDownSeconds).toBeLessThan(3);
      // The log line travels through the agent's stdout pipe: it may land a moment after the
      // API already answers "not leader", so wait for it rather than look once.
      const lost = await waitFor(() => survivor.records().find((r) => r['msg'] === 'HA leadership lost; leader work stopped'), {
        timeoutMs: 5_000,
        what: 'the leadership-lost log line',
      });
      expect(lost).toMatchObject({ component: 'leadership' });
      console.log(`[agent-leader] etcd paused → leader stepped down after ${stepDownSeconds.toFixed(3)} s (${String(lost!['reason'])})`);
    } finally {
      cluster.etcd.resume();
    }
    await waitLeader(survivor, 30_000);
  }, 60_000);
});
