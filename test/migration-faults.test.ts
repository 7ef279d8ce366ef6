/**
 * Live migration under faults (issue 3, "Must show"), each on its own cluster of real etcd,
 * redis-server and reborn-proxy processes:
 *
 *   a. the runner (a child process) is SIGKILLed in the middle of a task; a runner started
 *      afterwards resumes it and every check of the headline test passes;
 *   b. a proxy frozen with SIGSTOP during the barrier is fenced at the backends and the
 *      migration completes; once resumed, nothing it sends lands in the old group (requests
 *      that queued in its socket while it was frozen included), and it rejoins and serves;
 *   c. etcd stopped for 10 s while clients run through both proxies: no read or write fails;
 *      once etcd is back, a slot change and a migration are picked up by both proxies;
 *   d. a migration cancelled half-way: the task ends cancelled, every slot is online in one
 *      group, every key is readable with its value, and no key is in two groups;
 *   e. the partition variant of b: a proxy cut off from etcd (it keeps serving, as it must)
 *      is fenced by one migration, its lease runs out, and a later migration of other groups
 *      must still not let it write a slot's old group.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { MigrationRunner, createMigration } from '@reborn/config';
import { Barrier, Migrations, offlineSlot } from '@reborn/coordinator';
import {
  ManagedProcess,
  startProxy,
  assignSlots,
  startCluster,
  stopAll,
  tempDir,
  waitFor,
  type Cluster,
  type ProxyProcess,
} from '@reborn/testkit';
import {
  Partitionable,
  Writers,
  aclFlags,
  holders,
  keysWhere,
  memoryLogger,
  placement,
  preload,
  slotOf,
  strictClient,
  taskSlotStates,
  valueOf,
  verifyPreloaded,
  waitForTask,
} from './migration-helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));

afterAll(async () => {
  await stopAll();
});

/** A cluster whose proxies (with these ids) start only once the slot table is final. */
async function cluster3(ids: readonly string[]): Promise<Cluster> {
  const c = await startCluster({ groups: 3, proxies: 0 });
  await assignSlots(c.store, 0, 511, 1);
  await assignSlots(c.store, 512, 1023, 2);
  await Promise.all(ids.map((id) => c.addProxy(['--id', id])));
  return c;
}

/** Every key on its owner only, none twice, all slots online. */
async function expectPlacement(cluster: Cluster): Promise<void> {
  const p = await placement(cluster);
  expect(p.notOnline).toEqual([]);
  expect(p.misplaced.slice(0, 20)).toEqual([]);
  expect(p.duplicated.slice(0, 20)).toEqual([]);
}

async function healthz(p: ProxyProcess): Promise<{ status: number; body: { ready?: boolean; fenced?: boolean } }> {
  const res = await fetch(`http://${p.adminAddr}/healthz`, { signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: (await res.json()) as { ready?: boolean; fenced?: boolean } };
}

describe('migration faults', () => {
  it('a runner killed mid-task (SIGKILL) is replaced: the task completes, nothing lost or left behind', { timeout: 120_000 }, async () => {
    const cluster = await cluster3(['rk-a', 'rk-b']);
    const log = memoryLogger();
    try {
      const [pa, pb] = cluster.proxies as [ProxyProcess, ProxyProcess];
      const preloaded = await preload(strictClient(pa), 10_000);
      const writers = new Writers([strictClient(pa), strictClient(pa), strictClient(pb), strictClient(pb)], { keysPerKind: 300 });
      writers.start();
      let atKill: Record<string, number> = {};
      let keysAtKill = 0;
      try {
        await writers.waitForAcks(2000);
        // Throttled so that the kill finds the task in the middle of a batch.
        const task = await createMigration(cluster.store, { first: 256, last: 767, to: 3, batchSlots: 32, throttle: 1500 });

        const dir = await tempDir('reborn-runner-');
        const script = join(dir.dir, 'runner.mjs');
        await writeFile(
          script,
          [
            "import { createRequire } from 'node:module';",
            "import { pathToFileURL } from 'node:url';",
            'const [repo, etcd, product, id] = process.argv.slice(2);',
            "const require = createRequire(repo + 'package.json');",
            "const pino = require('pino');",
            "const { Store } = await import(pathToFileURL(repo + 'packages/coordinator/dist/index.js').href);",
            "const { MigrationRunner } = await import(pathToFileURL(repo + 'packages/config/dist/index.js').href);",
            'const store = await Store.open({ endpoints: [etcd], product });',
            // A short election lease: the next runner takes over 2 s after this one dies.
            'const runner = new MigrationRunner({ store, logger: pino(), leaseTtlSeconds: 2 });',
            'const t = await runner.runTask(id);',
            "console.log(JSON.stringify({ msg: 'child runner finished', state: t.state }));",
            'await store.close();',
          ].join('\n'),
        );
        const child = new ManagedProcess({
          name: 'migration runner (child)',
          command: process.execPath,
          args: [script, REPO, cluster.etcd.clientUrl, cluster.product, task.id],
          cwd: REPO,
        });
        try {
          // Kill once a batch is done and the next one is moving its keys.
          const seen = await waitForTask(
            cluster.store,
            task.id,
            (t, slots) => {
              const st = taskSlotStates(t, slots);
              return (st.done ?? 0) >= 32 && (st.migrating ?? 0) > 0 && t.progress.keysMoved > 0;
            },
            { timeoutMs: 60_000, what: 'a batch done and the next migrating' },
          );
          keysAtKill = seen.task.progress.keysMoved;
          const exit = await child.terminate('SIGKILL');
          expect(exit.signal).toBe('SIGKILL');
        } finally {
          await child.terminate('SIGKILL');
          await dir.remove();
        }
        expect(child.lines.some((l) => l.includes('runner leadership won'))).toBe(true);
        expect(child.lines.some((l) => l.includes('child runner finished'))).toBe(false);

        const killed = (await new Migrations(cluster.store).get(task.id))!.task;
        atKill = taskSlotStates(killed, await cluster.store.listSlots());
        expect(killed.state).toBe('running');
        expect(atKill.done ?? 0).toBeLessThan(task.slots.length);

        // A new runner resumes the task (without the throttle, to keep the test short).
        await new Migrations(cluster.store).update(task.id, (t) => ({ ...t, throttle: 0 }));
        const runner = new MigrationRunner({ store: cluster.store, logger: log.logger, leaseTtlSeconds: 2 });
        const end = await runner.runTask(task.id);
        expect(end.state, `${end.error}\n${log.problems().slice(-20).join('\n')}`).toBe('done');
        console.log(
          `[migration-faults a] runner killed with slots ${JSON.stringify(atKill)} and ${keysAtKill} keys moved; ` +
            `resumed and done: ${end.progress.keysMoved} keys moved by runners in total`,
        );
        await writers.waitForAcks(2000);
      } finally {
        await writers.stop();
      }
      console.log(`[migration-faults a] ${writers.summary()}`);
      expect((await writers.verify(strictClient(pb))).slice(0, 20)).toEqual([]);
      expect((await verifyPreloaded(strictClient(pa), preloaded)).slice(0, 20)).toEqual([]);
      await expectPlacement(cluster);
      const slots = await cluster.store.listSlots();
      expect(slots.filter((s) => s.id >= 256 && s.id <= 767 && s.group !== 3)).toEqual([]);
      expect(writers.errors, writers.errorSamples.join('\n')).toBe(0);
    } finally {
      await cluster.stop();
    }
  });

  it('a proxy frozen during the barrier is fenced; resumed, it never writes the old group, then rejoins', { timeout: 120_000 }, async () => {
    const cluster = await startCluster({ groups: 2, proxies: 0 });
    const log = memoryLogger();
    try {
      const [pa, pb] = await Promise.all([cluster.addProxy(['--id', 'fz-a']), cluster.addProxy(['--id', 'fz-b'])]);
      const [g1, g2] = cluster.groups as [Cluster['groups'][0], Cluster['groups'][0]];
      const user = `reborn:${cluster.product}:fz-b`;
      const preloaded = await preload(strictClient(pa), 5000);
      const moved = (slot: number) => slot <= 255;

      // Connected before the freeze, so requests can queue in its socket while it is stopped.
      const frozenClient = strictClient(pb);
      expect(await frozenClient.ping()).toBe('PONG');
      const writers = new Writers([strictClient(pa), strictClient(pa)], { keysPerKind: 300 });
      writers.start();
      const barrier = new Barrier(cluster.store);
      try {
        await writers.waitForAcks(1000);
        await pb.pause();
        const task = await createMigration(cluster.store, { first: 0, last: 255, to: 2 });
        const runner = new MigrationRunner({ store: cluster.store, logger: log.logger, barrierTimeoutMs: 2500 });
        const end = await runner.runTask(task.id);
        expect(end.state, `${end.error}\n${log.problems().slice(-20).join('\n')}`).toBe('done');

        // The frozen proxy was fenced on the masters of both groups; the other was not.
        const fences = await barrier.listFences();
        expect(fences.map((f) => f.proxyId)).toEqual(['fz-b']);
        expect(fences[0]!.servers).toEqual(expect.arrayContaining([g1.master.addr, g2.master.addr]));
        expect(fences[0]!.reason).toMatch(/did not ack action \d+/);
        expect(await aclFlags(g1.master.host, g1.master.port, user)).toContain('off');
        expect(await aclFlags(g2.master.host, g2.master.port, user)).toContain('off');
        expect(log.lines.some((l) => l.includes('proxies did not ack the barrier: fencing them'))).toBe(true);

        // Still frozen: these requests sit in its socket and are read with its old table
        // (slots 0..255 online in group 1) the moment it runs again.
        const staleKeys = keysWhere('frozen', 200, moved);
        const stringKeys = preloaded.filter((k) => k.kind === 'string' && moved(slotOf(k.key))).slice(0, 200);
        const setErrors: string[] = [];
        const sets = staleKeys.map((k) =>
          frozenClient.set(k, `written-by-the-resumed-proxy-${k}`).then(
            () => true,
            (e: Error) => {
              setErrors.push(e.message);
              return false;
            },
          ),
        );
        const gets = stringKeys.map((k) =>
          frozenClient.get(k.key).then(
            (v) => ({ ok: true, v }),
            (e: Error) => ({ ok: false, v: e.message }),
          ),
        );
        pb.resume();
        const acked = await Promise.all(sets);
        const read = await Promise.all(gets);
        // A reply is either an error or the truth: never a stale read from group 1.
        const stale = read.filter((r, i) => r.ok && r.v !== valueOf(stringKeys[i]!.key));
        expect(stale).toEqual([]);
        // Nothing reached group 1; whatever was acknowledged is in group 2.
        const g1c = g1.master.client();
        const g2c = g2.master.client();
        expect((await g1c.keys('frozen:*')).length).toBe(0);
        const ackedKeys = staleKeys.filter((_, i) => acked[i]);
        for (const k of ackedKeys) expect(await g2c.get(k)).toBe(`written-by-the-resumed-proxy-${k}`);
        console.log(
          `[migration-faults b] after SIGCONT: ${ackedKeys.length}/${staleKeys.length} queued SETs acknowledged, ` +
            `${read.filter((r) => r.ok).length}/${read.length} GETs answered (all correct), the rest refused; ` +
            `errors: ${JSON.stringify([...new Set(setErrors)])}`,
        );

        // It rejoins: it finds out it was fenced the next time it connects to a backend (client
        // traffic makes it connect), re-registers, reloads, re-enables its user, and is healthy
        // again with its fence record gone.
        const resumed = strictClient(pb);
        const probe = stringKeys[0]!.key;
        await waitFor(
          async () => {
            await resumed.get(probe).catch(() => undefined);
            return (await healthz(pb)).status === 200 && (await barrier.listFences()).length === 0;
          },
          { timeoutMs: 30_000, what: 'the resumed proxy to recover from the fence' },
        );
        expect(pb.logRecords().some((r) => r.msg === 'proxy unfenced: re-registered, table reloaded, serving again')).toBe(true);
        expect((await healthz(pb)).body.fenced).toBe(false);
        expect(await aclFlags(g1.master.host, g1.master.port, user)).toContain('on');

        // ... and serves correctly: every key, and new writes go to the owner.
        expect((await verifyPreloaded(resumed, preloaded)).slice(0, 20)).toEqual([]);
        const fresh = keysWhere('rejoined', 50, moved);
        for (const k of fresh) expect(await resumed.set(k, `rejoined-${k}`)).toBe('OK');
        for (const k of fresh) {
          expect(await holders(cluster, k)).toEqual([2]);
          expect(await g2c.get(k)).toBe(`rejoined-${k}`);
        }
        const sample = keysWhere('frozen', 200, moved).filter((_, i) => !acked[i]).slice(0, 20);
        for (const k of sample) expect(await resumed.set(k, 'y')).toBe('OK');
        expect((await g1c.keys('frozen:*')).length).toBe(0);

        // A later barrier is acked by it: no fence this time.
        const acksBefore = pb.logRecords().filter((r) => r.msg === 'barrier acked').length;
        const second = await createMigration(cluster.store, { first: 256, last: 383, to: 2 });
        const end2 = await runner.runTask(second.id);
        expect(end2.state, `${end2.error}`).toBe('done');
        expect(await barrier.listFences()).toEqual([]);
        expect(pb.logRecords().filter((r) => r.msg === 'barrier acked').length).toBeGreaterThan(acksBefore);
        await writers.waitForAcks(1000);
      } finally {
        pb.resume();
        await writers.stop();
      }
      console.log(`[migration-faults b] ${writers.summary()}`);
      expect((await writers.verify(strictClient(pb))).slice(0, 20)).toEqual([]);
      await expectPlacement(cluster);
      expect(writers.errors, writers.errorSamples.join('\n')).toBe(0);
    } finally {
      await cluster.stop();
    }
  });

  it('etcd stopped for 10 s: every read and write keeps working; afterwards slot changes are picked up', { timeout: 120_000 }, async () => {
    const cluster = await startCluster({ groups: 2, proxies: 0 });
    const log = memoryLogger();
    try {
      // Slots 1000..1023 start offline: assigning them after the outage must reach both proxies.
      await cluster.store.putSlots(Array.from({ length: 24 }, (_, i) => offlineSlot(1000 + i)));
      const [pa, pb] = await Promise.all([cluster.addProxy(['--id', 'et-a']), cluster.addProxy(['--id', 'et-b'])]);
      const served = (k: string) => slotOf(k) < 1000;
      const reads = keysWhere('rd', 2000, (s) => s < 1000).map((key) => ({ key, value: valueOf(key) }));
      const loader = strictClient(pa);
      for (let i = 0; i < reads.length; i += 500) {
        await loader.mset(...reads.slice(i, i + 500).flatMap((r) => [r.key, r.value]));
      }
      const clients: Redis[] = [strictClient(pa), strictClient(pa), strictClient(pb), strictClient(pb)];
      const writers = new Writers(clients, { keysPerKind: 300, reads, keyFilter: served });
      writers.start();
      let ackedDuring = 0;
      let errorsDuring = 0;
      try {
        await writers.waitForAcks(2000);
        const ackedBefore = writers.acked;
        const errorsBefore = writers.errors;
        await cluster.etcd.kill('SIGTERM');
        expect(cluster.etcd.running).toBe(false);
        // The outage itself lasts 10 s (this is the scenario, not a wait for readiness).
        await new Promise((r) => setTimeout(r, 10_000));
        ackedDuring = writers.acked - ackedBefore;
        errorsDuring = writers.errors - errorsBefore;
        await cluster.etcd.restart();
        console.log(`[migration-faults c] with etcd down for 10 s: ${ackedDuring} writes acknowledged, ${errorsDuring} errors`);
        expect(ackedDuring).toBeGreaterThan(0);

        // A slot change after the outage reaches both proxies.
        await assignSlots(cluster.store, 1000, 1023, 2);
        const late = keysWhere('late', 10, (s) => s >= 1000);
        for (const p of [pa, pb]) {
          const c = strictClient(p);
          await waitFor(async () => (await c.set(late[0]!, p.addr)) === 'OK', { timeoutMs: 30_000, what: `proxy ${p.addr} to serve slot ${slotOf(late[0]!)}` });
          for (const k of late) expect(await c.set(k, 'v')).toBe('OK');
        }
        for (const k of late) expect(await holders(cluster, k)).toEqual([2]);

        // So does a migration: both proxies ack its barriers (nobody is fenced).
        const task = await createMigration(cluster.store, { first: 0, last: 31, to: 2 });
        const end = await new MigrationRunner({ store: cluster.store, logger: log.logger }).runTask(task.id);
        expect(end.state, `${end.error}\n${log.problems().slice(-20).join('\n')}`).toBe('done');
        expect(await new Barrier(cluster.store).listFences()).toEqual([]);
        const moved = keysWhere('moved', 20, (s) => s <= 31);
        for (const p of [pa, pb]) {
          const c = strictClient(p);
          for (const k of moved) expect(await c.set(k, p.addr)).toBe('OK');
        }
        for (const k of moved) expect(await holders(cluster, k)).toEqual([2]);
        await writers.waitForAcks(2000);
      } finally {
        if (!cluster.etcd.running) await cluster.etcd.restart().catch(() => undefined);
        await writers.stop();
      }
      console.log(`[migration-faults c] ${writers.summary()}`);
      expect(writers.badReads, writers.errorSamples.join('\n')).toBe(0);
      expect(writers.errors, writers.errorSamples.join('\n')).toBe(0);
      expect((await writers.verify(strictClient(pb))).slice(0, 20)).toEqual([]);
      await expectPlacement(cluster);
    } finally {
      await cluster.stop();
    }
  });

  it('a migration cancelled half-way: cancelled, every key readable, every slot in one group, no key twice', { timeout: 120_000 }, async () => {
    const cluster = await startCluster({ groups: 2, proxies: 0 });
    const log = memoryLogger();
    try {
      const [pa, pb] = await Promise.all([cluster.addProxy(['--id', 'cx-a']), cluster.addProxy(['--id', 'cx-b'])]);
      const preloaded = await preload(strictClient(pa), 20_000);
      const writers = new Writers([strictClient(pa), strictClient(pb)], { keysPerKind: 300 });
      writers.start();
      let end: Awaited<ReturnType<MigrationRunner["runTask"]>>;
      try {
        await writers.waitForAcks(1000);
        const task = await createMigration(cluster.store, { first: 0, last: 511, to: 2, throttle: 2000, batchSlots: 64 });
        const runner = new MigrationRunner({ store: cluster.store, logger: log.logger });
        const run = runner.runTask(task.id);
        run.catch(() => undefined);
        // Cancel while the second batch is moving keys.
        const seen = await waitForTask(
          cluster.store,
          task.id,
          (t, slots) => {
            const st = taskSlotStates(t, slots);
            return (st.done ?? 0) >= 64 && (st.migrating ?? 0) > 0;
          },
          { timeoutMs: 60_000, what: 'the second batch migrating' },
        );
        await new Migrations(cluster.store).update(task.id, (t) => ({ ...t, state: 'cancelling' }));
        end = await run;
        const states = taskSlotStates(end, await cluster.store.listSlots());
        console.log(
          `[migration-faults d] cancelled with slots ${JSON.stringify(taskSlotStates(seen.task, seen.slots))}; ` +
            `at the end ${JSON.stringify(states)}; phase: ${end.progress.phase}`,
        );
        expect(end.state, `${end.error}\n${log.problems().slice(-20).join('\n')}`).toBe('cancelled');
        // The batch that was migrating was finished; no further batch started.
        expect(states.done ?? 0).toBeGreaterThanOrEqual(128);
        expect(states.done ?? 0).toBeLessThan(512);
        expect((states.done ?? 0) + (states.todo ?? 0)).toBe(512);
        await writers.waitForAcks(1000);
      } finally {
        await writers.stop();
      }
      console.log(`[migration-faults d] ${writers.summary()}`);
      await expectPlacement(cluster);
      for (const p of [pa, pb]) expect((await verifyPreloaded(strictClient(p), preloaded)).slice(0, 20)).toEqual([]);
      expect((await writers.verify(strictClient(pa))).slice(0, 20)).toEqual([]);
      expect(writers.errors, writers.errorSamples.join('\n')).toBe(0);
    } finally {
      await cluster.stop();
    }
  });

  it('a proxy cut off from etcd and fenced for one migration must not write the old group of a later one', { timeout: 120_000 }, async () => {
    // docs/architecture.md §7: "A slot is never written in two groups, whatever pauses and
    // partitions happen." Proxy B loses etcd (a partition: it keeps serving with its table, as it
    // must). Migration 1 (group 1 → 2) fences it on groups 1 and 2. Its lease then expires.
    // Migration 2 moves slots of group 3 → 2. B still routes those slots to group 3.
    const cluster = await startCluster({ groups: 3, proxies: 0 });
    const log = memoryLogger();
    const fwd = await Partitionable.start(cluster.etcd.host, cluster.etcd.port);
    let pb: ProxyProcess | null = null;
    try {
      const pa = await cluster.addProxy(['--id', 'pt-a']);
      pb = await startProxy({ etcd: fwd.url, product: cluster.product, id: 'pt-b' });
      const g3 = cluster.groups[2]!;
      const viaB = strictClient(pb);
      expect(await viaB.set(keysWhere('warm', 1, (s) => s >= 682)[0]!, 'x')).toBe('OK');

      fwd.partition();
      const runner = new MigrationRunner({ store: cluster.store, logger: log.logger, barrierTimeoutMs: 2500 });
      const m1 = await createMigration(cluster.store, { first: 0, last: 31, to: 2 });
      expect((await runner.runTask(m1.id)).state).toBe('done');
      const fences = await new Barrier(cluster.store).listFences();
      expect(fences.map((f) => [f.proxyId, f.action !== null])).toEqual([['pt-b', true]]);
      // B's registration lease runs out (it cannot renew it).
      await waitFor(async () => !(await cluster.store.listProxies()).some((p) => p.id === 'pt-b'), {
        timeoutMs: 40_000,
        what: "proxy pt-b's registration to expire",
      });

      const m2 = await createMigration(cluster.store, { first: 682, last: 713, to: 2 });
      const end2 = await runner.runTask(m2.id);
      expect(end2.state).toBe('done');
      const fences2 = await new Barrier(cluster.store).listFences();
      console.log(
        `[migration-faults e] migration 2 (group 3 → 2) fenced: ${JSON.stringify(fences2.map((f) => ({ proxy: f.proxyId, action: f.action, servers: f.servers })))}`,
      );

      // B, still cut off from etcd, gets writes for the slots migration 2 moved.
      const keys = keysWhere('stale', 50, (s) => s >= 682 && s <= 713);
      const replies = await Promise.all(keys.map((k) => viaB.set(k, 'from-b').then(() => 'OK', (e: Error) => e.message)));
      const acked = keys.filter((_, i) => replies[i] === 'OK');
      const inOldGroup = await g3.master.client().exists(...keys);
      const viaA = strictClient(pa);
      const lost = (await Promise.all(acked.map((k) => viaA.get(k)))).filter((v) => v !== 'from-b').length;
      console.log(
        `[migration-faults e] proxy pt-b: ${acked.length}/${keys.length} writes acknowledged, ${inOldGroup} keys landed in group 3 ` +
          `(no longer the owner), ${lost} acknowledged writes invisible through the other proxy; replies: ${JSON.stringify([...new Set(replies)])}`,
      );
      expect(inOldGroup).toBe(0);
      expect(lost).toBe(0);
    } finally {
      fwd.heal();
      await pb?.stop();
      await fwd.close();
      await cluster.stop();
    }
  });
});
