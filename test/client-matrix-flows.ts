/**
 * The client matrix's scenarios beyond single commands (not a test file itself): a pipeline
 * of 1,000 commands, MULTI/EXEC, WATCH with an aborted EXEC, pub/sub (channels, patterns,
 * shard channels, and commands on a subscribed RESP3 connection), blocking pops woken by
 * another client, multi-key commands across groups.
 *
 * Each flow takes a Target — the plain redis-server or the proxy, with the same client
 * options — and returns a transcript of what the client decoded; the test compares the two
 * transcripts and the flows assert what they can state on their own. Messages of different
 * channels are kept per channel: the proxy fans in messages from two groups, and only the
 * order within one channel is promised.
 *
 * Invariant: a flow closes every connection it opened, also when it fails, and waits on
 * conditions (a subscriber counted, a client blocked in redis), never on sleeps.
 */
import { expect } from 'vitest';
import { waitFor } from '@reborn/testkit';
import type { Dual, MatrixClient, PubSubMessage, SubscriptionKind, Variant } from './client-matrix-clients.js';
import { num, plainValue, rec } from './client-matrix-data.js';
import { initialOwner, slotOf, within } from './helpers.js';

/** Where a flow runs: a plain redis-server, or the proxy (then keys are spread over two groups). */
export interface Target {
  name: 'redis' | 'proxy';
  port: number;
  /** A second port for the same data (the other proxy), for a publisher or a waker. */
  otherPort: number;
  /** How many clients are blocked in the redis-server that holds `key`. */
  blockedOn(key: string): Promise<number>;
}

/** A hang detector for one awaited reply or message, not a performance bound. */
const HANG_MS = 15_000;

/** Opens clients of `variant` and closes them all when `body` ends. */
async function withClients<T>(variant: Variant, ports: number[], body: (clients: MatrixClient[]) => Promise<T>): Promise<T> {
  const clients: MatrixClient[] = [];
  try {
    for (const p of ports) clients.push(await variant.open(p));
    return await body(clients);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** A reply as the client decoded it, or the error's message: what a transcript records of one command. */
async function settle(p: Promise<unknown>): Promise<unknown> {
  try {
    return await p;
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** Names `<prefix><i>` whose slots the testkit's initial split gives to group `gid` (of 2). */
export function namesOfGroup(prefix: string, gid: 1 | 2, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (initialOwner(slotOf(`${prefix}${i}`), 2) === gid) out.push(`${prefix}${i}`);
  return out;
}

const dual = <T>(nr: Dual<T>['nr'], io: Dual<T>['io']): Dual<T> => ({ nr, io });

// -----------------------------------------------------------------------------------------

export async function connectFlow(v: Variant, t: Target): Promise<unknown[]> {
  return withClients(v, [t.port], async ([c]) => {
    const out = [
      await settle(c!.run(dual((x) => x.ping(), (x) => x.ping()))),
      await settle(c!.run(dual((x) => x.echo('hé\r\n'), (x) => x.echo('hé\r\n')))),
      await settle(c!.run(dual((x) => x.exists('matrix:none'), (x) => x.exists('matrix:none')))),
    ];
    expect(out).toEqual(['PONG', 'hé\r\n', 0]);
    // A handshake command the server refused shows up as an 'error' event.
    expect(c!.errors).toEqual([]);
    return out;
  });
}

/** 1,000 commands in one pipeline, then 1,000 sent at once without one (the client's own batching). */
export async function pipelineFlow(v: Variant, t: Target, prefix: string): Promise<unknown[]> {
  return withClients(v, [t.port], async ([c]) => {
    const steps: Dual[] = [];
    for (let i = 0; i < 1000; i++) {
      const k = `${prefix}:p${i}`;
      const prev = `${prefix}:p${i - 1}`;
      const counter = `${prefix}:cnt${i % 7}`;
      const h = `${prefix}:h${i % 3}`;
      switch (i % 5) {
        case 0:
          steps.push(dual((x) => x.set(k, `v${i}`), (x) => x.set(k, `v${i}`)));
          break;
        case 1:
          steps.push(dual((x) => x.get(prev), (x) => x.get(prev)));
          break;
        case 2:
          steps.push(dual((x) => x.incr(counter), (x) => x.incr(counter)));
          break;
        case 3:
          steps.push(dual((x) => x.hSet(h, `f${i}`, String(i)), (x) => x.hset(h, `f${i}`, String(i))));
          break;
        default:
          steps.push(dual((x) => x.zIncrBy(`${prefix}:z`, 1, `m${i % 4}`), (x) => x.zincrby(`${prefix}:z`, 1, `m${i % 4}`)));
      }
    }
    const piped = await within(c!.pipeline(steps), HANG_MS, 'pipeline replies');
    expect(piped).toHaveLength(1000);
    expect(piped[0]).toEqual({ ok: 'OK' });
    expect(plainValue((piped[996] as { ok: unknown }).ok)).toBe('v995');
    expect(num((piped[999] as { ok: unknown }).ok)).toBe(50); // ZINCRBY m3: i = 19, 39, … 999
    // node-redis rejects a whole pipeline with an error reply in it, so errors are left to MULTI/EXEC.
    expect(piped.filter((o) => 'err' in o)).toEqual([]);

    const concurrent = await within(
      Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          settle(c!.run(i % 2 === 0 ? dual((x) => x.incr(`${prefix}:auto`), (x) => x.incr(`${prefix}:auto`)) : dual((x) => x.get(`${prefix}:p${i - 1}`), (x) => x.get(`${prefix}:p${i - 1}`)))),
        ),
      ),
      HANG_MS,
      '1,000 concurrent replies',
    );
    // INCRs in the order sent: the replies count up 1..500.
    expect(concurrent.filter((_, i) => i % 2 === 0)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    return [piped, concurrent];
  });
}

export async function multiExecFlow(v: Variant, t: Target, tag: string): Promise<unknown[]> {
  const [a, l, h, z] = ['a', 'l', 'h', 'z'].map((n) => `{${tag}}:${n}`) as [string, string, string, string];
  return withClients(v, [t.port], async ([c]) => {
    const ok = await c!.transaction([
      dual((x) => x.set(a, '1'), (x) => x.set(a, '1')),
      dual((x) => x.incr(a), (x) => x.incr(a)),
      dual((x) => x.get(a), (x) => x.get(a)),
      dual((x) => x.rPush(l, ['x', 'y']), (x) => x.rpush(l, 'x', 'y')),
      dual((x) => x.lRange(l, 0, -1), (x) => x.lrange(l, 0, -1)),
      dual((x) => x.hSet(h, { f: 'v', g: 'w' }), (x) => x.hset(h, { f: 'v', g: 'w' })),
      dual((x) => x.hGetAll(h), (x) => x.hgetall(h)),
      dual((x) => x.zAdd(z, { score: 1.5, value: 'm' }), (x) => x.zadd(z, 1.5, 'm')),
      dual((x) => x.zScore(z, 'm'), (x) => x.zscore(z, 'm')),
    ]);
    expect(ok).not.toBeNull();
    const values = ok!.map((o) => ('ok' in o ? o.ok : o));
    expect(plainValue(values.slice(0, 6))).toEqual(['OK', 2, '2', 2, ['x', 'y'], 2]);
    expect(rec(values[6])).toEqual({ f: 'v', g: 'w' });
    expect(num(values[8])).toBe(1.5);
    // An error inside EXEC fails that command only.
    const mixed = await c!.transaction([
      dual((x) => x.set(a, 'text'), (x) => x.set(a, 'text')),
      dual((x) => x.incr(a), (x) => x.incr(a)),
      dual((x) => x.get(a), (x) => x.get(a)),
    ]);
    expect(mixed).toEqual([{ ok: 'OK' }, { err: expect.stringMatching(/not an integer/) }, { ok: 'text' }]);
    return [values, mixed];
  });
}

export async function watchFlow(v: Variant, t: Target, tag: string): Promise<unknown[]> {
  const k = `{${tag}}:w`;
  return withClients(v, [t.port, t.otherPort], async ([c, other]) => {
    const watch = dual((x) => x.watch(k), (x) => x.watch(k));
    const out: unknown[] = [];
    await c!.run(dual((x) => x.set(k, 'start'), (x) => x.set(k, 'start')));
    out.push(await settle(c!.run(watch)));
    // Another client (through the other proxy) changes the key: EXEC must be aborted.
    await other!.run(dual((x) => x.set(k, 'changed'), (x) => x.set(k, 'changed')));
    const aborted = await c!.transaction([dual((x) => x.set(k, 'mine'), (x) => x.set(k, 'mine'))]);
    expect(aborted).toBeNull();
    out.push(aborted, await settle(c!.run(dual((x) => x.get(k), (x) => x.get(k)))));
    // The retry, unwatched by anyone else, commits.
    out.push(await settle(c!.run(watch)));
    const committed = await c!.transaction([
      dual((x) => x.set(k, 'mine'), (x) => x.set(k, 'mine')),
      dual((x) => x.get(k), (x) => x.get(k)),
    ]);
    expect(committed).toEqual([{ ok: 'OK' }, { ok: 'mine' }]);
    out.push(committed);
    expect(out).toEqual(['OK', null, 'changed', 'OK', committed]);
    return out;
  });
}

// -----------------------------------------------------------------------------------------
// Pub/sub

/** Messages per channel (per pattern + channel for patterns), each list in arrival order. */
function byChannel(msgs: PubSubMessage[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const m of msgs) (out[m.pattern === undefined ? m.channel : `${m.pattern} ${m.channel}`] ??= []).push(m.message);
  return out;
}

const publishStep = (kind: SubscriptionKind, channel: string, message: string): Dual =>
  kind === 'shard'
    ? dual((x) => x.sPublish(channel, message), (x) => x.spublish(channel, message))
    : dual((x) => x.publish(channel, message), (x) => x.publish(channel, message));

/**
 * Subscribes (on a connection of its own) to channels in both groups — or to a pattern
 * matching them — and receives what another client publishes through the other proxy:
 * each message once, in order per channel, none for a channel not subscribed. After
 * unsubscribing, the connection runs ordinary commands again.
 */
export async function pubSubFlow(v: Variant, t: Target, kind: SubscriptionKind, prefix: string): Promise<unknown[]> {
  const channels = [...namesOfGroup(`${prefix}:${kind}:`, 1, 1), ...namesOfGroup(`${prefix}:${kind}:`, 2, 1)];
  const outsider = `${prefix}:other:${kind}`;
  const names = kind === 'pattern' ? [`${prefix}:${kind}:*`] : channels;
  return withClients(v, [t.port, t.otherPort], async ([sub, pub]) => {
    const got: PubSubMessage[] = [];
    await sub!.subscribe(kind, names, (m) => got.push(m));
    const sent: string[][] = [];
    for (let i = 0; i < 3; i++) {
      for (const ch of channels) {
        sent.push([ch, `m${i} ${ch} é\r\n`]);
        // Every publish reaches the one subscriber (through the proxy: its one backend subscription).
        expect(num(await pub!.run(publishStep(kind, ch, `m${i} ${ch} é\r\n`)))).toBe(1);
      }
    }
    // Not subscribed: never delivered. Published first, so the end marker arrives after it would.
    await pub!.run(publishStep(kind, outsider, 'not for you'));
    for (const ch of channels) await pub!.run(publishStep(kind, ch, 'end'));
    await waitFor(() => got.filter((m) => m.message === 'end').length === channels.length, { timeoutMs: HANG_MS, what: `${kind} messages` });
    const received = byChannel(got);
    const want: Record<string, string[]> = {};
    for (const [ch, msg] of sent) (want[kind === 'pattern' ? `${names[0]} ${ch}` : ch!] ??= []).push(msg!);
    for (const key of Object.keys(want)) want[key]!.push('end');
    expect(received).toEqual(want);
    await sub!.unsubscribe(kind, names);
    const after = await settle(sub!.run(dual((x) => x.ping(), (x) => x.ping())));
    expect(after).toBe('PONG');
    return [received, after];
  });
}

/**
 * RESP3 only: a subscribed connection keeps running ordinary commands, their replies in
 * order, while messages arrive as pushes in between.
 */
export async function subscribedCommandsFlow(v: Variant, t: Target, prefix: string): Promise<unknown[]> {
  const [ch] = namesOfGroup(`${prefix}:sc:`, 2, 1);
  const k = `${prefix}:sc:key`;
  return withClients(v, [t.port, t.otherPort], async ([sub, pub]) => {
    const got: PubSubMessage[] = [];
    await sub!.subscribe('channel', [ch!], (m) => got.push(m));
    const replies: unknown[] = [];
    for (let i = 0; i < 5; i++) {
      await pub!.run(publishStep('channel', ch!, `msg${i}`));
      replies.push(
        ...(await Promise.all([
          settle(sub!.run(dual((x) => x.set(k, `v${i}`), (x) => x.set(k, `v${i}`)))),
          settle(sub!.run(dual((x) => x.get(k), (x) => x.get(k)))),
          settle(sub!.run(dual((x) => x.hSet(`${k}:h`, 'f', String(i)), (x) => x.hset(`${k}:h`, 'f', String(i))))),
          settle(sub!.run(dual((x) => x.hGetAll(`${k}:h`), (x) => x.hgetall(`${k}:h`)))),
          settle(sub!.run(dual((x) => x.ping(), (x) => x.ping()))),
        ])),
      );
    }
    await waitFor(() => got.length >= 5, { timeoutMs: HANG_MS, what: 'messages on the subscribed connection' });
    expect(got.map((m) => m.message)).toEqual(['msg0', 'msg1', 'msg2', 'msg3', 'msg4']);
    for (let i = 0; i < 5; i++) {
      const [set, get, hset, hgetall, ping] = replies.slice(i * 5, i * 5 + 5);
      expect([set, get, hset, rec(hgetall), ping]).toEqual(['OK', `v${i}`, i === 0 ? 1 : 0, { f: String(i) }, 'PONG']);
    }
    return [replies, got.map((m) => m.message)];
  });
}

// -----------------------------------------------------------------------------------------

/**
 * Blocking pops on a connection of their own, each woken by a push from another client
 * (through the other proxy) once the pop is seen blocked in redis; then one that times out.
 */
export async function blockingFlow(v: Variant, t: Target, tag: string): Promise<unknown[]> {
  const k = (n: string) => `{${tag}}:${n}`;
  const cases: { key: string; pop: Dual<Promise<unknown>>; push: Dual<Promise<unknown>> }[] = [
    { key: k('bl'), pop: dual((x) => x.blPop(k('bl'), 0), (x) => x.blpop(k('bl'), 0)), push: dual((x) => x.rPush(k('bl'), 'a'), (x) => x.rpush(k('bl'), 'a')) },
    { key: k('br'), pop: dual((x) => x.brPop(k('br'), 0), (x) => x.brpop(k('br'), 0)), push: dual((x) => x.lPush(k('br'), 'b'), (x) => x.lpush(k('br'), 'b')) },
    {
      key: k('bz'),
      pop: dual((x) => x.bzPopMin(k('bz'), 0), (x) => x.bzpopmin(k('bz'), 0)),
      push: dual((x) => x.zAdd(k('bz'), { score: 2.5, value: 'z' }), (x) => x.zadd(k('bz'), 2.5, 'z')),
    },
    {
      key: k('src'),
      pop: dual((x) => x.blMove(k('src'), k('dst'), 'LEFT', 'RIGHT', 0), (x) => x.blmove(k('src'), k('dst'), 'LEFT', 'RIGHT', 0)),
      push: dual((x) => x.rPush(k('src'), 'moved'), (x) => x.rpush(k('src'), 'moved')),
    },
    {
      key: k('xs'),
      pop: dual((x) => x.xRead({ key: k('xs'), id: '$' }, { BLOCK: 0 }), (x) => x.xread('BLOCK', 0, 'STREAMS', k('xs'), '$')),
      push: dual((x) => x.xAdd(k('xs'), '5-1', { f: 'v' }), (x) => x.xadd(k('xs'), '5-1', 'f', 'v')),
    },
  ];
  return withClients(v, [t.port, t.otherPort], async ([blocker, waker]) => {
    const out: unknown[] = [];
    for (const c of cases) {
      const before = await t.blockedOn(c.key);
      const popped = settle(blocker!.run(c.pop));
      await waitFor(async () => (await t.blockedOn(c.key)) > before, { timeoutMs: HANG_MS, what: `a client blocked on ${c.key}` });
      await waker!.run(c.push);
      out.push(await within(popped, HANG_MS, `the pop of ${c.key} woken`));
    }
    out.push(await settle(blocker!.run(dual((x) => x.blPop(k('empty'), 0.05), (x) => x.blpop(k('empty'), 0.05)))));
    expect(JSON.stringify(out)).not.toContain('"error"');
    expect(out[0]).toEqual(v.family === 'node-redis' ? { key: k('bl'), element: 'a' } : [k('bl'), 'a']);
    expect(out[3]).toBe('moved');
    expect(out[5]).toBeNull();
    return out;
  });
}

/** MSET, MGET, EXISTS, DEL and UNLINK over 60 keys spread over both groups. */
export async function multiKeyFlow(v: Variant, t: Target, prefix: string): Promise<unknown[]> {
  const keys = Array.from({ length: 60 }, (_, i) => `${prefix}:mk${i}`);
  const groups = new Set(keys.map((k) => initialOwner(slotOf(k), 2)));
  expect([...groups].sort()).toEqual([1, 2]);
  const values = Object.fromEntries(keys.map((k, i) => [k, `value ${i} é`]));
  const [head, tail] = [keys.slice(0, 30), keys.slice(30)];
  const missing = `${prefix}:mk-missing`;
  return withClients(v, [t.port], async ([c]) => {
    const out = [
      await settle(c!.run(dual((x) => x.mSet(values), (x) => x.mset(values)))),
      await settle(c!.run(dual((x) => x.mGet([...keys, missing]), (x) => x.mget(...keys, missing)))),
      await settle(c!.run(dual((x) => x.exists([...keys, missing]), (x) => x.exists(...keys, missing)))),
      await settle(c!.run(dual((x) => x.del([...head, missing]), (x) => x.del(...head, missing)))),
      await settle(c!.run(dual((x) => x.mGet(keys), (x) => x.mget(...keys)))),
      await settle(c!.run(dual((x) => x.unlink(tail), (x) => x.unlink(...tail)))),
      await settle(c!.run(dual((x) => x.exists(keys), (x) => x.exists(...keys)))),
    ];
    expect(out).toEqual([
      'OK',
      [...keys.map((k) => values[k]), null],
      60,
      30,
      [...head.map(() => null), ...tail.map((k) => values[k])],
      30,
      0,
    ]);
    return out;
  });
}
