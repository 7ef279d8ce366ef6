/**
 * `reborn-config slot migrate` end to end: a real cluster (etcd, two redis groups, one
 * reborn-proxy), keys written through the proxy, the CLI as a child process.
 *
 * - With no runner alive the CLI runs the task itself and returns once the slots are online
 *   in the target group; every key is still readable through the proxy, now held by the
 *   target master only — also keys written while the migration ran.
 * - With a dashboard running (it holds the runner election) the CLI only follows the task.
 * - pause / resume / cancel on a detached task of another product (nothing runs it there).
 */
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManagedProcess, freePort, healthzFrom, startCluster, stopAll, type Cluster } from '@reborn/testkit';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const BIN = `${REPO}packages/config/bin/reborn-config.js`;
const KEYS = 2000;

let cluster: Cluster;
let proxy: Redis;

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REBORN_')) delete env[k];
  return env;
}

function cli(args: readonly string[], product = cluster.product): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = [BIN, '--etcd', cluster.etcd.clientUrl, '--product', product, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { env: cleanEnv(), cwd: REPO, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

async function ok(args: readonly string[], product?: string): Promise<string> {
  const res = await cli(args, product);
  if (res.code !== 0) throw new Error(`reborn-config ${args.join(' ')} → ${res.code}\n${res.stdout}${res.stderr}`);
  return res.stdout;
}

const slotOf = (key: string): number => crc32(key) % 1024;

/** Keys (of `prefix`) held by a master, by scanning it. */
async function keysOn(c: Redis, prefix: string): Promise<Set<string>> {
  const out = new Set<string>();
  let cursor = '0';
  do {
    const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    for (const k of keys) out.add(k);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1 });
  proxy = cluster.proxies[0]!.client();
  const p = proxy.pipeline();
  for (let i = 0; i < KEYS; i++) p.set(`k:${i}`, `v${i}`);
  await p.exec();
});

afterAll(stopAll);

describe('slot migrate', () => {
  it('runs the task here when no runner is alive; keys follow their slots, none lost', async () => {
    const g1 = cluster.groups[0]!.master.client();
    const g2 = cluster.groups[1]!.master.client();
    const moving = Array.from({ length: KEYS }, (_, i) => `k:${i}`).filter((k) => slotOf(k) <= 63);
    expect(moving.length).toBeGreaterThan(50);

    // Writes through the proxy while the slots move: each must land, in the right group.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await proxy.set(`w:${written}`, `x${written}`);
        written++;
      }
    })();
    const res = await cli(['slot', 'migrate', '0', '63', '2', '--batch-slots', '16']);
    writing = false;
    await writer;

    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^migration m-\S+ done: slots 0-63 online in group 2, \d+ keys moved in \d+s\n$/);
    expect(res.stderr).toMatch(/^created migration m-\S+: slots 0-63 from group\(s\) 1 → group 2\n/);
    expect(res.stderr).toContain('running migration');
    expect(res.stderr).toMatch(/migration m-\S+ done: 64\/64 slots/);
    expect(await ok(['slot', 'list'])).toBe('0-63 online group 2\n64-511 online group 1\n512-1023 online group 2\n');

    // Every key readable through the proxy with its value.
    const values = await proxy.mget(Array.from({ length: KEYS }, (_, i) => `k:${i}`));
    expect(values).toEqual(Array.from({ length: KEYS }, (_, i) => `v${i}`));
    const w = await proxy.mget(Array.from({ length: written }, (_, i) => `w:${i}`));
    expect(w).toEqual(Array.from({ length: written }, (_, i) => `x${i}`));

    // Held by the right master only.
    const [on1, on2] = [await keysOn(g1, 'k:'), await keysOn(g2, 'k:')];
    for (const k of moving) {
      expect(on1.has(k), k).toBe(false);
      expect(on2.has(k), k).toBe(true);
    }
    expect(on1.size + on2.size).toBe(KEYS);
    const w1 = [...(await keysOn(g1, 'w:'))].filter((k) => slotOf(k) <= 63);
    expect(w1).toEqual([]);
  });

  it('with a dashboard alive, the CLI follows the task its runner executes', async () => {
    const port = await freePort();
    const dash = new ManagedProcess({
      name: 'reborn-config dashboard',
      command: process.execPath,
      args: [BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, 'dashboard', '--http-addr', `127.0.0.1:${port}`],
      env: cleanEnv(),
      cwd: REPO,
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      await dash.waitReady('healthz', () => healthzFrom(`${base}/healthz`, dash.pid), 20_000);
      // The runner campaigns right after listening; the CLI decides by the election.
      await dash.waitReady('runner elected', async () => {
        const o = (await (await fetch(`${base}/api/overview`)).json()) as { runnerAlive: boolean };
        return o.runnerAlive;
      }, 20_000);

      const res = await cli(['slot', 'migrate', '64', '127', '2']);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stderr).toContain(`a runner is alive for product ${cluster.product}: following migration`);
      expect(res.stdout).toMatch(/^migration m-\S+ done: slots 64-127 online in group 2, \d+ keys moved in \d+s\n$/);
      const values = await proxy.mget(Array.from({ length: KEYS }, (_, i) => `k:${i}`));
      expect(values).toEqual(Array.from({ length: KEYS }, (_, i) => `v${i}`));

      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^reborn_config_group_slots\{group="2"\} 640$/m);
      expect(metrics).toMatch(/^reborn_config_runner_alive 1$/m);
      // Logs are pino JSON lines.
      const records = dash.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string });
      expect(records.some((r) => r.msg === 'dashboard listening')).toBe(true);
    } finally {
      const exit = await dash.terminate('SIGTERM');
      expect(exit).toEqual({ code: 0, signal: null });
    }
    expect(dash.lines.some((l) => l.includes('"dashboard stopped"'))).toBe(true);
  });
  it('Ctrl-C stops a local run at a safe point; the same verb again resumes the task', async () => {
    const args = [BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, 'slot', 'migrate', '128', '511', '2', '--throttle', '300'];
    const child = spawn(process.execPath, args, { env: cleanEnv(), cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // Interrupt once the task has moved something (a progress line with keys moved).
      const deadline = Date.now() + 20_000;
      while (!/[1-9]\d* keys moved/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      child.kill('SIGINT');
      expect(await exited).toBe(130);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    expect(stdout).toBe('');
    const id = /created migration (m-\S+):/.exec(stderr)![1]!;
    expect(stderr.trimEnd().split('\n').at(-1)).toMatch(
      new RegExp(`^reborn-config: stopped migration ${id} at a safe point; it stays (running|pending) in etcd: run the same "slot migrate" again, or start "reborn-config dashboard", to finish it$`),
    );
    const slots = await ok(['slot', 'list']);
    expect(slots).not.toBe('0-1023 online group 2\n');

    // The same verb finds the task and finishes it.
    const res = await cli(['slot', 'migrate', '128', '511', '2']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain(`resuming migration ${id}`);
    expect(res.stdout).toMatch(new RegExp(`^migration ${id} done: slots 128-511 online in group 2, \\d+ keys moved in \\d+s\n$`));
    expect(await ok(['slot', 'list'])).toBe('0-1023 online group 2\n');
    const values = await proxy.mget(Array.from({ length: KEYS }, (_, i) => `k:${i}`));
    expect(values).toEqual(Array.from({ length: KEYS }, (_, i) => `v${i}`));
  });
});

describe('migration pause / resume / cancel', () => {
  it('moves a detached task through its states and refuses what the state machine forbids', async () => {
    // Another product on the same servers: no runner there, so the task stays where we put it.
    const p = `${cluster.product}x`;
    await Promise.all([ok(['group', 'add', '1'], p), ok(['group', 'add', '2'], p)]);
    await Promise.all([ok(['server', 'add', '1', cluster.groups[0]!.master.addr], p), ok(['server', 'add', '2', cluster.groups[1]!.master.addr], p)]);
    await ok(['slot', 'init'], p);
    const id = (await ok(['slot', 'migrate', '0', '9', '2', '--detach'], p)).trim();
    expect(id).toMatch(/^m-\S+$/);

    const refused = async (args: string[], message: string) => {
      expect(await cli(args, p)).toEqual({ code: 1, stdout: '', stderr: `reborn-config: ${message}\n` });
    };
    await Promise.all([
      refused(['slot', 'set', '0', '0', '2'], `slot 0 is part of active migration ${id}; wait for it or cancel it first`),
      refused(['slot', 'migrate', '5', '20', '2'], `slot 5 is already part of active migration ${id} (to group 2)`),
      refused(['slot', 'init', '--force'], `cannot reinitialise the slots while migration ${id} is pending; wait for it or cancel it`),
    ]);
    expect(await ok(['migration', 'pause', id], p)).toBe(`migration ${id}: pending → paused\n`);
    expect(await ok(['migration', 'pause', id], p)).toBe(`migration ${id} is already paused\n`);
    const resumed = await cli(['migration', 'resume', id], p);
    expect(resumed.stdout).toBe(`migration ${id}: paused → running\n`);
    expect(resumed.stderr).toContain('no runner is alive');
    expect(await ok(['migration', 'cancel', id], p)).toBe(`migration ${id}: running → cancelling\n`);
    await refused(['migration', 'resume', id], `cannot resume migration ${id}: it is being cancelled`);
    expect(await ok(['migration', 'list'], p)).toMatch(
      new RegExp(`^ID +STATE +SLOTS +FROM +TO +PROGRESS +PACE +WAITING +ERROR\n${id} +cancelling +0-9 +1 +2 +0/10 slots, 0 keys moved\n$`),
    );
  });

  it('a finished task refuses resume, pause and cancel', async () => {
    const tasks = JSON.parse(await ok(['migration', 'list', '--json'])) as Array<{ id: string; state: string }>;
    const done = tasks.find((t) => t.state === 'done');
    expect(done).toBeDefined();
    await Promise.all(
      ['resume', 'pause', 'cancel'].map(async (op) => {
        expect(await cli(['migration', op, done!.id])).toEqual({
          code: 1,
          stdout: '',
          stderr: `reborn-config: cannot ${op} migration ${done!.id}: it is done\n`,
        });
      }),
    );
    expect(await ok(['slot', 'migrate', '0', '3', '2'])).toBe('slots 0-3 are already online in group 2: nothing to move\n');
  });
});

describe('slot rebalance', () => {
  it('prints the plan, moves nothing without --confirm, and carries it out with it', async () => {
    const before = await ok(['slot', 'list']);
    expect(before).toBe('0-1023 online group 2\n');
    const dry = await ok(['slot', 'rebalance']);
    expect(dry).toMatch(/dry run: nothing was moved; run "slot rebalance --confirm" to carry out this plan\n$/);
    expect(await ok(['slot', 'list'])).toBe(before);

    const res = await cli(['slot', 'rebalance', '--confirm']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/migration m-\S+ done: slots [\d,-]+ online in group 1, \d+ keys moved in \d+s\n$/);
    const groups = JSON.parse(await ok(['group', 'list', '--json'])) as Array<{ id: number; slots: number }>;
    expect(groups.map((g) => [g.id, g.slots])).toEqual([
      [1, 512],
      [2, 512],
    ]);
    const values = await proxy.mget(Array.from({ length: KEYS }, (_, i) => `k:${i}`));
    expect(values).toEqual(Array.from({ length: KEYS }, (_, i) => `v${i}`));
    expect(await ok(['slot', 'rebalance'])).toBe('slots are balanced: nothing to move\n');
  });
});

describe('a failed migration', () => {
  it('fails on a key found in both groups, keeps its batch migrating, and finishes once the duplicate is gone and it is resumed', { timeout: 60_000 }, async () => {
    // Sixteen slots currently online in one group, to be moved to the other.
    const slots = await cluster.store.listSlots();
    const from = slots[0]!.group;
    let last = 0;
    while (last < 15 && slots[last + 1]!.group === from && slots[last + 1]!.state === 'online') last++;
    const to = from === 1 ? 2 : 1;
    const target = cluster.groups.find((g) => g.id === to)!.master.client();
    const dup = Array.from({ length: KEYS }, (_, i) => `k:${i}`).find((k) => slotOf(k) <= last)!;
    await target.set(dup, 'a-stray-copy'); // the same key in the target: MIGRATE answers BUSYKEY
    const failed = await cli(['slot', 'migrate', '0', String(last), String(to)]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/BUSYKEY/);
    const id = /created migration (m-\S+):/.exec(failed.stderr)![1]!;
    expect((await cluster.store.listSlots()).slice(0, last + 1).some((sl) => sl.state === 'migrating')).toBe(true);

    await target.del(dup); // the operator removes the stray copy
    expect(await ok(['migration', 'resume', id])).toBe(`migration ${id}: failed → running\n`);
    const res = await cli(['slot', 'migrate', '0', String(last), String(to)]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain(`resuming migration ${id}`);
    expect((await cluster.store.listSlots()).slice(0, last + 1).every((sl) => sl.state === 'online' && sl.group === to)).toBe(true);
    const values = await proxy.mget(Array.from({ length: KEYS }, (_, i) => `k:${i}`));
    expect(values).toEqual(Array.from({ length: KEYS }, (_, i) => `v${i}`));
    target.disconnect();
  });
});

describe('proxies', () => {
  it('proxy list shows the registered proxy; proxy offline fences it', async () => {
    const list = JSON.parse(await ok(['proxy', 'list', '--json'])) as Array<{ id: string; state: string; addr: string; registered: boolean }>;
    expect(list).toHaveLength(1);
    const p = list[0]!;
    expect(p).toMatchObject({ state: 'online', addr: cluster.proxies[0]!.addr, registered: true });
    expect(await ok(['proxy', 'list'])).toMatch(new RegExp(`^ID +STATE +ADDR +ADMIN +PID +HOST +STARTED +FENCE\n${p.id} +online +${cluster.proxies[0]!.addr} `));
    expect(await ok(['proxy', 'offline', p.id])).toBe(`proxy ${p.id} fenced at every group's servers and its registration deleted\n`);
    // Fenced: its ACL user was disabled on every master (the proxy may already be recovering).
    const after = JSON.parse(await ok(['proxy', 'list', '--json'])) as Array<{ id: string }>;
    expect(after.map((x) => x.id)).toContain(p.id);
  });
});
