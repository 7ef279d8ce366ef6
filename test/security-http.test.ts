/**
 * The HTTP doors locked, against real processes: the `reborn-config dashboard` binary, the
 * reborn-agent binary (with a token) and a reborn-proxy's admin port, on a real etcd and redis.
 *
 * For each: a foreign Host (DNS rebinding) → 403 EHOST, a foreign Origin → 403 EORIGIN, a
 * text/plain POST (what a web page can send without a preflight) → 415 and nothing changed
 * (checked in etcd, or in the agent's apps), a CORS preflight → 405 without any
 * Access-Control-* header, and the same request done right still works — also under a name
 * given with --allow-host. The agent: no or a wrong token → 401, the right one works, /healthz
 * stays open; on 0.0.0.0 without a token the real binary refuses to start and says why.
 *
 * Requests go through node:http (not fetch) so that Host and Origin are exactly what a test
 * says, as a browser on an attacker's page would send them.
 */
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitedEarlyError, ManagedProcess, freePort, healthzFrom, startCluster, stopAll, type Cluster } from '@reborn/testkit';
import { AGENT_BIN, killApps, startAgent, type AgentProcess } from './agent-helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG_BIN = join(REPO, 'packages/config/bin/reborn-config.js');
const AGENT_TOKEN = 'agent-token-0123456789';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** One request to `addr` (host:port) with exactly these headers; `host` defaults to addr. */
function request(addr: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Res> {
  const [hostname, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, method, path, headers: { host: addr, ...headers }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const json = (res.headers['content-type'] ?? '').includes('json');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: json && text ? JSON.parse(text) : text });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

const JSON_TYPE = { 'content-type': 'application/json' };
const corsHeaders = (r: Res): string[] => Object.keys(r.headers).filter((k) => k.startsWith('access-control-'));

/** The environment without REBORN_* variables: only the flags a test gives count. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REBORN_')) env[k] = v;
  return env;
}

let cluster: Cluster;
let dashboard: ManagedProcess | null = null;
let dashAddr: string;
let agent: AgentProcess;
const appPids = new Set<number>();

/** The real `reborn-config dashboard` on a free loopback port (retried if another test took it). */
async function startDashboard(args: readonly string[]): Promise<{ proc: ManagedProcess; addr: string }> {
  for (let attempt = 1; ; attempt++) {
    const addr = `127.0.0.1:${await freePort()}`;
    const proc = new ManagedProcess({
      name: 'reborn-config dashboard',
      command: process.execPath,
      args: [CONFIG_BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, 'dashboard', '--http-addr', addr, ...args],
      env: cleanEnv(),
      cwd: REPO,
    });
    try {
      await proc.waitReady('healthz', () => healthzFrom(`http://${addr}/healthz`, proc.pid), 20_000);
      return { proc, addr };
    } catch (err) {
      await proc.terminate('SIGKILL');
      if (!(err instanceof ExitedEarlyError && proc.lines.some((l) => l.includes('EADDRINUSE'))) || attempt >= 3) throw err;
    }
  }
}

beforeAll(async () => {
  cluster = await startCluster({ groups: 1, replicas: 0, proxies: 1, proxyArgs: ['--allow-host', 'proxy.reborn.test'] });
  [{ proc: dashboard, addr: dashAddr }, agent] = await Promise.all([
    startDashboard(['--allow-host', 'dash.reborn.test']),
    startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: 'sec-1', token: AGENT_TOKEN, args: ['--allow-host', 'agent.reborn.test', '--redis-password', 'sec-redis-secret'] }),
  ]);
});

afterAll(async () => {
  const errors: unknown[] = [];
  const step = async (fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  await step(() => dashboard?.terminate('SIGTERM'));
  // Apps the agent runs, also any a wrongly admitted request started: stopped, and killed
  // below in case the stop did not work (they outlive the agent by design).
  if (agent?.running) {
    await step(async () => {
      const apps = (await agent.api('GET', '/api/apps')).body as Array<{ id: string; pid?: number }>;
      for (const app of apps) {
        if (typeof app.pid === 'number') appPids.add(app.pid);
        await agent.api('POST', '/api/stop', { id: app.id });
      }
    });
  }
  await step(() => agent?.stop());
  killApps(appPids);
  await step(() => stopAll());
  if (errors.length) throw errors[0];
});

describe('dashboard / REST API', () => {
  it('refuses a foreign Host (DNS rebinding), also for reading', async () => {
    for (const host of ['evil.example', `evil.example:${dashAddr.split(':')[1]}`, 'localhost.evil.example']) {
      const r = await request(dashAddr, 'GET', '/api/overview', { host });
      expect({ host, status: r.status, code: r.body.code }).toEqual({ host, status: 403, code: 'EHOST' });
      expect(r.body.error).toMatch(/is not allowed: use an IP address or localhost, or start the server with --allow-host/);
    }
    expect((await request(dashAddr, 'GET', '/', { host: 'evil.example' })).status).toBe(403);
  });

  it('refuses a foreign Origin, Origin: null and Sec-Fetch-Site: cross-site; nothing is created', async () => {
    const body = JSON.stringify({ id: 41 });
    for (const origin of ['http://evil.example', 'null', `http://localhost:${dashAddr.split(':')[1]}`]) {
      const r = await request(dashAddr, 'POST', '/api/groups', { ...JSON_TYPE, origin }, body);
      expect({ origin, status: r.status, code: r.body.code }).toEqual({ origin, status: 403, code: 'EORIGIN' });
    }
    const cross = await request(dashAddr, 'POST', '/api/groups', { ...JSON_TYPE, 'sec-fetch-site': 'cross-site' }, body);
    expect([cross.status, cross.body.code]).toEqual([403, 'EORIGIN']);
    expect(await cluster.store.getGroup(41)).toBeNull();
  });

  it('refuses a POST that is not application/json (415) and changes nothing in etcd', async () => {
    const body = JSON.stringify({ id: 42 });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await request(dashAddr, 'POST', '/api/groups', { 'content-type': type, origin: `http://${dashAddr}` }, body);
      expect({ type, status: r.status, code: r.body.code }).toEqual({ type, status: 415, code: 'ECONTENTTYPE' });
    }
    // Without a body too: a bodiless POST could otherwise pause, cancel or fence.
    const bare = await request(dashAddr, 'POST', '/api/proxies/x/offline');
    expect([bare.status, bare.body.code]).toEqual([415, 'ECONTENTTYPE']);
    expect(await cluster.store.getGroup(42)).toBeNull();
  });

  it('never approves a CORS preflight', async () => {
    const r = await request(dashAddr, 'OPTIONS', '/api/groups', {
      origin: `http://${dashAddr}`,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    });
    expect([r.status, r.body.code]).toEqual([405, 'EMETHOD']);
    expect(corsHeaders(r)).toEqual([]);
  });

  it('a correct request still works, by IP and by an --allow-host name, and lands in etcd', async () => {
    const byIp = await request(dashAddr, 'POST', '/api/groups', { ...JSON_TYPE, origin: `http://${dashAddr}` }, JSON.stringify({ id: 43 }));
    expect(byIp.status).toBe(201);
    expect(byIp.headers['x-content-type-options']).toBe('nosniff');
    expect(byIp.headers['cache-control']).toBe('no-store');
    expect(corsHeaders(byIp)).toEqual([]);
    const named = `dash.reborn.test:${dashAddr.split(':')[1]}`;
    const byName = await request(dashAddr, 'POST', '/api/groups', { ...JSON_TYPE, host: named, origin: `http://${named}` }, JSON.stringify({ id: 44 }));
    expect(byName.status).toBe(201);
    expect((await cluster.store.getGroup(43))?.id).toBe(43);
    expect((await cluster.store.getGroup(44))?.id).toBe(44);
    for (const gid of [43, 44]) expect((await request(dashAddr, 'DELETE', `/api/groups/${gid}`, JSON_TYPE)).status).toBe(200);
    expect(await cluster.store.getGroup(43)).toBeNull();
  });

  it('serves the page with a hash-based Content-Security-Policy and no framing', async () => {
    const r = await request(dashAddr, 'GET', '/');
    expect(r.status).toBe(200);
    const csp = String(r.headers['content-security-policy']);
    expect(csp).toMatch(/(^|; )default-src 'none'(;|$)/);
    expect(csp).toMatch(/(^|; )script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/);
    expect(csp).toMatch(/(^|; )connect-src 'self'(;|$)/);
    expect(csp).toMatch(/(^|; )frame-ancestors 'none'(;|$)/);
    expect(csp).not.toMatch(/unsafe-eval|script-src[^;]*unsafe-inline/);
    expect(r.headers['x-frame-options']).toBe('DENY');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    // An operator following a link to the page from another site still gets it.
    const nav = await request(dashAddr, 'GET', '/', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' });
    expect(nav.status).toBe(200);
  });
});

describe('agent API', () => {
  const auth = { authorization: `Bearer ${AGENT_TOKEN}` };

  it('no token or a wrong one → 401; the right one works; /healthz stays open', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: AGENT_TOKEN }]) {
      const r = await request(agent.httpAddr, 'GET', '/api/apps', headers);
      expect({ status: r.status, code: r.body.code }).toEqual({ status: 401, code: 'EUNAUTHORIZED' });
      expect(r.headers['www-authenticate']).toBe('Bearer realm="reborn-agent"');
    }
    expect((await request(agent.httpAddr, 'GET', '/metrics')).status).toBe(401);
    expect((await request(agent.httpAddr, 'GET', '/api/apps', auth)).status).toBe(200);
    const health = await request(agent.httpAddr, 'GET', '/healthz');
    expect([health.status, health.body.id]).toEqual([200, 'sec-1']);
  });

  it('refuses a foreign Host and a foreign Origin even with the token', async () => {
    const host = await request(agent.httpAddr, 'GET', '/api/apps', { ...auth, host: 'evil.example' });
    expect([host.status, host.body.code]).toEqual([403, 'EHOST']);
    const origin = await request(agent.httpAddr, 'POST', '/api/stop', { ...auth, ...JSON_TYPE, origin: 'http://evil.example' }, '{"id":"x"}');
    expect([origin.status, origin.body.code]).toEqual([403, 'EORIGIN']);
    const pre = await request(agent.httpAddr, 'OPTIONS', '/api/start_redis', { origin: `http://${agent.httpAddr}`, 'access-control-request-method': 'POST' });
    expect([pre.status, corsHeaders(pre)]).toEqual([405, []]);
  });

  it('a text/plain start_redis → 415 and nothing starts; done right, it starts (also via --allow-host)', async () => {
    const port = await freePort();
    const body = JSON.stringify({ port, args: ['--save', ''] });
    const plain = await request(agent.httpAddr, 'POST', '/api/start_redis', { ...auth, 'content-type': 'text/plain' }, body);
    expect([plain.status, plain.body.code]).toEqual([415, 'ECONTENTTYPE']);
    expect((await request(agent.httpAddr, 'GET', '/api/apps', auth)).body).toEqual([]);

    const named = `agent.reborn.test:${agent.httpAddr.split(':')[1]}`;
    const ok = await request(agent.httpAddr, 'POST', '/api/start_redis', { ...auth, ...JSON_TYPE, host: named, origin: `http://${named}` }, body);
    expect(ok.status).toBe(201);
    appPids.add(ok.body.pid);
    expect(ok.body).toMatchObject({ id: `redis-${port}`, state: 'running' });
    const stopped = await request(agent.httpAddr, 'POST', '/api/stop', { ...auth, ...JSON_TYPE }, JSON.stringify({ id: `redis-${port}` }));
    expect([stopped.status, stopped.body.state]).toEqual([200, 'stopped']);
  });

  it('on 0.0.0.0 without a token the real binary refuses to start, and says why', async () => {
    const proc = new ManagedProcess({
      name: 'reborn-agent 0.0.0.0',
      command: process.execPath,
      // Port 1: never bound (the refusal comes first); if it were not refused, binding would fail.
      args: [AGENT_BIN, '--http-addr', '0.0.0.0:1', '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, '--id', 'open-1', '--data-dir', '/nonexistent/never-used'],
      env: cleanEnv(),
      cwd: REPO,
    });
    const exit = await proc.exited;
    expect(exit.code).toBe(2);
    expect(proc.lines).toEqual([
      'reborn-agent: refusing to serve the API on non-loopback address 0.0.0.0:1 without a token: set --token (or REBORN_AGENT_TOKEN), or listen on 127.0.0.1',
    ]);
  });
});

describe('proxy admin port', () => {
  it('refuses a foreign Host and Origin, and a text/plain POST; reads still work (also via --allow-host)', async () => {
    const admin = cluster.proxies[0]!.adminAddr;
    for (const path of ['/api/proxy', '/api/slots', '/metrics']) {
      const r = await request(admin, 'GET', path, { host: 'evil.example' });
      expect({ path, status: r.status, code: r.body.code }).toEqual({ path, status: 403, code: 'EHOST' });
    }
    const origin = await request(admin, 'GET', '/api/proxy', { origin: 'http://evil.example' });
    expect([origin.status, origin.body.code]).toEqual([403, 'EORIGIN']);
    const plain = await request(admin, 'POST', '/api/proxy', { 'content-type': 'text/plain' }, 'x');
    expect([plain.status, plain.body.code]).toEqual([415, 'ECONTENTTYPE']);
    const pre = await request(admin, 'OPTIONS', '/metrics', { origin: `http://${admin}`, 'access-control-request-method': 'GET' });
    expect([pre.status, corsHeaders(pre)]).toEqual([405, []]);

    const ok = await request(admin, 'GET', '/api/proxy', { origin: `http://${admin}` });
    expect([ok.status, ok.body.adminAddr, ok.headers['x-content-type-options']]).toEqual([200, admin, 'nosniff']);
    const named = `proxy.reborn.test:${admin.split(':')[1]}`;
    expect((await request(admin, 'GET', '/metrics', { host: named })).status).toBe(200);
    expect((await request(admin, 'GET', '/healthz', { host: `localhost:${admin.split(':')[1]}` })).status).toBe(200);
  });
});
