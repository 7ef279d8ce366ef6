/**
 * The README's first command: `npm start` (scripts/local-cluster.mjs) brings up etcd and an HA
 * reborn-agent, which starts and supervises two groups with replicas and a proxy; then the
 * dashboard. It prints how to connect; a proxy or replica killed with -9 is healed by the
 * agent; Ctrl-C at the terminal stops every process of the cluster and nothing else; the next
 * start serves the same data; saved ports that are taken now do not stop a start.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Redis from 'ioredis';
import Redis6 from 'ioredis6';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentApi, freePort, waitFor, type AgentAppView } from '@reborn/testkit';
import { killApps } from './agent-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function childrenOf(pid: number): number[] {
  const out = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.trim();
  return out === '' ? [] : out.split('\n').map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie waiting to be reaped has exited: it holds no port and runs nothing.
  const stat = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
  return stat !== '' && !stat.startsWith('Z');
}

/** One run of the launcher on `home`, in a process group of its own, as a shell would run it. */
class Launcher {
  readonly proc: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;
  /** Every pid of the cluster seen so far (the launcher's daemons, the agent's apps), for cleanup. */
  readonly seen = new Set<number>();

  constructor(home: string) {
    this.proc = spawn(process.execPath, [path.join(root, 'scripts/local-cluster.mjs')], {
      env: { ...process.env, REBORN_HOME: home, REBORN_PRODUCT: 'launcher' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.proc.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
  }

  async up(): Promise<void> {
    // A launcher that exits fails the wait at once (its output says why) rather than after the timeout.
    const exitedEarly = this.exited.then((code) => {
      throw new Error(`launcher exited (${code}) before it was up:\n${this.output}`);
    });
    exitedEarly.catch(() => undefined);
    await Promise.race([
      exitedEarly,
      waitFor(() => /Ctrl-C stops everything/.test(this.output), { timeoutMs: 90_000, intervalMs: 100, what: 'the launcher to print "Ctrl-C stops everything"' }).catch((err: Error) => {
        throw new Error(`${err.message}\n${this.output}`);
      }),
    ]);
  }

  printed(re: RegExp): number {
    const port = Number(re.exec(this.output)?.[1]);
    expect(port, `${re} in:\n${this.output}`).toBeGreaterThan(0);
    return port;
  }

  /** Ctrl-C at a terminal: SIGINT to the whole foreground process group. */
  interrupt(): void {
    process.kill(-this.proc.pid!, 'SIGINT');
  }

  cleanup(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
    killApps(this.seen);
    for (const pid of [...this.seen, ...childrenOf(this.proc.pid!)]) {
      const cmdline = readCmdline(pid);
      if (/etcd|reborn-agent|reborn-config/.test(cmdline)) process.kill(pid, 'SIGKILL');
    }
  }
}

function readCmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

async function liveApps(agent: AgentApi): Promise<AgentAppView[]> {
  return (await agent.apps()).filter((a) => a.state !== 'stopped');
}

/** A bounded client to a server of the cluster (they all ask for the password). */
function serverClient(port: number, password: string): Redis {
  const c = new Redis({ port, password, lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => null });
  c.on('error', () => undefined);
  return c;
}

async function replication(port: number, password: string): Promise<Map<string, string>> {
  const c = serverClient(port, password);
  try {
    await c.connect();
    const text = await c.info('replication');
    return new Map(text.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)] as [string, string]));
  } finally {
    c.disconnect();
  }
}

async function dbsize(port: number, password: string): Promise<number> {
  const c = serverClient(port, password);
  try {
    await c.connect();
    return await c.dbsize();
  } finally {
    c.disconnect();
  }
}

/** The replica at `replicaPort` replicates from `masterPort` with the link up and holds as many keys. */
async function replicatingFrom(replicaPort: number, masterPort: number, password: string): Promise<boolean> {
  const r = await replication(replicaPort, password);
  if (r.get('role') !== 'slave' || r.get('master_port') !== String(masterPort) || r.get('master_link_status') !== 'up') return false;
  return (await dbsize(replicaPort, password)) === (await dbsize(masterPort, password));
}

/** SIGINT as a terminal sends it, then: exit 0, and none of `pids` left running. */
async function interruptAndExpectNothingLeft(l: Launcher, pids: number[]): Promise<void> {
  l.interrupt();
  expect(await l.exited).toBe(0);
  // Exited processes may take a moment to be reaped (by init, once their parent is gone).
  await waitFor(() => !pids.some(alive), { timeoutMs: 10_000, intervalMs: 100, what: 'every process of the cluster to be gone' }).catch(() => undefined);
  expect(pids.filter(alive).map((pid) => `${pid} ${readCmdline(pid).replace(/\0/g, ' ')}`)).toEqual([]);
}

describe('npm start (scripts/local-cluster.mjs)', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'reborn-launcher-'));
  const launchers: Launcher[] = [];
  afterAll(() => {
    for (const l of launchers) l.cleanup();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('prints how to connect, serves through the proxy, heals a killed proxy and replica, and Ctrl-C leaves no process behind', { timeout: 240_000 }, async () => {
    const l = new Launcher(home);
    launchers.push(l);
    await l.up();
    const port = l.printed(/redis-cli -p (\d+)/);
    expect(l.output).toMatch(/dashboard and REST API: http:\/\/127\.0\.0\.1:\d+\//);
    const agent = new AgentApi(`http://127.0.0.1:${l.printed(/agent \(HA on\): http:\/\/127\.0\.0\.1:(\d+)\/api\/ha/)}`);

    // The launcher runs etcd, the agent and the dashboard; the agent runs 4 redis-servers and the proxy.
    const daemons = childrenOf(l.proc.pid!);
    expect(daemons.length).toBe(3);
    const apps = await liveApps(agent);
    for (const pid of [...daemons, ...apps.map((a) => a.pid!)]) l.seen.add(pid);
    expect(apps.filter((a) => a.kind === 'redis' && a.state === 'running').length).toBe(4);
    expect(apps.filter((a) => a.kind === 'proxy' && a.state === 'running').map((a) => a.port)).toEqual([port]);

    const client = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    const keys = Array.from({ length: 200 }, (_, i) => `launcher:${i}`);
    for (const k of keys) await client.set(k, k);
    expect(await client.mget(...keys)).toEqual(keys);
    expect(await client.dbsize()).toBe(200);
    client.disconnect();

    // The clients people install today, with their defaults: node-redis 6 opens with HELLO 3.
    const nodeRedis = createClient({ url: `redis://127.0.0.1:${port}` });
    nodeRedis.on('error', () => undefined);
    await nodeRedis.connect();
    expect(await nodeRedis.hello()).toMatchObject({ proto: 3 });
    await nodeRedis.hSet('launcher:h', { a: '1' });
    expect(await nodeRedis.hGetAll('launcher:h')).toEqual({ a: '1' });
    expect(await nodeRedis.mGet(keys.slice(0, 50))).toEqual(keys.slice(0, 50));
    await nodeRedis.quit();
    const io6 = new Redis6({ port, lazyConnect: true, maxRetriesPerRequest: 1 });
    await io6.connect();
    expect(await io6.mget(...keys.slice(50, 100))).toEqual(keys.slice(50, 100));
    expect(await io6.del('launcher:h')).toBe(1);
    io6.disconnect();

    // The servers behind it have no open default user: the password is in <home>/redis-password.
    const masterPort = l.printed(/group 1 +master +127\.0\.0\.1:(\d+)/);
    const replicaPort = l.printed(/group 1 +replica +127\.0\.0\.1:(\d+)/);
    const anonymous = new Redis({ port: masterPort, lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false });
    await anonymous.connect();
    await expect(anonymous.get('launcher:0')).rejects.toThrow(/NOAUTH/);
    anonymous.disconnect();
    const password = fs.readFileSync(path.join(home, 'redis-password'), 'utf8').trim();
    expect(fs.statSync(path.join(home, 'redis-password')).mode & 0o777).toBe(0o600);
    expect(await dbsize(masterPort, password)).toBeGreaterThan(0);
    await waitFor(() => replicatingFrom(replicaPort, masterPort, password), { timeoutMs: 30_000, intervalMs: 100, what: `replica :${replicaPort} in sync with :${masterPort}` });

    // kill -9 the proxy: the agent starts it again on its port, and clients get served again.
    const proxyBefore = apps.find((a) => a.kind === 'proxy')!;
    const t0 = Date.now();
    process.kill(proxyBefore.pid!, 'SIGKILL');
    const proxyAfter = await waitFor(
      async () => (await liveApps(agent)).find((a) => a.kind === 'proxy' && a.state === 'running' && a.pid !== proxyBefore.pid && a.restarts > proxyBefore.restarts),
      { timeoutMs: 30_000, intervalMs: 100, what: 'the agent to restart the proxy' },
    );
    l.seen.add(proxyAfter.pid!);
    expect(proxyAfter.port).toBe(port);
    const value = await waitFor(
      async () => {
        const c = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => null });
        c.on('error', () => undefined);
        try {
          await c.connect();
          return await c.get('launcher:7');
        } finally {
          c.disconnect();
        }
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'the restarted proxy to serve' },
    );
    expect(value).toBe('launcher:7');
    console.log(`[launcher] proxy kill -9 → served again after ${Date.now() - t0} ms`);

    // kill -9 a replica: restarted by the agent, and replicating from its master again.
    const replicaBefore = (await liveApps(agent)).find((a) => a.kind === 'redis' && a.port === replicaPort)!;
    const t1 = Date.now();
    process.kill(replicaBefore.pid!, 'SIGKILL');
    const replicaAfter = await waitFor(
      async () => (await liveApps(agent)).find((a) => a.port === replicaPort && a.state === 'running' && a.pid !== replicaBefore.pid && a.restarts > replicaBefore.restarts),
      { timeoutMs: 30_000, intervalMs: 100, what: 'the agent to restart the replica' },
    );
    l.seen.add(replicaAfter.pid!);
    await waitFor(() => replicatingFrom(replicaPort, masterPort, password), { timeoutMs: 60_000, intervalMs: 100, what: `restarted replica :${replicaPort} in sync with :${masterPort}` });
    console.log(`[launcher] replica kill -9 → replicating again after ${Date.now() - t1} ms`);

    const everything = [...daemons, ...(await liveApps(agent)).map((a) => a.pid!)];
    expect(everything.length).toBe(8);
    await interruptAndExpectNothingLeft(l, everything);
  });

  it('serves the same data on the next start, each replica replicating from its master again', { timeout: 180_000 }, async () => {
    const l = new Launcher(home);
    launchers.push(l);
    await l.up();
    const port = l.printed(/redis-cli -p (\d+)/);
    const agent = new AgentApi(`http://127.0.0.1:${l.printed(/agent \(HA on\): http:\/\/127\.0\.0\.1:(\d+)\/api\/ha/)}`);
    const daemons = childrenOf(l.proc.pid!);
    const apps = await liveApps(agent);
    for (const pid of [...daemons, ...apps.map((a) => a.pid!)]) l.seen.add(pid);
    expect(apps.length).toBe(5);

    const client = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    expect(await client.dbsize()).toBe(200);
    expect(await client.get('launcher:199')).toBe('launcher:199');
    client.disconnect();

    const password = fs.readFileSync(path.join(home, 'redis-password'), 'utf8').trim();
    for (const gid of [1, 2]) {
      const masterPort = l.printed(new RegExp(`group ${gid} +master +127\\.0\\.0\\.1:(\\d+)`));
      const replicaPort = l.printed(new RegExp(`group ${gid} +replica +127\\.0\\.0\\.1:(\\d+)`));
      await waitFor(() => replicatingFrom(replicaPort, masterPort, password), { timeoutMs: 30_000, intervalMs: 100, what: `replica :${replicaPort} in sync with :${masterPort}` });
    }
    await interruptAndExpectNothingLeft(l, [...daemons, ...apps.map((a) => a.pid!)]);
  });

  it('after a kill -9 of the launcher the next start adopts the running servers; a dead agent stops the cluster and leaves nothing', { timeout: 180_000 }, async () => {
    const first = new Launcher(home);
    launchers.push(first);
    await first.up();
    const firstDaemons = childrenOf(first.proc.pid!);
    const agent1 = new AgentApi(`http://127.0.0.1:${first.printed(/agent \(HA on\): http:\/\/127\.0\.0\.1:(\d+)\/api\/ha/)}`);
    const apps1 = await liveApps(agent1);
    for (const pid of [...firstDaemons, ...apps1.map((a) => a.pid!)]) first.seen.add(pid);
    first.proc.kill('SIGKILL');
    await first.exited;

    // The next launcher stops what the killed one ran itself (etcd, agent, dashboard); the
    // agent's apps survived it and are adopted, not started a second time.
    const l = new Launcher(home);
    launchers.push(l);
    for (const pid of first.seen) l.seen.add(pid);
    await l.up();
    expect(l.output).toMatch(/stopping reborn-agent \(pid \d+\), left running by an earlier launcher that was killed/);
    expect(l.output.match(/already running/g)?.length).toBe(5);
    const port = l.printed(/redis-cli -p (\d+)/);
    const agent = new AgentApi(`http://127.0.0.1:${l.printed(/agent \(HA on\): http:\/\/127\.0\.0\.1:(\d+)\/api\/ha/)}`);
    const apps = await liveApps(agent);
    const daemons = childrenOf(l.proc.pid!);
    for (const pid of [...daemons, ...apps.map((a) => a.pid!)]) l.seen.add(pid);
    const agentPid = daemons.find((pid) => readCmdline(pid).includes('reborn-agent'))!;
    expect(agentPid).toBeGreaterThan(0);
    expect(apps.map((a) => a.pid).sort()).toEqual(apps1.map((a) => a.pid).sort());
    expect(firstDaemons.filter(alive)).toEqual([]);
    const client = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    expect(await client.get('launcher:3')).toBe('launcher:3');
    client.disconnect();

    // The agent dies: the launcher cannot go on without it; it stops, and what the agent ran
    // is stopped by the pids of its state file.
    process.kill(agentPid, 'SIGKILL');
    expect(await l.exited).toBe(1);
    expect(l.output).toMatch(/reborn-agent exited unexpectedly/);
    const everything = [...daemons, ...apps.map((a) => a.pid!)];
    await waitFor(() => !everything.some(alive), { timeoutMs: 10_000, intervalMs: 100, what: 'every process of the cluster to be gone' }).catch(() => undefined);
    expect(everything.filter(alive).map((pid) => `${pid} ${readCmdline(pid).replace(/\0/g, ' ')}`)).toEqual([]);
  });

  it("etcd's saved client port and the one after it taken: etcd moves to other ports, never giving client and peer the same one", { timeout: 180_000 }, async () => {
    // Saved ports A (client) and A+2 (peer), with A and A+1 taken by other programs: the client
    // port scan ends on A+2, which the peer scan, starting there, also finds free.
    const held: net.Server[] = [];
    const home2 = fs.mkdtempSync(path.join(os.tmpdir(), 'reborn-launcher-ports-'));
    try {
      const a = await fourFreePorts();
      for (const port of [a, a + 1]) {
        const srv = net.createServer();
        await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(port, '127.0.0.1', resolve));
        held.push(srv);
      }
      fs.writeFileSync(path.join(home2, 'servers.json'), JSON.stringify({ etcd: a, 'etcd-peer': a + 2 }));
      const l = new Launcher(home2);
      launchers.push(l);
      await l.up();
      // A+2 and A+3 when nobody else took them meanwhile (a port taken during the start is tried again elsewhere).
      const saved = JSON.parse(fs.readFileSync(path.join(home2, 'servers.json'), 'utf8')) as Record<string, number>;
      expect(l.printed(/etcd +http:\/\/127\.0\.0\.1:(\d+)/)).toBe(saved['etcd']);
      expect(saved['etcd']).toBeGreaterThanOrEqual(a + 2);
      expect(saved['etcd-peer']).toBeGreaterThanOrEqual(a + 2);
      expect(saved['etcd-peer']).not.toBe(saved['etcd']);
      expect(l.output).not.toMatch(/exited unexpectedly/);
      const agent = new AgentApi(`http://127.0.0.1:${l.printed(/agent \(HA on\): http:\/\/127\.0\.0\.1:(\d+)\/api\/ha/)}`);
      const daemons = childrenOf(l.proc.pid!);
      const apps = await liveApps(agent);
      for (const pid of [...daemons, ...apps.map((x) => x.pid!)]) l.seen.add(pid);
      expect(daemons.length).toBe(3);
      await interruptAndExpectNothingLeft(l, [...daemons, ...apps.map((x) => x.pid!)]);
    } finally {
      for (const srv of held) srv.close();
      fs.rmSync(home2, { recursive: true, force: true });
    }
  });
});

/** A port A with A..A+3 free now (a fresh pick until one is). */
async function fourFreePorts(): Promise<number> {
  for (;;) {
    const a = await freePort();
    if (a + 3 > 65535) continue;
    const free = await Promise.all([1, 2, 3].map((i) => portIsFree(a + i)));
    if (free.every(Boolean)) return a;
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}
