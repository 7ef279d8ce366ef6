/**
 * RESP3 through the proxy, end to end against real etcd, redis and reborn-proxy processes.
 *
 * The strongest check is byte equality: the same script is sent to a group's redis-server
 * directly and through the proxy (keys in that group), and every reply must be the same bytes,
 * RESP3 types and all (maps, sets, doubles, `_` nulls, pushes). Then what only the proxy
 * builds (HELLO, split MGET/DEL across groups, SCAN, INFO, PUBSUB NUMSUB, EXEC's nil),
 * pub/sub pushes with ordinary commands in between, the protocol switch in the middle of a
 * pipeline, bad input, and node-redis 6 with its default settings (RESP3 since 6.0).
 */
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitFor, type Cluster } from '@reborn/testkit';
import { keysOfGroup } from './helpers.js';
import { Frames } from './resp3-frames.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 2, proxyArgs: ['--max-client-output', String(2 * 1024 * 1024)] });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

/** A script whose replies are deterministic, over keys `k` (a hash tag keeps them in one slot). */
function script(k: string): Array<Array<string | number>> {
  return [
    ['HELLO', 3],
    ['DEL', `${k}s`, `${k}h`, `${k}set`, `${k}z`, `${k}l`, `${k}x`, `${k}n`],
    ['GET', `${k}s`],
    ['SET', `${k}s`, 'v'],
    ['GET', `${k}s`],
    ['HSET', `${k}h`, 'f1', 'a', 'f2', 'b'],
    ['HGETALL', `${k}h`],
    ['HRANDFIELD', `${k}missing`, 2, 'WITHVALUES'],
    ['SADD', `${k}set`, 1, 2, 3],
    ['SMEMBERS', `${k}set`],
    ['SISMEMBER', `${k}set`, 2],
    ['ZADD', `${k}z`, '1.5', 'a', '2', 'b'],
    ['ZSCORE', `${k}z`, 'a'],
    ['ZSCORE', `${k}z`, 'nope'],
    ['ZRANGE', `${k}z`, 0, -1, 'WITHSCORES'],
    ['ZINCRBY', `${k}z`, '0.25', 'b'],
    ['ZPOPMIN', `${k}z`],
    ['INCRBYFLOAT', `${k}n`, '1.5'],
    ['RPUSH', `${k}l`, 'x', 'y'],
    ['LPOP', `${k}l`, 5],
    ['LPOP', `${k}l`],
    ['BLPOP', `${k}l`, '0.01'],
    ['XADD', `${k}x`, '1-1', 'f', 'v'],
    ['XRANGE', `${k}x`, '-', '+'],
    ['XINFO', 'STREAM', `${k}x`],
    ['OBJECT', 'FREQ', `${k}s`],
    ['TYPE', `${k}h`],
    ['MULTI'],
    ['SET', `${k}s`, 'w'],
    ['HGETALL', `${k}h`],
    ['ZSCORE', `${k}z`, 'b'],
    ['EXEC'],
    ['WATCH', `${k}s`],
    ['UNWATCH'],
    ['EVAL', "return {1, 'two', {3}}", 0],
    ['EVAL', "redis.setresp(3); return redis.call('HGETALL', KEYS[1])", 1, `${k}h`],
    ['HELLO', 2],
    ['HGETALL', `${k}h`],
    ['ZSCORE', `${k}z`, 'b'],
    ['GET', `${k}missing`],
    // Leaves nothing behind, so the second run starts from the same state as the first.
    ['DEL', `${k}s`, `${k}h`, `${k}set`, `${k}z`, `${k}l`, `${k}x`, `${k}n`],
  ];
}

describe('RESP3 through the proxy', () => {
  it('passes every backend reply through byte for byte, as the same redis-server answers it directly', async () => {
    const gid = 1;
    const [key] = keysOfGroup('resp3-', gid, 1);
    const k = `{${key}}`;
    const direct = await Frames.connect(cluster.groups[gid - 1]!.master.port);
    const proxy = await Frames.connect(cluster.proxies[0]!.port);
    try {
      const lines = script(k);
      const fromRedis = await direct.run(lines);
      const fromProxy = await proxy.run(lines);
      // HELLO answers differ in id (and the proxy's id is its own); everything after must not.
      for (let i = 1; i < lines.length; i++) {
        if (lines[i]![0] === 'HELLO') continue;
        expect({ command: lines[i], reply: fromProxy[i] }).toEqual({ command: lines[i], reply: fromRedis[i] });
      }
      // The script really exercised RESP3 types, not only RESP2 look-alikes.
      const all = fromProxy.join('');
      for (const type of ['%2\r\n', '~3\r\n', ',1.5\r\n', '_\r\n']) expect(all).toContain(type);
    } finally {
      direct.close();
      proxy.close();
    }
  });

  it('answers HELLO as Redis 7 does: the server map in the new protocol, the lowest backend version, bad input refused', async () => {
    const direct = await Frames.connect(cluster.groups[0]!.master.port);
    const proxy = await Frames.connect(cluster.proxies[0]!.port);
    try {
      const bad = [['HELLO', 'abc'], ['HELLO', 4], ['HELLO', 1], ['HELLO', -1], ['HELLO', 3, 'AUTH'], ['HELLO', 3, 'AUTH', 'default'], ['HELLO', 3, 'SETNAME'], ['HELLO', 3, 'FOO', 'bar'], ['HELLO', '99999999999999999999999']];
      const badRedis = await direct.run(bad);
      const badProxy = await proxy.run(bad);
      expect(badProxy).toEqual(badRedis);
      expect(badProxy[1]).toBe('-NOPROTO unsupported protocol version\r\n');

      const [hello3] = await proxy.run([['HELLO', '3', 'SETNAME', 'me']]);
      const [redisHello] = await direct.run([['HELLO', '3']]);
      const version = /\$7\r\nversion\r\n\$\d+\r\n([^\r]+)\r\n/.exec(redisHello!)![1]!;
      const [id] = await proxy.run([['CLIENT', 'ID']]);
      expect(hello3).toBe(
        '%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$' + version.length + '\r\n' + version + '\r\n' +
          '$5\r\nproto\r\n:3\r\n$2\r\nid\r\n' + id + '$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n',
      );
      expect(await proxy.run([['CLIENT', 'GETNAME'], ['HELLO']])).toEqual(['$2\r\nme\r\n', hello3!]);
      const [hello2] = await proxy.run([['HELLO', '2']]);
      expect(hello2!.startsWith('*14\r\n$6\r\nserver\r\n')).toBe(true);
      expect(hello2).toContain('$5\r\nproto\r\n:2\r\n');
    } finally {
      direct.close();
      proxy.close();
    }
  });

  it('builds its own replies in the session protocol: split commands, SCAN, KEYS, INFO, PUBSUB, EXEC aborted, RESET', async () => {
    const [a] = keysOfGroup('r3split-', 1, 1);
    const [b] = keysOfGroup('r3split-', 2, 1);
    const proxy = await Frames.connect(cluster.proxies[0]!.port);
    const other = await Frames.connect(cluster.proxies[1]!.port);
    try {
      await proxy.run([['HELLO', 3]]);
      const replies = await proxy.run([
        ['MSET', a!, '1', b!, '2'],
        ['MGET', a!, 'r3-missing-1', b!, 'r3-missing-2'],
        ['EXISTS', a!, b!],
        ['RANDOMKEY'],
        ['CLIENT', 'GETNAME'],
        ['PUBSUB', 'NUMSUB', 'r3-ch'],
        ['INFO', 'clients'],
        ['WATCH', a!],
      ]);
      expect(replies.slice(0, 3)).toEqual(['+OK\r\n', '*4\r\n$1\r\n1\r\n_\r\n$1\r\n2\r\n_\r\n', ':2\r\n']);
      expect(replies[3]!.startsWith('$')).toBe(true);
      expect(replies[4]).toBe('_\r\n');
      expect(replies[5]).toBe('%1\r\n$5\r\nr3-ch\r\n:0\r\n');
      expect(replies[6]).toMatch(/^=\d+\r\ntxt:# Clients\r\nconnected_clients:\d+\r\n/);
      expect(replies[6]).toContain('blocked_clients:0');
      // A write through the other proxy aborts the WATCH: EXEC's nil is `_` in RESP3.
      await other.run([['SET', a!, 'changed']]);
      expect(await proxy.run([['MULTI'], ['GET', a!], ['EXEC']])).toEqual(['+OK\r\n', '+QUEUED\r\n', '_\r\n']);
      expect(await proxy.run([['DEL', a!, b!, 'r3-missing-1']])).toEqual([':2\r\n']);
      // RESET: back to RESP2.
      expect(await proxy.run([['RESET'], ['GET', a!], ['CLIENT', 'GETNAME'], ['MULTI'], ['EXEC']])).toEqual(['+RESET\r\n', '$-1\r\n', '$-1\r\n', '+OK\r\n', '*0\r\n']);
    } finally {
      proxy.close();
      other.close();
    }
  });

  it('switches a WATCH\'s pinned connection with the client: commands and EXEC after HELLO 3 answer in RESP3', async () => {
    const [key] = keysOfGroup('r3watch-', 1, 1);
    const proxy = await Frames.connect(cluster.proxies[0]!.port);
    try {
      await proxy.run([['HSET', `{${key}}h`, 'f', 'v'], ['DEL', key!]]);
      const replies = await proxy.run([['WATCH', key!], ['HELLO', 3], ['GET', key!], ['MULTI'], ['HGETALL', `{${key}}h`], ['GET', key!], ['EXEC']]);
      expect(replies[2]).toBe('_\r\n');
      expect(replies[6]).toBe('*2\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n_\r\n');
    } finally {
      proxy.close();
    }
  });

  it('keeps request order across a protocol switch inside one pipeline', async () => {
    const keys = [...keysOfGroup('r3order-', 1, 3), ...keysOfGroup('r3order-', 2, 3)];
    const proxy = await Frames.connect(cluster.proxies[0]!.port);
    try {
      const commands: Array<Array<string | number>> = [];
      for (let round = 0; round < 20; round++) {
        const k = keys[round % keys.length]!;
        commands.push(['SET', k, `v${round}`], ['HELLO', round % 2 === 0 ? 3 : 2], ['GET', k], ['GET', 'r3order-missing']);
      }
      const replies = await proxy.run(commands);
      for (let round = 0; round < 20; round++) {
        const resp = round % 2 === 0 ? 3 : 2;
        const v = `v${round}`;
        expect(replies[round * 4]).toBe('+OK\r\n');
        expect(replies[round * 4 + 1]!.startsWith(resp === 3 ? '%7\r\n' : '*14\r\n')).toBe(true);
        expect(replies[round * 4 + 2]).toBe(`$${v.length}\r\n${v}\r\n`);
        expect(replies[round * 4 + 3]).toBe(resp === 3 ? '_\r\n' : '$-1\r\n');
      }
    } finally {
      proxy.close();
    }
  });

  it('sends pub/sub messages as pushes and runs ordinary commands while subscribed', async () => {
    const [key] = keysOfGroup('r3sub-', 2, 1);
    const sub = await Frames.connect(cluster.proxies[0]!.port);
    const pub = await Frames.connect(cluster.proxies[1]!.port);
    try {
      expect(await sub.run([['HELLO', 3]])).toHaveLength(1);
      expect(await sub.run([['SUBSCRIBE', 'r3-chan'], ['PSUBSCRIBE', 'r3-p*'], ['SET', key!, 'x'], ['GET', key!], ['PING']])).toEqual([
        '>3\r\n$9\r\nsubscribe\r\n$7\r\nr3-chan\r\n:1\r\n',
        '>3\r\n$10\r\npsubscribe\r\n$5\r\nr3-p*\r\n:2\r\n',
        '+OK\r\n',
        '$1\r\nx\r\n',
        '+PONG\r\n',
      ]);
      const pushes = (): string[] => sub.frames.filter((f) => f.startsWith('>3\r\n$7\r\nmessage') || f.startsWith('>4\r\n$8\r\npmessage'));
      expect(await pub.run([['PUBLISH', 'r3-chan', 'hello']])).toEqual([':1\r\n']);
      await waitFor(() => pushes().length === 1, { what: 'the message push' });
      expect(pushes()).toEqual(['>3\r\n$7\r\nmessage\r\n$7\r\nr3-chan\r\n$5\r\nhello\r\n']);
      // Replies and pushes interleave: a command on the subscribed connection still answers.
      expect(await sub.run([['GET', key!]])).toEqual(['$1\r\nx\r\n']);
      expect(await pub.run([['PUBLISH', 'r3-pub', 'pm']])).toEqual([':1\r\n']);
      await waitFor(() => pushes().length === 2, { what: 'the pattern message push' });
      expect(pushes()[1]).toBe('>4\r\n$8\r\npmessage\r\n$5\r\nr3-p*\r\n$6\r\nr3-pub\r\n$2\r\npm\r\n');
      expect(await sub.run([['UNSUBSCRIBE'], ['PUNSUBSCRIBE']])).toEqual([
        '>3\r\n$11\r\nunsubscribe\r\n$7\r\nr3-chan\r\n:1\r\n',
        '>3\r\n$12\r\npunsubscribe\r\n$5\r\nr3-p*\r\n:0\r\n',
      ]);
      expect(await sub.run([['UNSUBSCRIBE']])).toEqual(['>3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n']);
    } finally {
      sub.close();
      pub.close();
    }
  });

  it('answers a malformed frame after HELLO 3 with a protocol error and closes; others are unaffected', async () => {
    const bad = await Frames.connect(cluster.proxies[0]!.port);
    const good = await Frames.connect(cluster.proxies[0]!.port);
    try {
      await bad.run([['HELLO', 3]]);
      bad.socket.write('*1\r\n$x\r\n');
      await bad.until(2);
      expect(bad.frames[1]).toMatch(/^-ERR Protocol error/);
      await bad.until(99);
      expect(bad.closed).toBe(true);
      expect(await good.run([['HELLO', 3], ['PING']])).toHaveLength(2);
    } finally {
      bad.close();
      good.close();
    }
  });

  it('cuts off a RESP3 subscriber that never reads, and keeps serving the others', async () => {
    const lazy = await Frames.connect(cluster.proxies[0]!.port);
    const pub = await Frames.connect(cluster.proxies[1]!.port);
    try {
      expect(await lazy.run([['HELLO', 3], ['SUBSCRIBE', 'r3-flood']])).toHaveLength(2);
      lazy.socket.pause(); // never reads again: the proxy's output for it can only grow
      const payload = 'x'.repeat(64 * 1024);
      // 400 × 64 KiB: far over the 2 MiB output limit plus what the socket buffers take.
      for (let i = 0; i < 400; i += 20) await pub.run(Array.from({ length: 20 }, () => ['PUBLISH', 'r3-flood', payload]));
      await cluster.proxies[0]!.waitForLog((r) => r['msg'] === 'client output buffer over limit, disconnecting');
      lazy.socket.resume();
      await lazy.until(Number.MAX_SAFE_INTEGER);
      expect(lazy.closed).toBe(true);
      expect(await pub.run([['PING']])).toEqual(['+PONG\r\n']);
    } finally {
      lazy.close();
      pub.close();
    }
  });

  it('serves node-redis 6 with its default settings (HELLO 3): data types, pipeline, transactions, pub/sub', async () => {
    const client = createClient({ url: `redis://127.0.0.1:${cluster.proxies[0]!.port}` });
    const subscriber = client.duplicate();
    client.on('error', () => undefined);
    subscriber.on('error', () => undefined);
    await client.connect();
    await subscriber.connect();
    try {
      expect(await client.hello()).toMatchObject({ proto: 3, server: 'redis' });
      await client.hSet('{nr}h', { a: '1', b: '2' });
      expect(await client.hGetAll('{nr}h')).toEqual({ a: '1', b: '2' });
      await client.zAdd('{nr}z', [{ score: 1.5, value: 'x' }]);
      expect(await client.zScore('{nr}z', 'x')).toBe(1.5);
      await client.sAdd('{nr}s', ['a', 'b']);
      expect((await client.sMembers('{nr}s')).sort()).toEqual(['a', 'b']);
      expect(await client.get('{nr}missing')).toBeNull();
      const keys = Array.from({ length: 200 }, (_, i) => `nr-pipe-${i}`);
      await Promise.all(keys.map((k, i) => client.set(k, String(i))));
      expect(await client.mGet(keys)).toEqual(keys.map((_, i) => String(i)));
      const [, got] = await client.multi().set('{nr}t', '1').get('{nr}t').exec();
      expect(got).toBe('1');
      const messages: string[] = [];
      await subscriber.subscribe('nr-chan', (m) => messages.push(m));
      // RESP3: the subscribed connection still runs ordinary commands.
      expect(await subscriber.get('nr-pipe-3')).toBe('3');
      await waitFor(async () => {
        await client.publish('nr-chan', 'm');
        return messages.length > 0;
      }, { timeoutMs: 10_000 });
      expect(messages[0]).toBe('m');
      expect(await client.dbSize()).toBeGreaterThan(200);
    } finally {
      await subscriber.quit().catch(() => undefined);
      await client.quit().catch(() => undefined);
    }
  });
});
