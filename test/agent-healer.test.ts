/**
 * Self-healing groups, end to end with real etcd, redis-server and reborn-agent processes.
 *
 * a. The replica healer: one agent (--ha, a --redis-ports range, a short --heal-after-ms)
 *    starts a master and a replica on ports it picks (start_redis without a port); group 1 is
 *    M + R with wantReplicas 1 and keys on M. R is stopped for good (POST /api/stop): after
 *    the grace period the leader has the agent start a fresh redis-server, it joins group 1
 *    as a replica holding every key (replica_created), and R is retired from the group
 *    (replica_retired).
 * b. `reborn-config server add <gid> --agent <id>` through the CLI binary: the agent starts
 *    the server (first: master; second: replica, synced); the token travels from
 *    REBORN_AGENT_TOKEN; an unknown agent, a missing token and a port in use are refused
 *    with the reason.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store, type GroupInfo } from '@reborn/coordinator';
import { freePort, startEtcd, stopAll, waitFor, type EtcdServer } from '@reborn/testkit';
import { killApps, startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';
import { onServer } from './helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG_BIN = `${REPO}packages/config/bin/reborn-config.js`;
const PW = 'healer-test-pw';
const TOKEN = 'healer-test-token';
const KEYS = 300;
const HEAL_AFTER_MS = 3000;

let etcd: EtcdServer;
const stores: Store[] = [];
const agents: AgentProcess[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
});

afterAll(async () => {
  const pids = new Set<number>();
  for (const agent of agents) {
    if (!agent.running) continue;
    const apps = (await agent.api('GET', '/api/apps').catch(() => ({ body: [] }))).body as { id: string; pid: number | null }[];
    for (const a of apps) {
      if (a.pid) pids.add(a.pid);
      await agent.api('POST', '/api/stop', { id: a.id }).catch(() => undefined);
    }
    await agent.stop();
  }
  killApps(pids);
  for (const s of stores) await s.close();
  await stopAll();
});

async function openStore(product: string): Promise<Store> {
  const s = await Store.open({ endpoints: [etcd.clientUrl], product });
  stores.push(s);
  return s;
}

/** An agent with HA and a port range of its own (the range starts at a port free just now). */
async function healerAgent(product: string, id: string): Promise<AgentProcess> {
  const first = await freePort();
  const last = Math.min(65535, first + 40);
  const agent = await startAgent({
    etcd: etcd.clientUrl,
    product,
    id,
    token: TOKEN,
    args: ['--redis-password', PW, '--ha', '--down-after-ms', '1000', '--heal-after-ms', String(HEAL_AFTER_MS), '--redis-ports', `${first}-${last}`],
  });
  agents.push(agent);
  await waitLeader(agent);
  return agent;
}

function on<T>(addr: string, fn: (c: Redis) => Promise<T>): Promise<T> {
  return onServer(addr, PW, fn, 10_000);
}

async function replicatesFrom(addr: string, master: string): Promise<boolean> {
  const info = await on(addr, (c) => c.info('replication')).catch(() => '');
  return info.includes('role:slave') && info.includes(`master_port:${master.slice(master.lastIndexOf(':') + 1)}`) && info.includes('master_link_status:up');
}

async function holdsAll(addr: string, prefix: string): Promise<boolean> {
  const values = await on(addr, (c) => c.mget(...Array.from({ length: KEYS }, (_, i) => `${prefix}${i}`))).catch(() => []);
  return values.length === KEYS && values.every((v, i) => v === `v${i}`);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function events(agent: AgentProcess): Promise<any[]> {
  const r = await agent.api('GET', '/api/events?limit=1000');
  return r.status === 200 ? r.body : [];
}

describe('a. the HA leader heals a group short of replicas', () => {
  it('a replica stopped for good is replaced by a fresh one that replicates every key, and retired', async () => {
    const product = `heal${process.pid}`;
    const store = await openStore(product);
    const agent = await healerAgent(product, 'healer-a');

    // Both on ports the agent picks from its range: start_redis without a port.
    const m = await agent.api('POST', '/api/start_redis', {});
    expect(m.status).toBe(201);
    const r = await agent.api('POST', '/api/start_redis', {});
    expect(r.status).toBe(201);
    const [mAddr, rAddr] = [m.body.addr as string, r.body.addr as string];
    expect(mAddr).not.toBe(rAddr);

    await on(mAddr, async (c) => {
      const p = c.pipeline();
      for (let i = 0; i < KEYS; i++) p.set(`k:${i}`, `v${i}`);
      await p.exec();
    });
    await on(rAddr, (c) => c.call('CONFIG', 'SET', 'masterauth', PW).then(() => c.replicaof('127.0.0.1', Number(mAddr.split(':')[1]))));
    await waitFor(() => replicatesFrom(rAddr, mAddr), { timeoutMs: 30_000, what: 'R linked to M' });
    const group: GroupInfo = { id: 1, servers: [{ addr: mAddr, role: 'master' }, { addr: rAddr, role: 'replica' }], wantReplicas: 1 };
    await store.putGroup(group);

    // R goes away for good: the agent stops it and will not restart it.
    expect((await agent.api('POST', '/api/stop', { id: r.body.id })).status).toBe(200);

    let newAddr = '';
    await waitFor(
      async () => {
        const g = await store.getGroup(1);
        const fresh = g?.servers.find((s) => s.role === 'replica' && s.addr !== rAddr);
        if (fresh) newAddr = fresh.addr;
        return fresh !== undefined;
      },
      { timeoutMs: 90_000, intervalMs: 100, what: 'a new replica in group 1' },
    );
    expect(newAddr).not.toBe(mAddr);
    // Added only after its initial sync: it holds every key already.
    expect(await holdsAll(newAddr, 'k:')).toBe(true);
    expect(await replicatesFrom(newAddr, mAddr)).toBe(true);
    // Writes after it joined reach it too.
    await on(mAddr, (c) => c.set('after', 'heal'));
    await waitFor(() => on(newAddr, (c) => c.get('after')).then((v) => v === 'heal').catch(() => false), { timeoutMs: 30_000, what: 'new replica gets new writes' });

    await waitFor(async () => !(await store.getGroup(1))!.servers.some((s) => s.addr === rAddr), { timeoutMs: 60_000, intervalMs: 100, what: 'R retired from group 1' });
    const g = (await store.getGroup(1))!;
    expect(g.servers).toEqual([{ addr: mAddr, role: 'master' }, { addr: newAddr, role: 'replica' }]);
    expect(g.wantReplicas).toBe(1);

    const evs = await events(agent);
    const created = evs.filter((e) => e.kind === 'replica_created');
    const retired = evs.filter((e) => e.kind === 'replica_retired');
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ group: 1, data: { server: newAddr, agent: 'healer-a', master: mAddr } });
    expect(retired).toHaveLength(1);
    expect(retired[0]).toMatchObject({ group: 1, data: { server: rAddr } });
    // The new server is one of the agent's apps, running.
    const apps = (await agent.api('GET', '/api/apps')).body as { addr: string; state: string }[];
    expect(apps.find((a) => a.addr === newAddr)?.state).toBe('running');
  });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `reborn-config --etcd … --product p …args`, with the redis password and (unless null) the agent token in the environment. */
function cli(product: string, args: readonly string[], token: string | null = TOKEN): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REBORN_')) delete env[k];
  env['REBORN_REDIS_PASSWORD'] = PW;
  if (token !== null) env['REBORN_AGENT_TOKEN'] = token;
  return new Promise((resolve) => {
    execFile(process.execPath, [CONFIG_BIN, '--etcd', etcd.clientUrl, '--product', product, ...args], { env, cwd: REPO, timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

describe('b. reborn-config server add --agent', () => {
  it('the agent starts the server; first master, then a synced replica; clear refusals', async () => {
    const product = `addagent${process.pid}`;
    const store = await openStore(product);
    const agent = await healerAgent(product, 'cli-agent');
    expect((await cli(product, ['group', 'add', '2'])).code).toBe(0);

    const first = await cli(product, ['server', 'add', '2', '--agent', 'cli-agent']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^server 127\.0\.0\.1:\d+ \(app redis-\d+ on agent cli-agent\) added to group 2 as master\n$/);
    const mAddr = /server (\S+) /.exec(first.stdout)![1]!;
    await on(mAddr, (c) => c.set('cli:k', 'v'));

    // A port given: the replica runs on it.
    const port = await freePort();
    const second = await cli(product, ['server', 'add', '2', '--agent', 'cli-agent', '--port', String(port)]);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(`server 127.0.0.1:${port} (app redis-${port} on agent cli-agent) added to group 2 as replica (replication link up, initial sync done)\n`);
    expect(await replicatesFrom(`127.0.0.1:${port}`, mAddr)).toBe(true);
    expect(await on(`127.0.0.1:${port}`, (c) => c.get('cli:k'))).toBe('v');
    expect((await store.getGroup(2))!.servers).toEqual([{ addr: mAddr, role: 'master' }, { addr: `127.0.0.1:${port}`, role: 'replica' }]);

    const unknown = await cli(product, ['server', 'add', '2', '--agent', 'no-such-agent']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`reborn-config: unknown agent "no-such-agent": no such agent is registered in product ${product} (registered: cli-agent)\n`);

    const noToken = await cli(product, ['server', 'add', '2', '--agent', 'cli-agent'], null);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/^reborn-config: agent cli-agent refused POST \/api\/start_redis: .*token/i);

    // The port the replica already uses: the agent refuses, and says why.
    const busy = await cli(product, ['server', 'add', '2', '--agent', 'cli-agent', '--port', String(port)]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toBe(`reborn-config: agent cli-agent refused POST /api/start_redis: app redis-${port} already exists (running, pid ${(await agent.api('GET', '/api/apps')).body.find((a: { id: string }) => a.id === `redis-${port}`).pid})\n`);

    const both = await cli(product, ['server', 'add', '2', '127.0.0.1:1', '--agent', 'cli-agent']);
    expect(both.code).toBe(2);
    expect(both.stderr).toBe('reborn-config: server add: give <host:port> or --agent, not both (the agent picks the address)\n');
    // Nothing was added by the refused calls.
    expect((await store.getGroup(2))!.servers).toHaveLength(2);
  });
});
