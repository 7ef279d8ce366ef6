/**
 * A master restarted inside its down window loses nothing, end to end: etcd, one group (master
 * M + replica R), a reborn-proxy and the real reborn-agent running HA, whose leader runs the
 * replication guard (repl-guard.ts) every round.
 *
 * a. M is killed (-9), its dir wiped, and started again EMPTY on the same port, long before
 *    the down window (20 s) ends. R's login to it fails (the restarted process has no
 *    reborn-repl user), so R keeps every key; the leader judges M "restarted behind its
 *    group" and fails over to R at once (a failover event with trigger `restarted`); M is
 *    re-pointed and syncs every key back from R. Without the guard in the HA loop R resyncs
 *    from the empty M and the keys are gone: the test fails (checked by disabling the hook).
 * b. The same with AOF on (fsync always): M comes back with its keys but a new run_id; the
 *    leader decides by offsets (judgeMaster) — trust, or fail over — and no key is lost
 *    either way.
 *
 * Every key is counted at the end on both servers and read back through the proxy.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, stopAll, waitFor, type Cluster, type RedisServer } from '@reborn/testkit';
import { REPL_USER } from '@reborn/agent';
import { parseInfo } from '@reborn/coordinator/admin';
import { replication, startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';

/** Far longer than a restart takes even on a loaded machine: the down path never fires. */
const DOWN_AFTER_MS = 20_000;
const KEYS = 1000;
const AOF = ['--appendonly', 'yes', '--appendfsync', 'always'];

const started: { agent?: AgentProcess } = {};

afterEach(async () => {
  await started.agent?.stop();
  started.agent = undefined;
  await stopAll();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AgentEvent = any;

interface Setup {
  cluster: Cluster;
  agent: AgentProcess;
  m: RedisServer;
  r: RedisServer;
}

const key = (i: number): string => `re:{k${i % 97}}:${i}`;

/** Runs `fn` on a fresh client of `server` (or of the proxy at `port`). */
async function using<T>(c: Redis, fn: (c: Redis) => Promise<T>): Promise<T> {
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

/** How many of the KEYS keys hold their value, read one GET each in a pipeline. */
async function countKeys(c: Redis): Promise<number> {
  return using(c, async (cl) => {
    const p = cl.pipeline();
    for (let i = 0; i < KEYS; i++) p.get(key(i));
    const res = (await p.exec()) ?? [];
    return res.filter(([err, v], i) => err === null && v === `v${i}`).length;
  });
}

const dbsize = (s: RedisServer): Promise<number> => using(s.client({ maxRetriesPerRequest: 0 }), (c) => c.dbsize());

async function runId(s: RedisServer): Promise<string> {
  const text = await using(s.client({ maxRetriesPerRequest: 0 }), (c) => c.info('server'));
  return parseInfo(text)['run_id']!.trim();
}

async function events(agent: AgentProcess, kind: string): Promise<AgentEvent[]> {
  return ((await agent.api('GET', '/api/events')).body as { kind: string }[]).filter((e) => e.kind === kind);
}

/** One group M+R, a proxy, the HA agent; KEYS keys written through the proxy; the guard set up. */
async function setup(label: string, redisArgs: readonly string[] = []): Promise<Setup> {
  const cluster = await startCluster({ groups: 1, replicas: 1, proxies: 1, redisArgs });
  const agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: `re-${label}`, args: ['--ha', '--down-after-ms', String(DOWN_AFTER_MS), '--stall-down-after-ms', String(DOWN_AFTER_MS)] });
  started.agent = agent;
  await waitLeader(agent);
  const [m, r] = [cluster.groups[0]!.master, cluster.groups[0]!.replicas[0]!];

  await using(cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 }), async (c) => {
    const p = c.pipeline();
    for (let i = 0; i < KEYS; i++) p.set(key(i), `v${i}`);
    const res = (await p.exec()) ?? [];
    expect(res.filter(([err]) => err !== null)).toEqual([]);
  });
  await waitFor(async () => (await dbsize(r)) === KEYS, { timeoutMs: 20_000, what: 'R to hold every key' });
  await waitFor(async () => JSON.stringify((await cluster.store.getGroup(1))?.inSync) === JSON.stringify([r.addr]), {
    timeoutMs: 30_000,
    what: 'the leader to write inSync [R]',
  });
  // The guard trusted M (it has the user) and pointed R's login at the user: R's next
  // connection to M — after the kill — logs in as reborn-repl.
  await waitFor(
    async () => {
      const user = await using(m.client({ maxRetriesPerRequest: 0 }), (c) => c.call('ACL', 'GETUSER', REPL_USER));
      const login = (await using(r.client({ maxRetriesPerRequest: 0 }), (c) => c.call('CONFIG', 'GET', 'masteruser'))) as string[];
      return user !== null && login[1] === REPL_USER;
    },
    { timeoutMs: 20_000, what: 'the guard to give M the replication user and point R at it' },
  );
  return { cluster, agent, m, r };
}

/** kill -9 of M, then (its dir wiped when `wipe`) started again on the same port. */
async function crashAndRestart(m: RedisServer, wipe: boolean): Promise<void> {
  await m.kill('SIGKILL');
  if (wipe) for (const f of readdirSync(m.dir)) rmSync(join(m.dir, f), { recursive: true, force: true });
  await m.restart();
}

/** Waits until `replica` replicates from `master` with its link up. */
async function waitLinked(replica: RedisServer, master: RedisServer, what: string): Promise<void> {
  await waitFor(async () => {
    const info = await replication(replica.port).catch(() => null);
    return info?.get('role') === 'slave' && info.get('master_port') === String(master.port) && info.get('master_link_status') === 'up';
  }, { timeoutMs: 30_000, intervalMs: 50, what });
}

/** Every key on both servers and through the proxy (which may take a moment to learn a switch). */
async function expectEveryKey(s: Setup, label: string): Promise<void> {
  const { cluster, m, r } = s;
  await waitFor(async () => (await countKeys(m.client({ maxRetriesPerRequest: 0 }))) === KEYS, { timeoutMs: 30_000, what: `${label}: every key on M` });
  expect(await countKeys(r.client({ maxRetriesPerRequest: 0 }))).toBe(KEYS);
  expect(await dbsize(m)).toBe(KEYS);
  expect(await dbsize(r)).toBe(KEYS);
  const viaProxy = await waitFor(
    async () => {
      const n = await countKeys(cluster.proxies[0]!.client({ maxRetriesPerRequest: 0 })).catch(() => 0);
      return n === KEYS ? n : null;
    },
    { timeoutMs: 30_000, what: `${label}: every key through the proxy` },
  );
  expect(viaProxy).toBe(KEYS);
}

describe('a master restarted inside its down window', () => {
  it('a. restarted EMPTY: R keeps every key, the leader fails over to R at once, M syncs every key back', async () => {
    const s = await setup('a');
    const { cluster, agent, m, r } = s;
    const killedAt = Date.now();
    await crashAndRestart(m, true);
    const restartedAt = Date.now();

    const fo = await waitFor(async () => (await events(agent, 'failover')).find((e) => e.data.newMaster === r.addr), {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'the leader to fail the restarted M over to R',
    });
    const failedOverAt = Date.now();
    expect(fo).toMatchObject({ group: 1, data: { oldMaster: m.addr, newMaster: r.addr, trigger: 'restarted' } });
    expect(fo.data.restartedBecause).toMatch(/^restarted \(run_id .+\); (its offset \d+ is below in-sync replica|it has no keys while replica)/);
    expect(fo.data.why).toBe('the in-sync member with the highest offset');
    expect((await cluster.store.getGroup(1))?.servers.map((x) => [x.addr, x.role])).toEqual([[r.addr, 'master'], [m.addr, 'replica']]);
    const guardLine = agent.records().find((x) => x['msg'] === 'master restarted behind its group: refused as a sync source, it must be failed over');
    expect(guardLine).toMatchObject({ group: 1, master: m.addr, restarted: true });

    // R kept every key; M, re-pointed by the leader, synced them all back from R.
    expect(await countKeys(r.client({ maxRetriesPerRequest: 0 }))).toBe(KEYS);
    await waitLinked(m, r, 'M to replicate from R');
    await expectEveryKey(s, 'a');
    const refused = r.logTail(500).split('\n').filter((l) => /Unable to AUTH to MASTER/.test(l)).length;
    console.log(
      `[agent-restart-empty] a: kill -9 + wipe + restart of M took ${((restartedAt - killedAt) / 1000).toFixed(2)} s; ` +
        `failover event seen ${((failedOverAt - killedAt) / 1000).toFixed(2)} s after the kill (down window ${DOWN_AFTER_MS / 1000} s); ` +
        `R's refused logins to the empty M: ${refused}; all ${KEYS} keys on M, R and through the proxy`,
    );
  }, 120_000);

  it('b. restarted with its data (AOF): decided by offsets, no key lost either way', async () => {
    const s = await setup('b', AOF);
    const { cluster, agent, m, r } = s;
    const before = await runId(m);
    await crashAndRestart(m, false);
    const after = await runId(m);
    expect(after).not.toBe(before);

    // The leader's verdict on the new process: trusted (it gets the user), or failed over.
    const verdict = await waitFor(
      () => agent.records().find((x) => x['runId'] === after && x['master'] === m.addr && typeof x['msg'] === 'string' && /^master (trusted|restarted behind)/.test(x['msg'] as string)),
      { timeoutMs: 30_000, intervalMs: 50, what: "the leader's verdict on the restarted M" },
    );
    const failedOver = (verdict['msg'] as string).startsWith('master restarted behind');
    if (failedOver) {
      const fo = await waitFor(async () => (await events(agent, 'failover')).find((e) => e.data.newMaster === r.addr), {
        timeoutMs: 30_000,
        intervalMs: 50,
        what: 'the failover to R',
      });
      expect(fo.data.trigger).toBe('restarted');
      await waitLinked(m, r, 'M to replicate from R');
    } else {
      expect((await cluster.store.getGroup(1))?.servers[0]?.addr).toBe(m.addr);
      await waitLinked(r, m, 'R to replicate from the trusted M again');
    }
    await expectEveryKey(s, 'b');
    console.log(`[agent-restart-empty] b: AOF restart of M: verdict "${verdict['msg'] as string}" (${verdict['reason'] as string}); all ${KEYS} keys on M, R and through the proxy`);
  }, 120_000);
});
