/**
 * MULTI / EXEC / DISCARD / WATCH through the proxy: one-slot transactions, a WATCH-based
 * compare-and-set counter hammered by 20 clients, and transactions and WATCH while their slot
 * is being migrated: a WATCH open when the barrier comes gets --watch-grace to finish in the
 * old group, and is aborted after it.
 */
import net from 'node:net';
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { Barrier } from '@reborn/coordinator';
import { startCluster, waitFor, type Cluster } from '@reborn/testkit';
import { busyScript } from './helpers.js';

/** Long enough that the grace test's client surely finishes inside it on a loaded machine. */
const WATCH_GRACE_MS = 3000;

let cluster: Cluster;
const clients: Redis[] = [];
function client(): Redis {
  const c = cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1, proxyArgs: ['--watch-grace', String(WATCH_GRACE_MS), '--max-multi-bytes', '100000'] });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.stop();
});

describe('transactions', () => {
  it('runs a one-slot MULTI/EXEC atomically and answers each queued command', async () => {
    const r = client();
    const res = await r.multi().set('{tx}a', '1').incr('{tx}a').rpush('{tx}l', 'x', 'y').get('{tx}a').exec();
    expect(res).toEqual([
      [null, 'OK'],
      [null, 2],
      [null, 2],
      [null, '2'],
    ]);
  });

  it('answers +QUEUED, and a key of another slot aborts EXEC with EXECABORT', async () => {
    const r = client();
    expect(await r.call('MULTI')).toBe('OK');
    expect(await r.call('SET', '{tx}b', '1')).toBe('QUEUED');
    await expect(r.call('SET', 'another-slot-key', '1')).rejects.toThrow(/^CROSSSLOT/);
    await expect(r.call('EXEC')).rejects.toThrow(/^EXECABORT/);
    // Nothing of the aborted transaction ran.
    expect(await r.get('{tx}b')).toBeNull();
  });

  it('an unknown command or a wrong argument count inside MULTI dooms the transaction (EXECABORT), as in redis', async () => {
    const r = client();
    for (const bad of [['NOSUCHCMD'], ['SET', '{tx}d']]) {
      expect(await r.call('MULTI')).toBe('OK');
      expect(await r.call('SET', '{tx}d', '1')).toBe('QUEUED');
      await expect(r.call(bad[0]!, ...bad.slice(1))).rejects.toThrow(/^ERR (unknown command|wrong number of arguments)/);
      expect(await r.call('SET', '{tx}e', '2')).toBe('QUEUED');
      await expect(r.call('EXEC')).rejects.toThrow(/^EXECABORT/);
      expect(await r.mget('{tx}d', '{tx}e')).toEqual([null, null]);
    }
  });

  it('a MULTI queue over --max-multi-bytes refuses the command past it and EXEC answers EXECABORT; nothing runs', async () => {
    const r = client();
    const big = 'x'.repeat(60_000);
    expect(await r.call('MULTI')).toBe('OK');
    expect(await r.call('SET', '{mb}a', big)).toBe('QUEUED');
    await expect(r.call('SET', '{mb}b', big)).rejects.toThrow(/^ERR MULTI queued more than 100000 bytes \(--max-multi-bytes\)/);
    expect(await r.call('SET', '{mb}c', '1')).toBe('QUEUED');
    await expect(r.call('EXEC')).rejects.toThrow(/^EXECABORT/);
    expect(await r.exists('{mb}a', '{mb}b', '{mb}c')).toBe(0);
    // The next transaction starts from zero.
    expect(await r.multi().set('{mb}a', big).get('{mb}a').exec()).toEqual([
      [null, 'OK'],
      [null, big],
    ]);
  });

  it('DISCARD drops the queue; EXEC and DISCARD without MULTI are errors', async () => {
    const r = client();
    await r.call('MULTI');
    await r.call('SET', '{tx}c', '1');
    expect(await r.call('DISCARD')).toBe('OK');
    expect(await r.get('{tx}c')).toBeNull();
    await expect(r.call('EXEC')).rejects.toThrow('ERR EXEC without MULTI');
    await expect(r.call('DISCARD')).rejects.toThrow('ERR DISCARD without MULTI');
  });

  it('a WATCH-based compare-and-set counter hammered by 20 clients gives the exact total', { timeout: 120_000 }, async () => {
    const r = client();
    await r.set('cas:counter', '0');
    const perClient = 20;
    let aborted = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const c = client();
        for (let i = 0; i < perClient; i++) {
          for (;;) {
            await c.watch('cas:counter');
            const v = Number(await c.get('cas:counter'));
            const res = await c.multi().set('cas:counter', String(v + 1)).exec();
            if (res !== null) break;
            aborted++;
          }
        }
      }),
    );
    expect(await r.get('cas:counter')).toBe(String(20 * perClient));
    // With 20 clients racing, some EXECs must have been aborted by WATCH: it really watched.
    expect(aborted).toBeGreaterThan(0);
  });

  it('WATCH and DISCARD/UNWATCH pipelined in one write: every command before them gets its reply', async () => {
    const p = cluster.proxies[0]!;
    await client().set('pipe:w', 'v');
    // The pinned connection closes when the WATCH ends, but only after what was sent on it.
    const replies = await rawExchange(p.port, 'WATCH pipe:w\r\nGET pipe:w\r\nUNWATCH\r\nGET pipe:w\r\nWATCH pipe:w\r\nMULTI\r\nGET pipe:w\r\nDISCARD\r\nGET pipe:w\r\n', 9);
    expect(replies).toBe('+OK\r\n$1\r\nv\r\n+OK\r\n$1\r\nv\r\n+OK\r\n+OK\r\n+QUEUED\r\n+OK\r\n$1\r\nv\r\n');
  });

  it('a compare-and-set open when its slot\'s barrier comes finishes in the old group; the proxy acks after its EXEC', { timeout: 60_000 }, async () => {
    const r = client();
    const key = 'watched:grace';
    await r.set(key, '10');
    const { slot, src, dst } = await placeOf(key);
    await r.watch(key);

    const rev = await cluster.store.putSlots([{ id: slot, state: 'pre_migrate', group: src, from: src, to: dst }]);
    const barrier = new Barrier(cluster.store);
    const action = await barrier.createAction([slot], rev, 'test: watch grace');
    const events: string[] = [];
    const acks = barrier.waitForAcks(action, 20_000).then((res) => {
      events.push('acked');
      return res;
    });
    // The proxy holds the slot for the barrier now; this client's WATCH keeps its connection.
    const slotStates = async (): Promise<Record<string, number>> =>
      (JSON.parse(await cluster.proxies[0]!.adminGet('/api/proxy')) as { slots: Record<string, number> }).slots;
    await waitFor(async () => (await slotStates())['pre_migrate'] === 1, { what: 'the proxy to see pre_migrate' });
    const v = Number(await r.get(key));
    expect(await r.multi().set(key, String(v + 1)).exec()).toEqual([[null, 'OK']]);
    events.push('exec');
    expect((await acks).missing).toEqual([]);
    expect(events).toEqual(['exec', 'acked']);
    const source = cluster.groups.find((g) => g.id === src)!.master.client();
    expect(await source.get(key)).toBe('11'); // ran in the old group, before anything moved
    source.disconnect();
    await cluster.store.putSlots([{ id: slot, state: 'online', group: src }]);
    await barrier.deleteAction(action.seq);
  });

  it('a barrier waits for what a just-ended WATCH still has in flight on its pinned connection', { timeout: 60_000 }, async () => {
    const r = client();
    const key = 'watched:drain';
    await r.set(key, '0');
    const { slot, src, dst } = await placeOf(key);
    await r.watch(key);
    // A 600 ms script on the pinned connection, then UNWATCH, in one write: the WATCH ends
    // at once, its script still runs in the source group.
    const busy = busyScript(600, "redis.call('SET', KEYS[1], 'late')");
    const events: string[] = [];
    const piped = r
      .pipeline()
      .eval(busy, 1, key)
      .unwatch()
      .exec()
      .then((res) => {
        events.push('script');
        return res;
      });
    await new Promise((resolve) => setTimeout(resolve, 150)); // the UNWATCH is processed by now
    const rev = await cluster.store.putSlots([{ id: slot, state: 'pre_migrate', group: src, from: src, to: dst }]);
    const barrier = new Barrier(cluster.store);
    const action = await barrier.createAction([slot], rev, 'test: ended watch drains');
    const acks = await barrier.waitForAcks(action, 20_000);
    events.push('acked');
    expect(acks.missing).toEqual([]);
    expect(await piped).toEqual([
      [null, 'OK'],
      [null, 'OK'],
    ]);
    expect(events).toEqual(['script', 'acked']);
    await cluster.store.putSlots([{ id: slot, state: 'online', group: src }]);
    await barrier.deleteAction(action.seq);
  });

  it('a WATCH still open after --watch-grace is aborted (EXEC answers nil) and the next try succeeds in the new group', { timeout: 60_000 }, async () => {
    const r = client();
    const key = 'watched:mig';
    await r.set(key, '10');
    const { slot, src, dst } = await placeOf(key);
    await r.watch(key);
    expect(await r.get(key)).toBe('10');

    const rev = await cluster.store.putSlots([{ id: slot, state: 'pre_migrate', group: src, from: src, to: dst }]);
    const barrier = new Barrier(cluster.store);
    const action = await barrier.createAction([slot], rev, 'test: watch during migration');
    expect((await barrier.waitForAcks(action, 10_000)).missing).toEqual([]);
    await cluster.store.putSlots([{ id: slot, state: 'migrating', group: dst, from: src, to: dst }]);

    expect(await r.multi().set(key, '11').exec()).toBeNull();
    // The retry runs in the target group: the key was moved there on first touch.
    await r.watch(key);
    const v = Number(await r.get(key));
    expect(await r.multi().set(key, String(v + 1)).exec()).toEqual([[null, 'OK']]);
    const target = cluster.groups.find((g) => g.id === dst)!.master.client();
    const source = cluster.groups.find((g) => g.id === src)!.master.client();
    expect(await target.get(key)).toBe('11');
    expect(await source.exists(key)).toBe(0);
    target.disconnect();
    source.disconnect();
    await cluster.store.putSlots([{ id: slot, state: 'online', group: dst }]);
    await barrier.deleteAction(action.seq);
  });

  it('a transaction on a migrating slot moves its keys first and runs in the target group', { timeout: 60_000 }, async () => {
    const r = client();
    await r.mset('{txm}a', '1', '{txm}b', '2');
    const slot = keySlot(Buffer.from('txm'));
    const src = (await cluster.store.getSlot(slot)).group;
    const dst = src === 1 ? 2 : 1;
    const rev = await cluster.store.putSlots([{ id: slot, state: 'pre_migrate', group: src, from: src, to: dst }]);
    const barrier = new Barrier(cluster.store);
    const action = await barrier.createAction([slot], rev, 'test: tx during migration');
    expect((await barrier.waitForAcks(action, 10_000)).missing).toEqual([]);
    await cluster.store.putSlots([{ id: slot, state: 'migrating', group: dst, from: src, to: dst }]);

    const res = await r.multi().incr('{txm}a').incrby('{txm}b', 10).exec();
    expect(res).toEqual([
      [null, 2],
      [null, 12],
    ]);
    const target = cluster.groups.find((g) => g.id === dst)!.master.client();
    const source = cluster.groups.find((g) => g.id === src)!.master.client();
    expect(await target.mget('{txm}a', '{txm}b')).toEqual(['2', '12']);
    expect(await source.exists('{txm}a', '{txm}b')).toBe(0);
    target.disconnect();
    source.disconnect();
    await cluster.store.putSlots([{ id: slot, state: 'online', group: dst }]);
    await barrier.deleteAction(action.seq);
  });
});

/** Writes `request` in one go on a raw socket and resolves with the first `n` replies' bytes (simple replies and bulks only). */
/** A key's slot, the group that owns it now, and the other group (where a migration would take it). */
async function placeOf(key: string): Promise<{ slot: number; src: number; dst: number }> {
  const slot = keySlot(Buffer.from(key));
  const src = (await cluster.store.getSlot(slot)).group;
  return { slot, src, dst: src === 1 ? 2 : 1 };
}

function rawExchange(port: number, request: string, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`only got ${JSON.stringify(buf)}`));
    }, 5000);
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      // Count replies: a bulk ($n) is a header line plus a data line, anything else one line.
      const lines = buf.split('\r\n').slice(0, -1);
      let count = 0;
      for (let i = 0; i < lines.length; i++, count++) if (lines[i]!.startsWith('$') && lines[i] !== '$-1') i++;
      if (count >= n) {
        clearTimeout(timer);
        sock.end();
        resolve(buf);
      }
    });
    sock.on('error', reject);
    sock.write(request);
  });
}
