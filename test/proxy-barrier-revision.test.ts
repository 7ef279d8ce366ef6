/**
 * A proxy acks a barrier action only once its slot table holds the action's revision
 * (docs/architecture.md, "The 2PC barrier"). An action can reach a proxy before the slot writes
 * it names: a proxy that lists the actions after loading its table (start-up, fence recovery)
 * may see one newer than its table. Acking it then let a restarted proxy write the old group
 * after the barrier went on — a key ended up in two groups in the nemesis (issue 19).
 *
 * Here the action names a revision etcd has not reached yet: the proxy must not ack until the
 * slot writes that get etcd there have reached its table.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Barrier } from '@reborn/coordinator';
import { startCluster, stopAll } from '@reborn/testkit';

afterAll(async () => {
  await stopAll();
});

describe('barrier acks wait for the table', () => {
  it('does not ack an action whose revision its table has not reached; acks once it has', { timeout: 60_000 }, async () => {
    const cluster = await startCluster({ groups: 2, proxies: 0 });
    try {
      const proxyId = 'barrier-rev';
      await cluster.addProxy(['--id', proxyId]);
      const barrier = new Barrier(cluster.store);
      const slot = 0;
      const now = BigInt(await cluster.store.putSlots([{ id: slot, state: 'online', group: 1 }]));
      // Five slot writes from now: a revision the proxy's table cannot hold yet.
      const ahead = (now + 5n).toString();
      const action = await barrier.createAction([slot], ahead, 'test: an action ahead of the table');
      expect(action.proxies).toContain(proxyId);
      // Not acked while the table lags (a proxy that acks here would fail this at once).
      expect((await barrier.waitForAcks(action, 3000)).missing).toEqual([proxyId]);
      for (let i = 0; i < 5; i++) await cluster.store.putSlots([{ id: slot, state: 'online', group: 1 }]);
      expect((await barrier.waitForAcks(action, 30_000)).missing).toEqual([]);
      await barrier.deleteAction(action.seq);
    } finally {
      await cluster.stop();
    }
  });
});
