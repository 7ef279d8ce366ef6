/**
 * WAIT through the proxy: it counts the replicas that have this connection's writes, asked of
 * every group the connection wrote to (the smallest count wins), with the timeout capped at
 * --max-wait-timeout. Two groups with one replica each; a stopped replica (SIGSTOP) stands
 * for one that is behind.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitFor, type Cluster } from '@reborn/testkit';
import { dataReady, initialOwner, slotOf } from './helpers.js';

let cluster: Cluster;
const clients: Redis[] = [];

function client(): Redis {
  const c = cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 });
  clients.push(c);
  return c;
}

/** A key `<prefix><i>` owned by group `gid` (1 or 2). */
function keyIn(prefix: string, gid: number): string {
  for (let i = 0; ; i++) if (initialOwner(slotOf(`${prefix}${i}`), 2) === gid) return `${prefix}${i}`;
}

const errorOf = (p: Promise<unknown>): Promise<string> => p.then((v) => `no error: ${String(v)}`, (e: Error) => e.message);

beforeAll(async () => {
  // One shared connection per server: every client of the proxy shares it.
  cluster = await startCluster({ groups: 2, replicas: 1, proxyArgs: ['--max-wait-timeout', '400', '--backend-connections', '1'] });
  await dataReady(cluster.proxies[0]!.port);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const g of cluster?.groups ?? []) for (const r of g.replicas) r.resume();
  await cluster?.stop();
});

describe('WAIT', () => {
  it('pipelined WAITs run one at a time: another client on the same backend connection is answered between them', async () => {
    const waiter = client();
    const other = client();
    const k = keyIn('wait:p', 1);
    await waiter.set(k, 'x');
    await other.ping();
    const events: string[] = [];
    // Five replicas never confirm: each WAIT takes the whole (capped) 400 ms.
    const waits = [1, 2, 3].map((i) => waiter.call('WAIT', '5', '0').then(() => events.push(`wait${i}`)));
    await new Promise((r) => setTimeout(r, 100));
    const get = other.get(k).then(() => events.push('get'));
    await Promise.all([...waits, get]);
    expect(events).toEqual(['wait1', 'get', 'wait2', 'wait3']);
  });

  it('after writes to both groups answers 1: each group has one replica, and it has the writes', async () => {
    const c = client();
    const [k1, k2] = [keyIn('wait:a', 1), keyIn('wait:a', 2)];
    await c.set(k1, 'one');
    await c.set(k2, 'two');
    expect(await c.call('WAIT', '1', '2000')).toBe(1);
    const replicas = cluster.groups.map((g) => g.replicas[0]!.client());
    expect(await replicas[0]!.get(k1)).toBe('one');
    expect(await replicas[1]!.get(k2)).toBe('two');
    for (const r of replicas) r.disconnect();
    // More replicas than exist: the count there is, after the (capped) timeout.
    expect(await c.call('WAIT', '2', '100')).toBe(1);
  });

  it("asks only the groups this connection wrote to; a lagging group's count is the answer once written to; WAIT 0 is capped", async () => {
    const c = client();
    const replica2 = cluster.groups[1]!.replicas[0]!;
    await c.set(keyIn('wait:b', 1), 'x');
    await replica2.pause();
    try {
      // Group 2's replica is stopped, but this connection wrote nothing there.
      expect(await c.call('WAIT', '1', '0')).toBe(1);
      await c.set(keyIn('wait:b', 2), 'y');
      // Now it did: group 2 cannot confirm, and WAIT 0 ("forever") ends at --max-wait-timeout.
      expect(await c.call('WAIT', '1', '0')).toBe(0);
      // Other clients were served meanwhile and still are.
      expect(await client().get(keyIn('wait:b', 1))).toBe('x');
    } finally {
      replica2.resume();
    }
    await waitFor(async () => (await c.call('WAIT', '1', '300')) === 1, { what: 'the resumed replica to acknowledge' });
  });

  it('after a write WAIT cannot see (a CAS under WATCH, a BLPOP that popped) it says so once, then covers new writes', async () => {
    const c = client();
    const key = keyIn('wait:c', 1);
    await c.watch(key);
    expect(await c.multi().set(key, '1').exec()).toEqual([[null, 'OK']]);
    expect(await errorOf(c.call('WAIT', '1', '100'))).toMatch(/^ERR WAIT cannot confirm the writes this connection made with a blocking command or under WATCH/);
    await c.set(key, '2');
    expect(await c.call('WAIT', '1', '2000')).toBe(1);

    await c.rpush(`${key}:list`, 'a');
    expect(await c.blpop(`${key}:list`, 1)).toEqual([`${key}:list`, 'a']);
    expect(await errorOf(c.call('WAIT', '1', '100'))).toMatch(/^ERR WAIT cannot confirm/);
    // A read-only WATCH (no write in the transaction) leaves WAIT alone.
    await c.watch(key);
    expect(await c.multi().get(key).exec()).toEqual([[null, '2']]);
    expect(await c.call('WAIT', '1', '2000')).toBe(1);
  });

  it("bad arguments get redis's own errors, checked against a master directly", async () => {
    const c = client();
    const direct = cluster.groups[0]!.master.client();
    for (const args of [['x', '0'], ['1', 'x'], ['1', '-1'], ['1', '99999999999999999999']]) {
      const [viaProxy, viaRedis] = await Promise.all([errorOf(c.call('WAIT', ...args)), errorOf(direct.call('WAIT', ...args))]);
      expect(viaProxy, `WAIT ${args.join(' ')}`).toBe(viaRedis);
      expect(viaProxy).toMatch(/^ERR /);
    }
    expect(await errorOf(c.call('WAIT', '1'))).toBe("ERR wrong number of arguments for 'wait' command");
    direct.disconnect();
  });
});
