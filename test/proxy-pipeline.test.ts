/**
 * Pipelining through the proxy: replies come back in request order with the right values,
 * for one deep ioredis pipeline over both groups, for several clients pipelining at once, and
 * for raw bytes carrying a thousand commands in a single write.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopAll, type Cluster } from '@reborn/testkit';
import { RawClient, cmd, dataReady, groupsHolding, initialOwner, keysOfGroup, masterClients, plain, rng, slotOf } from './helpers.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1 });
  await dataReady(cluster.proxies[0]!.port);
});

afterAll(stopAll);

type Op = { args: string[]; expect: unknown };

/**
 * A deterministic mix of SET/GET/INCR/LPUSH/HSET/DEL/MGET over keys of both groups, each with
 * the reply a redis would give, computed from a model of the keyspace. Keys are typed by
 * name (s: strings, c: counters, l: lists, h: hashes) so no reply is a WRONGTYPE error.
 */
function workload(ns: string, count: number, seed: number): Op[] {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const keys = (kind: string) => [...keysOfGroup(`${ns}:${kind}:a`, 1, 10), ...keysOfGroup(`${ns}:${kind}:b`, 2, 10)];
  const strings = keys('s');
  const counters = keys('c');
  const lists = keys('l');
  const hashes = keys('h');
  const str = new Map<string, string>();
  const num = new Map<string, number>();
  const len = new Map<string, number>();
  const fields = new Map<string, Set<string>>();
  const ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    if (r < 0.2) {
      const k = pick(strings);
      const v = `v${i}-${'x'.repeat(i % 40)}`;
      str.set(k, v);
      ops.push({ args: ['SET', k, v], expect: 'OK' });
    } else if (r < 0.4) {
      const k = pick(strings);
      ops.push({ args: ['GET', k], expect: str.get(k) ?? null });
    } else if (r < 0.55) {
      const k = pick(counters);
      const n = (num.get(k) ?? 0) + 1;
      num.set(k, n);
      ops.push({ args: ['INCR', k], expect: n });
    } else if (r < 0.65) {
      const k = pick(lists);
      const n = (len.get(k) ?? 0) + 1;
      len.set(k, n);
      ops.push({ args: ['LPUSH', k, `e${i}`], expect: n });
    } else if (r < 0.75) {
      const k = pick(hashes);
      const f = `f${Math.floor(random() * 5)}`;
      const set = fields.get(k) ?? new Set<string>();
      fields.set(k, set);
      const added = set.has(f) ? 0 : 1;
      set.add(f);
      ops.push({ args: ['HSET', k, f, String(i)], expect: added });
    } else if (r < 0.85) {
      const k = pick([...strings, ...counters, ...lists, ...hashes]);
      const existed = str.delete(k) || num.delete(k) || len.delete(k) || fields.delete(k);
      ops.push({ args: ['DEL', k], expect: existed ? 1 : 0 });
    } else {
      const ks = Array.from({ length: 1 + Math.floor(random() * 6) }, () => pick(strings));
      ops.push({ args: ['MGET', ...ks], expect: ks.map((k) => str.get(k) ?? null) });
    }
  }
  // Finally read back every key's state, so a reply that went to the wrong key shows up.
  for (const k of strings) ops.push({ args: ['GET', k], expect: str.get(k) ?? null });
  for (const k of counters) ops.push({ args: ['GET', k], expect: num.has(k) ? String(num.get(k)) : null });
  for (const k of lists) ops.push({ args: ['LLEN', k], expect: len.get(k) ?? 0 });
  for (const k of hashes) ops.push({ args: ['HLEN', k], expect: fields.get(k)?.size ?? 0 });
  return ops;
}

async function runPipelined(client: Redis, ops: Op[]): Promise<unknown[]> {
  const p = client.pipeline();
  for (const op of ops) p.call(op.args[0]!, ...op.args.slice(1));
  const replies = await p.exec();
  return (replies ?? []).map(([err, r]) => (err ? { err: err.message } : r));
}

/** Compares replies and names the first mismatch (a 10 000-element diff is unreadable). */
function expectReplies(ops: Op[], replies: unknown[]): void {
  expect(replies).toHaveLength(ops.length);
  const bad = ops.findIndex((op, i) => JSON.stringify(replies[i]) !== JSON.stringify(op.expect));
  if (bad >= 0) {
    expect({ index: bad, command: ops[bad]!.args.join(' '), reply: replies[bad] }).toEqual({
      index: bad,
      command: ops[bad]!.args.join(' '),
      reply: ops[bad]!.expect,
    });
  }
}

describe('pipelining', () => {
  it('10 000 mixed commands over both groups in one pipeline: in order, right values', async () => {
    const client = cluster.proxies[0]!.client();
    const ops = workload('pipe1', 10_000, 1);
    const replies = await runPipelined(client, ops);
    expectReplies(ops, replies);
    // The pipeline really touched both groups.
    const masters = masterClients(cluster);
    const counterKeys = ops.filter((o) => o.args[0] === 'INCR').map((o) => o.args[1]!);
    const groups = new Set(counterKeys.map((k) => initialOwner(slotOf(k), 2)));
    expect(groups).toEqual(new Set([1, 2]));
    for (const k of new Set(counterKeys)) {
      const holders = await groupsHolding(masters, k);
      if (holders.length > 0) expect(holders).toEqual([initialOwner(slotOf(k), 2)]);
    }
  });

  it('several clients pipelining at once each get their own replies, in order', async () => {
    const proxy = cluster.proxies[0]!;
    const clients = Array.from({ length: 5 }, () => proxy.client());
    const workloads = clients.map((_, i) => workload(`pipe2-${i}`, 2500, 100 + i));
    // Each client sends its pipeline in several batches while the others do the same.
    const results = await Promise.all(
      clients.map(async (c, i) => {
        const ops = workloads[i]!;
        const out: unknown[] = [];
        for (let from = 0; from < ops.length; from += 700) out.push(...(await runPipelined(c, ops.slice(from, from + 700))));
        return out;
      }),
    );
    results.forEach((replies, i) => expectReplies(workloads[i]!, replies));
  });

  it('1000 PING/ECHO in one raw write are answered in exact order', async () => {
    const raw = await RawClient.connect(cluster.proxies[0]!.port);
    const requests: Buffer[] = [];
    const expected: unknown[] = [];
    for (let i = 0; i < 1000; i++) {
      if (i % 3 === 0) {
        requests.push(cmd('PING'));
        expected.push('PONG');
      } else if (i % 3 === 1) {
        requests.push(cmd('ECHO', `message ${i} \r\n with crlf`));
        expected.push(`message ${i} \r\n with crlf`);
      } else {
        requests.push(Buffer.from(i % 2 === 0 ? `PING inline-${i}\r\n` : `ECHO "quoted ${i}"\r\n`));
        expected.push(i % 2 === 0 ? `inline-${i}` : `quoted ${i}`);
      }
    }
    raw.write(Buffer.concat(requests));
    const replies = await raw.next(1000);
    expect(replies.map(plain)).toEqual(expected);
    raw.destroy();
  });

  it('local and backend replies interleaved in one write keep request order', async () => {
    const raw = await RawClient.connect(cluster.proxies[0]!.port);
    const [a] = keysOfGroup('order:a', 1, 1);
    const [b] = keysOfGroup('order:b', 2, 1);
    const requests: Buffer[] = [cmd('DEL', a!, b!)];
    const expected: unknown[] = [0];
    for (let i = 1; i <= 1000; i++) {
      switch (i % 4) {
        case 0:
          requests.push(cmd('ECHO', String(i)));
          expected.push(String(i));
          break;
        case 1:
          requests.push(cmd('INCR', a!));
          expected.push(Math.ceil(i / 4));
          break;
        case 2:
          requests.push(cmd('APPEND', b!, 'x'));
          expected.push(Math.ceil(i / 4));
          break;
        default:
          requests.push(cmd('MGET', a!, b!));
          expected.push([String(Math.ceil(i / 4)), 'x'.repeat(Math.ceil(i / 4))]);
      }
    }
    raw.write(Buffer.concat(requests));
    const replies = await raw.next(requests.length);
    expect(replies.map(plain)).toEqual(expected);
    raw.destroy();
  });
});
