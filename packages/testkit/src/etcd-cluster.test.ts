import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { Store, UnavailableError } from '@reborn/coordinator';
import { afterAll, describe, expect, it } from 'vitest';
import { stopAll } from './cleanup.js';
import { startEtcdCluster } from './etcd-cluster.js';
import { waitFor } from './wait.js';

afterAll(stopAll);

describe('startEtcdCluster', () => {
  it('forms one cluster; losing two of three members loses quorum, restarting one brings it back', { timeout: 90_000 }, async () => {
    const cluster = await startEtcdCluster(3);
    expect(cluster.members).toHaveLength(3);
    expect(new Set(cluster.members.flatMap((m) => [m.port, m.peerPort])).size).toBe(6);
    const store = await Store.open({ endpoints: cluster.endpoints, product: 'p', callTimeoutMs: 1500 });
    try {
      await store.putGroup({ id: 1, servers: [] });
      // Every member serves the same data: one cluster, not three.
      for (const m of cluster.members) {
        const one = await Store.open({ endpoints: [m.clientUrl], product: 'p' });
        expect(await one.getGroup(1)).toEqual({ id: 1, servers: [] });
        await one.close();
      }
      await cluster.members[1]!.kill();
      await cluster.members[2]!.kill();
      expect(cluster.running).toHaveLength(1);
      await expect(store.putGroup({ id: 2, servers: [] })).rejects.toBeInstanceOf(UnavailableError);
      await cluster.members[1]!.restart();
      await waitFor(() => store.putGroup({ id: 2, servers: [] }).then(() => true), { timeoutMs: 30_000, what: 'a write once quorum is back' });
      expect(await store.getGroup(2)).toEqual({ id: 2, servers: [] });
    } finally {
      await store.close();
    }
    const dir = dirname(cluster.members[0]!.dir);
    await cluster.stop();
    expect(cluster.running).toHaveLength(0);
    expect(existsSync(dir)).toBe(false);
  });
});
