/**
 * Big keys through a real `reborn-config slot migrate` runner process, killed -9 in the middle
 * of a big key's chunked copy, then finished by a second runner: a slot range of group 1
 * holding a 500k-field hash, a 300k-element list and a 300k-element zset among 20k small keys
 * moves to group 2. Afterwards every key is in exactly one group (its slot's) with its value
 * and TTL, no `__reborn:move:` temporary key is left on any server, no move record in etcd.
 *
 * No proxy is started: the key hold's barrier then names no one (the proxy side of the hold
 * is tested with the proxy).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { Migrations, Moves } from '@reborn/coordinator';
import { isRunnerAlive } from '@reborn/config';
import { startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { scanKeys } from './migration-helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const BIN = `${REPO}packages/config/bin/reborn-config.js`;
const FIRST = 0;
const LAST = 255; // group 1 owns 0-511: half of it moves
const SMALL = 20_000;
const TTL_MS = 3_600_000;

let cluster: Cluster;
let g1: Redis;
let g2: Redis;

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REBORN_')) delete env[k];
  return env;
}

function cliArgs(args: readonly string[]): string[] {
  return [BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, ...args];
}

function cli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, cliArgs(args), { env: cleanEnv(), cwd: REPO, timeout: 300_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

const inRange = (key: string) => keySlot(Buffer.from(key)) >= FIRST && keySlot(Buffer.from(key)) <= LAST;

/** The first name `<base><n>` whose slot is in the migrating range. */
function nameInRange(base: string): string {
  for (let n = 0; ; n++) if (inRange(`${base}${n}`)) return `${base}${n}`;
}

const BIG = { hash: nameInRange('big:hash:'), list: nameInRange('big:list:'), zset: nameInRange('big:zset:') };

const smallKey = (i: number) => (i % 10 === 9 ? `{tag${i % 53}}:s${i}` : `small:${i}`);

/** A digest of a key's whole value (type-aware, order-preserving where the type has an order). */
async function digest(c: Redis, key: string): Promise<string> {
  const type = await c.type(key);
  let v: unknown;
  if (type === 'hash') v = Object.entries(await c.hgetall(key)).sort();
  else if (type === 'list') v = await c.lrange(key, 0, -1);
  else if (type === 'zset') v = await c.zrange(key, 0, -1, 'WITHSCORES');
  else if (type === 'string') v = await c.get(key);
  else v = type;
  return `${type}:${createHash('sha256').update(JSON.stringify(v)).digest('hex')}`;
}


async function load(c: Redis, n: number, add: (p: ReturnType<Redis['pipeline']>, i: number) => void): Promise<void> {
  for (let i = 0; i < n; i += 5000) {
    const p = c.pipeline();
    for (let j = i; j < Math.min(n, i + 5000); j++) add(p, j);
    const res = (await p.exec()) ?? [];
    expect(res.filter(([e]) => e)).toEqual([]);
  }
}

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 0 });
  g1 = cluster.groups[0]!.master.client();
  g2 = cluster.groups[1]!.master.client();
  // Everything is written straight to group 1's master (it owns slots 0-511; group 2 512-1023).
  const own1 = (k: string) => keySlot(Buffer.from(k)) < 512;
  await load(g1, SMALL, (p, i) => {
    const k = smallKey(i);
    if (!own1(k)) return;
    if (i % 3 === 0) p.set(k, `v${i}`, 'PX', TTL_MS + i);
    else if (i % 3 === 1) p.hset(k, 'a', String(i));
    else p.rpush(k, String(i), 'x');
  });
  await load(g1, 5000, (p, i) => {
    const args: string[] = [];
    for (let j = i * 100; j < (i + 1) * 100; j++) args.push(`field:${j}`, `value-${j}`);
    p.hset(BIG.hash, ...args);
  });
  await g1.pexpire(BIG.hash, TTL_MS);
  await load(g1, 3000, (p, i) => p.rpush(BIG.list, ...Array.from({ length: 100 }, (_, j) => `item-${i * 100 + j}`)));
  await load(g1, 3000, (p, i) => p.zadd(BIG.zset, ...Array.from({ length: 100 }, (_, j) => [String((i * 100 + j) % 977), `m${i * 100 + j}`]).flat()));
});

afterAll(stopAll);

describe('big keys through a runner process', () => {
  it('a runner killed -9 mid-copy of a big key: the next runner finishes, every key whole in exactly one group', async () => {
    const before = new Map<string, string>();
    for (const k of Object.values(BIG)) before.set(k, await digest(g1, k));
    const smallBefore = new Map<string, string>();
    for (const k of await scanKeys(g1)) if (!Object.values(BIG).includes(k)) smallBefore.set(k, await digest(g1, k));

    const moves = new Moves(cluster.store);
    const migrations = new Migrations(cluster.store);
    const child = spawn(process.execPath, cliArgs(['slot', 'migrate', String(FIRST), String(LAST), '2']), { env: cleanEnv(), cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    try {
      // Kill it while a big key is being copied: the task's progress names it, its record says copying.
      const { progress, copying } = await waitFor(
        async () => {
          const progress = (await migrations.list()).map((m) => m.task.progress).find((p) => p.bigKey !== undefined);
          const copying = (await moves.list()).find((m) => m.move.state === 'copying');
          return progress && copying && { progress, copying };
        },
        { timeoutMs: 120_000, what: `a big key copying, named in the task's progress (runner: ${stderr})` },
      );
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      expect(Object.values(BIG)).toContain(progress.bigKey!.key);
      expect(progress.bigKey!.total).toBeGreaterThanOrEqual(300_000);
      expect(progress.bytesMoved).toBeGreaterThan(0);
      // Caught mid-copy: the temporary key exists on the target, the key is still whole on the source.
      const key = Buffer.from(copying.move.keys[0]!, 'hex').toString();
      expect(await g1.exists(key)).toBe(1);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expect(await moves.list()).toHaveLength(1);

    // The dead runner's lease runs out; then the same verb resumes the task and finishes it.
    await waitFor(async () => !(await isRunnerAlive(cluster.store)), { timeoutMs: 60_000, what: 'the killed runner\'s election lease to expire' });
    const res = await cli(['slot', 'migrate', String(FIRST), String(LAST), '2']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('resuming migration');

    // Every slot of the range online in group 2; every key once, where its slot says, intact.
    const slots = await cluster.store.listSlots();
    expect(slots.filter((s) => s.state !== 'online').map((s) => s.id)).toEqual([]);
    const on1 = new Set(await scanKeys(g1));
    const on2 = new Set(await scanKeys(g2));
    const problems: string[] = [];
    for (const [k, d] of [...smallBefore, ...before]) {
      const want = inRange(k) ? g2 : g1;
      const [here, there] = inRange(k) ? [on2, on1] : [on1, on2];
      if (!here.has(k) || there.has(k)) problems.push(`${k}: on group 1 ${on1.has(k)}, group 2 ${on2.has(k)}`);
      else if ((await digest(want, k)) !== d) problems.push(`${k}: value changed`);
    }
    expect(problems.slice(0, 10)).toEqual([]);
    expect(on1.size + on2.size).toBe(smallBefore.size + before.size);
    const pttl = await g2.pttl(BIG.hash);
    expect(pttl > TTL_MS - 600_000 && pttl <= TTL_MS).toBe(true);
    expect([...on1, ...on2].filter((k) => k.startsWith('__reborn:move:'))).toEqual([]);
    expect(await moves.list()).toEqual([]);
  }, 300_000);
});
