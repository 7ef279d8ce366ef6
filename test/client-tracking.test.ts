/**
 * Client-side caching through the proxy (CLIENT TRACKING), end to end: etcd, two redis groups
 * (a master and a replica each), two reborn-proxy processes.
 *
 * - node-redis 6 with `clientSideCache` serves a repeated read from its cache (the proxy never
 *   sees it: its GET counter does not move) and drops it when another client writes the key
 *   through the OTHER proxy.
 * - Raw RESP3 sockets, byte for byte: `>2 invalidate [keys]` for writes through the other
 *   proxy and on redis directly; BCAST with PREFIX; OPTIN/OPTOUT with CLIENT CACHING; NOLOOP
 *   (accepted, own writes still reported); tracking-redir-broken; a client cache fed by the
 *   socket never ends up stale under concurrent writes.
 * - RESP2 with REDIRECT to a subscriber of `__redis__:invalidate`, Redis's message shape, the
 *   flush null, a broken redirect.
 * - Slots: a migration (reborn-config slot migrate) and a reassignment without any write both
 *   invalidate the keys read from the slot.
 * - A group master replaced in etcd: clients that read keys of that group get the
 *   flush-everything null, the others nothing; tracking works on the new master.
 * - Bad input: a million PREFIX options.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitFor, type Cluster, type ProxyProcess } from '@reborn/testkit';
import { RawClient, cmd, dataReady, initialOwner, parsePrometheus, plain, promoteReplica, slotOf } from './helpers.js';
import { Frames } from './resp3-frames.js';
import { matrixRow } from './client-matrix.js';
import { NODE_REDIS } from './client-matrix-clients.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG_BIN = `${REPO}packages/config/bin/reborn-config.js`;

let cluster: Cluster;
let p0: ProxyProcess;
let p1: ProxyProcess;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 2 });
  [p0, p1] = cluster.proxies as [ProxyProcess, ProxyProcess];
  await Promise.all([dataReady(p0.port), dataReady(p1.port)]);
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
});

/** A hash tag whose slot the initial split gives to group `gid`, distinct per `name`. */
function tagOf(gid: number, name: string): string {
  for (let i = 0; ; i++) {
    const tag = `{${name}${i}}`;
    if (initialOwner(slotOf(tag.slice(1, -1)), 2) === gid) return tag;
  }
}

const bulk = (s: string): string => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const invalidate = (...keys: string[]): string => `>2\r\n$10\r\ninvalidate\r\n*${keys.length}\r\n${keys.map(bulk).join('')}`;
const FLUSH3 = '>2\r\n$10\r\ninvalidate\r\n_\r\n';
const OK = '+OK\r\n';

async function metric(p: ProxyProcess, series: string): Promise<number> {
  return parsePrometheus(await p.metrics()).get(series) ?? 0;
}

describe('node-redis 6 with clientSideCache through the proxy', () => {
  it('serves a repeated GET from its cache, unseen by the proxy, and drops it when the key is written through the other proxy', matrixRow(NODE_REDIS, 'RESP3', 'client-side caching, written through another proxy')(async () => {
    const key = `${tagOf(1, 'nr')}:user`;
    const writer = p1.client();
    await writer.set(key, 'v1');
    const client = createClient({ url: `redis://127.0.0.1:${p0.port}`, RESP: 3, clientSideCache: { ttl: 0, maxEntries: 0 } });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const gets = (): Promise<number> => metric(p0, 'reborn_proxy_commands_total{cmd="get"}');
      expect(await client.get(key)).toBe('v1');
      const sent = await gets();
      expect(await client.get(key)).toBe('v1');
      expect(await client.get(key)).toBe('v1');
      expect(await gets()).toBe(sent); // served from the client's cache
      expect(client.clientSideCache!.stats().hitCount).toBe(2);

      await writer.set(key, 'v2');
      // Cache hits until the invalidation arrives; then one miss, sent to the proxy.
      await waitFor(async () => (await client.get(key)) === 'v2', { what: 'the invalidation reaching the client' });
      expect(await gets()).toBe(sent + 1);
      expect(await client.get(key)).toBe('v2');
      expect(await gets()).toBe(sent + 1);
    } finally {
      await client.close();
      writer.disconnect();
    }
  }));
});

describe('RESP3 invalidation pushes', () => {
  it('a read pipelined right behind CLIENT TRACKING ON, on a proxy not yet listening, is tracked', async () => {
    const key = `${tagOf(2, 'first')}k`;
    const c = await Frames.connect(p1.port);
    try {
      c.socket.write(Buffer.concat([cmd('HELLO', '3'), cmd('CLIENT', 'TRACKING', 'ON'), cmd('GET', key), cmd('PING')]));
      expect(await c.next()).toMatch(/^%7\r\n/);
      expect(await c.next()).toBe(OK);
      expect(await c.next()).toBe('_\r\n');
      expect(await c.next()).toBe('+PONG\r\n'); // no invalidation right behind the read
      await p0.client().set(key, 'x');
      expect(await c.next()).toBe(invalidate(key));
    } finally {
      c.close();
    }
  });

  it('default mode: one push per read key for writes through the other proxy and on redis directly, after the reply of the client\'s own write', async () => {
    const t = tagOf(1, 'd');
    const [a, b, unread] = [`${t}a`, `${t}b`, `${t}unread`];
    const writer = p1.client();
    await writer.mset(a, '1', b, '1', unread, '1');
    const c = await Frames.resp3(p0.port);
    try {
      expect(await c.call('CLIENT', 'TRACKING', 'ON')).toBe(OK);
      expect(await c.call('MGET', a, b)).toBe(`*2\r\n${bulk('1')}${bulk('1')}`);
      await writer.mset(unread, '2', a, '2');
      expect(await c.next()).toBe(invalidate(a));
      // Forgotten once invalidated (Redis's rule): the next write of `a` says nothing, `b` does.
      await writer.set(a, '3');
      await cluster.groups[0]!.master.client().set(b, 'direct');
      expect(await c.next()).toBe(invalidate(b));
      // The client's own write: its reply first, then the invalidation.
      expect(await c.call('GET', a)).toBe(bulk('3'));
      expect(await c.call('SET', a, '4')).toBe(OK);
      expect(await c.next()).toBe(invalidate(a));
    } finally {
      c.close();
      writer.disconnect();
    }
  });

  it('BCAST with PREFIX: keys under the prefixes, from every group, without any read', async () => {
    const [t1, t2] = [tagOf(1, 'bc'), tagOf(2, 'bc')];
    const c = await Frames.resp3(p0.port);
    const writer = p1.client();
    try {
      expect(await c.call('CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', `${t1}user:`, 'PREFIX', `${t2}user:`)).toBe(OK);
      await writer.mset(`${t1}user:1`, 'x', `${t1}order:1`, 'x', `${t1}user:2`, 'x');
      const got = await c.next();
      expect([invalidate(`${t1}user:1`, `${t1}user:2`), invalidate(`${t1}user:2`, `${t1}user:1`)]).toContain(got);
      await writer.set(`${t2}order:9`, 'x');
      await writer.set(`${t2}user:9`, 'x');
      expect(await c.next()).toBe(invalidate(`${t2}user:9`));
      expect(await c.call('CLIENT', 'TRACKINGINFO')).toBe(
        `%3\r\n${bulk('flags')}~2\r\n${bulk('on')}${bulk('bcast')}${bulk('redirect')}:0\r\n${bulk('prefixes')}*2\r\n${[`${t1}user:`, `${t2}user:`].sort().map(bulk).join('')}`,
      );
    } finally {
      c.close();
      writer.disconnect();
    }
  });

  it('OPTIN tracks a read only after CLIENT CACHING YES; OPTOUT all but one after CLIENT CACHING NO', async () => {
    const t = tagOf(2, 'opt');
    const [x, y] = [`${t}x`, `${t}y`];
    const writer = p1.client();
    await writer.mset(x, '0', y, '0');
    const optin = await Frames.resp3(p0.port);
    const optout = await Frames.resp3(p0.port);
    try {
      expect(await optin.call('CLIENT', 'TRACKING', 'ON', 'OPTIN')).toBe(OK);
      expect(await optin.call('GET', x)).toBe(bulk('0'));
      expect(await optin.call('CLIENT', 'CACHING', 'YES')).toBe(OK);
      expect(await optin.call('GET', y)).toBe(bulk('0'));
      expect(await optout.call('CLIENT', 'TRACKING', 'ON', 'OPTOUT')).toBe(OK);
      expect(await optout.call('CLIENT', 'CACHING', 'NO')).toBe(OK);
      expect(await optout.call('GET', x)).toBe(bulk('0'));
      expect(await optout.call('GET', y)).toBe(bulk('0'));
      await writer.mset(x, '1', y, '1');
      expect(await optin.next()).toBe(invalidate(y));
      expect(await optout.next()).toBe(invalidate(y));
      expect(await optin.call('CLIENT', 'CACHING', 'NO')).toBe('-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.\r\n');
    } finally {
      optin.close();
      optout.close();
      writer.disconnect();
    }
  });

  it('NOLOOP is accepted and shown; the client still hears of its own writes (see docs/client-side-caching.md)', async () => {
    const key = `${tagOf(1, 'nl')}k`;
    const c = await Frames.resp3(p0.port);
    try {
      expect(await c.call('CLIENT', 'TRACKING', 'ON', 'NOLOOP')).toBe(OK);
      expect(await c.call('CLIENT', 'TRACKINGINFO')).toContain(`~2\r\n${bulk('on')}${bulk('noloop')}`);
      expect(await c.call('GET', key)).toBe('_\r\n');
      expect(await c.call('SET', key, 'mine')).toBe(OK);
      expect(await c.next()).toBe(invalidate(key));
    } finally {
      c.close();
    }
  });

  /**
   * Tracks a key of group 2 with REDIRECT to another RESP3 connection, lets `dropTarget` make
   * that connection go, writes the key through the other proxy and expects tracking-redir-broken
   * (with the target's id); `andThen` checks more on the still-open tracking client.
   */
  async function expectRedirectBroken(
    name: string,
    dropTarget: (target: Frames, c: Frames, id: string) => Promise<void>,
    andThen?: (c: Frames, id: string) => Promise<void>,
  ): Promise<void> {
    const key = `${tagOf(2, name)}k`;
    const target = await Frames.resp3(p0.port);
    const id = /^:(\d+)\r\n$/.exec(await target.call('CLIENT', 'ID'))![1]!;
    const c = await Frames.resp3(p0.port);
    try {
      expect(await c.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', id)).toBe(OK);
      expect(await c.call('GET', key)).toBe('_\r\n');
      await dropTarget(target, c, id);
      await p1.client().set(key, 'x');
      expect(await c.next()).toBe(`>2\r\n${bulk('tracking-redir-broken')}:${id}\r\n`);
      await andThen?.(c, id);
    } finally {
      c.close();
      target.close();
    }
  }

  it('REDIRECT to a connection that is gone: tracking-redir-broken, and broken_redirect in TRACKINGINFO', async () => {
    await expectRedirectBroken(
      'rb',
      async (target, c, id) => {
        target.close();
        await waitFor(async () => !(await c.call('CLIENT', 'LIST')).includes(`id=${id} `), { what: 'the target gone from the proxy' });
      },
      async (c, id) => {
        expect(await c.call('CLIENT', 'TRACKINGINFO')).toContain(`~2\r\n${bulk('on')}${bulk('broken_redirect')}${bulk('redirect')}:${id}\r\n`);
      },
    );
  });

  it('a REDIRECT target that sent QUIT is gone at once, although its socket may linger', async () => {
    await expectRedirectBroken('rq', async (target) => {
      expect(await target.call('QUIT')).toBe(OK); // the test keeps its end of the socket open
    });
  });

  it('a client cache fed by the socket (values, then pushes, in order) never ends up stale under concurrent writes', { timeout: 60_000 }, async () => {
    const t = tagOf(1, 'race');
    const keys = [`${t}a`, `${t}b`];
    const writer = p1.client();
    await writer.mset(keys[0]!, '0', keys[1]!, '0');
    const c = await Frames.resp3(p0.port);
    // The cache a client library keeps: a value on each GET reply, dropped by a push.
    const cache = new Map<string, string>();
    const apply = (frame: string): boolean => {
      if (!frame.startsWith('>')) return false;
      if (frame === FLUSH3) cache.clear();
      else for (const k of keys) if (frame.includes(bulk(k))) cache.delete(k);
      return true;
    };
    /** The next reply, every push before it applied to the cache first. */
    const reply = async (): Promise<string> => {
      let frame = await c.next();
      while (apply(frame)) frame = await c.next();
      return frame;
    };
    let writes = 0;
    let stale = 0;
    try {
      expect(await c.call('CLIENT', 'TRACKING', 'ON')).toBe(OK);
      // Checkpoints: reads race a burst of writes; once the writes stopped and the last
      // invalidation is in, what the cache still holds must be the value in redis.
      for (let checkpoint = 0; checkpoint < 8; checkpoint++) {
        let writing = true;
        const burst = (async () => {
          for (let n = 0; writing || n < 50; n++) {
            await writer.incr(keys[writes % 2]!);
            writes++;
          }
        })();
        for (let round = 0; round < 10; round++) {
          const batch = Array.from({ length: 20 }, (_, i) => keys[i % 2]!);
          for (const k of batch) c.send('GET', k);
          for (const k of batch) cache.set(k, /\r\n(.*)\r\n$/.exec(await reply())![1]!);
        }
        writing = false;
        await burst;
        // A tracked marker written last on the same master: its push comes after every earlier one.
        const marker = `${t}marker${checkpoint}`;
        c.send('GET', marker);
        expect(await reply()).toBe('_\r\n');
        await writer.set(marker, 'end');
        for (let frame = await c.next(); frame !== invalidate(marker); frame = await c.next()) apply(frame);
        const truth = await writer.mget(keys[0]!, keys[1]!);
        for (const [i, k] of keys.entries()) if (cache.has(k) && cache.get(k) !== truth[i]) stale++;
      }
      console.log(`[tracking-race] ${writes} writes in 8 bursts, 1600 reads racing them; stale cache entries at the checkpoints: ${stale}`);
      expect(stale).toBe(0);
    } finally {
      c.close();
      writer.disconnect();
    }
  });
});

describe('RESP2: REDIRECT to a subscriber of __redis__:invalidate', () => {
  it("gets Redis's pub/sub message for writes anywhere, the null for a master's flush; a closed target breaks the redirect", async () => {
    const t = tagOf(2, 'r2');
    const [k1, k2, unread] = [`${t}k1`, `${t}k2`, `${t}unread`];
    const writer = p1.client();
    await writer.mset(k1, 'a', k2, 'b', unread, 'c');
    const sub = await RawClient.connect(p0.port);
    const c = await RawClient.connect(p0.port);
    try {
      const id = Number(await sub.call('CLIENT', 'ID'));
      expect(plain(await sub.call('SUBSCRIBE', '__redis__:invalidate'))).toEqual(['subscribe', '__redis__:invalidate', 1]);
      expect(plain(await c.call('CLIENT', 'TRACKING', 'on', 'REDIRECT', id))).toBe('OK');
      expect(plain(await c.call('CLIENT', 'GETREDIR'))).toBe(id);
      expect(plain(await c.call('MGET', k1, k2))).toEqual(['a', 'b']);
      await writer.set(unread, 'x');
      await writer.set(k1, 'a2');
      expect(plain(await sub.one())).toEqual(['message', '__redis__:invalidate', [k1]]);
      await cluster.groups[1]!.master.client().set(k2, 'direct');
      expect(plain(await sub.one())).toEqual(['message', '__redis__:invalidate', [k2]]);
      // FLUSHDB on the group's master: the flush-everything null.
      expect(plain(await c.call('GET', k1))).toBe('a2');
      await cluster.groups[1]!.master.client().flushdb();
      expect(plain(await sub.one())).toEqual(['message', '__redis__:invalidate', null]);
      // The target goes away: nothing can be sent, the redirect is broken.
      expect(plain(await c.call('GET', k1))).toBeNull();
      sub.destroy();
      await waitFor(async () => !String(plain(await c.call('CLIENT', 'LIST'))).includes(`id=${id} `), { what: 'the subscriber gone' });
      await writer.set(k1, 'again');
      await waitFor(async () => JSON.stringify(plain(await c.call('CLIENT', 'TRACKINGINFO'))).includes('broken_redirect'), { what: 'broken_redirect' });
      expect(plain(await c.call('CLIENT', 'TRACKINGINFO'))).toEqual(['flags', ['on', 'broken_redirect'], 'redirect', id, 'prefixes', []]);
    } finally {
      sub.destroy();
      c.destroy();
      writer.disconnect();
    }
  });

  it("answers bad input with Redis's errors", async () => {
    const c = await RawClient.connect(p0.port);
    try {
      expect(plain(await c.call('CLIENT', 'TRACKING', 'on', 'REDIRECT', '999999'))).toEqual({ err: 'ERR The client ID you want redirect to does not exist' });
      expect(plain(await c.call('CLIENT', 'TRACKING', 'on', 'BCAST', 'OPTIN'))).toEqual({ err: 'ERR OPTIN and OPTOUT are not compatible with BCAST' });
      expect(plain(await c.call('CLIENT', 'TRACKING', 'on', 'PREFIX', 'a'))).toEqual({ err: 'ERR PREFIX option requires BCAST mode to be enabled' });
      expect(plain(await c.call('CLIENT', 'CACHING', 'YES'))).toEqual({ err: 'ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled' });
      expect(plain(await c.call('CLIENT', 'GETREDIR'))).toBe(-1);
      expect(plain(await c.call('CLIENT', 'TRACKINGINFO'))).toEqual(['flags', ['off'], 'redirect', -1, 'prefixes', []]);
      expect(plain(await c.call('CLIENT', 'TRACKING', 'on', 'BCAST', 'PREFIX', 'ab', 'PREFIX', 'a'))).toEqual({
        err: "ERR Prefix 'ab' overlaps with another provided prefix 'a'. Prefixes for a single client must not overlap.",
      });
    } finally {
      c.destroy();
    }
  });
});

describe('bad input: a million PREFIX options', () => {
  it('is refused with a clear error, the connection and the proxy keep serving', { timeout: 60_000 }, async () => {
    const prefixes = (n: number): Buffer => {
      const parts: Buffer[] = [Buffer.from(`*${3 + 2 * n}\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\nON\r\n`)];
      for (let i = 0; i < n; i++) {
        const p = `p${i}:`;
        parts.push(Buffer.from(`$6\r\nPREFIX\r\n$${p.length}\r\n${p}\r\n`));
      }
      return Buffer.concat(parts);
    };
    // Within the parser's --max-multibulk-length (1M arguments): the proxy's own bound answers.
    const c = await RawClient.connect(p0.port);
    const other = await RawClient.connect(p0.port);
    try {
      c.write(prefixes(500_000));
      expect(plain(await c.one(30_000))).toEqual({ err: 'ERR too many tracking prefixes: this proxy allows at most 1000 per client (--tracking-max-prefixes)' });
      expect(plain(await c.call('CLIENT', 'TRACKINGINFO'))).toEqual(['flags', ['off'], 'redirect', -1, 'prefixes', []]);
      expect(plain(await other.call('PING'))).toBe('PONG');
      // A million: 2M arguments, past the parser's bound — the protocol error, then the close.
      c.write(prefixes(1_000_000));
      expect(plain(await c.one(30_000))).toEqual({ err: expect.stringMatching(/^ERR Protocol error: invalid multibulk length/) });
      await c.waitClosed();
      expect(plain(await other.call('PING'))).toBe('PONG');
      expect(await metric(p0, 'reborn_proxy_tracking_prefixes')).toBeLessThan(1000);
    } finally {
      c.destroy();
      other.destroy();
    }
  });
});

function cli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REBORN_')) delete env[k];
  const argv = [CONFIG_BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { env, cwd: REPO, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

describe('slots that change owner', () => {
  it('a migration (reborn-config slot migrate) and a reassignment without any write invalidate the keys read from the slot', { timeout: 60_000 }, async () => {
    const t = tagOf(1, 'mig');
    const slot = slotOf(t.slice(1, -1));
    const key = `${t}k`;
    const writer = p1.client();
    await writer.set(key, 'before');
    const c = await Frames.resp3(p0.port);
    try {
      expect(await c.call('CLIENT', 'TRACKING', 'ON')).toBe(OK);
      expect(await c.call('GET', key)).toBe(bulk('before'));
      const res = await cli(['slot', 'migrate', String(slot), String(slot), '2']);
      expect(res.code, res.stderr).toBe(0);
      expect(await c.next()).toBe(invalidate(key));
      await waitFor(async () => (await cluster.groups[1]!.master.client().exists(key)) === 1, { what: 'the key in group 2' });
      // Read again (from group 2 now, once this proxy has the slot online there) and tracked there.
      await waitFor(async () => (await cluster.store.loadTopology()).slots[slot]!.state === 'online', { what: 'the slot online' });
      expect(await c.call('GET', key)).toBe(bulk('before'));
      await writer.set(key, 'after');
      expect(await c.next()).toBe(invalidate(key));

      // The slot handed back to group 1 by hand, without moving the key: nothing is written
      // anywhere, yet what the client read came from another group than what it reads now.
      expect(await c.call('GET', key)).toBe(bulk('after'));
      const moved = await metric(p0, 'reborn_proxy_tracking_invalidations_total{reason="slot_moved"}');
      await cluster.store.putSlots([{ id: slot, state: 'online', group: 1 }]);
      expect(await c.next()).toBe(invalidate(key));
      expect(await metric(p0, 'reborn_proxy_tracking_invalidations_total{reason="slot_moved"}')).toBe(moved + 1);
      await waitFor(async () => (await c.call('GET', key)) === '_\r\n', { what: 'proxy 0 reading the slot from group 1' });
      await cluster.store.putSlots([{ id: slot, state: 'online', group: 2 }]);
      expect(await c.next()).toBe(invalidate(key));
    } finally {
      c.close();
      writer.disconnect();
    }
  });
});

describe('metrics', () => {
  it('count tracking clients, keys, invalidations by reason, and listener state per group', async () => {
    const c = await Frames.resp3(p0.port);
    try {
      expect(await c.call('CLIENT', 'TRACKING', 'ON')).toBe(OK);
      expect(await c.call('GET', `${tagOf(1, 'm')}k`)).toBe('_\r\n');
      const m = parsePrometheus(await p0.metrics());
      expect(m.get('reborn_proxy_tracking_clients')).toBeGreaterThanOrEqual(1);
      expect(m.get('reborn_proxy_tracking_keys')).toBeGreaterThanOrEqual(1);
      expect(m.get('reborn_proxy_tracking_listener_up{group="1"}')).toBe(1);
      expect(m.get('reborn_proxy_tracking_listener_up{group="2"}')).toBe(1);
      expect(m.get('reborn_proxy_tracking_invalidations_total{reason="write"}')).toBeGreaterThan(0);
    } finally {
      c.close();
    }
  });
});

describe('a group master replaced in etcd (failover)', () => {
  it('flushes the clients that read keys of that group, not the others; tracking goes on with the new master', { timeout: 60_000 }, async () => {
    const g = cluster.groups[0]!;
    const [oldMaster, replica] = [g.master, g.replicas[0]!];
    const k1 = `${tagOf(1, 'fo')}k`;
    const k2 = `${tagOf(2, 'fo')}k`;
    const writer = p1.client();
    await writer.mset(k1, 'x', k2, 'y');
    await waitFor(async () => (await replica.client().get(k1)) === 'x', { what: 'the replica in sync' });
    const reader1 = await Frames.resp3(p0.port);
    const reader2 = await Frames.resp3(p0.port);
    try {
      for (const r of [reader1, reader2]) expect(await r.call('CLIENT', 'TRACKING', 'ON')).toBe(OK);
      expect(await reader1.call('GET', k1)).toBe(bulk('x'));
      expect(await reader2.call('GET', k2)).toBe(bulk('y'));
      await promoteReplica(cluster, 1, replica, oldMaster);
      expect(await reader1.next()).toBe(FLUSH3);
      // reader2 read from group 2 only: its next push is the one for its own key.
      await writer.set(k2, 'y2');
      expect(await reader2.next()).toBe(invalidate(k2));
      // On the new master: once its listener is live, a read is tracked and invalidated there.
      await waitFor(async () => (await metric(p0, 'reborn_proxy_tracking_listener_up{group="1"}')) === 1, { what: 'the listener on the new master' });
      expect(await reader1.call('GET', k1)).toBe(bulk('x'));
      await replica.client().set(k1, 'on-new-master');
      expect(await reader1.next()).toBe(invalidate(k1));
    } finally {
      reader1.close();
      reader2.close();
      writer.disconnect();
    }
  });
});
