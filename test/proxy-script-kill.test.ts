/**
 * SCRIPT KILL through the proxy: a runaway script blocks its group's master; SCRIPT KILL goes
 * to every master and stops it, so the group serves again without an operator logging into
 * the backend. The servers answer BUSY after 100 ms (busy-reply-threshold) to keep it short.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitFor, type Cluster } from '@reborn/testkit';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1, redisArgs: ['--busy-reply-threshold', '100'] });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('SCRIPT KILL', () => {
  it('kills a runaway script on whichever master runs it; NOTBUSY when none does', async () => {
    const runner = cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 });
    const admin = cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 });
    try {
      await expect(admin.call('SCRIPT', 'KILL')).rejects.toThrow(/^NOTBUSY/);
      const runaway = runner.eval('while true do end', 0).then(
        () => 'returned',
        (err: Error) => err.message,
      );
      // Until it is killed, the group answers BUSY (through the proxy too).
      await waitFor(async () => (await admin.call('SCRIPT', 'KILL').then(() => true, () => false)), { what: 'SCRIPT KILL accepted' });
      expect(await runaway).toMatch(/Script killed by user with SCRIPT KILL/);
      await expect(admin.call('SCRIPT', 'KILL')).rejects.toThrow(/^NOTBUSY/);
      expect(await admin.set('after-kill', '1')).toBe('OK');
    } finally {
      runner.disconnect();
      admin.disconnect();
    }
  });
});
