/**
 * `reborn-config check` as an operator runs it, and `GET/POST /api/check`, against a product
 * whose redis servers require a password: the real binary finds the stray an EVAL made (exit
 * 3, the key named in the report and in --json), `check --fix` brings it home (readable
 * through the proxy), the next check is clean (exit 0), and the REST API says the same.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type ApiServer } from '@reborn/config';
import { startCluster, stopAll, type Cluster } from '@reborn/testkit';
import { keysOfGroup } from './helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG_BIN = `${REPO}packages/config/bin/reborn-config.js`;
const PW = 'check-cli-secret';

let cluster: Cluster;
let api: ApiServer;
const declared = keysOfGroup('cc:declared:', 1, 1)[0]!;
const stray = keysOfGroup('cc:stray:', 2, 1)[0]!;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1, redisPassword: PW });
  api = await createApi({ store: cluster.store, logger: pino({ level: 'silent' }), admin: { redisPassword: PW } }).listen('127.0.0.1:0');
}, 60_000);

afterAll(async () => {
  await api?.close();
  await stopAll();
});

function config(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, REBORN_REDIS_PASSWORD: PW };
  const argv = [CONFIG_BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { env, cwd: REPO, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

async function apiCall(method: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://${api.address}/api/check`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': contentType } }),
  });
  return { status: res.status, body: await res.json() };
}

describe('reborn-config check (CLI and REST API)', () => {
  it('finds the stray a script wrote, fixes it, and is clean afterwards', async () => {
    const proxy = cluster.proxies[0]!.client();
    await proxy.eval("redis.call('SET', KEYS[1], 1) redis.call('SET', ARGV[1], 'found')", 1, declared, stray);
    expect(await proxy.get(stray)).toBeNull();

    const found = await config('check');
    expect(found.code).toBe(3);
    expect(found.stdout).toContain(stray);
    const asJson = await config('check', '--json');
    expect(asJson.code).toBe(3);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ complete: true, strays: { count: 1 }, duplicates: { count: 0 } });
    expect((await apiCall('GET')).body).toMatchObject({ strays: { count: 1 } });

    // The API refuses what the CLI would: bad bodies, and a browser's text/plain form post.
    expect((await apiCall('POST', { fix: 'yes' })).status).toBe(400);
    expect((await apiCall('POST', { fix: true }, 'text/plain')).status).toBe(415);

    const fixed = await config('check', '--fix');
    expect(fixed.stderr).toBe('');
    expect(fixed.code).toBe(0);
    expect(await proxy.get(stray)).toBe('found');

    expect((await config('check')).code).toBe(0);
    const after = await apiCall('POST', { scanCount: 100 });
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ complete: true, strays: { count: 0 }, duplicates: { count: 0 } });
  });

  it('rejects bad arguments with a message that says what is wrong', async () => {
    const r = await config('check', '--scan-count', 'lots');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('reborn-config: invalid scan count "lots": want an integer\n');
    const range = await config('check', '--scan-count', '0');
    expect(range.code).toBe(1);
    expect(range.stderr).toMatch(/^reborn-config: check: scanCount must be an integer 1\.\.100000/);
    expect((await config('check', 'extra')).stderr).toMatch(/unexpected argument "extra"/);
  });
});
