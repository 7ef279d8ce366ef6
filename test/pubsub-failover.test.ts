/**
 * Pub/sub exactly once across a failover of the channel's group: etcd, two groups (master +
 * replica each), two proxies, the real reborn-agent with --ha. Two subscribers (one per
 * proxy; one RESP2, one RESP3) listen to a channel of group 1 while two publishers (one per proxy) publish
 * numbered messages as fast as they can; group 1's master is killed with SIGKILL, the agent
 * promotes the replica, publishing resumes. Every message whose PUBLISH was acknowledged
 * must reach each subscriber exactly once: counted one by one.
 */
import type Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { initialOwner, keysInSlots, slotOf } from './helpers.js';
import { startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';
import { createClient } from 'redis';

let cluster: Cluster;
let agent: AgentProcess;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 2 });
  agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: 'ha-ps', args: ['--ha', '--down-after-ms', '1500'] });
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await stopAll();
});

describe('pub/sub across failover', () => {
  it('delivers every acknowledged message exactly once to every subscriber when the channel group fails over', async () => {
    await waitLeader(agent);
    const [channel] = keysInSlots('fo-chan:', 0, 511, 1);
    expect(initialOwner(slotOf(channel!), 2)).toBe(1);
    const g1 = cluster.groups[0]!;

    // Subscriber 0: ioredis on proxy 0 (RESP2); subscriber 1: node-redis 6 at its defaults on
    // proxy 1 (RESP3, messages as pushes). The same promise holds for both.
    const received: number[][] = [[], []];
    const sub0 = cluster.proxies[0]!.client();
    sub0.on('message', (_c: string, m: string) => received[0]!.push(Number(m)));
    await sub0.subscribe(channel!);
    const sub1 = createClient({ url: `redis://127.0.0.1:${cluster.proxies[1]!.port}` });
    sub1.on('error', () => undefined);
    await sub1.connect();
    await sub1.subscribe(channel!, (m) => received[1]!.push(Number(m)));
    // Both proxies' standby feeds on the replica are subscribed before the master dies.
    const replicaClient = g1.replicas[0]!.client();
    await waitFor(async () => ((await replicaClient.call('PUBSUB', 'NUMSUB', channel!)) as [string, number])[1] === 2, { what: 'standby feeds subscribed on the replica' });
    replicaClient.disconnect();

    const pubs: Redis[] = cluster.proxies.map((p) => p.client({ maxRetriesPerRequest: 0, enableOfflineQueue: false }));
    let seq = 0;
    const acked: number[] = [];
    let errors = 0;
    let running = true;
    const publisher = async (pub: Redis): Promise<void> => {
      while (running) {
        const n = seq++;
        try {
          const receivers = await pub.publish(channel!, String(n));
          if (receivers >= 1) acked.push(n);
        } catch {
          errors++;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const loops = pubs.map((p) => publisher(p));
    try {
      await waitFor(() => acked.length > 1000, { what: 'publishing under way' });
      await g1.master.kill('SIGKILL');
      const replica = g1.replicas[0]!;
      await waitFor(async () => (await cluster.store.getGroup(1))?.servers[0]?.addr === replica.addr, {
        timeoutMs: 20_000,
        intervalMs: 50,
        what: 'group 1 failed over to the replica',
      });
      const afterSwitch = acked.length;
      await waitFor(() => acked.length > afterSwitch + 2000, { timeoutMs: 20_000, what: 'publishing to the new master' });
    } finally {
      running = false;
      await Promise.all(loops);
    }
    await waitFor(() => received.every((r) => r.length >= acked.length), { timeoutMs: 10_000, what: 'every acknowledged message delivered' }).catch(() => undefined);

    const switched = cluster.proxies.map((p) => p.logRecords().find((r) => r['msg'] === 'pub/sub feed switched to the new master'));
    for (const [i, r] of received.entries()) {
      const counts = new Map<number, number>();
      for (const n of r) counts.set(n, (counts.get(n) ?? 0) + 1);
      const duplicates = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
      const missing = acked.filter((n) => !counts.has(n));
      console.log(
        `[pubsub-failover] subscriber ${i}: acknowledged ${acked.length}, received ${r.length}, duplicates ${duplicates.length}, ` +
          `missing ${missing.length}; publish errors during the failover ${errors}; delivered from the replica at the switch ${switched[i]?.['delivered']}`,
      );
      expect(duplicates).toEqual([]);
      expect(missing).toEqual([]);
    }
    expect(switched.every((r) => r !== undefined)).toBe(true);
    sub0.disconnect();
    await sub1.quit();
    pubs.forEach((p) => p.disconnect());
  }, 120_000);
});
