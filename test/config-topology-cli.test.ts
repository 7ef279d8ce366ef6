/**
 * `reborn-config topology save|restore` as an operator runs it: the topology (identity,
 * groups, slots) saved to a file, lost from etcd (the running proxy raises its alarm and keeps
 * serving), written back from the file (the alarm clears); a second restore writes nothing; a
 * file that is not a saved topology is refused with the reason, and nothing is written.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { keysOfGroup } from './helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG_BIN = `${REPO}packages/config/bin/reborn-config.js`;

let cluster: Cluster;
const dir = mkdtempSync(join(tmpdir(), 'reborn-topology-'));

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1 });
}, 60_000);

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

function config(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = [CONFIG_BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { cwd: REPO, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

async function health(): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://${cluster.proxies[0]!.adminAddr}/healthz`);
  return { status: res.status, body: await res.json() };
}

describe('reborn-config topology save / restore', () => {
  it('saves, survives the loss, restores, and clears the alarm', async () => {
    const proxy = cluster.proxies[0]!.client();
    const keys = [...keysOfGroup('topo:a:', 1, 10), ...keysOfGroup('topo:b:', 2, 10)];
    for (const k of keys) await proxy.set(k, k);
    await waitFor(async () => (await health()).status === 200, { what: 'the proxy healthy' });

    const file = join(dir, 'topology.json');
    const saved = await config('topology', 'save', file);
    expect(saved).toMatchObject({ code: 0, stdout: `topology of product ${cluster.product} saved to ${file}\n` });
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    expect(doc.identity.generation).toMatch(/^[0-9a-f-]{36}$/);
    expect(doc.groups.map((g: { id: number }) => g.id)).toEqual([1, 2]);

    // etcd loses the product's topology (an empty data dir, a bad hand edit …).
    const prefix = `/reborn/${cluster.product}/`;
    for (const part of ['slots/', 'groups/', 'identity']) await cluster.store.etcd.delete().prefix(prefix + part).exec();
    const alarmed = await waitFor(async () => {
      const h = await health();
      return h.body.topologyAlarm ? h : null;
    }, { what: 'the proxy to raise its topology alarm' });
    expect(alarmed.status).toBe(203);
    expect(await proxy.mget(...keys)).toEqual(keys); // it keeps serving its last table

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ format: 'something else' }));
    const refused = await config('topology', 'restore', bad);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^reborn-config: .*format/);
    expect(await cluster.store.etcd.get(prefix + 'identity').string()).toBeNull();

    const restored = await config('topology', 'restore', file);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toMatch(new RegExp(`^product ${cluster.product} restored: generation ${doc.identity.generation}, groups 1,2 written, 1024 slots written \\(1024 served\\)\\n$`));
    await waitFor(async () => (await health()).status === 200, { what: 'the alarm to clear' });
    expect(await proxy.mget(...keys)).toEqual(keys);

    const again = await config('topology', 'restore', file);
    expect(again).toMatchObject({ code: 0, stdout: expect.stringMatching(/already holds this topology/) });
  });
});
