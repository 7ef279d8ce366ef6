/**
 * A failover of the source group in the middle of a slot migration (issue 13): the migration
 * finishes, every key ends in exactly one group, readable through the proxy with its last
 * acknowledged value — although the failover brought back pre-move copies of moved keys.
 *
 * Real etcd, redis-server and reborn-proxy; the test plays the HA leader. Group 1's replica
 * replicates through a TCP forwarder the test can cut, so that deletes made by MIGRATE on the
 * master provably never reach it: the resurrection is made to happen, not hoped for. The
 * master is then killed (SIGKILL) and the replica promoted (`REPLICAOF NO ONE`, group rewritten
 * in etcd with an empty in-sync set, as the HA leader does). Each step waits for its outcome
 * (task phase, link state, a reply) rather than for time; the task is paused around the fault
 * so that no MIGRATE is in flight when the master dies.
 */
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { MigrationRunner, createMigration } from '@reborn/config';
import { Migrations, ServerRole, type MigrationTask } from '@reborn/coordinator';
import { startCluster, stopAll, waitFor, type Cluster, type ProxyProcess } from '@reborn/testkit';
import { Partitionable, Writers, keysWhere, memoryLogger, loadFailoverKeys, placement, readBackProblems, slotOf, strictClient, waitForTask } from './migration-helpers.js';

afterAll(async () => {
  await stopAll();
});

/** Slots moved by the test: group 1 owns 0..511 in a two-group cluster. */
const MOVED = (slot: number) => slot <= 15;
const KEYS = 3000;

const valueOf = (k: string) => `v:${k}`;

async function linkStatus(replica: Redis): Promise<string> {
  const info = await replica.info('replication');
  return /^master_link_status:(\w+)/m.exec(info)?.[1] ?? 'none';
}

async function setState(migrations: Migrations, id: string, change: Partial<MigrationTask>): Promise<void> {
  await migrations.update(id, (t) => ({ ...t, ...change }));
}

describe('migration and a source failover', () => {
  it(
    'a failover of the source group mid-migration: resurrected pre-move copies are deleted, every key ends in one group with its last value',
    { timeout: 180_000 },
    async () => {
      const cluster: Cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
      const link = await Partitionable.start(cluster.groups[0]!.master.host, cluster.groups[0]!.master.port);
      const log = memoryLogger();
      const migrations = new Migrations(cluster.store);
      let writers: Writers | null = null;
      try {
        const [g1, g2] = cluster.groups as [Cluster['groups'][0], Cluster['groups'][0]];
        const oldMaster = g1.master;
        const replica = g1.replicas[0]!;
        const proxy = cluster.proxies[0] as ProxyProcess;
        const replicaClient = replica.client({ maxRetriesPerRequest: 1 });
        const target = g2.master.client({ maxRetriesPerRequest: 1 });

        // The replica follows group 1's master through the forwarder (same data, a link we can cut).
        await replicaClient.replicaof('127.0.0.1', String(link.port));
        await waitFor(async () => (await linkStatus(replicaClient)) === 'up', { timeoutMs: 20_000, what: 'the replica linked through the forwarder' });

        // Keys of the moved slots: strings, and every tenth a hash.
        const via = strictClient(proxy);
        const keys = keysWhere('mf', KEYS, MOVED);
        expect(await loadFailoverKeys(via, keys, valueOf)).toEqual([]);
        // Writers on keys of the moved slots only: every write to them goes to group 2 once
        // the slots migrate, so the failover of group 1 may refuse some but must lose none.
        writers = new Writers([strictClient(proxy), strictClient(proxy)], { keysPerKind: 40, prefix: 'mfw', keyFilter: (k) => MOVED(slotOf(k)) });
        writers.start();
        await writers.waitForAcks(500);
        // Everything written so far is on the replica before the cut.
        const masterClient = oldMaster.client({ maxRetriesPerRequest: 1 });
        const written = await masterClient.info('replication');
        masterClient.disconnect(); // before the kill: no reconnect attempts to a dead server
        const offset = Number(/^master_repl_offset:(\d+)/m.exec(written)?.[1]);
        await waitFor(async () => Number(/^slave_repl_offset:(\d+)/m.exec(await replicaClient.info('replication'))?.[1]) >= offset, { what: 'the replica caught up' });

        const task = await createMigration(cluster.store, { first: 0, last: 15, to: 2, batchSlots: 16, throttle: 300 });
        const runner = new MigrationRunner({ store: cluster.store, logger: log.logger, waitTimeoutMs: 300, leaseTtlSeconds: 3 });
        const run = runner.runTask(task.id);
        run.catch(() => undefined);

        const paused = (t: MigrationTask) => t.state === 'paused' && t.progress.phase.startsWith('paused');
        const first = await waitForTask(cluster.store, task.id, (t) => t.progress.keysMoved >= 150, { what: 'some keys moved' });
        await setState(migrations, task.id, { state: 'paused' });
        await waitForTask(cluster.store, task.id, paused, { what: 'the runner paused' });

        // Cut the replica off: from now on the master's deletes (MIGRATE's, the runner's and
        // the proxy's) never reach it.
        link.partition();
        await waitFor(async () => (await linkStatus(replicaClient)) !== 'up', { what: 'the replication link down' });
        const atCut = (await migrations.get(task.id))!.task.progress.keysMoved;
        await setState(migrations, task.id, { state: 'running' });
        await waitForTask(cluster.store, task.id, (t) => t.progress.keysMoved >= atCut + 300, { timeoutMs: 90_000, what: 'keys moved after the cut' });
        await setState(migrations, task.id, { state: 'paused' });
        const beforeFault = (await waitForTask(cluster.store, task.id, paused, { what: 'the runner paused again' })).task;
        // WAIT saw no replica confirm those moves.
        expect(beforeFault.progress.unconfirmedKeys ?? 0).toBeGreaterThan(0);
        expect(log.lines.some((l) => l.includes('fewer in-sync replicas confirmed than asked'))).toBe(true);

        // Play the HA leader: the master dies, the replica is promoted, etcd names it master
        // with an empty in-sync set (the old master is out of it until it resyncs).
        await oldMaster.kill('SIGKILL');
        await replicaClient.replicaof('NO', 'ONE');
        await cluster.store.putGroup({
          id: 1,
          servers: [
            { addr: replica.addr, role: ServerRole.Master },
            { addr: oldMaster.addr, role: ServerRole.Replica },
          ],
          inSync: [],
        });

        // The failover brought back copies of keys that had moved: now in both groups.
        const all = [...keys, ...writers.allKeys()];
        const onReplica = await existsEach(replicaClient, all);
        const onTarget = await existsEach(target, all);
        const resurrected = all.filter((_, i) => onReplica[i] && onTarget[i]);
        expect(resurrected.length).toBeGreaterThan(0);
        // ... which the proxy cannot serve (its MIGRATE answers BUSYKEY): the user's outage.
        const probe = resurrected.find((k) => k.startsWith('mf:'))!;
        const busy = await waitFor(
          async () => {
            const err = await via.type(probe).then(
              () => null,
              (e: Error) => e.message,
            );
            return err !== null && /BUSYKEY/.test(err) ? err : null;
          },
          { what: `the proxy refusing ${probe} with BUSYKEY` },
        );
        console.log(
          `[migration-failover] ${first.task.progress.keysMoved} keys moved before the cut, ${beforeFault.progress.keysMoved - atCut} after it ` +
            `(${beforeFault.progress.unconfirmedKeys} unconfirmed); after the failover ${resurrected.length} keys are in both groups; ` +
            `the proxy answers: ${busy}`,
        );

        // The migration resumes (at full speed) and finishes.
        await setState(migrations, task.id, { state: 'running', throttle: 0 });
        const end = await run;
        expect(end.state, `${end.error}\n${log.problems().slice(-20).join('\n')}`).toBe('done');
        expect(end.progress.resurrectedDeleted).toBe(resurrected.length);
        const deletions = log.lines.filter((l) => l.includes('a source failover brought back a pre-move copy'));
        expect(deletions.length).toBe(resurrected.length);
        expect(deletions[0]).toContain(`its master was ${oldMaster.addr}, now ${replica.addr}`);

        await writers.waitForAcks(300);
        await writers.stop();
        console.log(`[migration-failover] ${writers.summary()}; ${end.progress.keysMoved} keys moved by the runner`);

        // Every key in exactly one group: the new master of group 1 and the master of group 2.
        const p = await placement({ ...cluster, groups: [{ id: 1, master: replica, replicas: [] }, g2] });
        expect(p.notOnline).toEqual([]);
        expect(p.duplicated.slice(0, 20)).toEqual([]);
        expect(p.misplaced.slice(0, 20)).toEqual([]);
        expect(await replicaClient.exists(...resurrected)).toBe(0);

        // Readable through the proxy with the last acknowledged value.
        const reader = strictClient(proxy);
        const problems = await readBackProblems(reader, keys, valueOf);
        expect(problems.slice(0, 20)).toEqual([]);
        expect((await writers.verify(reader)).slice(0, 20)).toEqual([]);
      } finally {
        await writers?.stop();
        await link.close();
        await cluster.stop();
      }
    },
  );
});

async function existsEach(c: Redis, keys: readonly string[]): Promise<boolean[]> {
  const p = c.pipeline();
  for (const k of keys) p.exists(k);
  const res = (await p.exec()) ?? [];
  return res.map(([e, n]) => {
    if (e) throw e;
    return n === 1;
  });
}
