/**
 * The README's first command: `npm start` (scripts/local-cluster.mjs) brings up etcd, two
 * groups with replicas, a proxy, an HA agent and the dashboard, prints how to connect, and
 * Ctrl-C stops every process it started and nothing else.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Redis from 'ioredis';
import Redis6 from 'ioredis6';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';

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

describe('npm start (scripts/local-cluster.mjs)', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'reborn-launcher-'));
  afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

  it('prints how to connect, serves through the proxy, and Ctrl-C leaves no process behind', { timeout: 120_000 }, async () => {
    const launcher = spawn(process.execPath, [path.join(root, 'scripts/local-cluster.mjs')], {
      env: { ...process.env, REBORN_HOME: home, REBORN_PRODUCT: 'launcher' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    launcher.stdout.on('data', (d: Buffer) => (output += d.toString()));
    launcher.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 90_000;
      while (!/Ctrl-C stops everything/.test(output)) {
        if (Date.now() > deadline || launcher.exitCode !== null) throw new Error(`launcher did not come up:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const port = Number(/redis-cli -p (\d+)/.exec(output)?.[1]);
      expect(port).toBeGreaterThan(0);
      expect(output).toMatch(/dashboard and REST API: http:\/\/127\.0\.0\.1:\d+\//);

      const started = childrenOf(launcher.pid!);
      // etcd, 4 redis-servers, proxy, agent, dashboard.
      expect(started.length).toBe(8);

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
      const masterPort = Number(/group 1 +master +127\.0\.0\.1:(\d+)/.exec(output)?.[1]);
      const anonymous = new Redis({ port: masterPort, lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false });
      await anonymous.connect();
      await expect(anonymous.get('launcher:0')).rejects.toThrow(/NOAUTH/);
      anonymous.disconnect();
      const password = fs.readFileSync(path.join(home, 'redis-password'), 'utf8').trim();
      expect(fs.statSync(path.join(home, 'redis-password')).mode & 0o777).toBe(0o600);
      const admin = new Redis({ port: masterPort, password, lazyConnect: true, maxRetriesPerRequest: 0 });
      await admin.connect();
      expect(await admin.dbsize()).toBeGreaterThan(0);
      admin.disconnect();

      launcher.kill('SIGINT');
      expect(await exited).toBe(0);
      const deadline2 = Date.now() + 10_000;
      while (started.some(alive) && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 100));
      expect(started.filter(alive)).toEqual([]);
    } finally {
      if (launcher.exitCode === null) launcher.kill('SIGKILL');
      for (const pid of childrenOf(launcher.pid!)) process.kill(pid, 'SIGKILL');
    }
  });
});
