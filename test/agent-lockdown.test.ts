/**
 * The agent's API is not a root shell. Before: `start_redis {args:["--loadmodule", …]}` ran
 * our code as the agent's user, `--dir`/`--dbfilename` + SAVE wrote a file where the caller
 * chose, `dataDir` took any path, `start_proxy` any argument, and every redis it started had an
 * open default user. Now, against the real binary: each of those is a 4xx that starts nothing;
 * a redis it starts asks for the password (kept out of argv, in a 0600 file), has AOF on and
 * refuses CONFIG SET dir and MODULE LOAD; an agent without a password starts no redis; and a
 * tampered state file does not get a refused spec restarted.
 */
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startEtcd, stopAll, waitFor, type EtcdServer } from '@reborn/testkit';
import { killApps, startAgent, type AgentProcess } from './agent-helpers.js';

const PW = 'lockdown-secret-1';
let etcd: EtcdServer;
let agent: AgentProcess;
const pids = new Set<number>();

beforeAll(async () => {
  etcd = await startEtcd();
  agent = await startAgent({ etcd: etcd.clientUrl, product: 'lockdown', id: 'lock-1', args: ['--redis-password', PW] });
});

afterAll(async () => {
  if (agent?.running) {
    const list = (await agent.api('GET', '/api/apps')).body as { id: string; pid: number | null }[];
    for (const a of list) if (a.pid) pids.add(a.pid);
    for (const a of list) await agent.api('POST', '/api/stop', { id: a.id });
    await agent.stop();
  }
  killApps(pids);
  await stopAll();
});

function redis(port: number, password?: string): Redis {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => null, ...(password ? { password } : {}) });
  c.on('error', () => undefined);
  return c;
}

async function listening(port: number): Promise<boolean> {
  const c = redis(port);
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

/** A refusal: the status, the message, and no app started on the port. */
async function refused(path: string, body: Record<string, unknown>, status: number, error: RegExp): Promise<void> {
  const r = await agent.api('POST', path, body);
  expect({ status: r.status, error: r.body.error }).toEqual({ status, error: expect.stringMatching(error) });
  const apps = (await agent.api('GET', '/api/apps')).body as { port: number }[];
  if (typeof body['port'] === 'number') {
    expect(apps.some((a) => a.port === body['port'])).toBe(false);
    expect(await listening(body['port'] as number)).toBe(false);
  }
}

/** Starts a redis through the agent, stops the agent, kills that redis: what a restarted agent finds. */
async function redisDeadWhileAgentDown(): Promise<{ port: number; id: string }> {
  const port = await freePort();
  const r = await agent.api('POST', '/api/start_redis', { port });
  expect(r.status).toBe(201);
  await agent.stop();
  process.kill(r.body.pid as number, 'SIGKILL');
  await waitFor(async () => !(await listening(port)), { what: 'redis gone' });
  return { port, id: `redis-${port}` };
}

describe('reborn-agent API lockdown', () => {
  it('refuses options that load code or choose where files go, and starts nothing', async () => {
    const port = await freePort();
    const outside = join(tmpdir(), `reborn-lockdown-${process.pid}`);
    mkdirSync(outside, { recursive: true });
    await refused('/api/start_redis', { port, args: ['--loadmodule', '/tmp/evil.so'] }, 400, /^args: --loadmodule is not an option the agent passes to redis-server/);
    await refused('/api/start_redis', { port, args: ['--dir', outside, '--dbfilename', 'owned.txt'] }, 400, /^args: --dir is not an option/);
    await refused('/api/start_redis', { port, args: ['--dbfilename', '../../owned.txt'] }, 400, /^args: --dbfilename must be a plain file name/);
    await refused('/api/start_redis', { port, args: ['--logfile', '/root/.ssh/authorized_keys'] }, 400, /^args: --logfile is not an option/);
    await refused('/api/start_redis', { port, args: ['--include', '/etc/redis/redis.conf'] }, 400, /^args: --include is not an option/);
    await refused('/api/start_redis', { port, args: ['--enable-debug-command', 'yes'] }, 400, /^args: --enable-debug-command is not an option/);
    await refused('/api/start_redis', { port, args: ['--maxmemory', '1gb\nloadmodule /tmp/evil.so'] }, 400, /^args: --maxmemory must be a size/);
    await refused('/api/start_redis', { port, args: ['--save'] }, 400, /^args: --save needs a value/);
    await refused('/api/start_redis', { port, args: ['save', '""'] }, 400, /^args\[0\] must be an option like --maxmemory/);
    await refused('/api/start_redis', { port, dataDir: outside }, 400, /^dataDir must be a directory inside the agent's data dir/);
    await refused('/api/start_redis', { port, dataDir: '../../tmp' }, 400, /^dataDir must be a directory inside the agent's data dir/);
    await refused('/api/start_redis', { port, dataDir: agent.dataDir }, 400, /^dataDir must be a directory inside the agent's data dir/);
    await refused('/api/start_redis', { port, dataDir: 'logs' }, 400, /^dataDir must be a directory inside the agent's data dir/);
    // A symlink inside the agent's dir that leads out of it is judged by where it leads.
    symlinkSync(outside, join(agent.dataDir, 'escape'));
    await refused('/api/start_redis', { port, dataDir: 'escape/sub' }, 400, /^dataDir must be a directory inside the agent's data dir/);

    const [pp, ap] = [await freePort(), await freePort()];
    const proxy = { addr: `127.0.0.1:${pp}`, adminAddr: `127.0.0.1:${ap}` };
    await refused('/api/start_proxy', { ...proxy, args: ['--etcd', 'http://127.0.0.1:1'] }, 400, /^args: --etcd is not an option the agent passes to reborn-proxy/);
    await refused('/api/start_proxy', { ...proxy, args: ['--auth', 'x'] }, 400, /give the client password as the "auth" field/);
    await refused('/api/start_proxy', { ...proxy, args: ['--max-clients', '10; rm -rf /'] }, 400, /^args: --max-clients must be a non-negative integer/);
    expect(await listening(pp)).toBe(false);
  });

  it('starts redis with a password of its own, AOF on, and protected configs and modules off', async () => {
    const port = await freePort();
    const r = await agent.api('POST', '/api/start_redis', { port, args: ['--maxmemory', '64mb'] });
    expect(r.status).toBe(201);
    pids.add(r.body.pid);
    const anonymous = redis(port);
    try {
      await anonymous.connect();
      await expect(anonymous.get('k')).rejects.toThrow(/NOAUTH/);
    } finally {
      anonymous.disconnect();
    }
    const c = redis(port, PW);
    try {
      expect(await c.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await c.config('GET', 'maxmemory')).toEqual(['maxmemory', String(64 * 1024 * 1024)]);
      expect(await c.config('GET', 'dir')).toEqual(['dir', r.body.dataDir]);
      await expect(c.config('SET', 'dir', tmpdir())).rejects.toThrow(/protected config/);
      await expect(c.call('MODULE', 'LOAD', '/tmp/evil.so')).rejects.toThrow(/MODULE command not allowed/);
      await expect(c.call('DEBUG', 'SLEEP', '0')).rejects.toThrow(/DEBUG command not allowed/);
    } finally {
      c.disconnect();
    }
    // The password is in a file only the agent's user reads, never in the process's argv.
    const conf = join(r.body.dataDir, 'reborn-redis.conf');
    expect(statSync(conf).mode & 0o777).toBe(0o600);
    expect(readFileSync(conf, 'utf8')).toContain(`requirepass "${PW}"`);
    expect(readFileSync(`/proc/${r.body.pid}/cmdline`, 'utf8')).not.toContain(PW);
    expect(statSync(join(agent.dataDir, 'agent-state.json')).mode & 0o777).toBe(0o600);
  });

  it('an agent without a redis password starts no redis at all', async () => {
    const other = await startAgent({ etcd: etcd.clientUrl, product: 'lockdown', id: 'lock-nopw' });
    try {
      const port = await freePort();
      const r = await other.api('POST', '/api/start_redis', { port });
      expect(r.status).toBe(409);
      expect(r.body).toMatchObject({ code: 'ENOREDISPASSWORD', error: expect.stringMatching(/no redis password/) });
      expect((await other.api('GET', '/api/apps')).body).toEqual([]);
      expect(await listening(port)).toBe(false);
    } finally {
      await other.stop();
    }
  });

  it('a spec refused today is not restarted from a tampered state file', async () => {
    const { port, id } = await redisDeadWhileAgentDown();
    // Someone with write access to the agent's dir (or an older agent) left a module in the spec.
    const statePath = join(agent.dataDir, 'agent-state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as { apps: { id: string; spec: { args: string[] } }[] };
    state.apps.find((a) => a.id === id)!.spec.args = ['--loadmodule', '/tmp/evil.so'];
    writeFileSync(statePath, JSON.stringify(state));
    agent = await startAgent({ etcd: etcd.clientUrl, product: 'lockdown', id: 'lock-1', dataDir: agent.dataDir, httpAddr: agent.httpAddr, args: ['--redis-password', PW] });
    const apps = (await agent.api('GET', '/api/apps')).body as { id: string; state: string; lastExit?: { reason: string } }[];
    expect(apps.find((a) => a.id === id)).toMatchObject({ state: 'stopped', lastExit: { reason: expect.stringMatching(/not restarted: .*--loadmodule/) } });
    // Two supervision passes later nothing listens there.
    await new Promise((res) => setTimeout(res, 2500));
    expect(await listening(port)).toBe(false);
  });

  it('an agent restarted without its password does not bring its redis servers back open', async () => {
    const { port, id } = await redisDeadWhileAgentDown();
    agent = await startAgent({ etcd: etcd.clientUrl, product: 'lockdown', id: 'lock-1', dataDir: agent.dataDir, httpAddr: agent.httpAddr });
    const apps = (await agent.api('GET', '/api/apps')).body as { id: string; state: string; lastExit?: { reason: string } }[];
    expect(apps.find((a) => a.id === id)).toMatchObject({ state: 'stopped', lastExit: { reason: expect.stringMatching(/not restarted: .*no redis password/) } });
    await new Promise((res) => setTimeout(res, 2500));
    expect(await listening(port)).toBe(false);
  });
});
