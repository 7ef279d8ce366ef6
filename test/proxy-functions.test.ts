/**
 * Functions and runaway scripts through the proxy. FUNCTION LOAD/DELETE/FLUSH/RESTORE go to
 * every master, so FCALL works on keys of any group. A runaway script or function blocks its
 * group's master; SCRIPT KILL / FUNCTION KILL go to every master and stop it, so the group
 * serves again without an operator logging into the backend. The servers answer BUSY after
 * 100 ms (busy-reply-threshold) to keep it short.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitFor, type Cluster } from '@reborn/testkit';
import { keysOfGroup } from './helpers.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1, redisArgs: ['--busy-reply-threshold', '100'] });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

const LIBRARY = [
  '#!lua name=rebornlib',
  "redis.register_function('incrby_twice', function(keys, args) redis.call('INCRBY', keys[1], args[1]); return redis.call('INCRBY', keys[1], args[1]) end)",
  "redis.register_function('spin', function() while true do end end)",
].join('\n');

describe('FUNCTION', () => {
  it('loads on every master, so FCALL runs on keys of both groups; LIST, DUMP/RESTORE and DELETE too', async () => {
    const r = cluster.proxies[0]!.client();
    try {
      expect(await r.call('FUNCTION', 'LOAD', LIBRARY)).toBe('rebornlib');
      for (const g of cluster.groups) {
        const direct = g.master.client();
        expect(((await direct.call('FUNCTION', 'LIST')) as unknown[]).length).toBe(1);
        direct.disconnect();
      }
      const [k1] = keysOfGroup('fn:', 1, 1);
      const [k2] = keysOfGroup('fn:', 2, 1);
      expect(await r.call('FCALL', 'incrby_twice', '1', k1!, '5')).toBe(10);
      expect(await r.call('FCALL', 'incrby_twice', '1', k2!, '7')).toBe(14);
      await expect(r.call('FUNCTION', 'LOAD', LIBRARY)).rejects.toThrow(/already exists/);
      const list = (await r.call('FUNCTION', 'LIST')) as unknown[][];
      expect(list[0]![1]).toBe('rebornlib');
      const dump = (await r.callBuffer('FUNCTION', 'DUMP')) as Buffer;
      expect(await r.call('FUNCTION', 'DELETE', 'rebornlib')).toBe('OK');
      await expect(r.call('FCALL', 'incrby_twice', '1', k1!, '1')).rejects.toThrow(/Function not found/);
      expect(await r.call('FUNCTION', 'RESTORE', dump)).toBe('OK');
      expect(await r.call('FCALL', 'incrby_twice', '1', k2!, '1')).toBe(16);
    } finally {
      r.disconnect();
    }
  });

  it('FUNCTION KILL stops a runaway function', async () => {
    const runner = cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 });
    const admin = cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 });
    try {
      const runaway = runner.call('FCALL', 'spin', '0').then(
        () => 'returned',
        (err: Error) => err.message,
      );
      await waitFor(async () => (await admin.call('FUNCTION', 'KILL').then(() => true, () => false)), { what: 'FUNCTION KILL accepted' });
      expect(await runaway).toMatch(/killed by user/);
      expect(await admin.set('after-function-kill', '1')).toBe('OK');
    } finally {
      runner.disconnect();
      admin.disconnect();
    }
  });
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
