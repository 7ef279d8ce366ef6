/**
 * Pub/Sub through the proxy, end to end against real etcd, redis and reborn-proxy processes:
 * Redis's RESP2 subscribe semantics byte for byte (confirmations, counts, the subscribed-mode
 * command list, PING), channels and patterns across both groups, shard channels, PUBSUB
 * introspection, a subscriber on one proxy and a publisher on another, redis-cli as a
 * subscriber, message order behind earlier replies, a subscriber that never reads, and
 * exactly-once delivery while the channel's slot migrates to the other group.
 */
import { spawn } from 'node:child_process';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Barrier } from '@reborn/coordinator';
import { startCluster, waitFor, type Cluster } from '@reborn/testkit';
import { RawClient, busyScript, cmd, initialOwner, keysInSlots, plain, slotOf } from './helpers.js';

let cluster: Cluster;

beforeAll(async () => {
  // A small output limit so the never-reading subscriber is cut off quickly.
  cluster = await startCluster({ groups: 2, proxies: 2, proxyArgs: ['--max-client-output', String(4 * 1024 * 1024)] });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

/** Channels whose slots belong to group 1 and to group 2 (slots are split in halves). */
function channelsOfGroup(gid: number, n: number, prefix = 'ch'): string[] {
  const [from, to] = gid === 1 ? [0, 511] : [512, 1023];
  const out = keysInSlots(`${prefix}:g${gid}:`, from, to, n);
  for (const c of out) expect(initialOwner(slotOf(c), 2)).toBe(gid);
  return out;
}

/**
 * An ioredis client of proxy `i`, past its connect handshake and ready check. A subscriber
 * must not SUBSCRIBE before that: ioredis 5 writes a SUBSCRIBE issued during its handshake at
 * once (redis flags SUBSCRIBE `loading`); when that reply comes back before the ready check's
 * INFO is sent, ioredis refuses its own INFO ("Connection in subscriber mode"), reconnects,
 * and — that connection never having been ready — does not subscribe again, although the
 * SUBSCRIBE promise resolved (redis/ioredis#2037). Called at once after the constructor a
 * SUBSCRIBE is queued until ready instead; after any `await` it may fall into the handshake.
 */
async function readyClient(i: number): Promise<Redis> {
  const client = cluster.proxies[i]!.client();
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
  return client;
}

/** Collects every message an ioredis subscriber receives, per channel. */
function collect(sub: Redis): Map<string, string[]> {
  const got = new Map<string, string[]>();
  const add = (channel: string, message: string): void => {
    const list = got.get(channel) ?? [];
    list.push(message);
    got.set(channel, list);
  };
  sub.on('message', (channel: string, message: string) => add(channel, message));
  sub.on('pmessage', (_pattern: string, channel: string, message: string) => add(`p:${channel}`, message));
  sub.on('smessage', (channel: string, message: string) => add(`s:${channel}`, message));
  return got;
}

describe('proxy pub/sub', () => {
  it('answers SUBSCRIBE, UNSUBSCRIBE, PING, RESET and refused commands exactly as Redis 7.0 does', async () => {
    const raw = await RawClient.connect(cluster.proxies[0]!.port);
    const direct = await RawClient.connect(cluster.groups[0]!.master.port);
    try {
      const script: Array<Array<string>> = [
        ['UNSUBSCRIBE'],
        ['SUBSCRIBE', 'a', 'b', 'a'],
        ['PSUBSCRIBE', 'p*'],
        ['SSUBSCRIBE', 'sa'],
        ['GET', 'x'],
        ['PING'],
        ['PING', 'hi'],
        ['UNSUBSCRIBE', 'b', 'nope'],
        ['PUNSUBSCRIBE'],
        ['SUNSUBSCRIBE'],
        ['UNSUBSCRIBE'],
        ['PING'],
        // RESET leaves subscribed mode and discards a transaction, as in Redis.
        ['SUBSCRIBE', 'z'],
        ['RESET'],
        ['PING'],
        ['MULTI'],
        ['SET', 'reset:k', '1'],
        ['RESET'],
        ['EXEC'],
        ['GET', 'reset:k'],
      ];
      // The replies each command gets (some answer several arrays).
      const counts = [1, 3, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
      for (let i = 0; i < script.length; i++) {
        raw.write(cmd(...script[i]!));
        direct.write(cmd(...script[i]!));
        expect(await raw.next(counts[i]!), script[i]!.join(' ')).toEqual(await direct.next(counts[i]!));
      }
      // Out of subscribed mode: normal commands work again.
      expect(await raw.call('SET', 'after-sub', '1')).toBe('OK');
    } finally {
      raw.destroy();
      direct.destroy();
    }
  });

  it('delivers channel, pattern and shard messages published through either proxy, in both groups', async () => {
    const sub = cluster.proxies[0]!.client();
    const pub = cluster.proxies[1]!.client();
    const got = collect(sub);
    const channels = [...channelsOfGroup(1, 3), ...channelsOfGroup(2, 3)];
    try {
      expect(await sub.subscribe(...channels)).toBe(channels.length);
      expect(await sub.psubscribe('pat:*')).toBe(channels.length + 1);
      await sub.ssubscribe('shard:{x}', 'shard:{y}');
      for (const [i, c] of channels.entries()) expect(await pub.publish(c, `m${i}`)).toBe(1);
      expect(await pub.publish('pat:one', 'pm')).toBe(1);
      expect(await pub.spublish('shard:{x}', 's1')).toBe(1);
      expect(await pub.spublish('shard:{y}', 's2')).toBe(1);
      expect(await pub.publish('nobody-listens', 'x')).toBe(0);
      await waitFor(() => got.size === channels.length + 3, { what: 'every message' });
      for (const [i, c] of channels.entries()) expect(got.get(c)).toEqual([`m${i}`]);
      expect(got.get('p:pat:one')).toEqual(['pm']);
      expect(got.get('s:shard:{x}')).toEqual(['s1']);
      expect(got.get('s:shard:{y}')).toEqual(['s2']);

      // PUBSUB, asked through the other proxy: the union over both groups' masters.
      const channelsSeen = (await pub.call('PUBSUB', 'CHANNELS', 'ch:*')) as string[];
      expect([...channelsSeen].sort()).toEqual([...channels].sort());
      expect(await pub.call('PUBSUB', 'NUMSUB', channels[0]!, 'nobody-listens')).toEqual([channels[0], 1, 'nobody-listens', 0]);
      expect(await pub.call('PUBSUB', 'NUMPAT')).toBe(1);
      expect(((await pub.call('PUBSUB', 'SHARDCHANNELS')) as string[]).sort()).toEqual(['shard:{x}', 'shard:{y}']);
      expect(await pub.call('PUBSUB', 'SHARDNUMSUB', 'shard:{x}')).toEqual(['shard:{x}', 1]);
    } finally {
      sub.disconnect();
      pub.disconnect();
    }
    // The proxy unsubscribes at the backends once its last subscriber is gone.
    const probe = cluster.proxies[1]!.client();
    try {
      await waitFor(async () => ((await probe.call('PUBSUB', 'CHANNELS', 'ch:*')) as string[]).length === 0, { what: 'backend subscriptions dropped' });
      expect(await probe.call('PUBSUB', 'NUMPAT')).toBe(0);
    } finally {
      probe.disconnect();
    }
  });

  it('after an UNSUBSCRIBE reply no PUBLISH counts the client any more (the backends dropped it first)', async () => {
    const sub = await RawClient.connect(cluster.proxies[0]!.port);
    const pub = await RawClient.connect(cluster.proxies[1]!.port);
    const [channel] = channelsOfGroup(1, 1, 'unsub');
    try {
      const counts: unknown[] = [];
      for (let i = 0; i < 20; i++) {
        expect(plain(await sub.call('SUBSCRIBE', channel!))).toEqual(['subscribe', channel, 1]);
        expect(plain(await pub.call('PUBLISH', channel!, 'x'))).toBe(1);
        expect(plain(await sub.one())).toEqual(['message', channel, 'x']);
        await sub.call('UNSUBSCRIBE', channel!);
        counts.push(plain(await pub.call('PUBLISH', channel!, 'y')));
      }
      expect(counts).toEqual(new Array(20).fill(0));
    } finally {
      sub.destroy();
      pub.destroy();
    }
  });

  it('many clients of one proxy share one backend subscription and each get every message', async () => {
    const subs = Array.from({ length: 20 }, () => cluster.proxies[0]!.client());
    const pub = cluster.proxies[1]!.client();
    const [channel] = channelsOfGroup(2, 1, 'shared');
    try {
      const gots = subs.map((s) => collect(s));
      await Promise.all(subs.map((s) => s.subscribe(channel!)));
      expect(await pub.call('PUBSUB', 'NUMSUB', channel!)).toEqual([channel, 1]);
      for (let i = 0; i < 50; i++) expect(await pub.publish(channel!, String(i))).toBe(1);
      await waitFor(() => gots.every((g) => (g.get(channel!)?.length ?? 0) === 50), { what: '50 messages for each of 20 subscribers' });
      for (const g of gots) expect(g.get(channel!)).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    } finally {
      subs.forEach((s) => s.disconnect());
      pub.disconnect();
    }
  });

  it('redis-cli subscribes through the proxy and prints the messages', async () => {
    const [channel] = channelsOfGroup(1, 1, 'cli');
    const child = spawn('redis-cli', ['-p', String(cluster.proxies[0]!.port), 'SUBSCRIBE', channel!], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const pub = cluster.proxies[1]!.client();
    try {
      await waitFor(() => out.includes(channel!), { what: 'redis-cli subscribed' });
      await waitFor(async () => (await pub.publish(channel!, 'hello from reborn')) === 1, { what: 'the subscription visible at the backend' });
      await waitFor(() => out.includes('hello from reborn'), { what: 'redis-cli printed the message' });
      expect(out.split('\n').filter((l) => l !== '')).toEqual(['subscribe', channel, '1', 'message', channel, 'hello from reborn']);
    } finally {
      child.kill('SIGTERM');
      pub.disconnect();
    }
  });

  it('a message never overtakes an earlier reply, and normal commands answer only before SUBSCRIBE', async () => {
    const raw = await RawClient.connect(cluster.proxies[0]!.port);
    const pub = cluster.proxies[1]!.client();
    const [channel] = channelsOfGroup(2, 1, 'order');
    try {
      await raw.call('SET', 'order:k', 'v');
      raw.write(Buffer.concat([cmd('GET', 'order:k'), cmd('SUBSCRIBE', channel!)]));
      expect((await raw.next(2)).map(plain)).toEqual(['v', ['subscribe', channel, 1]]);
      expect(await pub.publish(channel!, 'one')).toBe(1);
      expect(plain(await raw.one())).toEqual(['message', channel, 'one']);
      expect(plain(await raw.call('GET', 'order:k'))).toEqual({
        err: "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
      });
    } finally {
      raw.destroy();
      pub.disconnect();
    }
  });

  it('a SUBSCRIBE held behind a migrating slot, whose client is gone when it runs, leaves no subscription behind', async () => {
    const [key] = keysInSlots('held:', 0, 511, 1);
    const slot = slotOf(key!);
    const [channel] = channelsOfGroup(2, 1, 'leak');
    await cluster.store.putSlots([{ id: slot, state: 'pre_migrate', group: 1, from: 1, to: 2 }]);
    const c = await RawClient.connect(cluster.proxies[0]!.port);
    c.write(Buffer.concat([cmd('GET', key!), cmd('SUBSCRIBE', channel!)]));
    await new Promise((r) => setTimeout(r, 200)); // both parsed: GET held, SUBSCRIBE parked behind it
    c.socket.resetAndDestroy(); // a reset: the proxy's session is closed, not half-closed
    await c.closedPromise;
    await waitFor(async () => JSON.parse(await cluster.proxies[0]!.adminGet('/api/proxy')).sessions === 0, { what: 'the session closed' });
    await cluster.store.putSlots([{ id: slot, state: 'online', group: 1 }]);
    const probe = cluster.proxies[1]!.client();
    try {
      // Give the parked SUBSCRIBE every chance to run, then look at the backends.
      await new Promise((r) => setTimeout(r, 500));
      expect(await probe.call('PUBSUB', 'NUMSUB', channel!)).toEqual([channel, 0]);
      const metrics = await cluster.proxies[0]!.metrics();
      expect(metrics).toMatch(/^reborn_proxy_pubsub_subscriptions 0$/m);
    } finally {
      probe.disconnect();
    }
  });

  it('a SUBSCRIBE while the channel\'s master is busy with a script is confirmed only once that master has it', async () => {
    const [channel] = channelsOfGroup(1, 1, 'busy');
    const master = cluster.groups[0]!.master.client();
    const threshold = (await master.config('GET', 'lua-time-limit'))[1]!;
    await master.config('SET', 'lua-time-limit', '200');
    const sub = await RawClient.connect(cluster.proxies[0]!.port);
    const pub = cluster.proxies[1]!.client();
    try {
      const busy = busyScript(1500);
      const script = master.eval(busy, 0);
      await new Promise((r) => setTimeout(r, 300)); // past the busy threshold: redis answers -BUSY now
      sub.write(cmd('SUBSCRIBE', channel!));
      expect(plain(await sub.one())).toEqual(['subscribe', channel, 1]);
      await script;
      // Confirmed: a PUBLISH from now on reaches the subscriber.
      expect(await pub.publish(channel!, 'after')).toBe(1);
      expect(plain(await sub.one())).toEqual(['message', channel, 'after']);
    } finally {
      sub.destroy();
      pub.disconnect();
      await master.config('SET', 'lua-time-limit', threshold);
      master.disconnect();
    }
  });

  it('disconnects a subscriber that never reads at the output limit; the others keep receiving', async () => {
    const [channel] = channelsOfGroup(1, 1, 'slow');
    const slow = await RawClient.connect(cluster.proxies[0]!.port);
    slow.write(cmd('SUBSCRIBE', channel!));
    await slow.one();
    slow.socket.pause(); // never reads again: the proxy's output for it can only grow
    const fast = cluster.proxies[0]!.client();
    const got = collect(fast);
    const pub = cluster.proxies[1]!.client();
    const payload = 'x'.repeat(64 * 1024);
    const N = 400; // 25 MB in total, far over the 4 MB limit plus socket buffers
    try {
      await fast.subscribe(channel!);
      for (let i = 0; i < N; i += 20) {
        const p = pub.pipeline();
        for (let j = i; j < i + 20; j++) p.publish(channel!, `${j}:${payload}`);
        await p.exec();
        // Paced by the reading subscriber: at most one batch (1.3 MB) is ever on its way to it,
        // so it stays far below the output limit however slowly a loaded machine lets it read.
        // The one that never reads still gets all 25 MB queued, and must be cut off.
        await waitFor(() => (got.get(channel!)?.length ?? 0) >= i + 20, { timeoutMs: 60_000, what: `the reading subscriber got batch ${i / 20}` });
      }
      await waitFor(() => (got.get(channel!)?.length ?? 0) === N, { what: 'the reading subscriber got everything' });
      expect(got.get(channel!)!.map((m) => Number(m.split(':')[0]))).toEqual(Array.from({ length: N }, (_, i) => i));
      await cluster.proxies[0]!.waitForLog((r) => r['msg'] === 'client output buffer over limit, disconnecting');
      // Only the one that never reads: the reading subscriber was never cut off.
      expect(cluster.proxies[0]!.logRecords().filter((r) => r['msg'] === 'client output buffer over limit, disconnecting')).toHaveLength(1);
      // Reading again, the slow client finds its connection closed after what was in flight.
      slow.socket.resume();
      await slow.waitClosed();
      expect(slow.received).toBeLessThan(N * payload.length);
    } finally {
      slow.destroy();
      fast.disconnect();
      pub.disconnect();
    }
  });

  it('delivers every message exactly once while the channel slot migrates to the other group', { timeout: 60_000 }, async () => {
    const [channel] = channelsOfGroup(1, 1, 'moving');
    const slot = slotOf(channel!);
    // Ready first: the awaits below would otherwise let its SUBSCRIBE fall into its handshake.
    const sub = await readyClient(0);
    let subReconnects = 0;
    sub.on('reconnecting', () => subReconnects++);
    const got = collect(sub);
    // The same promise for a RESP3 subscriber (node-redis 6 at its defaults: pushes).
    const sub3 = createClient({ url: `redis://127.0.0.1:${cluster.proxies[0]!.port}` });
    sub3.on('error', () => undefined);
    await sub3.connect();
    const got3: number[] = [];
    await sub3.subscribe(channel!, (m) => got3.push(Number(m)));
    const pubs = [cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 }), cluster.proxies[1]!.client({ maxRetriesPerRequest: 0 })];
    await sub.subscribe(channel!);
    let seq = 0;
    const acked: number[] = [];
    let running = true;
    const publisher = async (pub: Redis): Promise<void> => {
      while (running) {
        const n = seq++;
        try {
          if ((await pub.publish(channel!, String(n))) >= 1) acked.push(n);
        } catch {
          // An error is not an acknowledgement: nothing to count.
        }
      }
    };
    const loops = pubs.map((p) => publisher(p));
    try {
      await waitFor(() => acked.length > 200, { what: 'publishing under way' });
      // The migration protocol by hand: pre_migrate + barrier, then migrating, then online.
      const barrier = new Barrier(cluster.store);
      const rev = await cluster.store.putSlots([{ id: slot, state: 'pre_migrate', group: 1, from: 1, to: 2 }]);
      const action = await barrier.createAction([slot], rev, 'test: pub/sub during migration');
      expect((await barrier.waitForAcks(action, 10_000)).missing).toEqual([]);
      await cluster.store.putSlots([{ id: slot, state: 'migrating', group: 2, from: 1, to: 2 }]);
      await barrier.deleteAction(action.seq);
      const before = acked.length;
      await waitFor(() => acked.length > before + 200, { what: 'publishing to the target group' });
      await cluster.store.putSlots([{ id: slot, state: 'online', group: 2 }]);
      const online = acked.length;
      await waitFor(() => acked.length > online + 200, { what: 'publishing after the move' });
    } finally {
      running = false;
      await Promise.all(loops);
    }
    await waitFor(
      () => {
        const received = new Set(got.get(channel!)?.map(Number));
        const missing = acked.filter((n) => !received.has(n));
        if (missing.length === 0) return true;
        // A lost message names itself; a subscriber that reconnected lost its subscription.
        throw new Error(`${missing.length} of ${acked.length} missing (first: ${missing.slice(0, 10).join(', ')}); the subscriber reconnected ${subReconnects} times`);
      },
      { what: 'every acknowledged message delivered' },
    );
    const received = got.get(channel!)!.map(Number);
    const counts = new Map<number, number>();
    for (const n of received) counts.set(n, (counts.get(n) ?? 0) + 1);
    const duplicates = [...counts].filter(([, c]) => c > 1);
    const missing = acked.filter((n) => !counts.has(n));
    console.log(`[pubsub-migration] acknowledged ${acked.length}, received ${received.length}, duplicates ${duplicates.length}, missing ${missing.length}`);
    expect(duplicates).toEqual([]);
    expect(missing).toEqual([]);
    await waitFor(() => got3.length >= acked.length, { what: 'every acknowledged message delivered to the RESP3 subscriber' });
    const counts3 = new Map<number, number>();
    for (const n of got3) counts3.set(n, (counts3.get(n) ?? 0) + 1);
    console.log(`[pubsub-migration] RESP3 subscriber received ${got3.length}`);
    expect([...counts3].filter(([, c]) => c > 1)).toEqual([]);
    expect(acked.filter((n) => !counts3.has(n))).toEqual([]);
    await sub3.quit();
    sub.disconnect();
    pubs.forEach((p) => p.disconnect());
  });
});
