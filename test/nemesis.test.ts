/**
 * The nemesis (issue 19, item 5): continuous writes through three proxies and continuous slot
 * migrations while random faults hit every process of a production-shaped cluster (see
 * nemesis-cluster.ts and the catalogue in nemesis-faults.ts). Afterwards, with every fault
 * healed: liveness within 60 s (every slot online, no proxy fenced, every task done or
 * cancelled, every group with a reachable master that etcd names), then safety (no
 * acknowledged write lost, no phantom write, every key in exactly one group, the one owning
 * its slot, the same values through every proxy).
 *
 *   REBORN_NEMESIS_MS    length of the fault phase (default 120000)
 *   REBORN_NEMESIS_SEED  replays a run: the seed is printed first thing
 */
import { afterAll, describe, expect, it } from 'vitest';
import { stopAll, waitFor } from '@reborn/testkit';
import { NemesisCluster } from './nemesis-cluster.js';
import { MigrationLoop, OwnedWriters, preloadResting, safety, waitLive } from './nemesis-check.js';
import { Nemesis } from './nemesis-faults.js';

const PHASE_MS = Number(process.env['REBORN_NEMESIS_MS'] ?? 120_000);
const SEED = process.env['REBORN_NEMESIS_SEED'] !== undefined ? Number(process.env['REBORN_NEMESIS_SEED']) : Math.floor(Math.random() * 2 ** 31);
const LIVENESS_MS = 60_000;
/** Keys written once before the faults: every migration has some to move. */
const RESTING_KEYS = 30_000;

const print = (line: string): void => void process.stdout.write(`${line}\n`);

let cluster: NemesisCluster | null = null;

afterAll(async () => {
  await cluster?.stop();
  await stopAll();
});

describe('nemesis', () => {
  it(`survives ${PHASE_MS / 1000} s of random faults: nothing stays stuck, no write is lost (seed ${SEED})`, { timeout: PHASE_MS + 420_000 }, async () => {
    if (!Number.isInteger(SEED) || !Number.isFinite(PHASE_MS) || PHASE_MS < 0) throw new Error(`bad REBORN_NEMESIS_SEED / REBORN_NEMESIS_MS: ${SEED} / ${PHASE_MS}`);
    print(`[nemesis] seed ${SEED} (replay: REBORN_NEMESIS_SEED=${SEED} REBORN_NEMESIS_MS=${PHASE_MS} npx vitest run test/nemesis.test.ts)`);
    cluster = await NemesisCluster.start(print);
    const c = cluster;

    const loader = c.proxies[0]!.proc.client({ maxRetriesPerRequest: 0 });
    const resting = await preloadResting(loader, RESTING_KEYS);
    loader.disconnect();
    print(`[nemesis] ${resting.length} resting keys written`);
    const writers = new OwnedWriters(c);
    writers.start();
    await waitFor(() => writers.ackCount > 500, { timeoutMs: 60_000, intervalMs: 100, what: 'writes to flow' });
    const migrations = new MigrationLoop(c, SEED, print);
    migrations.start();

    const nemesis = new Nemesis(c, SEED, print);
    const selfExits: string[] = [];
    const unsupervise = c.superviseProxies((slot, tail) => {
      selfExits.push(slot.id);
      nemesis.event(`proxy ${slot.id} exited on its own; restarting it. Its last output:\n    ${tail.split('\n').join('\n    ')}`);
    });
    await nemesis.run(PHASE_MS);
    await c.ensureUp((line) => nemesis.event(line));
    print(`[nemesis] fault phase over, everything healed: ${nemesis.summary()}`);
    await migrations.stop();
    await writers.stop();
    // Until liveness is judged: a proxy dying after the heal must still be seen (and restarted).

    let stuck: Error | null = null;
    let liveAfterMs = 0;
    try {
      liveAfterMs = await waitLive(c, [...writers.keys.keys()], LIVENESS_MS);
    } catch (err) {
      stuck = err as Error;
    }
    unsupervise();
    // Safety is checked even when something stayed stuck: a lost write is the worse news.
    const unsafe = stuck === null ? await safety(c, writers, resting) : await safety(c, writers, resting).catch((err: Error) => [`safety check could not run: ${err.message}`]);

    const events = (await c.agent?.api('GET', '/api/events?limit=1000').catch(() => null))?.body;
    const failovers = Array.isArray(events) ? events.filter((e: { kind?: string }) => e.kind === 'failover').length : 'unknown';
    const errorKinds = [...writers.errorKinds.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
    print(
      [
        `[nemesis] seed ${SEED}, fault phase ${PHASE_MS / 1000} s`,
        `[nemesis] ${nemesis.summary()}`,
        `[nemesis] writes: ${writers.acked} acknowledged, ${writers.errors} errored, on ${writers.keys.size} keys`,
        ...errorKinds.map(([why, n]) => `[nemesis]   ${n} × ${why}`),
        `[nemesis] migrations: ${migrations.done} done, ${migrations.cancelled} cancelled, ${migrations.failed.length} failed, ${migrations.createErrors} refused at creation`,
        ...migrations.failed.map((f) => `[nemesis]   failed ${f}`),
        ...[...migrations.createErrorKinds.entries()].map(([why, n]) => `[nemesis]   ${n} × create refused: ${why}`),
        `[nemesis] failovers seen: ${failovers}`,
        `[nemesis] proxies that exited on their own (restarted by the harness): ${selfExits.length === 0 ? 'none' : selfExits.join(', ')}`,
        `[nemesis] liveness: ${stuck === null ? `ok (everything back ${(liveAfterMs / 1000).toFixed(1)} s after the heals)` : stuck.message}`,
        `[nemesis] safety: ${unsafe.length === 0 ? 'ok' : unsafe.join('\n  ')}`,
      ].join('\n'),
    );
    if (stuck !== null || unsafe.length > 0) print(c.problemLogs());
    const verdicts = [
      ...(unsafe.length > 0 ? [`safety: ${unsafe.join('\n  ')}`] : []),
      ...(stuck !== null ? [`liveness: ${stuck.message}`] : []),
      ...(migrations.failed.length > 0 ? [`tasks failed during the run: ${migrations.failed.join('\n  ')}`] : []),
    ];
    expect(verdicts.join('\n'), `nemesis verdict (replay with REBORN_NEMESIS_SEED=${SEED})`).toBe('');
  });
});
