/**
 * Graceful switchover under load: `reborn-config server promote` (the binary, as a child
 * process) while 8 writers hammer both groups through a real reborn-proxy.
 *
 * A graceful switchover pauses writes on the old master, waits until the replica has all of
 * them, and only then moves the group: no acknowledged write may be lost. The writers never
 * retry (maxRetriesPerRequest 0, no resend, no reconnect), so no write may be applied twice
 * either: every counter must end EXACTLY at the number of INCRs the proxy acknowledged, and
 * every list must hold exactly the acknowledged RPUSH values, in order. Error replies during
 * the switchover are allowed (a write that waited on the old master fails) and are counted
 * and logged, as are the longest gap between two acknowledged writes to group 1 and the
 * CLI's run time: reported, never asserted.
 *
 * Round 1 promotes group 1's replica; round 2 promotes the original master back.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopAll, waitFor, type Cluster, type RedisServer } from '@reborn/testkit';
import { keysOfGroup } from './helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const BIN = `${REPO}packages/config/bin/reborn-config.js`;
const WRITERS = 8;

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
});

afterAll(stopAll);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `reborn-config --etcd … --product … ...args` as a child process; never rejects. */
function cli(args: readonly string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REBORN_')) delete env[k];
  const argv = [BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, ...args];
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { env, cwd: REPO, timeout: 40_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

async function replication(s: RedisServer): Promise<Record<string, string>> {
  const c = s.client({ maxRetriesPerRequest: 1 });
  try {
    const text = await c.info('replication');
    return Object.fromEntries(
      text
        .split(/\r?\n/)
        .filter((l) => l.includes(':'))
        .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
    );
  } finally {
    c.disconnect();
  }
}

type Op = { kind: 'incr' | 'rpush'; key: string; group: 1 | 2 };

/**
 * Eight sequential writers (one command in flight each, so each key's order is the order of
 * acknowledgement). Records every acknowledged write per key, error replies by message, and
 * anything that is not an error reply (a dropped connection: the write's fate is unknown).
 */
class Load {
  readonly acked = new Map<string, number>();
  readonly pushed = new Map<string, string[]>();
  readonly errorReplies = new Map<string, number>();
  readonly otherErrors: string[] = [];
  /** Acknowledged group-1 writes per writer. */
  readonly g1Acks: number[] = Array.from({ length: WRITERS }, () => 0);
  readonly g2Acks: number[] = Array.from({ length: WRITERS }, () => 0);
  /** The longest time between two consecutive acknowledged writes to group 1 (any writer). */
  maxG1GapMs = 0;
  /** The same, per writer: what one client saw. */
  readonly maxWriterG1GapMs: number[] = Array.from({ length: WRITERS }, () => 0);
  private lastG1Ack = 0;
  private stopping = false;
  private readonly loops: Promise<void>[] = [];
  readonly ops: Op[][];

  constructor(round: number, private readonly port: number) {
    this.ops = Array.from({ length: WRITERS }, (_, w) => {
      const p = `so${round}:w${w}:`;
      const [c1, l1, c2, l2] = [
        keysOfGroup(`${p}cnt:g1:`, 1, 1)[0]!,
        keysOfGroup(`${p}list:g1:`, 1, 1)[0]!,
        keysOfGroup(`${p}cnt:g2:`, 2, 1)[0]!,
        keysOfGroup(`${p}list:g2:`, 2, 1)[0]!,
      ];
      for (const k of [c1, c2]) this.acked.set(k, 0);
      for (const k of [l1, l2]) this.pushed.set(k, []);
      return [
        { kind: 'incr', key: c1, group: 1 },
        { kind: 'rpush', key: l1, group: 1 },
        { kind: 'incr', key: c2, group: 2 },
        { kind: 'rpush', key: l2, group: 2 },
      ];
    });
  }

  get errorCount(): number {
    let n = 0;
    for (const v of this.errorReplies.values()) n += v;
    return n;
  }

  start(): void {
    for (let w = 0; w < WRITERS; w++) this.loops.push(this.run(w));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  private async run(w: number): Promise<void> {
    let lastOwnG1Ack = 0;
    const c = new Redis({
      host: '127.0.0.1',
      port: this.port,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: () => null,
    });
    c.on('error', () => undefined);
    try {
      for (let i = 0; !this.stopping; i++) {
        const op = this.ops[w]![i % 4]!;
        const value = `w${w}-${i}`;
        try {
          if (op.kind === 'incr') await c.incr(op.key);
          else await c.rpush(op.key, value);
        } catch (err) {
          const e = err as Error;
          if (e.name === 'ReplyError') {
            const msg = e.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, '<addr>');
            this.errorReplies.set(msg, (this.errorReplies.get(msg) ?? 0) + 1);
            continue;
          }
          // Not an answer: the write may or may not have happened. Stop this writer.
          this.otherErrors.push(`writer ${w} ${op.kind} ${op.key}: ${e.name}: ${e.message}`);
          return;
        }
        if (op.kind === 'incr') this.acked.set(op.key, this.acked.get(op.key)! + 1);
        else this.pushed.get(op.key)!.push(value);
        if (op.group === 1) {
          const now = Date.now();
          if (this.lastG1Ack !== 0) this.maxG1GapMs = Math.max(this.maxG1GapMs, now - this.lastG1Ack);
          this.lastG1Ack = now;
          if (lastOwnG1Ack !== 0) this.maxWriterG1GapMs[w] = Math.max(this.maxWriterG1GapMs[w]!, now - lastOwnG1Ack);
          lastOwnG1Ack = now;
          this.g1Acks[w]!++;
        } else {
          this.g2Acks[w]!++;
        }
      }
    } finally {
      c.disconnect();
    }
  }
}

/** One switchover of group 1 from `from` to `to` under load, and every check. */
async function switchover(round: number, from: RedisServer, to: RedisServer): Promise<void> {
  const proxy = cluster.proxies[0]!;
  // Preconditions: the layout we are about to switch.
  const before = await cluster.store.getGroup(1);
  expect(before?.servers.find((s) => s.role === 'master')?.addr).toBe(from.addr);
  await waitFor(async () => (await replication(to))['master_link_status'] === 'up', { what: `${to.addr} linked to ${from.addr}` });

  const load = new Load(round, proxy.port);
  load.start();
  try {
    // Writes flowing from every writer to both groups before the switchover starts.
    await waitFor(() => load.g1Acks.every((n) => n >= 20) && load.g2Acks.every((n) => n >= 20), {
      timeoutMs: 15_000,
      what: 'every writer acknowledged on both groups',
    });
    const errorsBefore = load.errorCount;

    const toNew = (r: Record<string, unknown>) => r['msg'] === 'group master changed' && r['group'] === 1 && r['to'] === to.addr;
    expect(proxy.logRecords().filter(toNew)).toEqual([]);
    const switched = proxy.waitForLog(toNew, 30_000);
    switched.catch(() => undefined);
    const run = await cli(['server', 'promote', '1', to.addr]);
    const errorsDuring = load.errorCount - errorsBefore;

    expect(run, 'reborn-config server promote').toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(
      new RegExp(`^server ${to.addr} is now the master of group 1; old master ${from.addr} is its replica \\(caught up at offset \\d+\\)\n$`),
    );

    // Keep writing a bit after: every writer gets more writes through to group 1.
    const after = [...load.g1Acks];
    await waitFor(() => load.g1Acks.every((n, w) => n >= after[w]! + 20), {
      timeoutMs: 15_000,
      what: `every writer acknowledged on group 1 after the switchover (errors: ${JSON.stringify([...load.errorReplies])}; other: ${JSON.stringify(load.otherErrors)})`,
    });
    await load.stop();

    console.log(
      `switchover round ${round} (${from.addr} → ${to.addr}): cli ${run.ms} ms, ` +
        `${errorsDuring} error replies during it (${load.errorCount} in the round), ` +
        `longest gap between acknowledged group-1 writes ${load.maxG1GapMs} ms (any writer), ` +
        `${Math.max(...load.maxWriterG1GapMs)} ms (one writer); ` +
        `acknowledged writes g1 ${load.g1Acks.reduce((a, b) => a + b, 0)}, g2 ${load.g2Acks.reduce((a, b) => a + b, 0)}; ` +
        `errors by message: ${JSON.stringify(Object.fromEntries(load.errorReplies))}`,
    );

    // No writer lost its connection: each write's outcome is known.
    expect(load.otherErrors).toEqual([]);

    // etcd: the candidate is the master, the old master its replica.
    const group = await cluster.store.getGroup(1);
    const byAddr = (a: { addr: string }, b: { addr: string }) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0);
    expect([...(group?.servers ?? [])].sort(byAddr)).toEqual(
      [
        { addr: to.addr, role: 'master' },
        { addr: from.addr, role: 'replica' },
      ].sort(byAddr),
    );

    // The proxy followed etcd to the new master.
    expect(await switched).toMatchObject({ from: from.addr, to: to.addr });

    // Redis: the new master is a master, the old one replicates from it.
    expect((await replication(to))['role']).toBe('master');
    const oldInfo = await waitFor(
      async () => {
        const i = await replication(from);
        return i['role'] === 'slave' && i['master_link_status'] === 'up' ? i : null;
      },
      { what: `old master ${from.addr} replicating from ${to.addr} with its link up` },
    );
    expect({ role: oldInfo['role'], master_port: oldInfo['master_port'] }).toEqual({ role: 'slave', master_port: String(to.port) });

    // Nothing lost, nothing extra: final values equal the acknowledged writes exactly.
    const reader = proxy.client({ maxRetriesPerRequest: 0 });
    try {
      const counters: Record<string, number> = {};
      const expectedCounters: Record<string, number> = {};
      for (const [key, n] of load.acked) {
        expectedCounters[key] = n;
        counters[key] = Number((await reader.get(key)) ?? 0);
      }
      expect(counters).toEqual(expectedCounters);
      const lists: Record<string, string[]> = {};
      const expectedLists: Record<string, string[]> = {};
      for (const [key, values] of load.pushed) {
        expectedLists[key] = values;
        lists[key] = await reader.lrange(key, 0, -1);
      }
      expect(lists).toEqual(expectedLists);

      // Writes to group 1 through the proxy work and land on the new master.
      const probe = keysOfGroup(`so${round}:probe:`, 1, 1)[0]!;
      expect(await reader.set(probe, `after-${round}`)).toBe('OK');
      const direct = to.client({ maxRetriesPerRequest: 1 });
      try {
        expect(await direct.get(probe)).toBe(`after-${round}`);
      } finally {
        direct.disconnect();
      }
    } finally {
      reader.disconnect();
    }
  } finally {
    await load.stop();
  }
}

describe('reborn-config server promote under write load', () => {
  it('switches group 1 to its replica with no acknowledged write lost or duplicated', async () => {
    const g1 = cluster.groups[0]!;
    await switchover(1, g1.master, g1.replicas[0]!);
  });

  it('switches back to the original master, same guarantees', async () => {
    const g1 = cluster.groups[0]!;
    await switchover(2, g1.replicas[0]!, g1.master);
  });
});
