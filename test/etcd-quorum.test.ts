/**
 * etcd losing quorum under the control plane (issue 19, finding 3), on a real three-member
 * etcd, real redis groups, a reborn-proxy and reborn-config as child processes:
 *
 *   a. a dashboard runs a migration while clients write through a proxy; two of the three
 *      etcd members are killed for 20 s, then restarted: the CLI that followed the task gives
 *      up within its --etcd-wait and says the task goes on; the runner takes the task up
 *      again by itself and it ends done, no acknowledged write lost, every key in its slot's
 *      group;
 *   b. `slot migrate` running the task in the CLI (no runner alive) gives up within its
 *      --etcd-wait bound once etcd stops answering, says the task goes on, and a dashboard
 *      started after quorum is back finishes the task it left behind;
 *   d. the same CLI run with an outage shorter than its --etcd-wait rides it out and finishes
 *      the task itself;
 *   c. other verbs and a REST call against a quorum-less etcd end with the clear message
 *      (which endpoints, how many reachable, that nothing was changed), not a hang.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Migrations, ServerRole, Store } from '@reborn/coordinator';
import {
  ManagedProcess,
  assignSlots,
  freePort,
  healthzFrom,
  startEtcdCluster,
  startProxy,
  startRedis,
  stopAll,
  waitFor,
  type Cluster,
  type EtcdCluster,
  type ProxyProcess,
  type RedisServer,
} from '@reborn/testkit';
import { Writers, placement, preload, strictClient, waitForTask } from './migration-helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const BIN = `${REPO}packages/config/bin/reborn-config.js`;
/** How long test a keeps etcd without quorum: longer than the runner's 10 s election lease (env REBORN_TEST_ETCD_OUTAGE_MS for longer). */
const OUTAGE_MS = Number(process.env['REBORN_TEST_ETCD_OUTAGE_MS'] ?? 20_000);

afterAll(stopAll);

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REBORN_')) delete env[k];
  return env;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** reborn-config as a child process; `timeout` is a hang detector (the process is killed), not a bound under test. */
function cli(etcd: EtcdCluster, product: string, args: readonly string[]): Promise<Run> {
  const argv = [BIN, '--etcd', etcd.endpoints.join(','), '--product', product, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { env: cleanEnv(), cwd: REPO, timeout: 120_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

/** A product on the shared etcd: two fresh redis groups (slots split evenly), one proxy. */
interface Product {
  cluster: Cluster;
  proxy: ProxyProcess;
  stop(): Promise<void>;
}

let productSeq = 0;

async function startProduct(etcd: EtcdCluster): Promise<Product> {
  const product = `q${process.pid}x${++productSeq}`;
  const masters: RedisServer[] = await Promise.all([startRedis(), startRedis()]);
  const store = await Store.open({ endpoints: etcd.endpoints, product });
  for (const [i, m] of masters.entries()) await store.putGroup({ id: i + 1, servers: [{ addr: m.addr, role: ServerRole.Master }] });
  await assignSlots(store, 0, 511, 1);
  await assignSlots(store, 512, 1023, 2);
  const proxy = await startProxy({ etcd: etcd.endpoints.join(','), product });
  // Just what placement() reads of a Cluster: the store and each group's master.
  const cluster = { product, store, groups: masters.map((m, i) => ({ id: i + 1, master: m, replicas: [] })), proxies: [proxy] } as unknown as Cluster;
  return {
    cluster,
    proxy,
    stop: async () => {
      await proxy.stop();
      await store.close();
      await Promise.all(masters.map((m) => m.stop()));
    },
  };
}

/** `reborn-config dashboard` for the product, ready and leading the runner election. */
/** A product with 20 000 keys loaded through its proxy, stopped by `cleanups`. */
async function loadedProduct(etcd: EtcdCluster, cleanups: (() => Promise<unknown>)[]): Promise<Product> {
  const p = await startProduct(etcd);
  cleanups.push(() => p.stop());
  const loader = p.proxy.client();
  await preload(loader, 20_000, 'pre');
  loader.disconnect();
  return p;
}

/** Every slot online, every key in exactly one group, the one owning its slot. */
async function expectWhole(p: Product): Promise<void> {
  const where = await placement(p.cluster);
  expect(where.notOnline).toEqual([]);
  expect(where.misplaced.slice(0, 20)).toEqual([]);
  expect(where.duplicated.slice(0, 20)).toEqual([]);
}

async function startDashboard(etcd: EtcdCluster, product: string): Promise<{ proc: ManagedProcess; base: string }> {
  const port = await freePort();
  const proc = new ManagedProcess({
    name: 'reborn-config dashboard',
    command: process.execPath,
    args: [BIN, '--etcd', etcd.endpoints.join(','), '--product', product, 'dashboard', '--http-addr', `127.0.0.1:${port}`],
    env: cleanEnv(),
    cwd: REPO,
  });
  const base = `http://127.0.0.1:${port}`;
  await proc.waitReady('healthz', () => healthzFrom(`${base}/healthz`, proc.pid), 20_000);
  await proc.waitReady(
    'runner elected',
    async () => ((await (await fetch(`${base}/api/overview`)).json()) as { runnerAlive: boolean }).runnerAlive,
    20_000,
  );
  return { proc, base };
}

/** Kills two of the three members: etcd has no quorum until one of them is back. */
async function loseQuorum(etcd: EtcdCluster): Promise<void> {
  await Promise.all([etcd.members[1]!.kill(), etcd.members[2]!.kill()]);
}

async function regainQuorum(etcd: EtcdCluster): Promise<void> {
  await Promise.all(etcd.members.filter((m) => !m.running).map((m) => m.restart()));
}

describe('etcd without quorum', { timeout: 240_000 }, () => {
  let etcd: EtcdCluster | null = null;
  const cleanups: (() => Promise<unknown>)[] = [];

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    if (etcd) await regainQuorum(etcd).catch(() => undefined);
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  const ensureEtcd = async (): Promise<EtcdCluster> => (etcd ??= await startEtcdCluster(3));

  it('a: the dashboard runner takes its migration up again by itself once quorum is back', async () => {
    const e = await ensureEtcd();
    const p = await loadedProduct(e, cleanups);
    const dash = await startDashboard(e, p.cluster.product);
    cleanups.push(() => dash.proc.terminate('SIGTERM'));

    const clients = Array.from({ length: 4 }, () => strictClient(p.proxy));
    cleanups.push(async () => clients.forEach((c) => c.disconnect()));
    const writers = new Writers(clients, { keysPerKind: 300, prefix: 'qa' });
    writers.start();
    cleanups.push(() => writers.stop());
    await writers.waitForAcks(500);

    // Slow enough that the outage hits it half-way. The CLI follows the dashboard's runner.
    const following = cli(e, p.cluster.product, ['slot', 'migrate', '0', '511', '2', '--throttle', '1500', '--etcd-wait', '5']);
    const migrations = new Migrations(p.cluster.store);
    const { id } = await waitFor(
      async () => (await migrations.list()).map((m) => m.task).find((t) => t.progress.keysMoved > 0) ?? false,
      { timeoutMs: 60_000, what: 'the runner moving keys' },
    );

    const down = Date.now();
    await loseQuorum(e);
    // The follower gives up on the silent etcd and says the task goes on in the runner.
    const followed = await following;
    expect(followed.stderr).toContain('a runner is alive');
    const last = followed.stderr.trimEnd().split('\n').at(-1)!;
    expect(followed.code, followed.stderr).toBe(1);
    expect(last).toMatch(new RegExp(`^reborn-config: etcd at .* did not answer within \\d+ s \\(no quorum\\? 1 of 3 endpoints reachable\\): gave up following migration ${id}; it stays in etcd`));
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - down))));
    await regainQuorum(e);
    const back = Date.now();

    // No operator action from here: the runner must finish the task on its own.
    const { task } = await waitForTask(p.cluster.store, id, (t) => t.state !== 'running' && t.state !== 'pending', {
      timeoutMs: 120_000,
      what: `migration ${id} to end after the outage`,
    });
    const ended = Date.now();
    expect(task.state, task.error ?? '').toBe('done');
    await writers.waitForAcks(500);
    await writers.stop();
    const verifier = p.proxy.client();
    expect((await writers.verify(verifier)).slice(0, 20)).toEqual([]);
    verifier.disconnect();
    await expectWhole(p);
    console.log(`[etcd-quorum a] outage ${OUTAGE_MS / 1000} s; done ${Math.round((ended - back) / 100) / 10} s after quorum was back; ${writers.summary()}; ${task.progress.keysMoved} keys moved`);
  });

  it('b: slot migrate in the CLI gives up within --etcd-wait, and a runner finishes the task it left', async () => {
    const e = await ensureEtcd();
    const p = await loadedProduct(e, cleanups);

    const run = cli(e, p.cluster.product, ['slot', 'migrate', '0', '511', '2', '--throttle', '1500', '--etcd-wait', '5']);
    const migrations = new Migrations(p.cluster.store);
    const task = await waitFor(
      async () => (await migrations.list()).map((m) => m.task).find((t) => t.progress.keysMoved > 0) ?? false,
      { timeoutMs: 60_000, what: 'the CLI moving keys' },
    );
    await loseQuorum(e);
    const res = await run;
    expect(res.code, res.stderr).not.toBe(0);
    expect(res.code).not.toBeNull(); // it returned by itself (null: killed by the hang detector)
    const last = res.stderr.trimEnd().split('\n').at(-1)!;
    expect(last).toContain(`migration ${task.id}`);
    expect(last).toMatch(/etcd .*did not answer/);
    expect(last).toMatch(/stays in etcd/);
    expect(last).toContain('reborn-config dashboard');
    console.log(`[etcd-quorum b] exit ${res.code}: ${last}`);

    await regainQuorum(e);
    const dash = await startDashboard(e, p.cluster.product);
    cleanups.push(() => dash.proc.terminate('SIGTERM'));
    const { task: end } = await waitForTask(p.cluster.store, task.id, (t) => t.state !== 'running' && t.state !== 'pending', {
      timeoutMs: 120_000,
      what: `migration ${task.id} to end in the dashboard's runner`,
    });
    expect(end.state, end.error ?? '').toBe('done');
    await expectWhole(p);
  });

  it('d: slot migrate in the CLI rides out an outage shorter than --etcd-wait and finishes the task itself', async () => {
    const e = await ensureEtcd();
    const p = await loadedProduct(e, cleanups);

    const run = cli(e, p.cluster.product, ['slot', 'migrate', '0', '511', '2', '--throttle', '1500', '--etcd-wait', '100']);
    const migrations = new Migrations(p.cluster.store);
    await waitFor(async () => (await migrations.list()).some((m) => m.task.progress.keysMoved > 0), { timeoutMs: 60_000, what: 'the CLI moving keys' });
    await loseQuorum(e);
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await regainQuorum(e);
    const res = await run;
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('etcd has not answered for');
    expect(res.stderr).toContain('etcd answers again');
    expect(res.stdout).toMatch(/^migration m-\S+ done: slots 0-511 online in group 2/);
    await expectWhole(p);
  });

  it('c: verbs and the REST API say etcd has no quorum and end, instead of hanging', async () => {
    const e = await ensureEtcd();
    const p = await startProduct(e);
    cleanups.push(() => p.stop());
    const dash = await startDashboard(e, p.cluster.product);
    cleanups.push(() => dash.proc.terminate('SIGTERM'));
    await loseQuorum(e);

    const endpoints = e.endpoints.join(',');
    for (const args of [['slot', 'list'], ['group', 'add', '3'], ['migration', 'list'], ['slot', 'migrate', '0', '9', '2', '--detach']]) {
      const res = await cli(e, p.cluster.product, args);
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(1);
      expect(res.stdout).toBe('');
      console.log(`[etcd-quorum c] ${args.join(' ')} → ${res.code}: ${res.stderr.trimEnd()}`);
      expect(res.stderr).toMatch(new RegExp(`^reborn-config: etcd at ${endpoints.replace(/[.]/g, '\\.')} did not answer within \\d+ s \\(no quorum\\? 1 of 3 endpoints reachable\\)`));
    }

    const api = await fetch(`${dash.base}/api/slots`);
    expect(api.status).toBe(503);
    const body = (await api.json()) as { error: string; code: string };
    expect(body.code).toBe('EUNAVAILABLE');
    expect(body.error).toMatch(/did not answer within \d+ s \(no quorum\? 1 of 3 endpoints reachable\)/);
    const write = await fetch(`${dash.base}/api/groups`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 3 }) });
    expect(write.status).toBe(503);
    const wbody = (await write.json()) as { error: string; code: string };
    expect(wbody.code).toBe('EUNAVAILABLE');

    // The dashboard says so on /metrics while it waits.
    const metrics = await (await fetch(`${dash.base}/metrics`)).text();
    expect(metrics).toMatch(/^reborn_config_etcd_up 0$/m);
    expect(metrics).toMatch(/^reborn_config_etcd_silent_seconds [1-9]\d*$/m);
  });
});
