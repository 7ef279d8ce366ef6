/**
 * The nemesis's workload and its verdicts (not a test file itself):
 *
 * - OwnedWriters: per proxy, writers that each own their keys and SET each one to strictly
 *   increasing values (one pipeline in flight per connection, each key once per pipeline),
 *   through clients that never resend. Per key: the highest value ever sent and the highest
 *   acknowledged. A proxy restarted on its port is reconnected to by the same client.
 * - Resting keys: written once before the faults, so every migration has keys to move.
 * - MigrationLoop: one slot migration after another, random ranges to random groups, some
 *   throttled, created in etcd the way `slot migrate --detach` does and run by the dashboard's
 *   runner.
 * - liveness(): what is still stuck (slots not online, fenced or unready proxies, a proxy that
 *   cannot read a key, tasks not done or cancelled, groups without a reachable master etcd
 *   names), one line each.
 * - safety(): read straight from every group's master: every acknowledged key present in
 *   exactly one group, the one owning its slot, its value within [highest acked, highest
 *   sent]; every resting key there once with its value; and the writers' values the same
 *   through each proxy.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { keySlot } from '@reborn/protocol';
import { createMigration } from '@reborn/config';
import { Migrations, type MigrationTask, type SlotInfo } from '@reborn/coordinator';
import { rng } from './helpers.js';
import { NO_RESEND } from './migration-helpers.js';
import { GROUPS, type NemesisCluster } from './nemesis-cluster.js';

const PIPELINE = 8;
const KEYS_PER_WRITER = 40;
const WRITERS_PER_PROXY = 2;
/** A reply slower than this counts as an error (the write may still land: it stays ≤ sent). */
const COMMAND_TIMEOUT_MS = 5000;

interface KeyRecord {
  sent: number;
  acked: number;
}

export class OwnedWriters {
  readonly keys = new Map<string, KeyRecord>();
  acked = 0;
  errors = 0;
  /** Error messages (their first 80 characters) by count: the operator-visible symptom of each stuck state. */
  readonly errorKinds = new Map<string, number>();
  private readonly clients: Redis[] = [];
  private loops: Promise<void>[] = [];
  private running = false;

  constructor(private readonly cluster: NemesisCluster) {}

  start(): void {
    this.running = true;
    this.cluster.proxies.forEach((p, pi) => {
      for (let w = 0; w < WRITERS_PER_PROXY; w++) {
        const c = new Redis({ host: '127.0.0.1', port: p.port, ...NO_RESEND, enableReadyCheck: false, commandTimeout: COMMAND_TIMEOUT_MS, retryStrategy: () => 200 });
        c.on('error', () => undefined);
        this.clients.push(c);
        const owned = Array.from({ length: KEYS_PER_WRITER }, (_, k) => `nm:p${pi + 1}w${w}:${k}`);
        for (const k of owned) this.keys.set(k, { sent: 0, acked: 0 });
        this.loops.push(this.loop(c, owned));
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const c of this.clients) c.disconnect();
  }

  /** Acknowledged writes so far (for "writes flow" waits). */
  get ackCount(): number {
    return this.acked;
  }

  private async loop(c: Redis, owned: string[]): Promise<void> {
    let next = 0;
    while (this.running) {
      const batch = Array.from({ length: PIPELINE }, (_, j) => owned[(next + j) % owned.length]!);
      next = (next + PIPELINE) % owned.length;
      const p = c.pipeline();
      const values = batch.map((k) => {
        const r = this.keys.get(k)!;
        r.sent++;
        p.set(k, String(r.sent));
        return r.sent;
      });
      let res: [Error | null, unknown][];
      try {
        res = (await p.exec()) ?? [];
      } catch (err) {
        res = batch.map(() => [err as Error, null]);
      }
      let failed = false;
      batch.forEach((k, i) => {
        const [err, reply] = res[i] ?? [new Error('no reply'), null];
        if (err || reply !== 'OK') {
          failed = true;
          this.errors++;
          const why = (err ? err.message : `unexpected reply ${JSON.stringify(reply)}`).slice(0, 80);
          this.errorKinds.set(why, (this.errorKinds.get(why) ?? 0) + 1);
          return;
        }
        const r = this.keys.get(k)!;
        r.acked = Math.max(r.acked, values[i]!);
        this.acked++;
      });
      // Errors come fast (a proxy refusing): do not spin the shared CPU on them.
      if (failed) await sleep(50);
    }
  }
}

// -------------------------------------------------------------------------------------------
// Resting data: keys written once before the faults, so that every migration has keys to move
// (and a failover can catch a move half-way)

export const RESTING_PREFIX = 'nr:';

/** The value resting key `k` was written with. */
export function restingValue(k: string): string {
  return `rest-${k}`;
}

/** Writes `n` resting keys through `c` (no faults yet: every write must succeed). */
export async function preloadResting(c: Redis, n: number): Promise<string[]> {
  const keys = Array.from({ length: n }, (_, i) => `${RESTING_PREFIX}${i}`);
  for (let i = 0; i < n; i += 1000) {
    const p = c.pipeline();
    for (const k of keys.slice(i, i + 1000)) p.set(k, restingValue(k));
    const res = (await p.exec()) ?? [];
    const bad = res.find(([err]) => err !== null);
    if (bad) throw new Error(`preloading resting keys: ${String(bad[0])}`);
  }
  return keys;
}

// -------------------------------------------------------------------------------------------

export class MigrationLoop {
  done = 0;
  cancelled = 0;
  failed: string[] = [];
  createErrors = 0;
  readonly createErrorKinds = new Map<string, number>();
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly random: () => number;

  constructor(
    private readonly cluster: NemesisCluster,
    seed: number,
    private readonly print: (line: string) => void,
  ) {
    // Its own stream, so the fault plan does not shift with the number of migrations.
    this.random = rng(seed ^ 0x5bd1e995);
  }

  start(): void {
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Stops creating tasks; the last one is left to the runner (liveness waits for it). */
  async stop(): Promise<void> {
    this.running = false;
    await this.loopDone;
  }

  private async loop(): Promise<void> {
    const migrations = new Migrations(this.cluster.store);
    while (this.running) {
      const len = 8 + Math.floor(this.random() * 57);
      const first = Math.floor(this.random() * (1024 - len));
      const to = GROUPS[Math.floor(this.random() * GROUPS.length)]!;
      // Some throttled (a move then spans seconds, and faults land in the middle of it).
      const throttle = [0, 500, 2000][Math.floor(this.random() * 3)]!;
      let task: MigrationTask;
      try {
        task = await createMigration(this.cluster.store, { first, last: first + len - 1, to, batchSlots: 16, throttle });
      } catch (err) {
        this.createErrors++;
        const why = String((err as Error).message).slice(0, 80);
        this.createErrorKinds.set(why, (this.createErrorKinds.get(why) ?? 0) + 1);
        await sleep(1000);
        continue;
      }
      this.print(`[migrations] ${task.id}: slots ${first}..${first + len - 1} → group ${to} (${task.slots.length} to move${throttle ? `, ${throttle} keys/s` : ''})`);
      // Follow it until it ends, or the loop is stopped (liveness then waits for it).
      while (this.running) {
        const cur = await migrations.get(task.id).catch(() => null);
        const t = cur?.task;
        if (t && (t.state === 'done' || t.state === 'cancelled' || t.state === 'failed')) {
          if (t.state === 'done') this.done++;
          else if (t.state === 'cancelled') this.cancelled++;
          else {
            this.failed.push(`${t.id} (slots ${first}..${first + len - 1} → ${to}): ${t.error ?? 'no error given'}`);
            this.print(`[migrations] ${t.id} FAILED: ${t.error}`);
          }
          break;
        }
        await sleep(300);
      }
    }
  }
}

// -------------------------------------------------------------------------------------------
// Liveness

/** Everything still stuck, one line each, or [] when all is well. `keys`: read through every proxy. */
export async function liveness(cluster: NemesisCluster, keys: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  const store = cluster.store;
  const slots = await store.listSlots();
  const tasks = await new Migrations(store).list();
  const taskOf = (slot: number): string => {
    const t = tasks.find((s) => s.task.slots.includes(slot) && s.task.state !== 'done' && s.task.state !== 'cancelled');
    return t ? ` (task ${t.task.id} ${t.task.state}, phase "${t.task.progress.phase}")` : '';
  };
  const notOnline = slots.filter((s) => s.state !== 'online');
  if (notOnline.length > 0) {
    const shown = notOnline.slice(0, 8).map((s) => `slot ${s.id} ${s.state} group ${s.group}${taskOf(s.id)}`);
    problems.push(`${notOnline.length} slots not online: ${shown.join('; ')}${notOnline.length > 8 ? '; …' : ''}`);
  }
  for (const { task: t } of tasks) {
    if (t.state === 'done' || t.state === 'cancelled') continue;
    problems.push(`task ${t.id} ${t.state} (phase "${t.progress.phase}", ${t.progress.slotsDone}/${t.progress.slotsTotal} slots, → group ${t.to}, error ${JSON.stringify(t.error)})`);
  }
  for (const p of cluster.proxies) {
    if (!p.proc.running) {
      problems.push(`proxy ${p.id} ${p.port} is not running`);
      continue;
    }
    try {
      const res = await fetch(`http://127.0.0.1:${p.adminPort}/healthz`, { signal: AbortSignal.timeout(2000) });
      const body = await res.text();
      if (res.status !== 200 || /"fenced":\s*true/.test(body)) problems.push(`proxy ${p.id} ${p.port}: /healthz ${res.status} ${body.slice(0, 300)}`);
    } catch (err) {
      problems.push(`proxy ${p.id} ${p.port}: /healthz unreachable: ${(err as Error).message}`);
      continue;
    }
    // /healthz is the proxy's word; serving is the proof: every key must read without error.
    const failing = await readErrors(p.port, keys);
    if (failing.length > 0) {
      const shown = failing.slice(0, 4).map(({ key, error }) => {
        const slot = slots[keySlot(Buffer.from(key))]!;
        return `${key} (slot ${slot.id}, ${slot.state} in group ${slot.group}): ${error}`;
      });
      problems.push(`proxy ${p.id} ${p.port}: ${failing.length}/${keys.length} reads fail: ${shown.join('; ')}`);
    }
  }
  for (const gid of GROUPS) {
    const g = await store.getGroup(gid);
    const master = g?.servers.find((s) => s.role === 'master');
    if (!master) {
      problems.push(`group ${gid}: etcd names no master (${JSON.stringify(g?.servers)})`);
      continue;
    }
    try {
      const info = await cluster.redis(master.addr, (c) => c.info('replication'));
      if (!info.includes('role:master')) problems.push(`group ${gid}: etcd names ${master.addr} master but it says ${/role:(\w+)/.exec(info)?.[1]}`);
    } catch (err) {
      problems.push(`group ${gid}: master ${master.addr} (per etcd) unreachable: ${(err as Error).message}`);
    }
  }
  return problems;
}

/** The keys whose GET through the proxy at `port` errs, with the error. */
async function readErrors(port: number, keys: readonly string[]): Promise<{ key: string; error: string }[]> {
  const c = new Redis({ host: '127.0.0.1', port, ...NO_RESEND, enableReadyCheck: false, commandTimeout: 5000, lazyConnect: true, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const p = c.pipeline();
    for (const k of keys) p.get(k);
    const res = (await p.exec()) ?? [];
    return keys.flatMap((key, i) => {
      const err = res[i]?.[0] ?? (res[i] ? null : new Error('no reply'));
      return err ? [{ key, error: err.message }] : [];
    });
  } catch (err) {
    return [{ key: keys[0] ?? '-', error: `cannot read: ${(err as Error).message}` }];
  } finally {
    c.disconnect();
  }
}

/** Polls liveness() until nothing is stuck, resolving to how long that took; throws with what still was after `timeoutMs`. */
export async function waitLive(cluster: NemesisCluster, keys: readonly string[], timeoutMs: number): Promise<number> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let last: string[] = ['not checked yet'];
  for (;;) {
    try {
      last = await liveness(cluster, keys);
    } catch (err) {
      last = [`liveness check failed: ${(err as Error).message}`];
    }
    if (last.length === 0) return Date.now() - started;
    if (Date.now() > deadline) throw new Error(`still stuck ${timeoutMs / 1000} s after the faults healed:\n  ${last.join('\n  ')}`);
    await sleep(500);
  }
}

// -------------------------------------------------------------------------------------------
// Safety

/**
 * Whether group `g` may hold a key of `slot`: its owner when online; the source or the target
 * while a migration is stuck half-way (liveness reports the slot itself), never a third group.
 */
function mayHold(slot: SlotInfo, g: number): boolean {
  if (slot.state === 'online') return slot.group === g;
  return g === slot.group || g === slot.from || g === slot.to;
}

/** Every problem with the data, one line each (at most a few per kind). */
export async function safety(cluster: NemesisCluster, writers: OwnedWriters, resting: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  const slots = await cluster.store.listSlots();
  /** key → [group, value] of every master holding it. */
  const found = new Map<string, [number, string | null][]>();
  for (const gid of GROUPS) {
    const master = (await cluster.store.getGroup(gid))?.servers.find((s) => s.role === 'master');
    if (!master) {
      problems.push(`group ${gid} has no master in etcd: its keys cannot be checked`);
      continue;
    }
    await cluster.redis(master.addr, async (c) => {
      let cursor = '0';
      const keys: string[] = [];
      do {
        const [next, part] = await c.scan(cursor, 'MATCH', 'n[mr]:*', 'COUNT', 1000);
        cursor = next;
        keys.push(...part);
      } while (cursor !== '0');
      const values = keys.length > 0 ? await c.mget(...keys) : [];
      keys.forEach((k, i) => {
        const l = found.get(k) ?? [];
        l.push([gid, values[i] ?? null]);
        found.set(k, l);
      });
    }, 10_000);
  }
  const limit = (kind: string, lines: string[]): void => {
    if (lines.length > 0) problems.push(`${lines.length} ${kind}: ${lines.slice(0, 5).join('; ')}${lines.length > 5 ? '; …' : ''}`);
  };
  const lost: string[] = [];
  const phantom: string[] = [];
  const twice: string[] = [];
  const misplaced: string[] = [];
  const unknown: string[] = [];
  const restingSet = new Set(resting);
  for (const k of found.keys()) if (!writers.keys.has(k) && !restingSet.has(k)) unknown.push(k);
  const restingWrong: string[] = [];
  for (const k of resting) {
    const at = found.get(k) ?? [];
    if (at.length > 1) twice.push(`${k} in groups ${at.map(([g]) => g).join(', ')}`);
    const slot = keySlot(Buffer.from(k));
    const owner = slots[slot]!;
    for (const [g] of at) if (!mayHold(owner, g)) misplaced.push(`${k} (slot ${slot}, ${owner.state} in group ${owner.group}) on group ${g}`);
    if (at.length === 0) restingWrong.push(`${k} missing (slot ${slot}, group ${owner.group})`);
    else if (at.some(([, v]) => v !== restingValue(k))) restingWrong.push(`${k} = ${JSON.stringify(at.map(([, v]) => v))}`);
  }
  for (const [k, r] of writers.keys) {
    const at = found.get(k) ?? [];
    if (at.length > 1) twice.push(`${k} in groups ${at.map(([g, v]) => `${g} (=${v})`).join(', ')}`);
    const slot = keySlot(Buffer.from(k));
    const owner = slots[slot]!;
    for (const [g] of at) if (!mayHold(owner, g)) misplaced.push(`${k} (slot ${slot}, ${owner.state} in group ${owner.group}) on group ${g}`);
    const v = at.length === 0 ? 0 : Math.max(...at.map(([, val]) => Number(val)));
    if (v < r.acked) lost.push(`${k} = ${at.length === 0 ? 'absent' : v} but ${r.acked} acknowledged (sent up to ${r.sent})`);
    if (v > r.sent) phantom.push(`${k} = ${v} but only up to ${r.sent} sent`);
  }
  limit('acknowledged writes lost', lost);
  limit('resting keys lost or changed', restingWrong);
  limit('phantom writes (a value never sent)', phantom);
  limit('keys in more than one group', twice);
  limit('keys on a group that does not own their slot', misplaced);
  limit('unknown keys', unknown);

  // The same values through every proxy.
  const keys = [...writers.keys.keys()];
  for (const p of cluster.proxies) {
    const c = new Redis({ host: '127.0.0.1', port: p.port, ...NO_RESEND, enableReadyCheck: false, commandTimeout: 10_000, lazyConnect: true });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const differ: string[] = [];
      for (let i = 0; i < keys.length; i += 100) {
        const part = keys.slice(i, i + 100);
        const pl = c.pipeline();
        for (const k of part) pl.get(k);
        const res = (await pl.exec()) ?? [];
        part.forEach((k, j) => {
          const [err, v] = res[j] ?? [new Error('no reply'), null];
          const direct = found.get(k)?.[0]?.[1] ?? null;
          if (err) differ.push(`${k}: ${err.message}`);
          else if (v !== direct) differ.push(`${k}: ${JSON.stringify(v)} through the proxy, ${JSON.stringify(direct)} on the master`);
        });
      }
      limit(`keys read differently through proxy ${p.id}`, differ);
    } catch (err) {
      problems.push(`proxy ${p.id}: cannot read: ${(err as Error).message}`);
    } finally {
      c.disconnect();
    }
  }
  return problems;
}
