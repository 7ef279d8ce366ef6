/**
 * The proxy's bounds and its behaviour on hostile input, with small limits so they are
 * reached quickly: max clients, argument size and count, pipeline depth, client output
 * buffer, malformed RESP, truncated requests, and a fuzz run. After each, the proxy must be
 * alive and serving other clients.
 */
import net from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, startRedis, stopAll, waitFor, type Cluster, type ProxyProcess, type RedisServer } from '@reborn/testkit';
import {
  RawClient,
  RespError,
  busyScript,
  cmd,
  dataReady,
  initialOwner,
  keysOfGroup,
  parsePrometheus,
  plain,
  rng,
  slotOf,
  within,
  type Reply,
} from './helpers.js';

const LIMITS = ['--max-bulk-length', '1024', '--max-multibulk-length', '16', '--max-pipeline', '8', '--max-client-output', '65536'];

let cluster: Cluster;
/** --max-clients 5 and nothing else: only the max-clients test connects to it. */
let fewClients: ProxyProcess;
/** The other small limits, with the default (large) max clients. */
let bounded: ProxyProcess;
let reference: RedisServer;
let control: Redis;

beforeAll(async () => {
  const [c, ref] = await Promise.all([startCluster({ groups: 2, proxies: 0 }), startRedis()]);
  cluster = c;
  reference = ref;
  [fewClients, bounded] = await Promise.all([
    c.addProxy(['--max-clients', '5']),
    c.addProxy([...LIMITS, '--backend-timeout', '20000']),
  ]);
  await Promise.all([dataReady(fewClients.port), dataReady(bounded.port)]);
  control = bounded.client();
});

afterAll(stopAll);

function text(r: Reply): string {
  if (!(r instanceof RespError)) throw new Error(`expected an error reply, got ${JSON.stringify(plain(r))}`);
  return r.message;
}

async function metric(p: ProxyProcess, series: string): Promise<number> {
  return parsePrometheus(await p.metrics()).get(series) ?? NaN;
}

/** The proxy is alive and serving: a fresh connection can write and read. */
async function serving(p: ProxyProcess = bounded): Promise<void> {
  const c = await RawClient.connect(p.port);
  expect(plain(await c.call('SET', 'bounds:alive', 'yes'))).toBe('OK');
  expect(plain(await c.call('GET', 'bounds:alive'))).toBe('yes');
  c.destroy();
  expect(p.running).toBe(true);
}

/** Sends `input` on a fresh connection; returns the replies and waits for the close. */
async function closesWith(p: ProxyProcess, input: string | Buffer): Promise<Reply[]> {
  const c = await RawClient.connect(p.port);
  c.write(input);
  await c.waitClosed(5000);
  expect(c.error).toBeNull();
  return c.replies;
}

describe('max clients', () => {
  it('the 6th client gets -ERR max number of clients reached; a freed place is reusable', async () => {
    const five = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(fewClients.port)));
    for (const c of five) expect(plain(await c.call('PING'))).toBe('PONG');
    const sixth = await RawClient.connect(fewClients.port);
    sixth.write(cmd('PING'));
    await sixth.waitClosed();
    expect(sixth.replies.map(plain)).toEqual([{ err: 'ERR max number of clients reached' }]);
    // The five are unaffected.
    for (const c of five) expect(plain(await c.call('ECHO', 'still here'))).toBe('still here');
    expect(await metric(fewClients, 'reborn_proxy_rejected_connections_total')).toBeGreaterThanOrEqual(1);
    // Once one leaves, a new client gets in.
    five[0]!.destroy();
    await waitFor(
      async () => {
        const c = await RawClient.connect(fewClients.port);
        try {
          return plain(await c.call('PING')) === 'PONG';
        } finally {
          c.destroy();
        }
      },
      { what: 'a place for a new client' },
    );
    for (const c of five) c.destroy();
  });
});

describe('argument bounds', () => {
  it('an argument over --max-bulk-length gets -ERR Protocol error: invalid bulk length and a close', async () => {
    const ok = await RawClient.connect(bounded.port);
    expect(plain(await ok.call('SET', 'bounds:exact', 'x'.repeat(1024)))).toBe('OK');
    const replies = await closesWith(bounded, cmd('SET', 'bounds:over', 'x'.repeat(1025)));
    expect(replies.map(plain)).toEqual([{ err: 'ERR Protocol error: invalid bulk length' }]);
    // Refused from the header alone, before the bytes arrive.
    const early = await closesWith(bounded, '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000000\r\n');
    expect(early.map(plain)).toEqual([{ err: 'ERR Protocol error: invalid bulk length' }]);
    expect(await control.exists('bounds:over')).toBe(0);
    // Other clients are still served, including the one already connected.
    expect(plain(await ok.call('STRLEN', 'bounds:exact'))).toBe(1024);
    ok.destroy();
    await serving();
  });

  it('more arguments than --max-multibulk-length is a protocol error and a close', async () => {
    const keys = Array.from({ length: 15 }, (_, i) => `bounds:arg${i}`);
    const ok = await RawClient.connect(bounded.port);
    expect(plain(await ok.call('DEL', ...keys))).toBe(0); // 16 arguments: fine
    ok.destroy();
    const replies = await closesWith(bounded, cmd('DEL', ...keys, 'one-too-many'));
    expect(replies).toHaveLength(1);
    expect(text(replies[0]!)).toMatch(/^ERR Protocol error: /);
    await serving();
  });

  it('protocol errors are counted in reborn_proxy_protocol_errors_total', async () => {
    const before = await metric(bounded, 'reborn_proxy_protocol_errors_total');
    await closesWith(bounded, '*abc\r\n');
    await closesWith(bounded, cmd('SET', 'k', 'x'.repeat(2000)));
    await waitFor(async () => (await metric(bounded, 'reborn_proxy_protocol_errors_total')) >= before + 2, {
      what: 'reborn_proxy_protocol_errors_total to count 2 closed connections',
      timeoutMs: 3000,
    });
  });
});

describe('pipeline depth and output buffer', () => {
  it('a client pipelining 10 000 requests (max-pipeline 8) gets every reply, in order', async () => {
    const client = bounded.client();
    const [ka, kb] = [keysOfGroup('bounds:deep-a', 1, 1)[0]!, keysOfGroup('bounds:deep-b', 2, 1)[0]!];
    await client.del(ka, kb);
    const p = client.pipeline();
    for (let i = 0; i < 10_000; i++) {
      if (i % 2 === 0) p.incr(ka);
      else p.rpush(kb, String(i));
    }
    const replies = (await p.exec())!.map(([err, r]) => err ?? r);
    expect(replies).toEqual(Array.from({ length: 10_000 }, (_, i) => Math.floor(i / 2) + 1));
    // The same in one raw write.
    const raw = await RawClient.connect(bounded.port);
    const [kc] = keysOfGroup('bounds:deep-c', 1, 1);
    raw.write(Buffer.concat([cmd('DEL', kc!), ...Array.from({ length: 10_000 }, () => cmd('INCR', kc!))]));
    const got = await raw.next(10_001, 30_000);
    expect(got.map(plain)).toEqual([0, ...Array.from({ length: 10_000 }, (_, i) => i + 1)]);
    raw.destroy();
  });

  it('a client never has more than --max-pipeline requests waiting at the backends', async () => {
    // With the master stalled, requests pile up; a bounded session stops reading at 8.
    const group = cluster.groups[0]!;
    const [key] = keysOfGroup('bounds:stalled', 1, 1);
    const pendingSeries = `reborn_proxy_backend_pending_requests{addr="${group.master.addr}"}`;
    const raw = await RawClient.connect(bounded.port);
    expect(plain(await raw.call('GET', key!))).toBeNull(); // connects the backend
    await group.master.pause();
    try {
      raw.write(Buffer.concat(Array.from({ length: 1000 }, () => cmd('GET', key!))));
      const pending = await waitFor(
        async () => {
          const n = await metric(bounded, pendingSeries);
          return n >= 8 ? n : false;
        },
        { what: 'requests pending at the stalled master' },
      );
      expect(pending).toBeLessThanOrEqual(8);
    } finally {
      group.master.resume();
    }
    const replies = await raw.next(1000, 30_000);
    expect(replies.every((r) => r === null)).toBe(true);
    raw.destroy();
  });

  it('replies ready behind a slow earlier request count against --max-client-output too', async () => {
    const big = 'bounds:behind-big';
    const owner = cluster.groups[initialOwner(slotOf(big), 2) - 1]!;
    await owner.master.client().set(big, Buffer.alloc(100 * 1024, 'b'));
    // A key of the other group, where a 1.5 s script runs first.
    const [slow] = keysOfGroup('bounds:slow:', 3 - initialOwner(slotOf(big), 2), 1);
    const busy = busyScript(1500);
    const c = await RawClient.connect(bounded.port);
    // Seven 100 KB replies (--max-pipeline 8) are ready long before the script's: 700 KB > 64 KB.
    c.write(Buffer.concat([cmd('EVAL', busy, '1', slow!), ...Array.from({ length: 7 }, () => cmd('GET', big))]));
    await c.waitClosed(5000);
    expect(c.replies).toEqual([]);
    await serving();
  });

  it('a client that sends GET bigkey (100 KB) and never reads is cut off; others keep working', async () => {
    const key = 'bounds:big';
    const owner = cluster.groups[initialOwner(slotOf(key), 2) - 1]!;
    await owner.master.client().set(key, Buffer.alloc(100 * 1024, 'b'));
    const rss = 'reborn_proxy_process_resident_memory_bytes';
    const rssBefore = await metric(bounded, rss);
    expect(rssBefore).toBeGreaterThan(0);

    const clients = () => metric(bounded, 'reborn_proxy_clients');
    const worker = bounded.client();
    await worker.ping();
    const baseline = await clients();
    const accepted = await metric(bounded, 'reborn_proxy_connections_total');

    // A socket with no 'data' listener stays paused: after its first few KB it reads nothing.
    const hog = net.connect({ port: bounded.port, host: '127.0.0.1' });
    hog.on('error', () => undefined);
    await new Promise<void>((resolve) => hog.once('connect', () => resolve()));
    const asked = 2000 * 100 * 1024; // 200 MB of replies
    hog.write(Buffer.concat(Array.from({ length: 2000 }, () => cmd('GET', key))));
    // (A counter, not the clients gauge: a quick disconnect could hide between two scrapes.)
    await waitFor(async () => (await metric(bounded, 'reborn_proxy_connections_total')) > accepted, {
      what: 'the proxy to accept the hog',
    });

    // Meanwhile another client keeps working, until the proxy has dropped the hog. (The hog
    // cannot see its own close: a paused socket does not read the FIN.)
    let ops = 0;
    let hogGone = false;
    const work = (async () => {
      while (!hogGone || ops < 20) {
        await worker.set('bounds:worker', String(ops));
        expect(await worker.get('bounds:worker')).toBe(String(ops));
        ops++;
      }
    })().then(
      () => null,
      (err: unknown) => err,
    );
    try {
      await waitFor(async () => (await clients()) === baseline, {
        what: 'the proxy to disconnect a client that does not read',
        timeoutMs: 30_000,
      });
    } finally {
      hogGone = true;
    }
    const workError = await work;
    if (workError) throw workError;

    // Reading now, the hog gets what was buffered on the way and then the close: far less
    // than the 200 MB it asked for.
    let received = 0;
    hog.on('data', (d: Buffer) => (received += d.length));
    await within(new Promise((resolve) => hog.once('close', resolve)), 10_000, 'the hog to see its close');
    expect(received).toBeLessThan(asked / 10);

    const rssAfter = await metric(bounded, rss);
    // A proxy that kept what the hog asked for would have grown by all of it. (Transient
    // garbage from replies read and dropped does show up in RSS, hence the loose bound.)
    expect(rssAfter - rssBefore).toBeLessThan(asked);
    await serving();
  });
});

describe('malformed and truncated input', () => {
  const cases: [string, string][] = [
    ['*abc\r\n', 'ERR Protocol error: invalid multibulk length'],
    ['*1\r\n+x\r\n', "ERR Protocol error: expected '$', got '+'"],
    ['*1\r\n$-5\r\n', 'ERR Protocol error: invalid bulk length'],
    ['*2\r\n$3\r\nGET\r\n$x\r\n', 'ERR Protocol error: invalid bulk length'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → -${expected} and a close, as redis does`, async () => {
      const viaProxy = await closesWith(bounded, input);
      const direct = await RawClient.connect(reference.port);
      direct.write(input);
      await direct.waitClosed();
      expect(viaProxy.map(plain)).toEqual([{ err: expected }]);
      expect(viaProxy.map(plain)).toEqual(direct.replies.map(plain));
      await serving();
    });
  }

  it('a negative multibulk count is an empty request, skipped as redis skips it', async () => {
    const c = await RawClient.connect(bounded.port);
    c.write('*-10\r\n');
    expect(plain(await c.call('PING'))).toBe('PONG');
    c.destroy();
  });

  it('after a protocol error the connection is closed even for a client that keeps writing and never closes', async () => {
    const c = await RawClient.connect(bounded.port);
    let writing = true;
    c.socket.on('close', () => (writing = false));
    c.write('\x00');
    // Keeps sending without ever reading the socket's end or closing, as a confused client might.
    const pump = setInterval(() => {
      if (writing) c.socket.write('x'.repeat(16 * 1024));
    }, 5);
    try {
      await c.waitClosed(10_000);
      // An inline request that never ends: refused past the inline limit, as redis does.
      expect(c.replies.map(plain)).toEqual([{ err: 'ERR Protocol error: too big inline request' }]);
    } finally {
      clearInterval(pump);
      c.destroy();
    }
    await serving();
  });

  it('replies to the requests before the malformed one are still sent, in order', async () => {
    const replies = await closesWith(bounded, Buffer.concat([cmd('SET', 'bounds:before', '1'), cmd('GET', 'bounds:before'), Buffer.from('*x\r\n')]));
    expect(replies.map(plain)).toEqual(['OK', '1', { err: 'ERR Protocol error: invalid multibulk length' }]);
  });

  it('a truncated request and then a close leave the proxy fine (and run nothing)', async () => {
    for (const cut of ['*3\r\n$3\r\nSET\r\n$12\r\nbounds:trunc\r\n$5\r\nab', '*3\r\n$3\r\nSET\r\n$1', '*3\r', 'SET bounds:trunc v']) {
      const c = await RawClient.connect(bounded.port);
      c.write(cut);
      c.destroy();
      await c.closedPromise;
    }
    await serving();
    expect(await control.exists('bounds:trunc')).toBe(0);
  });

  it('fuzz: 300 random blobs and 300 mutated requests, each answered or closed; the proxy keeps serving', async () => {
    const random = rng(20240601);
    const int = (n: number) => Math.floor(random() * n);
    const ALPHABET = Buffer.from('*$:+-\r\n0123456789 "\'\\xabcSETGETMGETPINGECHOHSET{}');
    const blobs: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const len = 1 + int(200);
      const pool = i % 2 === 0 ? null : ALPHABET;
      blobs.push(Buffer.from(Array.from({ length: len }, () => (pool ? pool[int(pool.length)]! : int(256)))));
    }
    const valid = (): Buffer => {
      const k = `fuzz:${int(50)}`;
      const choices = [
        () => cmd('SET', k, 'v'.repeat(int(40))),
        () => cmd('GET', k),
        () => cmd('MGET', k, `fuzz:${int(50)}`, `fuzz:${int(50)}`),
        () => cmd('HSET', `fuzz:h${int(5)}`, 'f', String(int(100))),
        () => cmd('ECHO', 'hello\r\nworld'),
        () => cmd('PING'),
        () => cmd('DEL', k, `fuzz:${int(50)}`),
        () => Buffer.from(`SET ${k} "quoted value"\r\n`),
        () => Buffer.concat([cmd('INCR', `fuzz:n${int(5)}`), cmd('LPUSH', `fuzz:l${int(5)}`, 'x')]),
      ];
      return choices[int(choices.length)]!();
    };
    for (let i = 0; i < 300; i++) {
      const b = [...valid()];
      for (let m = 1 + int(3); m > 0; m--) {
        const at = int(b.length);
        switch (int(6)) {
          case 0:
            b[at] = int(256);
            break;
          case 1:
            b.splice(at, 0, int(256));
            break;
          case 2:
            b.splice(at, 1);
            break;
          case 3:
            b.length = at;
            break;
          case 4: {
            const digit = b.findIndex((x, j) => j >= at && x >= 0x30 && x <= 0x39);
            if (digit >= 0) b[digit] = 0x30 + int(10);
            break;
          }
          default:
            b.splice(at, 0, ...b.slice(0, at));
        }
      }
      blobs.push(Buffer.from(b));
    }

    const failures: string[] = [];
    const one = async (blob: Buffer): Promise<void> => {
      const c = await RawClient.connect(bounded.port);
      c.write(blob);
      c.end(); // no more input: the proxy must answer what it can and close
      try {
        await c.waitClosed(2000);
      } catch {
        failures.push(`no close within 2 s after ${JSON.stringify(blob.toString('latin1'))}`);
        c.destroy();
        return;
      }
      if (c.error) failures.push(`garbage reply (${c.error.message}) to ${JSON.stringify(blob.toString('latin1'))}`);
      if (c.partialBytes > 0) failures.push(`a reply cut short after ${JSON.stringify(blob.toString('latin1'))}`);
    };
    for (let i = 0; i < blobs.length; i += 20) {
      await Promise.all(blobs.slice(i, i + 20).map(one));
      expect(await within(control.ping(), 2000, 'PING between fuzz batches')).toBe('PONG');
    }
    expect(failures).toEqual([]);
    await serving();
    expect(bounded.running).toBe(true);
  });
});
