/**
 * The client compatibility matrix, part 1: every client × protocol (client-matrix-clients.ts)
 * runs the same scenarios through a real cluster — etcd, two redis groups with a replica
 * each, two reborn-proxy processes — and, where a plain redis-server gives a reference, the
 * same steps with the same client options against one: the values the client decoded through
 * the proxy must equal those it decoded from redis. Slot migration and failover under load
 * are in client-matrix-disruption.test.ts.
 *
 * Each cell is recorded with matrixRow (client-matrix.ts); `npm run gen:clients` renders
 * the cells into README.md. Columns alternate between the two proxies, and flows with a second
 * client (publisher, waker, WATCH spoiler) send it through the other proxy.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, startRedis, stopAll, type Cluster, type RedisServer } from '@reborn/testkit';
import { matrixRow } from './client-matrix.js';
import { VARIANTS, label, type Variant } from './client-matrix-clients.js';
import { DATA_SCENARIOS, keysFor, type Step } from './client-matrix-data.js';
import {
  blockingFlow,
  connectFlow,
  multiExecFlow,
  multiKeyFlow,
  pipelineFlow,
  pubSubFlow,
  subscribedCommandsFlow,
  watchFlow,
  type Target,
} from './client-matrix-flows.js';
import { dataReady, initialOwner, slotOf } from './helpers.js';

const SCAN_KEYS = 5000;

let cluster: Cluster;
let direct: RedisServer;
/** One admin connection per redis-server, for INFO clients. */
const admins = new Map<RedisServer, Redis>();

beforeAll(async () => {
  [cluster, direct] = await Promise.all([startCluster({ groups: 2, replicas: 1, proxies: 2 }), startRedis()]);
  await Promise.all(cluster.proxies.map((p) => dataReady(p.port)));
  // The keys every column's SCAN must find, each exactly once.
  const c = cluster.proxies[0]!.client();
  const p = c.pipeline();
  for (let i = 0; i < SCAN_KEYS; i++) p.set(`scan:${i}`, String(i));
  const res = (await p.exec()) ?? [];
  expect(res.filter(([err]) => err !== null)).toEqual([]);
}, 60_000);

afterAll(stopAll);

async function blockedClients(server: RedisServer): Promise<number> {
  let admin = admins.get(server);
  if (!admin) admins.set(server, (admin = server.client()));
  return Number(/^blocked_clients:(\d+)/m.exec(await admin.info('clients'))?.[1] ?? NaN);
}

/** The plain redis-server (`other` is the same server: there is one). */
function redisTarget(): Target {
  return { name: 'redis', port: direct.port, otherPort: direct.port, blockedOn: () => blockedClients(direct) };
}

/** Column `i` uses proxy i % 2, its second clients the other proxy. */
function proxyTarget(i: number): Target {
  const [a, b] = [cluster.proxies[i % 2]!, cluster.proxies[(i + 1) % 2]!];
  return {
    name: 'proxy',
    port: a.port,
    otherPort: b.port,
    blockedOn: (key) => blockedClients(cluster.groups[initialOwner(slotOf(key), 2) - 1]!.master),
  };
}

/** Runs `flow` against redis, then through the proxy: the client must decode the same. */
async function sameAsRedis(i: number, flow: (t: Target) => Promise<unknown>): Promise<void> {
  const want = await flow(redisTarget());
  const got = await flow(proxyTarget(i));
  expect(got, 'through the proxy (left: what redis gave)').toEqual(want);
}

async function runSteps(v: Variant, port: number, steps: Step[]): Promise<unknown[]> {
  const c = await v.open(port);
  try {
    const out: unknown[] = [];
    for (const s of steps) {
      try {
        out.push(await c.run(s));
      } catch (err) {
        out.push({ error: (err as Error).message });
      }
    }
    return out;
  } finally {
    await c.close();
  }
}

/** A data-type scenario: each step's decoded value equals redis's and passes its check. */
async function dataScenario(v: Variant, i: number, steps: (prefix: string) => Step[]): Promise<void> {
  const list = steps(`m:${v.id}`);
  const want = await runSteps(v, redisTarget().port, list);
  const got = await runSteps(v, proxyTarget(i).port, list);
  const checkOn = (where: string, s: Step, value: unknown): void => {
    try {
      s.check?.(value);
    } catch (err) {
      throw new Error(`${s.name} ${where}: ${(err as Error).message}`);
    }
  };
  for (const [n, s] of list.entries()) {
    checkOn('from redis itself (a mistake of the test)', s, want[n]);
    const view = s.view ?? ((v: unknown) => v);
    if (s.exact !== false) expect(view(got[n]), `${s.name} through the proxy (left: what redis gave)`).toEqual(view(want[n]));
    checkOn('through the proxy', s, got[n]);
  }
}

describe.each(VARIANTS.map((v, i) => [label(v), v, i] as const))('%s', (_name, v, i) => {
  const row = (scenario: string) => matrixRow(v.client, v.protocol, scenario);
  const tag = `m:${v.id}`;

  it('connect with defaults', row('connect with defaults')(() => sameAsRedis(i, (t) => connectFlow(v, t))));

  for (const [scenario, steps] of Object.entries(DATA_SCENARIOS)) {
    it(scenario, row(scenario)(() => dataScenario(v, i, (prefix) => steps(keysFor(prefix)))));
  }

  it('pipeline of 1,000 commands', row('pipeline of 1,000 commands')(() => sameAsRedis(i, (t) => pipelineFlow(v, t, `${tag}:pipe`))));
  it('MULTI/EXEC', row('MULTI/EXEC')(() => sameAsRedis(i, (t) => multiExecFlow(v, t, `${tag}:tx`))));
  it('WATCH, aborted EXEC', row('WATCH, aborted EXEC')(() => sameAsRedis(i, (t) => watchFlow(v, t, `${tag}:watch`))));
  it('pub/sub: channels', row('pub/sub: channels')(() => sameAsRedis(i, (t) => pubSubFlow(v, t, 'channel', tag))));
  it('pub/sub: patterns', row('pub/sub: patterns')(() => sameAsRedis(i, (t) => pubSubFlow(v, t, 'pattern', tag))));
  it('pub/sub: sharded channels', row('pub/sub: sharded channels')(() => sameAsRedis(i, (t) => pubSubFlow(v, t, 'shard', tag))));
  // Only RESP3 lets a subscribed connection send other commands (the table shows — for RESP2).
  if (v.protocol === 'RESP3') {
    it('commands on a subscribed connection', row('commands on a subscribed connection')(() => sameAsRedis(i, (t) => subscribedCommandsFlow(v, t, tag))));
  }
  it('blocking pops woken by another client', row('blocking pops woken by another client')(() => sameAsRedis(i, (t) => blockingFlow(v, t, `${tag}:block`))));

  it(
    'SCAN of 5,000 keys over both groups',
    row('SCAN of 5,000 keys over both groups')(async () => {
      const c = await v.open(proxyTarget(i).port);
      try {
        const keys = await c.scanAll('scan:*', 500);
        const want = Array.from({ length: SCAN_KEYS }, (_, n) => `scan:${n}`);
        expect(new Set(want.map((k) => initialOwner(slotOf(k), 2)))).toEqual(new Set([1, 2]));
        expect(keys.length, 'keys returned (a key twice counts twice)').toBe(SCAN_KEYS);
        expect([...keys].sort()).toEqual(want.sort());
      } finally {
        await c.close();
      }
    }),
  );

  it('MGET/MSET/DEL across groups', row('MGET/MSET/DEL across groups')(() => sameAsRedis(i, (t) => multiKeyFlow(v, t, `${tag}:multi`))));
});
