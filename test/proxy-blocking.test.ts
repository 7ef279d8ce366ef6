/**
 * Blocking commands through the proxy (BLPOP, BRPOP, BLMOVE, BZPOPMIN, BLMPOP, XREAD BLOCK,
 * XREADGROUP BLOCK): timeouts, wake-ups by writes through another proxy, many at once, a
 * client that goes away while blocked, the --max-blocked cap, other clients unaffected, and a
 * migration of the blocked key's slot.
 *
 * "Blocked" is observed where it happens: `blocked_clients` in INFO of the masters, so a
 * wake-up test never pushes before the command really waits in redis (a push that came first
 * would be popped at once and prove nothing).
 */
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MigrationRunner, createMigration } from '@reborn/config';
import { startCluster, startRedis, stopAll, waitFor, type Cluster, type ProxyProcess } from '@reborn/testkit';
import { RawClient, RespError, cmd, dataReady, initialOwner, keysOfGroup, masterClients, plain, slotOf, within, type Reply } from './helpers.js';

const CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot";
/** A reply that does not come within this is a hang, not a slow answer. */
const HANG_MS = 10_000;

let cluster: Cluster;
/** Two ordinary proxies (a blocked client on one, the writer on the other) and one with --max-blocked 3. */
let pa: ProxyProcess;
let pb: ProxyProcess;
let capped: ProxyProcess;
let writer: Redis;
let masters: Redis[];
/** Raw clients opened by a test, destroyed after it. */
const opened: RawClient[] = [];

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 0 });
  [pa, pb, capped] = await Promise.all([cluster.addProxy(), cluster.addProxy(), cluster.addProxy(['--max-blocked', '3'])]);
  await Promise.all([pa, pb, capped].map((p) => dataReady(p.port)));
  writer = pb.client();
  masters = masterClients(cluster);
});

afterEach(async () => {
  for (const c of opened.splice(0)) c.destroy();
  // Nothing a test blocked stays blocked in redis once its clients are gone.
  await waitFor(async () => (await blockedPerMaster()).every((n) => n === 0), { what: 'no blocked clients left on the masters' });
});

afterAll(stopAll);

async function connect(p: ProxyProcess = pa): Promise<RawClient> {
  const c = await RawClient.connect(p.port);
  opened.push(c);
  return c;
}

/** `blocked_clients` of each master (index i = group i + 1). */
async function blockedPerMaster(): Promise<number[]> {
  return Promise.all(
    masters.map(async (m) => {
      const info = await m.info('clients');
      const match = /^blocked_clients:(\d+)/m.exec(info);
      if (!match) throw new Error(`no blocked_clients in INFO clients:\n${info}`);
      return Number(match[1]);
    }),
  );
}

/** Waits until exactly `n` clients are blocked over all masters (and per master, when given). */
async function waitBlocked(n: number, perMaster?: number[]): Promise<void> {
  await waitFor(
    async () => {
      const now = await blockedPerMaster();
      const total = now.reduce((a, b) => a + b, 0);
      return total === n && (perMaster === undefined || now.every((v, i) => v === perMaster[i]));
    },
    { what: `${n} blocked clients on the masters${perMaster ? ` (${perMaster.join(', ')})` : ''}` },
  );
}

/** Sends a command and returns the promise of its reply (bounded by the hang detector). */
function send(c: RawClient, ...args: (string | number)[]): Promise<Reply> {
  c.write(cmd(...args));
  return c.one(HANG_MS);
}

function errorText(r: Reply): string {
  if (!(r instanceof RespError)) throw new Error(`expected an error reply, got ${JSON.stringify(plain(r))}`);
  return r.message;
}

describe('timeouts and wake-ups', () => {
  it('BLPOP on an empty list answers nil after its timeout', async () => {
    const c = await connect();
    const started = performance.now();
    const r = await send(c, 'BLPOP', 'bl:timeout', '1');
    const elapsed = performance.now() - started;
    expect(r).toBeNull();
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    // Fractional timeouts too, and the connection serves the next command.
    const t2 = performance.now();
    expect(await send(c, 'BRPOP', 'bl:timeout', '0.3')).toBeNull();
    expect(performance.now() - t2).toBeGreaterThanOrEqual(300);
    expect(plain(await send(c, 'PING'))).toBe('PONG');
  });

  it('back-to-back blocking commands reuse one dedicated backend connection (no connect per BLPOP)', async () => {
    const c = await connect();
    const key = 'bl:reuse';
    const connectionsReceived = async (): Promise<number> => {
      const total = await Promise.all(masters.map(async (m) => Number(/^total_connections_received:(\d+)/m.exec(await m.info('stats'))![1])));
      return total.reduce((a, b) => a + b, 0);
    };
    await send(c, 'BLPOP', key, '0.01'); // the first one opens the connection
    const before = await connectionsReceived();
    for (let i = 0; i < 20; i++) {
      await writer.rpush(key, String(i));
      expect(plain(await send(c, 'BLPOP', key, '1'))).toEqual([key, String(i)]);
      expect(await send(c, 'BLPOP', key, '0.01')).toBeNull();
    }
    // 40 blocking commands: the writer's and masterClients' own connections already exist.
    expect((await connectionsReceived()) - before).toBe(0);
    const described = JSON.parse(await pa.adminGet('/api/proxy')) as { blocking: { idleConnections: number } };
    expect(described.blocking.idleConnections).toBeGreaterThanOrEqual(1);
  });

  it('BLPOP on one proxy is woken by an RPUSH through another proxy', async () => {
    const c = await connect(pa);
    const reply = send(c, 'BLPOP', 'bl:wake', '20');
    await waitBlocked(1);
    expect(await writer.rpush('bl:wake', 'v1')).toBe(1);
    expect(plain(await reply)).toEqual(['bl:wake', 'v1']);
    expect(await writer.llen('bl:wake')).toBe(0);
  });

  it('BRPOP on two keys of one slot pops the tail of the first non-empty one', async () => {
    const c = await connect();
    const reply = send(c, 'BRPOP', '{br}a', '{br}b', '20');
    await waitBlocked(1);
    expect(await writer.rpush('{br}b', 'x', 'y')).toBe(2);
    expect(plain(await reply)).toEqual(['{br}b', 'y']);
    expect(await writer.lrange('{br}b', 0, -1)).toEqual(['x']);
  });

  it('BLMOVE within one slot (hash tags) moves the element; across slots it is CROSSSLOT at once', async () => {
    const c = await connect();
    const reply = send(c, 'BLMOVE', '{mv}src', '{mv}dst', 'RIGHT', 'LEFT', '20');
    await waitBlocked(1);
    await writer.rpush('{mv}src', 'a', 'b');
    expect(plain(await reply)).toEqual('b');
    expect(await writer.lrange('{mv}src', 0, -1)).toEqual(['a']);
    expect(await writer.lrange('{mv}dst', 0, -1)).toEqual(['b']);

    expect(slotOf('mv:src')).not.toBe(slotOf('mv:dst'));
    const cross = await send(c, 'BLMOVE', 'mv:src', 'mv:dst', 'LEFT', 'LEFT', '0');
    expect(errorText(cross)).toBe(CROSSSLOT);
    const cross2 = await send(c, 'BLPOP', 'mv:src', 'mv:dst', '0');
    expect(errorText(cross2)).toBe(CROSSSLOT);
    expect(await blockedPerMaster()).toEqual([0, 0]);
  });

  it('BZPOPMIN is woken by a ZADD and pops the lowest score', async () => {
    const c = await connect();
    const reply = send(c, 'BZPOPMIN', 'bz:1', '20');
    await waitBlocked(1);
    await writer.zadd('bz:1', 2, 'two', 1, 'one');
    expect(plain(await reply)).toEqual(['bz:1', 'one', '1']);
    expect(await writer.zrange('bz:1', 0, -1)).toEqual(['two']);
  });

  it('BLMPOP pops COUNT elements from the first non-empty list', async () => {
    const c = await connect();
    const reply = send(c, 'BLMPOP', '20', '2', '{lm}a', '{lm}b', 'LEFT', 'COUNT', '2');
    await waitBlocked(1);
    await writer.rpush('{lm}b', 'x', 'y', 'z');
    expect(plain(await reply)).toEqual(['{lm}b', ['x', 'y']]);
    expect(await writer.lrange('{lm}b', 0, -1)).toEqual(['z']);
  });

  it('XREAD BLOCK is woken by an XADD through another proxy', async () => {
    const c = await connect();
    const reply = send(c, 'XREAD', 'BLOCK', '20000', 'STREAMS', 'xs:1', '$');
    await waitBlocked(1);
    const id = await writer.xadd('xs:1', '*', 'f', 'v');
    expect(plain(await reply)).toEqual([['xs:1', [[id, ['f', 'v']]]]]);
    // XREAD without BLOCK is an ordinary command: answered at once, nothing blocked.
    expect(plain(await send(c, 'XREAD', 'COUNT', '1', 'STREAMS', 'xs:1', '0'))).toEqual([['xs:1', [[id, ['f', 'v']]]]]);
  });

  it('XREADGROUP BLOCK is woken by an XADD and the entry becomes pending for the consumer', async () => {
    await writer.xgroup('CREATE', 'xg:1', 'g', '$', 'MKSTREAM');
    const c = await connect();
    const reply = send(c, 'XREADGROUP', 'GROUP', 'g', 'c1', 'COUNT', '1', 'BLOCK', '20000', 'STREAMS', 'xg:1', '>');
    await waitBlocked(1);
    const id = await writer.xadd('xg:1', '*', 'k', 'v');
    expect(plain(await reply)).toEqual([['xg:1', [[id, ['k', 'v']]]]]);
    const pending = (await writer.xpending('xg:1', 'g')) as [number, string, string, [string, string][]];
    expect(pending[0]).toBe(1);
    expect(pending[3]).toEqual([['c1', '1']]);
  });

  it('50 concurrent BLPOPs on 50 lists (both groups, both proxies) are all woken', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `many:${i}`);
    expect(new Set(keys.map((k) => initialOwner(slotOf(k), 2))).size).toBe(2);
    const clients = await Promise.all(keys.map((_, i) => connect(i % 2 === 0 ? pa : pb)));
    const replies = clients.map((c, i) => send(c, 'BLPOP', keys[i]!, '30'));
    await waitBlocked(50);
    const p = writer.pipeline();
    keys.forEach((k, i) => p.rpush(k, `v${i}`));
    expect(((await p.exec()) ?? []).map(([e, v]) => e ?? v)).toEqual(keys.map(() => 1));
    const got = await within(Promise.all(replies), HANG_MS, '50 BLPOP replies');
    expect(got.map(plain)).toEqual(keys.map((k, i) => [k, `v${i}`]));
    expect(await writer.exists(...keys)).toBe(0);
  });
});

describe('clients that go away, the cap, and everyone else', () => {
  it('a client that disconnects while blocked does not consume the element pushed afterwards', async () => {
    const c = await connect();
    c.write(cmd('BLPOP', 'gone:1', '0'));
    await waitBlocked(1);
    c.destroy();
    // The proxy drops the dedicated backend connection: redis no longer has it blocked.
    await waitBlocked(0);
    expect(await writer.rpush('gone:1', 'kept')).toBe(1);
    // A round trip on each master after the push: nothing popped it meanwhile.
    await Promise.all(masters.map((m) => m.ping()));
    expect(await writer.llen('gone:1')).toBe(1);
    expect(await writer.lrange('gone:1', 0, -1)).toEqual(['kept']);
  });

  it('--max-blocked 3: the 4th concurrent blocking command gets an error; a freed place is reusable', async () => {
    const three = await Promise.all([0, 1, 2].map(() => connect(capped)));
    const replies = three.map((c, i) => send(c, 'BLPOP', `cap:${i}`, '0'));
    await waitBlocked(3);
    const fourth = await connect(capped);
    expect(errorText(await send(fourth, 'BLPOP', 'cap:3', '0'))).toMatch(/^ERR too many blocked clients/);
    expect(errorText(await send(fourth, 'XREAD', 'BLOCK', '0', 'STREAMS', 'cap:x', '$'))).toMatch(/^ERR too many blocked clients/);
    // Ordinary commands are not counted.
    expect(plain(await send(fourth, 'SET', 'cap:plain', 'v'))).toBe('OK');
    expect(plain(await send(fourth, 'GET', 'cap:plain'))).toBe('v');
    expect(await blockedPerMaster().then((b) => b.reduce((x, y) => x + y, 0))).toBe(3);

    // One is served: its place is free again.
    await writer.rpush('cap:0', 'one');
    expect(plain(await replies[0]!)).toEqual(['cap:0', 'one']);
    const again = send(fourth, 'BLPOP', 'cap:3', '0');
    await waitBlocked(3);
    await writer.rpush('cap:1', 'a');
    await writer.rpush('cap:2', 'b');
    await writer.rpush('cap:3', 'c');
    expect((await Promise.all([replies[1]!, replies[2]!, again])).map(plain)).toEqual([
      ['cap:1', 'a'],
      ['cap:2', 'b'],
      ['cap:3', 'c'],
    ]);
  });

  it("other clients' pipelined commands keep flowing while 20 clients are blocked", async () => {
    const keys = [...keysOfGroup('flow1:', 1, 50), ...keysOfGroup('flow2:', 2, 50)];
    await writer.mset(...keys.flatMap((k) => [k, `val-${k}`]));
    const blocked = await Promise.all(Array.from({ length: 20 }, () => connect(pa)));
    // Each on a list of its own, in both groups.
    const blockedReplies = blocked.map((c, i) => send(c, 'BLPOP', `flow:block:${i}`, '0'));
    await waitBlocked(20);
    // Several clients, so that every shared backend connection of the pool is used.
    const others = await Promise.all(Array.from({ length: 4 }, () => connect(pa)));
    for (const o of others) o.write(Buffer.concat([...keys.map((k) => cmd('GET', k)), cmd('SET', 'flow:w', 'x'), cmd('INCR', 'flow:n')]));
    const all = await within(Promise.all(others.map((o) => o.next(keys.length + 2, HANG_MS))), HANG_MS, 'pipelined GETs while 20 are blocked');
    for (const replies of all) {
      expect(replies.slice(0, keys.length).map(plain)).toEqual(keys.map((k) => `val-${k}`));
      expect(plain(replies[keys.length]!)).toBe('OK');
    }
    expect(all.map((r) => plain(r[keys.length + 1]!)).sort()).toEqual([1, 2, 3, 4]);
    // The 20 are still blocked, and each gets its own element.
    expect(await blockedPerMaster().then((b) => b.reduce((x, y) => x + y, 0))).toBe(20);
    const p = writer.pipeline();
    for (let i = 0; i < 20; i++) p.rpush(`flow:block:${i}`, `e${i}`);
    await p.exec();
    expect((await within(Promise.all(blockedReplies), HANG_MS, '20 BLPOP replies')).map(plain)).toEqual(
      Array.from({ length: 20 }, (_, i) => [`flow:block:${i}`, `e${i}`]),
    );
  });

  it('commands a client pipelines behind its own BLPOP run after it, as in redis', async () => {
    const reference = await startRedis();
    try {
      const run = async (port: number): Promise<unknown[]> => {
        const c = await RawClient.connect(port);
        try {
          c.write(Buffer.concat([cmd('BLPOP', 'order:1', '1'), cmd('RPUSH', 'order:1', 'x'), cmd('LLEN', 'order:1')]));
          return (await c.next(3, HANG_MS)).map(plain);
        } finally {
          c.destroy();
        }
      };
      const want = await run(reference.port);
      expect(want).toEqual([null, 1, 1]);
      expect(await run(pa.port)).toEqual(want);
    } finally {
      await reference.stop();
    }
  });
});

describe('migration of a blocked key', () => {
  it('a BLPOP blocked on a migrated slot answers nil (as a timeout); the next BLPOP is served by the new group', { timeout: 60_000 }, async () => {
    const [key] = keysOfGroup('migblock:', 1, 1);
    const slot = slotOf(key!);
    const c = await connect(pa);
    c.write(cmd('BLPOP', key!, '0')); // no timeout: only the migration can end it
    const reply = c.one(30_000);
    await waitBlocked(1, [1, 0]);

    const task = await createMigration(cluster.store, { first: slot, last: slot, to: 2 });
    const runner = new MigrationRunner({ store: cluster.store, logger: pino({ level: 'silent' }) });
    const [end, r] = await within(Promise.all([runner.runTask(task.id), reply]), 30_000, 'the migration and the BLPOP reply');
    expect(end.state, `migration ended ${end.state}: ${end.error}`).toBe('done');
    expect(r).toBeNull();
    expect((await cluster.store.listSlots())[slot]).toMatchObject({ state: 'online', group: 2 });

    // Issued after the migration: blocks in group 2 and is woken by a push through the other proxy.
    const next = send(c, 'BLPOP', key!, '20');
    await waitBlocked(1, [0, 1]);
    await writer.rpush(key!, 'after');
    expect(plain(await next)).toEqual([key, 'after']);
    expect(await masters[0]!.exists(key!)).toBe(0);
    expect(await masters[1]!.exists(key!)).toBe(0);
    // The proxy that had the blocked client still serves it normally.
    expect(plain(await send(c, 'RPUSH', key!, 'z'))).toBe(1);
    expect(await masters[1]!.lrange(key!, 0, -1)).toEqual(['z']);
  });
});
