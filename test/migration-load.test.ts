/**
 * The headline of live migration (issue 3, "Must show"): three redis groups, two
 * reborn-proxy processes, 50 000 preloaded keys of mixed types (a share with TTLs), and 16
 * concurrent ioredis writers (8 per proxy) doing INCR / RPUSH / HINCRBY on 3 000 keys while
 * the runner moves half of the slots — taken from both source groups — to the empty third
 * group. At the end:
 *   - every counter, hash field and list equals what was acknowledged (none lost, none
 *     extra; replies exactly 1..N; list elements exactly the acknowledged ones, in order);
 *   - every preloaded key exists with its value, and its TTL (PTTL) is its original minus
 *     the time elapsed (± slack); keys without TTL still have none;
 *   - every key lives only on the master of the group its slot names (SCAN of all three
 *     masters), and every slot is online.
 */
import { writeFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MigrationRunner, createMigration } from '@reborn/config';
import { Barrier } from '@reborn/coordinator';
import { assignSlots, startCluster, stopAll, type Cluster } from '@reborn/testkit';
import { Writers, memoryLogger, placement, preload, strictClient, verifyPreloaded, type PreKey } from './migration-helpers.js';

const PRELOAD = 50_000;
const WRITERS_PER_PROXY = 8;
const KEYS_PER_KIND = 1000;
const FIRST = 256;
const LAST = 767;

let cluster: Cluster;
const log = memoryLogger();

beforeAll(async () => {
  // Group 3 starts empty: slots 0..511 on group 1, 512..1023 on group 2. The proxies start
  // after the table is final, so no key is ever written under the testkit's default split.
  cluster = await startCluster({ groups: 3, proxies: 0 });
  await assignSlots(cluster.store, 0, 511, 1);
  await assignSlots(cluster.store, 512, 1023, 2);
  await Promise.all([cluster.addProxy(['--id', 'load-a']), cluster.addProxy(['--id', 'load-b'])]);
}, 60_000);

afterAll(async () => {
  if (process.env.MIGRATION_TEST_LOG) writeFileSync(process.env.MIGRATION_TEST_LOG, log.lines.join('\n') + '\n');
  await stopAll();
});

describe('live migration under load', () => {
  it('moves half the slots to a new group while 16 writers run: nothing lost, nothing extra, nothing left behind', { timeout: 150_000 }, async () => {
    const [pa, pb] = cluster.proxies as [typeof cluster.proxies[0], typeof cluster.proxies[0]];
    const loader = strictClient(pa);
    const preloaded: PreKey[] = await preload(loader, PRELOAD);
    const before = await placement(cluster);
    expect(before.perGroup.get(3)).toBe(0);
    expect(before.total).toBe(PRELOAD);

    const clients: Redis[] = [];
    for (let i = 0; i < WRITERS_PER_PROXY; i++) clients.push(strictClient(pa), strictClient(pb));
    const writers = new Writers(clients, { keysPerKind: KEYS_PER_KIND });
    writers.start();
    let during = 0;
    let errorsDuring = 0;
    let seconds = 0;
    let keysMoved = 0;
    try {
      await writers.waitForAcks(5000);

      const task = await createMigration(cluster.store, { first: FIRST, last: LAST, to: 3, batchSlots: 32 });
      expect(task.from).toEqual([1, 2]);
      expect(task.slots).toHaveLength(LAST - FIRST + 1);
      // A generous barrier timeout: this test is about data, not about fencing a slow proxy.
      const runner = new MigrationRunner({ store: cluster.store, logger: log.logger, barrierTimeoutMs: 15_000 });
      const ackedAtStart = writers.acked;
      const errorsAtStart = writers.errors;
      const started = performance.now();
      const end = await runner.runTask(task.id);
      seconds = (performance.now() - started) / 1000;
      during = writers.acked - ackedAtStart;
      errorsDuring = writers.errors - errorsAtStart;
      expect(end.state, `${end.error}\n${log.problems().slice(-20).join('\n')}`).toBe('done');
      keysMoved = end.progress.keysMoved;

      // Keep writing a little after the switch: the proxies now route those slots to group 3.
      await writers.waitForAcks(5000);
    } finally {
      await writers.stop();
    }

    const after = await placement(cluster);
    const g3 = after.perGroup.get(3) ?? 0;
    console.log(
      `[migration-load] ${LAST - FIRST + 1} slots from groups 1+2 to group 3 in ${seconds.toFixed(2)} s: ` +
        `runner moved ${keysMoved} keys (${Math.round(keysMoved / seconds)} keys/s), group 3 now holds ${g3} keys; ` +
        `${writers.summary()}; ${during} acknowledged and ${errorsDuring} errors while migrating; ` +
        `runner warnings: ${log.problems().length}`,
    );
    if (writers.errorSamples.length > 0) console.log(`[migration-load] error samples:\n  ${writers.errorSamples.join('\n  ')}`);

    // The writers really ran during the migration.
    expect(during).toBeGreaterThan(0);

    // Every acknowledged write is there exactly once; read through the other proxy.
    expect((await writers.verify(strictClient(pb))).slice(0, 20)).toEqual([]);

    // Every preloaded key with its value and TTL.
    expect((await verifyPreloaded(strictClient(pb), preloaded)).slice(0, 20)).toEqual([]);

    // Both proxies acked every barrier: nobody was fenced.
    expect(await new Barrier(cluster.store).listFences()).toEqual([]);

    // On the servers: every slot online, every key only on its owner's master, none twice.
    expect(after.notOnline).toEqual([]);
    expect(after.misplaced.slice(0, 20)).toEqual([]);
    expect(after.duplicated.slice(0, 20)).toEqual([]);
    const slots = await cluster.store.listSlots();
    expect(slots.filter((s) => s.id >= FIRST && s.id <= LAST && s.group !== 3).map((s) => s.id)).toEqual([]);
    expect(slots.filter((s) => (s.id < FIRST || s.id > LAST) && s.group !== (s.id < 512 ? 1 : 2)).map((s) => s.id)).toEqual([]);
    expect(g3).toBeGreaterThan(PRELOAD / 3);
    expect(after.total).toBe(PRELOAD + writers.keysWithAcks());

    // No error reply reached a client (acknowledged writes are the must-show; errors are
    // reported above and should be none).
    expect(writers.errors, writers.errorSamples.join('\n')).toBe(0);
  });
});
