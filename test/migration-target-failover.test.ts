/**
 * A failover of the TARGET group in the middle of a slot migration (issue 19, finding 2): the
 * migration follows the failover by itself. Real etcd, redis-server, reborn-proxy and the real
 * reborn-agent doing HA (--ha --down-after-ms 1500): group 2 (the target) has a master and a
 * replica; a throttled migration moves 16 slots of group 1 to it; once a quarter of the keys
 * have moved, group 2's master is killed (SIGKILL). The agent promotes the replica; the runner
 * waits for that (the task stays `running`, its progress says what it waits for) and goes on
 * against the new master.
 *
 * Asserts: the task ends `done` with no operator action, `failed` is never observed, the task
 * said what it waited for while group 2 had no reachable master, every key written before the
 * migration is readable through the proxy with its value, and every key is in exactly one
 * group — the one that owns its slot. Nothing waits for time: the kill follows progress, the
 * end follows the task.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MigrationRunner, createMigration } from '@reborn/config';
import { Migrations, type MigrationTask } from '@reborn/coordinator';
import { startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { keysWhere, memoryLogger, loadFailoverKeys, placement, readBackProblems, strictClient, waitForTask } from './migration-helpers.js';
import { startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';

afterAll(async () => {
  await stopAll();
});

/** Slots moved by the test: group 1 owns 0..511 in a two-group cluster. */
const MOVED = (slot: number) => slot <= 15;
const KEYS = 4000;
/** Keys per second: the move lasts several seconds, longer than the failover. */
const THROTTLE = 500;

const valueOf = (k: string) => `v:${k}`;

/** Every state and waiting reason the task went through, polled from etcd until stopped. */
class TaskObserver {
  readonly states = new Set<string>();
  readonly waiting: string[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(migrations: Migrations, id: string) {
    this.loop = (async () => {
      while (!this.stopped) {
        const cur = await migrations.get(id).catch(() => null);
        if (cur) {
          this.states.add(cur.task.state);
          const w = cur.task.progress.waiting;
          if (w && this.waiting[this.waiting.length - 1] !== w) this.waiting.push(w);
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

describe('migration and a target failover', () => {
  it(
    'the target master is killed mid-move: the runner waits for the failover, goes on against the new master, the task ends done',
    { timeout: 180_000 },
    async () => {
      const cluster: Cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
      let agent: AgentProcess | null = null;
      let observer: TaskObserver | null = null;
      const log = memoryLogger();
      const migrations = new Migrations(cluster.store);
      try {
        agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: 'ha-mig', args: ['--ha', '--down-after-ms', '1500'] });
        await waitLeader(agent);
        const g2 = cluster.groups[1]!;
        const oldMaster = g2.master;
        const replica = g2.replicas[0]!;
        const proxy = cluster.proxies[0]!;

        // Keys of the moved slots: strings, and every tenth a hash.
        const via = strictClient(proxy);
        const keys = keysWhere('tf', KEYS, MOVED);
        expect(await loadFailoverKeys(via, keys, valueOf)).toEqual([]);

        const task = await createMigration(cluster.store, { first: 0, last: 15, to: 2, batchSlots: 4, throttle: THROTTLE });
        observer = new TaskObserver(migrations, task.id);
        const runner = new MigrationRunner({ store: cluster.store, logger: log.logger, leaseTtlSeconds: 3 });
        const run = runner.runTask(task.id);
        run.catch(() => undefined);

        // A quarter of the keys moved: the target's master dies mid-move.
        await waitForTask(cluster.store, task.id, (t) => t.progress.keysMoved >= KEYS / 4, { timeoutMs: 90_000, what: 'a quarter of the keys moved' });
        await oldMaster.kill('SIGKILL');

        // The agent promotes the replica.
        await waitFor(
          async () => {
            const g = await cluster.store.getGroup(2);
            return g?.servers.find((s) => s.role === 'master')?.addr === replica.addr;
          },
          { timeoutMs: 30_000, intervalMs: 50, what: 'the agent to promote group 2 replica' },
        );

        const end: MigrationTask = await run;
        await observer.stop();
        console.log(
          `[migration-target-failover] ${end.progress.keysMoved} keys moved; states seen: ${[...observer.states].join(', ')}; ` +
            `waiting reasons: ${observer.waiting.slice(0, 5).join(' | ')}; unconfirmed on target: ${end.progress.targetUnconfirmedKeys ?? 0}; ` +
            `audit after the failover: ${log.lines.filter((l) => l.includes('in neither group after its failover')).length} error line(s)`,
        );
        expect(end.state, `${end.error}\n${log.problems().slice(-20).join('\n')}`).toBe('done');
        expect([...observer.states]).not.toContain('failed');
        // While group 2 had no reachable master, the task said so (and no longer does).
        expect(observer.waiting.some((w) => w.includes('group 2'))).toBe(true);
        expect(end.progress.waiting).toBeUndefined();

        // Every key in exactly one group, the owner of its slot (group 2 = its new master).
        const p = await placement({ ...cluster, groups: [cluster.groups[0]!, { id: 2, master: replica, replicas: [] }] });
        expect(p.notOnline).toEqual([]);
        expect(p.duplicated.slice(0, 20)).toEqual([]);
        expect(p.misplaced.slice(0, 20)).toEqual([]);

        // Every key readable through the proxy with its value.
        const reader = strictClient(proxy);
        const problems = await readBackProblems(reader, keys, valueOf);
        expect(problems.slice(0, 20)).toEqual([]);
        via.disconnect();
        reader.disconnect();
      } finally {
        await observer?.stop();
        await agent?.stop();
        await cluster.stop();
      }
    },
  );
});
