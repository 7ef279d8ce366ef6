/**
 * A client's commands pipelined behind one of its requests that the proxy must hold (its
 * slot is in a migration barrier) wait for it and then run in order — and each is judged when
 * it runs, as Redis would judge it there: a MULTI, SUBSCRIBE, CLIENT REPLY or QUIT waiting
 * ahead of it decides whether it is queued, refused, silenced or not run at all; a WATCH
 * ahead of it still guards its EXEC even if the client half-closed meanwhile.
 *
 * Each test holds a slot by putting it in pre_migrate by hand (no barrier action: the proxy
 * just holds), sends its whole pipeline in one write, checks that nothing was answered yet,
 * then puts the slot back online.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { startCluster, type Cluster } from '@reborn/testkit';
import { RawClient, cmd, initialOwner, keysInSlots, plain } from './helpers.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1 });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

const HELD = 'held-by-barrier';

/** Runs `body` while the slot of HELD is held in pre_migrate; releases it after `body`'s send. */
async function withHeldSlot(pipeline: Buffer, body: (c: RawClient, release: () => Promise<void>) => Promise<void>): Promise<void> {
  const slot = keySlot(Buffer.from(HELD));
  const owner = initialOwner(slot, 2);
  await cluster.store.putSlots([{ id: slot, state: 'pre_migrate', group: owner, from: owner, to: 3 - owner }]);
  const release = async (): Promise<void> => {
    await cluster.store.putSlots([{ id: slot, state: 'online', group: owner }]);
  };
  const c = await RawClient.connect(cluster.proxies[0]!.port);
  try {
    c.write(pipeline);
    await new Promise((r) => setTimeout(r, 200)); // all parsed: the GET held, the rest parked behind it
    expect(c.replies).toEqual([]);
    await body(c, release);
  } finally {
    c.destroy();
    await release();
  }
}

/** Every byte redis-server itself sends for `pipeline` until it closes the connection. */
async function directBytes(pipeline: Buffer): Promise<Buffer> {
  const socketBytes: Buffer[] = [];
  const direct = await RawClient.connect(cluster.groups[0]!.master.port);
  direct.socket.on('data', (d: Buffer) => socketBytes.push(d));
  direct.write(pipeline);
  await direct.closedPromise;
  return Buffer.concat(socketBytes);
}

describe('commands behind a held request', () => {
  it('MULTI queues what follows it, a bad command dooms it, CLIENT REPLY SKIP silences', async () => {
    const r = cluster.proxies[0]!.client();
    await r.del('{tx}h');
    r.disconnect();
    const pipeline = Buffer.concat([
      cmd('GET', HELD),
      cmd('MULTI'),
      cmd('SET', '{tx}h', '1'),
      cmd('INCR', '{tx}h'),
      cmd('EXEC'),
      cmd('MULTI'),
      cmd('SET', '{tx}h', '5'),
      cmd('NOSUCHCMD'),
      cmd('EXEC'),
      cmd('GET', '{tx}h'),
      cmd('CLIENT', 'REPLY', 'SKIP'),
      cmd('GET', '{tx}h'),
      cmd('PING'),
    ]);
    await withHeldSlot(pipeline, async (c, release) => {
      await release();
      const replies = (await c.next(11)).map(plain);
      expect(replies.slice(0, 7)).toEqual([null, 'OK', 'QUEUED', 'QUEUED', ['OK', 2], 'OK', 'QUEUED']);
      expect(replies[7]).toEqual({ err: expect.stringMatching(/^ERR unknown command 'NOSUCHCMD'/) });
      expect(replies[8]).toEqual({ err: expect.stringMatching(/^EXECABORT/) });
      expect(replies[9]).toBe('2');
      // The GET after SKIP is not answered; PING is.
      expect(replies[10]).toBe('PONG');
      await new Promise((r) => setTimeout(r, 100));
      expect(c.replies.length).toBe(11);
    });
  });

  it('SUBSCRIBE makes the commands after it refused, and PING answered in its subscribed form', async () => {
    const [other] = keysInSlots('free:', 512, 1023, 1);
    const pipeline = Buffer.concat([
      cmd('GET', HELD),
      cmd('SUBSCRIBE', 'behind-held'),
      cmd('GET', other!),
      cmd('ECHO', 'hi'),
      cmd('MULTI'),
      cmd('PING'),
      cmd('UNSUBSCRIBE'),
      cmd('GET', other!),
    ]);
    // The same pipeline to redis itself gives the answers to expect.
    const direct = await RawClient.connect(cluster.groups[0]!.master.port);
    direct.write(pipeline);
    const expected = await direct.next(8);
    direct.destroy();
    expect(plain(expected[2]!)).toEqual({ err: expect.stringMatching(/^ERR Can't execute 'get'/) });
    await withHeldSlot(pipeline, async (c, release) => {
      await release();
      expect(await c.next(8)).toEqual(expected);
    });
  });

  it('nothing sent after a QUIT runs', async () => {
    const r = cluster.proxies[0]!.client();
    await r.del('after-quit');
    const pipeline = Buffer.concat([cmd('GET', HELD), cmd('QUIT'), cmd('SET', 'after-quit', '1')]);
    await withHeldSlot(pipeline, async (c, release) => {
      await release();
      await c.closedPromise;
      expect(c.replies.map(plain)).toEqual([null, 'OK']);
    });
    expect(await r.exists('after-quit')).toBe(0);
    r.disconnect();
  });

  it('a CLIENT REPLY OFF ahead of a protocol error silences it, as in redis', async () => {
    const pipeline = Buffer.concat([cmd('GET', HELD), cmd('CLIENT', 'REPLY', 'OFF'), Buffer.from('*1\r\n$abc\r\n')]);
    const expected = await directBytes(pipeline);
    expect(expected.toString('latin1')).toBe('$-1\r\n');
    await withHeldSlot(pipeline, async (c, release) => {
      await release();
      await c.closedPromise;
      expect(c.replies.map(plain)).toEqual([null]);
      expect(c.received).toBe(expected.length);
    });
  });

  it('a WATCH still guards an EXEC parked behind a held request when the client half-closes', async () => {
    const key = '{w}watched';
    const r = cluster.proxies[0]!.client();
    await r.set(key, 'original');
    const watcher = await RawClient.connect(cluster.proxies[0]!.port);
    try {
      expect(plain(await watcher.call('WATCH', key))).toBe('OK');
      await r.set(key, 'changed'); // the watched key changes: the EXEC must answer nil
      const slot = keySlot(Buffer.from(HELD));
      const owner = initialOwner(slot, 2);
      await cluster.store.putSlots([{ id: slot, state: 'pre_migrate', group: owner, from: owner, to: 3 - owner }]);
      try {
        watcher.write(Buffer.concat([cmd('GET', HELD), cmd('MULTI'), cmd('SET', key, 'mine'), cmd('EXEC')]));
        await new Promise((resolve) => setTimeout(resolve, 200));
        watcher.end(); // half-close: the requests are sent, the client waits for their replies
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(watcher.replies.length).toBe(1); // only the WATCH's OK so far
      } finally {
        await cluster.store.putSlots([{ id: slot, state: 'online', group: owner }]);
      }
      await watcher.closedPromise;
      expect(watcher.replies.slice(1).map(plain)).toEqual([null, 'OK', 'QUEUED', null]);
      expect(await r.get(key)).toBe('changed');
    } finally {
      watcher.destroy();
      r.disconnect();
    }
  });
});
