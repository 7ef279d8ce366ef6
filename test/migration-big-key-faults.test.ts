/**
 * Faults in the middle of a big key's chunked move (issue 14, "moves that survive anything"),
 * with real etcd, redis-server, two reborn-proxy processes, a real `reborn-config slot migrate`
 * runner process and, for the target failover, a real `reborn-agent --ha`:
 *
 *   1. one proxy is killed (SIGKILL) while a big key's move record says `copying` and that
 *      proxy holds client requests for the key; it is restarted on the same port (so with the
 *      same id); the migration ends `done` on its own.
 *   2. the TARGET group's master is killed (SIGKILL) while a big key's record says `copying`;
 *      the agent promotes its replica; the migration ends `done` with no operator action.
 *
 * Group 1 holds a 300k-field hash (with a TTL) and a 200k-element list among small keys in
 * slots 0-63, which move to group 2. Clients at ioredis' defaults (they reconnect and resend)
 * write through both proxies for the whole migration: INCRs on counters of both groups, and
 * HSET / RPUSH on the big keys themselves. Every acknowledged write is recorded and checked
 * afterwards: counters at least their acknowledged count and highest reply (a resent INCR may
 * count twice), every acknowledged hash field and list element present, nothing unknown, the
 * preloaded content intact; every key in exactly one group, its slot's owner; no
 * `__reborn`-prefixed key (temporary copies, copy marks) on any live server; no move record.
 *
 * Why the big-key writers pause: while a slot migrates, a client touching a key the runner
 * has not reached makes the proxy MIGRATE that key whole (its on-touch move). For a big key
 * that is exactly the stall the chunked path avoids, and the runner then never copies it. So
 * a big key is written while its slot is still online in the source, while its move record
 * says copying/swapping (the proxies hold those writes), and once it left the source — not in
 * between. (That on-touch MIGRATE of a big key is a product gap reported to the lead.)
 *
 * Nothing waits for time: kills follow the move records, ends follow the runner's exit.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { Migrations, Moves, MoveState, type StoredMove } from '@reborn/coordinator';
import { ProxyProcess, startCluster, stopAll, waitFor, type Cluster, type RedisServer } from '@reborn/testkit';
import { parsePrometheus } from './helpers.js';
import { placement, scanKeys } from './migration-helpers.js';
import { startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG_BIN = `${REPO}packages/config/bin/reborn-config.js`;
/** Slots moved: group 1 owns 0-511 in a two-group cluster. */
const FIRST = 0;
const LAST = 63;
const HASH_FIELDS = 300_000;
const LIST_ITEMS = 200_000;
const SMALL_KEYS = 4000;
const COUNTERS = 200;
const TTL_MS = 3_600_000;

afterAll(stopAll);

const inRange = (key: string) => keySlot(Buffer.from(key)) >= FIRST && keySlot(Buffer.from(key)) <= LAST;

function nameInRange(base: string): string {
  for (let n = 0; ; n++) if (inRange(`${base}${n}`)) return `${base}${n}`;
}

const BIG_HASH = nameInRange('bkf:hash:');
const BIG_LIST = nameInRange('bkf:list:');
const smallKey = (i: number) => `bkf:s:${i}`;
const smallValue = (k: string) => `value-of-${k}`;

// -----------------------------------------------------------------------------------------
// The runner process

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REBORN_')) delete env[k];
  return env;
}

/** `reborn-config slot migrate FIRST LAST 2` as a child process; resolves with its exit. */
function startRunner(cluster: Cluster): { done: Promise<{ code: number | null; signal: string | null }>; output: () => string; kill: () => void } {
  const args = [CONFIG_BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, 'slot', 'migrate', String(FIRST), String(LAST), '2'];
  const child = spawn(process.execPath, args, { env: cleanEnv(), cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    done,
    output: () => out.slice(-4000),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

// -----------------------------------------------------------------------------------------
// Data

async function pipelined(c: Redis, n: number, add: (p: ReturnType<Redis['pipeline']>, i: number) => void, per = 1000): Promise<void> {
  for (let i = 0; i < n; i += per) {
    const p = c.pipeline();
    for (let j = i; j < Math.min(n, i + per); j++) add(p, j);
    const res = (await p.exec()) ?? [];
    expect(res.filter(([e]) => e).map(([e]) => String(e))).toEqual([]);
  }
}

/** Big keys and small keys written straight to group 1's master (it owns slots 0-511). */
async function preload(g1: Redis): Promise<void> {
  await pipelined(g1, HASH_FIELDS / 100, (p, i) => {
    const args: string[] = [];
    for (let j = i * 100; j < (i + 1) * 100; j++) args.push(`f:${j}`, `v:${j}`);
    p.hset(BIG_HASH, ...args);
  }, 100);
  await g1.pexpire(BIG_HASH, TTL_MS);
  await pipelined(g1, LIST_ITEMS / 100, (p, i) => p.rpush(BIG_LIST, ...Array.from({ length: 100 }, (_, j) => `i:${i * 100 + j}`)), 100);
  let written = 0;
  for (let i = 0; written < SMALL_KEYS; i++) {
    const k = smallKey(i);
    if (keySlot(Buffer.from(k)) >= 512) continue;
    await g1.set(k, smallValue(k));
    written++;
  }
}

function smallKeys(): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < SMALL_KEYS; i++) if (keySlot(Buffer.from(smallKey(i))) < 512) out.push(smallKey(i));
  return out;
}

// -----------------------------------------------------------------------------------------
// When a big key may be written (see the header)

class BigKeyGate {
  private readonly open = new Map<string, boolean>();
  private stopped = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly moves: Moves,
    private readonly source: Redis,
    keys: readonly string[],
  ) {
    for (const k of keys) this.open.set(k, true);
  }

  allowed(key: string): boolean {
    return this.open.get(key) === true;
  }

  /** From now on a big key is written only while held by its move, or once it left the source. */
  startMigrating(): void {
    for (const k of this.open.keys()) this.open.set(k, false);
    this.loop = (async () => {
      const gone = new Set<string>();
      while (!this.stopped) {
        const records = await this.moves.list().catch(() => []);
        for (const k of this.open.keys()) {
          if (!gone.has(k) && (await this.source.exists(k).catch(() => 1)) === 0) gone.add(k);
          const hex = Buffer.from(k).toString('hex');
          const held = records.some((r) => r.move.keys.includes(hex) && (r.move.state === MoveState.Copying || r.move.state === MoveState.Swapping));
          this.open.set(k, gone.has(k) || held);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

// -----------------------------------------------------------------------------------------
// Writers through the proxies, at ioredis' defaults, recording what was acknowledged

class Load {
  /** Counter → acknowledged INCRs and the highest reply seen. */
  readonly counters = new Map<string, { acked: number; maxReply: number }>();
  readonly hashAcked = new Map<string, string>();
  readonly hashSent = new Set<string>();
  readonly listAcked = new Set<string>();
  readonly listSent = new Set<string>();
  acked = 0;
  errors = 0;
  /** HSET/RPUSH on the big keys sent and not answered yet. */
  bigInFlight = 0;
  readonly errorSamples: string[] = [];
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly clients: Redis[] = [];

  constructor(
    private readonly gate: BigKeyGate,
    private readonly counterKeys: readonly string[],
  ) {}

  start(proxies: readonly ProxyProcess[]): void {
    proxies.forEach((p, n) => {
      for (let w = 0; w < 2; w++) this.loops.push(this.counterLoop(this.connect(p), `${n}.${w}`));
      this.loops.push(this.hashLoop(this.connect(p), `p${n}`));
      this.loops.push(this.listLoop(this.connect(p), `p${n}`));
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const c of this.clients) c.disconnect();
  }

  summary(): string {
    return `${this.acked} writes acknowledged (${this.hashAcked.size} big-hash fields, ${this.listAcked.size} big-list elements), ${this.errors} errors${this.errorSamples.length ? ` (e.g. ${this.errorSamples.slice(0, 3).join(' | ')})` : ''}`;
  }

  private connect(p: ProxyProcess): Redis {
    // The proxy's port, not the ProxyProcess: a restarted proxy listens there again.
    const c = new Redis({ host: p.host, port: p.port });
    c.on('error', () => undefined);
    this.clients.push(c);
    return c;
  }

  private failed(what: string, err: unknown): void {
    this.errors++;
    if (this.errorSamples.length < 10) this.errorSamples.push(`${what}: ${(err as Error).message}`);
  }

  private async counterLoop(c: Redis, w: string): Promise<void> {
    let seed = w.charCodeAt(0) * 7 + w.charCodeAt(2);
    while (this.running) {
      const keys = Array.from({ length: 8 }, () => this.counterKeys[(seed = (seed * 1103515245 + 12345) % 2147483648) % this.counterKeys.length]!);
      const p = c.pipeline();
      for (const k of keys) p.incr(k);
      const res = await p.exec().catch((err: Error) => keys.map(() => [err, null] as [Error, null]));
      res!.forEach(([err, v], i) => {
        if (err) return this.failed(`INCR ${keys[i]}`, err);
        this.acked++;
        const s = this.counters.get(keys[i]!) ?? { acked: 0, maxReply: 0 };
        s.acked++;
        s.maxReply = Math.max(s.maxReply, Number(v));
        this.counters.set(keys[i]!, s);
      });
    }
  }

  /** Waits until the big key may be written; false once stopped. */
  private async mayWrite(key: string): Promise<boolean> {
    while (this.running && !this.gate.allowed(key)) await new Promise((r) => setTimeout(r, 10));
    return this.running;
  }

  private async hashLoop(c: Redis, w: string): Promise<void> {
    for (let seq = 0; await this.mayWrite(BIG_HASH); seq++) {
      const field = `w:${w}:${seq}`;
      const value = `x:${seq}`;
      this.hashSent.add(field);
      this.bigInFlight++;
      try {
        await c.hset(BIG_HASH, field, value);
        this.hashAcked.set(field, value);
        this.acked++;
      } catch (err) {
        this.failed(`HSET ${BIG_HASH}`, err);
      } finally {
        this.bigInFlight--;
      }
    }
  }

  private async listLoop(c: Redis, w: string): Promise<void> {
    for (let seq = 0; await this.mayWrite(BIG_LIST); seq++) {
      const elem = `w:${w}:${seq}`;
      this.listSent.add(elem);
      this.bigInFlight++;
      try {
        await c.rpush(BIG_LIST, elem);
        this.listAcked.add(elem);
        this.acked++;
      } catch (err) {
        this.failed(`RPUSH ${BIG_LIST}`, err);
      } finally {
        this.bigInFlight--;
      }
    }
  }

  /** Every acknowledged write readable through `reader`; one line per problem. */
  async problems(reader: Redis): Promise<string[]> {
    const out: string[] = [];
    const keys = [...this.counters.keys()];
    const values = keys.length ? await reader.mget(...keys) : [];
    keys.forEach((k, i) => {
      const s = this.counters.get(k)!;
      const v = Number(values[i] ?? 0);
      if (v < s.acked || v < s.maxReply) out.push(`counter ${k}: ${v}, but ${s.acked} INCRs acknowledged, highest reply ${s.maxReply}`);
    });

    const hash = await reader.hgetall(BIG_HASH);
    for (let j = 0; j < HASH_FIELDS; j++) if (hash[`f:${j}`] !== `v:${j}`) out.push(`${BIG_HASH} f:${j} = ${JSON.stringify(hash[`f:${j}`])}`);
    for (const [f, v] of this.hashAcked) if (hash[f] !== v) out.push(`${BIG_HASH}: acknowledged field ${f} = ${JSON.stringify(hash[f])}, want ${v}`);
    for (const f of Object.keys(hash)) if (!f.startsWith('f:') && !this.hashSent.has(f)) out.push(`${BIG_HASH}: field ${f} was never written`);

    const list = await reader.lrange(BIG_LIST, 0, -1);
    for (let j = 0; j < LIST_ITEMS; j++) if (list[j] !== `i:${j}`) {
      out.push(`${BIG_LIST}[${j}] = ${JSON.stringify(list[j])}, want i:${j}`);
      break;
    }
    const present = new Set(list);
    for (const e of this.listAcked) if (!present.has(e)) out.push(`${BIG_LIST}: acknowledged element ${e} missing`);
    for (const e of list.slice(LIST_ITEMS)) if (!this.listSent.has(e)) out.push(`${BIG_LIST}: element ${e} was never pushed`);
    return out;
  }
}

// -----------------------------------------------------------------------------------------
// Checks on the servers themselves

async function scanAll(server: RedisServer, match: string): Promise<string[]> {
  const c = new Redis({ host: server.host, port: server.port, maxRetriesPerRequest: 1 });
  try {
    return await scanKeys(c, match);
  } finally {
    c.disconnect();
  }
}

/** Requests `proxy` holds for key moves now (its gauge). */
async function heldRequests(proxy: ProxyProcess): Promise<number> {
  return parsePrometheus(await proxy.metrics()).get('reborn_proxy_key_held_requests') ?? 0;
}

interface Setup {
  cluster: Cluster;
  g1: Redis;
  moves: Moves;
  gate: BigKeyGate;
  load: Load;
}

async function setUp(opts: { replicas: number; proxyArgs?: string[] }): Promise<Setup> {
  const cluster = await startCluster({ groups: 2, replicas: opts.replicas, proxies: 2, ...(opts.proxyArgs ? { proxyArgs: opts.proxyArgs } : {}) });
  const g1 = cluster.groups[0]!.master.client();
  await preload(g1);
  const moves = new Moves(cluster.store);
  const gate = new BigKeyGate(moves, g1, [BIG_HASH, BIG_LIST]);
  // Counters in both groups, half of group 1's in the moved slots.
  const counterKeys: string[] = [];
  for (let i = 0; counterKeys.length < COUNTERS; i++) counterKeys.push(`bkf:c:${i}`);
  const load = new Load(gate, counterKeys);
  return { cluster, g1, moves, gate, load };
}

/** Starts the runner with the load going; the big-key writers pause while the slots change hands. */
async function migrateUnderLoad(s: Setup): Promise<ReturnType<typeof startRunner>> {
  s.load.start(s.cluster.proxies);
  // Some writes acknowledged before the migration (big keys included), then the gate closes.
  await waitFor(() => s.load.hashAcked.size >= 20 && s.load.listAcked.size >= 20, { timeoutMs: 60_000, what: 'writes to the big keys before the migration' });
  s.gate.startMigrating();
  // An HSET/RPUSH already sent must be answered before the slot moves (else it could be the on-touch MIGRATE the gate avoids).
  await waitFor(() => s.load.bigInFlight === 0, { timeoutMs: 30_000, what: 'in-flight big-key writes answered' });
  return startRunner(s.cluster);
}

/** The checks after the migration (see the header); `servers` are the live redis servers. */
async function checkAfter(s: Setup, reader: Redis, groups: Cluster['groups'], servers: RedisServer[]): Promise<void> {
  const tasks = await new Migrations(s.cluster.store).list();
  expect(tasks.map((t) => t.task.state)).toEqual(['done']);
  const problems = await s.load.problems(reader);
  expect(problems.slice(0, 20), s.load.summary()).toEqual([]);
  const unmoved = smallKeys();
  const values = await reader.mget(...unmoved);
  expect(unmoved.filter((k, i) => values[i] !== smallValue(k)).slice(0, 20)).toEqual([]);
  expect(await reader.pttl(BIG_HASH)).toBeGreaterThan(0);

  const p = await placement({ ...s.cluster, groups });
  expect(p.notOnline).toEqual([]);
  expect(p.duplicated.slice(0, 20)).toEqual([]);
  expect(p.misplaced.slice(0, 20)).toEqual([]);
  const g2 = new Redis({ host: groups[1]!.master.host, port: groups[1]!.master.port });
  try {
    expect(await g2.exists(BIG_HASH, BIG_LIST)).toBe(2);
  } finally {
    g2.disconnect();
  }
  const leftovers: string[] = [];
  for (const server of servers) for (const k of await scanAll(server, '__reborn*')) leftovers.push(`${k} on ${server.addr}`);
  expect(leftovers).toEqual([]);
  expect(await s.moves.list()).toEqual([]);
}

/** The move record of a big key in state copying, once one of `proxies` holds client requests for it. */
function copyingWhileHeld(s: Setup, proxies: readonly ProxyProcess[], runner: ReturnType<typeof startRunner>): Promise<StoredMove> {
  return waitFor(
    async () => {
      const rec = (await s.moves.list()).find((m) => m.move.state === MoveState.Copying);
      if (!rec) return null;
      for (const p of proxies) if ((await heldRequests(p)) > 0) return rec;
      return null;
    },
    { timeoutMs: 120_000, intervalMs: 20, what: `a big key copying while ${proxies.map((p) => p.addr).join(' or ')} holds requests for it (runner: ${runner.output()})` },
  );
}

describe('faults in the middle of a big-key move, under load through two proxies', () => {
  it('a proxy killed -9 while it holds requests for a big key being copied, restarted on its port: the migration ends done, every write kept', { timeout: 240_000 }, async () => {
    const s = await setUp({ replicas: 0 });
    const { cluster } = s;
    let runner: ReturnType<typeof startRunner> | null = null;
    try {
      runner = await migrateUnderLoad(s);
      const victim = cluster.proxies[0]!;
      // A big key copying, and the victim holding client writes to it.
      const copying = await copyingWhileHeld(s, [victim], runner);
      await victim.kill('SIGKILL');
      const bigKey = Buffer.from(copying.move.keys[0]!, 'hex').toString();
      // Caught mid-copy: the record is still there and the key still on the source.
      expect(await s.g1.exists(bigKey)).toBe(1);

      // Same port, so the same id (<host>-<port>); it loads the move records and holds the key from its first request.
      const restarted = new ProxyProcess(victim.port, victim.adminPort, { etcd: cluster.etcd.clientUrl, product: cluster.product });
      cluster.proxies.splice(0, 1, restarted);
      await victim.stop();
      await restarted.waitHealthy(60_000);

      const end = await runner.done;
      expect(end, runner.output()).toEqual({ code: 0, signal: null });
      await s.gate.stop();
      await s.load.stop();
      console.log(`[big-key-faults] proxy kill during ${bigKey}: ${s.load.summary()}`);

      const reader = cluster.proxies[1]!.client();
      await checkAfter(s, reader, cluster.groups, cluster.groups.flatMap((g) => [g.master, ...g.replicas]));
      reader.disconnect();
    } finally {
      runner?.kill();
      await s.gate.stop();
      await s.load.stop();
      s.g1.disconnect();
      await cluster.stop();
    }
  });

  it('the target master killed -9 while a big key is being copied, a real agent with --ha: the replica takes over, the migration ends done, every write kept', { timeout: 240_000 }, async () => {
    // --durable: an acknowledged write is on a replica, so the target's failover may not lose it.
    const s = await setUp({ replicas: 1, proxyArgs: ['--durable'] });
    const { cluster } = s;
    let runner: ReturnType<typeof startRunner> | null = null;
    let agent: AgentProcess | null = null;
    try {
      agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: 'ha-bkf', args: ['--ha', '--down-after-ms', '1500'] });
      await waitLeader(agent);
      const g2 = cluster.groups[1]!;
      const oldMaster = g2.master;
      const replica = g2.replicas[0]!;
      runner = await migrateUnderLoad(s);

      const copying = await copyingWhileHeld(s, cluster.proxies, runner);
      await oldMaster.kill('SIGKILL');
      const bigKey = Buffer.from(copying.move.keys[0]!, 'hex').toString();
      expect(await s.g1.exists(bigKey)).toBe(1);

      await waitFor(
        async () => (await cluster.store.getGroup(2))?.servers.find((sv) => sv.role === 'master')?.addr === replica.addr,
        { timeoutMs: 60_000, intervalMs: 50, what: 'the agent to promote group 2 replica' },
      );

      const end = await runner.done;
      expect(end, runner.output()).toEqual({ code: 0, signal: null });
      await s.gate.stop();
      await s.load.stop();
      console.log(`[big-key-faults] target failover during ${bigKey}: ${s.load.summary()}`);

      const reader = cluster.proxies[1]!.client();
      const groups = [cluster.groups[0]!, { id: 2, master: replica, replicas: [] }];
      await checkAfter(s, reader, groups, [cluster.groups[0]!.master, ...cluster.groups[0]!.replicas, replica]);
      reader.disconnect();
    } finally {
      runner?.kill();
      await s.gate.stop();
      await s.load.stop();
      s.g1.disconnect();
      await agent?.stop();
      await cluster.stop();
    }
  });
});

describe('a big key clients keep writing while its slot migrates', () => {
  // A request touching a big key of a migrating slot that the runner has not reached yet must
  // not make the proxy MIGRATE the whole key (a stall of the source group): the on-touch
  // script answers BIGKEY and asks the runner for it (WANTED_HASH), the proxy retries, the
  // runner moves it in pieces first (with its hold), and the request then runs in the target.
  // Without that, the proxy always won the race: its held requests are released the moment
  // the slot turns migrating, before the runner's first SCAN.
  it('every big key is moved by the runner in chunks (it had a move record), even while clients write it', { timeout: 240_000 }, async () => {
    const s = await setUp({ replicas: 0 });
    const { cluster } = s;
    let runner: ReturnType<typeof startRunner> | null = null;
    const recorded = new Set<string>();
    let polling = true;
    const poll = (async () => {
      while (polling) {
        for (const r of await s.moves.list().catch(() => [])) for (const k of r.move.keys) recorded.add(Buffer.from(k, 'hex').toString());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      // The gate stays open: HSET and RPUSH on the big keys go on all along.
      s.load.start(cluster.proxies);
      await waitFor(() => s.load.hashAcked.size >= 20 && s.load.listAcked.size >= 20, { timeoutMs: 60_000, what: 'writes to the big keys before the migration' });
      runner = startRunner(cluster);
      const end = await runner.done;
      expect(end, runner.output()).toEqual({ code: 0, signal: null });
      polling = false;
      await poll;
      await s.load.stop();
      // For the report only (no threshold): the source's slowest commands, the on-touch moves among them.
      const slow = ((await s.g1.call('SLOWLOG', 'GET', '5')) as [number, number, number, string[]][]).map((e) => `${e[3].slice(0, 1).join(' ')} ${(e[2] / 1000).toFixed(0)} ms`);
      console.log(`[big-key-faults] big keys written during the migration: ${s.load.summary()}; keys with a move record: ${[...recorded].join(', ') || 'none'}; source slowlog: ${slow.join(', ')}`);
      const reader = cluster.proxies[1]!.client();
      expect((await s.load.problems(reader)).slice(0, 20)).toEqual([]);
      reader.disconnect();
      expect([...recorded].sort()).toEqual([BIG_HASH, BIG_LIST].sort());
    } finally {
      polling = false;
      await poll;
      runner?.kill();
      await s.load.stop();
      s.g1.disconnect();
      await cluster.stop();
    }
  });
});
