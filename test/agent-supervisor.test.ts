/**
 * reborn-agent as a supervisor, end to end: the real binary starts a real redis-server and a
 * real reborn-proxy through its API; kill -9 brings them back (new pid, same port); a
 * restarted agent (graceful or kill -9) still knows them — it re-adopts the live ones and
 * restarts the dead; bad requests get 4xx with the reason; /metrics and the etcd
 * registration are there.
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { killApps, startAgent, type AgentProcess } from './agent-helpers.js';

let cluster: Cluster;
let agent: AgentProcess;
/** The servers' default-user password: every redis here, the agent's and the cluster's, has it. */
const PW = 'sup-redis-secret';
const agentArgs = ['--redis-password', PW];
const appPids = new Set<number>();

async function apps(a: AgentProcess = agent): Promise<Record<string, any>> {
  const r = await a.api('GET', '/api/apps');
  expect(r.status).toBe(200);
  const byId: Record<string, any> = {};
  for (const app of r.body) {
    byId[app.id] = app;
    if (typeof app.pid === 'number') appPids.add(app.pid);
  }
  return byId;
}

async function ping(port: number): Promise<boolean> {
  const c = new Redis({ host: '127.0.0.1', port, password: PW, lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

async function proxyHealthy(adminAddr: string): Promise<boolean> {
  try {
    return (await fetch(`http://${adminAddr}/healthz`, { signal: AbortSignal.timeout(1000) })).status === 200;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  cluster = await startCluster({ groups: 1, replicas: 0, proxies: 0, redisPassword: PW });
  agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: 'sup-1', args: agentArgs });
});

afterAll(async () => {
  if (agent?.running) {
    for (const id of Object.keys(await apps().catch(() => ({})))) await agent.api('POST', '/api/stop', { id }).catch(() => undefined);
  }
  await agent?.stop();
  killApps(appPids);
  await stopAll();
});

describe('reborn-agent supervisor', () => {
  let redisPort: number;
  let proxyAddr: string;
  let proxyAdmin: string;

  it('starts redis-server and reborn-proxy with their own data dir and log file', async () => {
    redisPort = await freePort();
    const r = await agent.api('POST', '/api/start_redis', { port: redisPort, args: ['--save', ''] });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ id: `redis-${redisPort}`, kind: 'redis', port: redisPort, state: 'running', restarts: 0 });
    expect(r.body.pid).toBeGreaterThan(0);
    expect(r.body.dataDir).toBe(`${agent.dataDir}/redis-${redisPort}`);
    expect(r.body.logFile).toBe(`${agent.dataDir}/logs/redis-${redisPort}.log`);
    expect(await ping(redisPort)).toBe(true);
    expect(readFileSync(r.body.logFile, 'utf8')).toMatch(/Ready to accept connections/);

    const [pp, ap] = [await freePort(), await freePort()];
    proxyAddr = `127.0.0.1:${pp}`;
    proxyAdmin = `127.0.0.1:${ap}`;
    const p = await agent.api('POST', '/api/start_proxy', { addr: proxyAddr, adminAddr: proxyAdmin, id: 'sup-proxy' });
    expect(p.status).toBe(201);
    expect(p.body).toMatchObject({ id: `proxy-${pp}`, kind: 'proxy', addr: proxyAddr, adminAddr: proxyAdmin, proxyId: 'sup-proxy', state: 'running' });
    expect(p.body.note).toBeUndefined(); // healthy before the call returned
    // The proxy serves the product's data (etcd and product passed on by the agent).
    const c = new Redis({ host: '127.0.0.1', port: pp, maxRetriesPerRequest: 0, enableReadyCheck: false });
    try {
      await waitFor(async () => (await c.set('sup:k', 'v')) === 'OK', { what: 'SET through the supervised proxy' });
      expect(await cluster.groups[0]!.master.client().get('sup:k')).toBe('v');
    } finally {
      c.disconnect();
    }
    // Registered in etcd under agents/<id>.
    const reg = await cluster.store.etcd.get(`/reborn/${cluster.product}/agents/sup-1`).string();
    expect(JSON.parse(reg!)).toMatchObject({ id: 'sup-1', httpAddr: agent.httpAddr, ha: false });
  });

  it('restarts crashed processes (kill -9): new pid, same port', async () => {
    const before = await apps();
    const redisPid = before[`redis-${redisPort}`].pid as number;
    const proxyPid = before[`proxy-${proxyAddr.split(':')[1]}`].pid as number;
    process.kill(redisPid, 'SIGKILL');
    process.kill(proxyPid, 'SIGKILL');
    const after = await waitFor(
      async () => {
        const a = await apps();
        const r = a[`redis-${redisPort}`];
        const p = a[`proxy-${proxyAddr.split(':')[1]}`];
        return r.state === 'running' && r.pid !== redisPid && p.state === 'running' && p.pid !== proxyPid ? a : null;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'both apps restarted' },
    );
    expect(after[`redis-${redisPort}`]).toMatchObject({ restarts: 1, port: redisPort });
    expect(after[`proxy-${proxyAddr.split(':')[1]}`]).toMatchObject({ restarts: 1, addr: proxyAddr });
    await waitFor(() => ping(redisPort), { timeoutMs: 10_000, what: 'restarted redis answers on the same port' });
    await waitFor(() => proxyHealthy(proxyAdmin), { timeoutMs: 15_000, what: 'restarted proxy healthy on the same admin port' });
    // The restart is logged as a transition, object-first.
    const died = agent.records().find((r) => r['msg'] === 'app died; restarting' && r['app'] === `redis-${redisPort}`);
    expect(died).toMatchObject({ pid: redisPid, component: 'supervisor' });
    const metrics = (await agent.api('GET', '/metrics')).body as string;
    expect(metrics).toMatch(new RegExp(`reborn_agent_app_restarts_total\\{app="redis-${redisPort}",kind="redis"[^}]*\\} 1`));
    expect(metrics).toMatch(/reborn_agent_apps\{kind="redis",state="running"[^}]*\} 1/);
  });

  it('a restarted agent still knows its apps: re-adopts the live ones', async () => {
    const before = await apps();
    await agent.stop(); // graceful: the apps keep running
    expect(await ping(redisPort)).toBe(true);
    agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: 'sup-1', dataDir: agent.dataDir, httpAddr: agent.httpAddr, args: agentArgs });
    const after = await apps();
    for (const id of Object.keys(before)) {
      expect(after[id]).toMatchObject({ state: 'running', pid: before[id].pid, restarts: before[id].restarts });
    }
    expect(agent.records().filter((r) => r['msg'] === 're-adopted running app')).toHaveLength(2);
  });

  it('after kill -9 of the agent, apps that died meanwhile are restarted, live ones re-adopted', async () => {
    const before = await apps();
    await agent.kill();
    const redisPid = before[`redis-${redisPort}`].pid as number;
    process.kill(redisPid, 'SIGKILL');
    await waitFor(async () => !(await ping(redisPort)), { what: 'redis gone' });
    agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: 'sup-1', dataDir: agent.dataDir, httpAddr: agent.httpAddr, args: agentArgs });
    const after = await waitFor(
      async () => {
        const a = await apps();
        return a[`redis-${redisPort}`].state === 'running' && a[`redis-${redisPort}`].pid !== redisPid ? a : null;
      },
      { timeoutMs: 10_000, what: 'redis restarted by the new agent' },
    );
    expect(after[`redis-${redisPort}`].restarts).toBe(before[`redis-${redisPort}`].restarts + 1);
    const proxyId = `proxy-${proxyAddr.split(':')[1]}`;
    expect(after[proxyId]).toMatchObject({ state: 'running', pid: before[proxyId].pid });
    await waitFor(() => ping(redisPort), { timeoutMs: 10_000, what: 'redis answers again' });
  });

  it('answers bad requests with 4xx and the reason', async () => {
    const bad = async (method: 'GET' | 'POST', path: string, body: unknown, status: number, error: RegExp) => {
      const r = await agent.api(method, path, body);
      expect({ status: r.status, error: r.body.error }).toEqual({ status, error: expect.stringMatching(error) });
      expect(typeof r.body.code).toBe('string');
    };
    await bad('POST', '/api/start_redis', {}, 400, /^missing port: this agent has no --redis-ports range to pick one from$/);
    await bad('POST', '/api/start_redis', { port: 'abc' }, 400, /^port must be a number, got "abc"$/);
    await bad('POST', '/api/start_redis', { port: 70000 }, 400, /^port must be an integer 1\.\.65535, got 70000$/);
    await bad('POST', '/api/start_redis', { port: 6379.5 }, 400, /integer/);
    await bad('POST', '/api/start_redis', { port: 6390, args: '--save ""' }, 400, /^args must be an array of strings$/);
    await bad('POST', '/api/start_redis', { port: 6390, dataDir: '../elsewhere' }, 400, /^dataDir must be a directory inside the agent's data dir/);
    await bad('POST', '/api/start_redis', { port: 6390, dataDir: '/proc/zz' }, 400, /^dataDir must be a directory inside the agent's data dir/);
    await bad('POST', '/api/start_redis', { port: 6390, dataDir: 'agent-state.json/x' }, 400, /^cannot create dataDir ".*\/agent-state.json\/x": ENOTDIR/);
    await bad('POST', '/api/start_redis', { port: 6390, prot: 1 }, 400, /^unknown field\(s\) prot/);
    await bad('POST', '/api/start_redis', '{"port": 63', 400, /^the body is not valid JSON/);
    await bad('POST', '/api/start_redis', '[1]', 400, /^the body must be a JSON object/);
    await bad('POST', '/api/start_redis', { port: redisPort }, 409, new RegExp(`^app redis-${redisPort} already exists`));
    await bad('POST', '/api/start_proxy', { adminAddr: '127.0.0.1:1' }, 400, /^missing addr$/);
    await bad('POST', '/api/start_proxy', { addr: 'nohost', adminAddr: '127.0.0.1:1' }, 400, /^addr must be host:port, got "nohost"$/);
    await bad('POST', '/api/start_proxy', { addr: '127.0.0.1:5', adminAddr: '127.0.0.1:5' }, 400, /different ports/);
    await bad('POST', '/api/start_proxy', { addr: `127.0.0.1:${redisPort}`, adminAddr: '127.0.0.1:7' }, 409, new RegExp(`port ${redisPort} is already used by app redis-${redisPort}`));
    await bad('POST', '/api/stop', {}, 400, /^missing id$/);
    await bad('POST', '/api/stop', { id: 'redis-1' }, 404, /^unknown app id "redis-1"$/);
    await bad('GET', '/api/start_redis', undefined, 405, /POST/);
    await bad('GET', '/api/nope', undefined, 404, /no such endpoint/);
    await bad('GET', '/api/check_redis', undefined, 400, /^missing query parameter addr$/);

    // A process that exits during startup (the port is taken by a redis the agent does not
    // supervise): 502 with the reason and its log tail, and it is not kept.
    const taken = cluster.groups[0]!.master.port;
    const dup = await agent.api('POST', '/api/start_redis', { port: taken, args: ['--save', ''] });
    expect(dup.status).toBe(502);
    expect(dup.body).toMatchObject({ code: 'ESTART', error: expect.stringMatching(/exited during startup/) });
    expect(dup.body.logTail).toMatch(/Address already in use/);
    expect((await apps())[`redis-${taken}`]).toBeUndefined();
  });

  it('stops an app on request and does not restart it', async () => {
    const id = `redis-${redisPort}`;
    const r = await agent.api('POST', '/api/stop', { id });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id, state: 'stopped', pid: null });
    expect(await ping(redisPort)).toBe(false);
    // Three supervision passes later it is still down.
    await new Promise((res) => setTimeout(res, 3000));
    expect((await apps())[id]).toMatchObject({ state: 'stopped', pid: null });
    expect(await ping(redisPort)).toBe(false);
    // Starting it again reuses the id.
    const again = await agent.api('POST', '/api/start_redis', { port: redisPort, args: ['--save', ''] });
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ id, state: 'running', restarts: 0 });
  });
});
