#!/usr/bin/env node
// Live-migration benchmark: how fast the runner moves keys, and what a migration does to the
// latency clients see through the proxy.
//
//   etcd ─ topology ─▶ reborn-proxy ─▶ group 1 master (slots 0–511), group 2 master (512–1023)
//   redis-benchmark ─▶ reborn-proxy           migration runner (this process) ─▶ both masters
//
//   1. N small keys (`key:%012d`, 16-byte values) are written straight to the master that owns
//      each key's slot (redis-cli --pipe), then the slot distribution is checked (DBSIZE of each
//      master = the keys whose slots it owns);
//   2. BEFORE: redis-benchmark -c 50 -P 1 -d 16 -r N, GET then SET, a fixed number of requests
//      per run, a few runs through the proxy;
//   3. DURING: the runner migrates half the slots of group 1 (0–255) to group 2; while it runs,
//      the same GET / SET runs go on back to back. Only runs that lie entirely inside the
//      migration count (the report says how many did);
//   4. after it: slots 0–255 are online in group 2, no key of them is left on group 1, and no
//      key was lost (DBSIZE sums to N).
//
// Reports keys moved, seconds, keys/s, and p50/p99 before vs during, against the targets
// (≥ 50 000 keys/s; p99 during ≤ 2 × before). Prints a markdown table and writes
// bench/results/migration.md. Everything runs on free loopback ports in a temp dir and is
// stopped at the end, on Ctrl-C and on errors (only the processes this script started).
//
//   node bench/migration.mjs [--keys 1000000] [--requests 20000] [--quick] [--out FILE] [--keep]
//                            [--migrate-keys N] [--parallel N] [--replica]
//
// --replica gives group 1 (the source) one replica, listed in etcd: the runner then WAITs for it
// after each MIGRATE (the in-sync confirmation of docs/migration-failover.md).
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  busySummary, cpuBusy, fmtNum as fmt, fmtOps as fmtInt, isStopping, keyName, loadKeys, log, machineInfo, makeTempDir,
  median, missingBuild, onPath, onSignals, parseFlags, positiveInt, redisCli, root, runMain, runRedisBenchmark,
  setLogTag, startEtcd, startProxy, startRedis, withStore, writeTopology,
} from './lib.mjs';
import { startStallProbe } from './stall-probe.mjs';

setLogTag('bench:migration');

const flags = parseFlags(
  {
    keys: { type: 'string' },
    requests: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'migrate-keys': { type: 'string' },
    parallel: { type: 'string' },
    replica: { type: 'boolean', default: false },
    'no-load': { type: 'boolean', default: false },
    'big-keys': { type: 'boolean', default: false },
    'max-source-latency': { type: 'string' },
  },
  [
    'usage: node bench/migration.mjs [--keys N] [--requests N] [--quick] [--out FILE] [--keep] [--migrate-keys N] [--parallel N]',
    '',
    '  --keys N      keys loaded before the migration (default 1000000; --quick 200000)',
    '  --requests N  requests per redis-benchmark run, GET or SET (default 20000; --quick 10000)',
    '  --quick       fewer keys and shorter runs',
    '  --out FILE    markdown report (default bench/results/migration.md)',
    '  --keep        keep the temp dir (logs of every process) after the run',
    '  --migrate-keys N  keys per MIGRATE (default: the runner\'s own)',
    '  --parallel N      MIGRATE commands in flight (default: the runner\'s own)',
    '  --replica         group 1 gets a replica (the runner WAITs for it after each MIGRATE)',
    '  --no-load         no redis-benchmark runs: the migration alone, at full speed (the keys/s goal)',
    '  --big-keys        also a 2M-field hash, a 1M-element list and a 1M-member zset in the moved slots',
    '  --max-source-latency MS  the task\'s latency target for the source (default: the runner\'s own)',
    '',
  ],
);

const KEYS = positiveInt('keys', flags.keys, flags.quick ? 200_000 : 1_000_000);
const REQUESTS = positiveInt('requests', flags.requests, flags.quick ? 10_000 : 20_000);
const OUT = path.resolve(flags.out ?? path.join(root, 'bench/results/migration.md'));
const CLIENTS = 50;
/** Runner tuning under test; undefined keeps the runner's defaults. */
const RUNNER_TUNING = {
  migrateKeys: flags['migrate-keys'] === undefined ? undefined : positiveInt('migrate-keys', flags['migrate-keys']),
  parallel: flags.parallel === undefined ? undefined : positiveInt('parallel', flags.parallel),
};
const VALUE_SIZE = 16;
const PRODUCT = 'bench-migration';
const BEFORE_RUNS = 3; // per test (GET, SET)
const FIRST = 0;
const LAST = 255; // half of group 1's slots
const NO_LOAD = flags['no-load'];
const BIG_KEYS = flags['big-keys'];
/** The issue's goals: ≥ 100k keys/s without client load; under load, p99 ≤ 2× and no stall over 50 ms. */
const TARGET_KEYS_PER_S = 100_000;
const TARGET_STALL_MS = 50;
/** Big keys (--big-keys): [type, elements], all in the moved slots. */
const BIG = [['hash', 2_000_000], ['list', 1_000_000], ['zset', 1_000_000]];
const TARGET_P99_RATIO = 2;
const RUN_TIMEOUT_MS = 120_000;

onSignals();

// ---------------------------------------------------------------------------------------------
// redis-benchmark

/** One run of `test` (get|set) through the proxy: { ok, rps, p50, p99, start, end } (ms epoch). */
async function bench(port, test, requests) {
  const r = await runRedisBenchmark({
    port, test, requests, pipeline: 1, clients: CLIENTS, valueSize: VALUE_SIZE, keyspace: KEYS, timeoutMs: RUN_TIMEOUT_MS,
  });
  return { ...r, test };
}

// ---------------------------------------------------------------------------------------------
// Big keys

/** Feeds RESP commands from `gen` to `port` through redis-cli --pipe. */
async function pipe(port, gen) {
  const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--pipe'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
  child.stdin.on('error', () => {});
  const done = new Promise((resolve) => child.on('close', resolve));
  const enc = (args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  for (const args of gen()) {
    if (!child.stdin.write(enc(args))) await new Promise((r) => child.stdin.once('drain', r));
  }
  child.stdin.end();
  const code = await done;
  if (code !== 0 || !/errors: 0/.test(out)) throw new Error(`redis-cli --pipe to :${port}: ${out.trim()}`);
}

/** A hash tag whose slot lies in [first, last]. */
function tagIn(keySlot, first, last, prefix) {
  for (let i = 0; ; i++) {
    const tag = `${prefix}${i}`;
    const s = keySlot(Buffer.from(`{${tag}}`));
    if (s >= first && s <= last) return tag;
  }
}

/** Writes the big keys of BIG to `port` (group 1's master), in slots FIRST–LAST. Returns their names. */
async function loadBigKeys(port, keySlot) {
  const names = [];
  for (const [type, n] of BIG) {
    const key = `big:${type}:{${tagIn(keySlot, FIRST, LAST, `b${type}`)}}`;
    names.push([key, type, n]);
    await pipe(port, function* () {
      for (let i = 0; i < n; i += 1000) {
        const args = type === 'hash' ? ['HSET', key] : type === 'list' ? ['RPUSH', key] : ['ZADD', key];
        for (let j = i; j < Math.min(n, i + 1000); j++) {
          if (type === 'hash') args.push(`f${j}`, `v${j}`);
          else if (type === 'list') args.push(`e${j}`);
          else args.push(String(j), `m${j}`);
        }
        yield args;
      }
    });
  }
  return names;
}

/** Elements of a big key on `port`: 0 when it is not there. */
function bigLen(port, key, type) {
  const cmd = type === 'hash' ? 'HLEN' : type === 'list' ? 'LLEN' : 'ZCARD';
  return Number(redisCli(port, [cmd, key]).out);
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  for (const cmd of ['redis-server', 'redis-cli', 'redis-benchmark', 'etcd']) {
    if (!onPath(cmd)) throw new Error(`${cmd} is not on PATH`);
  }
  const missing = missingBuild(['packages/coordinator/dist/index.js', 'packages/config/dist/index.js', 'packages/protocol/dist/index.js', 'packages/proxy/dist/main.js']);
  if (missing !== null) throw new Error(missing);
  const { MigrationRunner, createMigration } = await import('@reborn/config');
  const { keySlot } = await import('@reborn/protocol');
  const pino = createRequire(path.join(root, 'package.json'))('pino');

  const tmp = makeTempDir('reborn-bench-migration-', { keep: flags.keep });
  const began = Date.now();
  const machine = machineInfo();

  const [etcdUrl, p1, p2] = await Promise.all([startEtcd(), startRedis(1), startRedis(2)]);
  const ports = [p1, p2];
  const replica = flags.replica ? await startRedis('1-replica') : null;
  await withStore(etcdUrl, PRODUCT, async (store) => {
    await writeTopology(store, ports);
    if (replica !== null) {
      const r = redisCli(replica, ['REPLICAOF', '127.0.0.1', String(p1)]);
      if (!r.ok) throw new Error(`REPLICAOF on the replica: ${r.out}`);
      await store.putGroup({ id: 1, servers: [{ addr: `127.0.0.1:${p1}`, role: 'master' }, { addr: `127.0.0.1:${replica}`, role: 'replica' }] });
    }
    const proxy = await startProxy(etcdUrl, PRODUCT);
    log(`etcd ${etcdUrl}, masters :${p1} :${p2}, proxy :${proxy.port}`);

    // 1. Load, and check the slot distribution on the servers themselves.
    const ownerOfSlot = (s) => (s < 512 ? 1 : 2);
    let t = Date.now();
    const counts = await loadKeys(ports, KEYS, VALUE_SIZE, (key) => ownerOfSlot(keySlot(Buffer.from(key))) - 1);
    const dbsize = (port) => Number(redisCli(port, ['DBSIZE']).out);
    const sizes = ports.map(dbsize);
    log(`loaded ${KEYS} keys in ${((Date.now() - t) / 1000).toFixed(1)} s: group 1 ${sizes[0]}, group 2 ${sizes[1]}`);
    if (sizes[0] !== counts[0] || sizes[1] !== counts[1]) throw new Error(`DBSIZE ${sizes} but wrote ${counts}`);
    if (replica !== null) {
      const deadline = Date.now() + 60_000;
      while (Number(redisCli(replica, ['DBSIZE']).out) !== sizes[0]) {
        if (Date.now() > deadline) throw new Error('the replica of group 1 did not catch up in 60 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      log(`replica :${replica} of group 1 in sync`);
    }
    const bigKeys = BIG_KEYS ? await loadBigKeys(p1, keySlot) : [];
    if (bigKeys.length > 0) log(`big keys on group 1: ${bigKeys.map(([k, type, n]) => `${k} (${type}, ${fmtInt(n)})`).join(', ')}`);
    let toMove = 0;
    for (let i = 0; i < KEYS; i++) {
      const s = keySlot(Buffer.from(keyName(i)));
      if (s >= FIRST && s <= LAST) toMove++;
    }
    const sample = redisCli(proxy.port, ['GET', keyName(42)]).out;
    if (sample !== 'v'.repeat(VALUE_SIZE)) throw new Error(`GET ${keyName(42)} through the proxy answered ${JSON.stringify(sample)}`);

    const busy = [await cpuBusy()];

    // Steady clients of the source group, on a key that stays there: through the proxy, and
    // straight to the master. Their longest wait is the stall a client of that group saw.
    let probeKey = null;
    for (let i = 0; probeKey === null; i++) {
      const s = keySlot(Buffer.from(keyName(i)));
      if (s > LAST && s < 512) probeKey = keyName(i);
    }
    // Not with --no-load: a steady client is load too (the runner then minds its latency).
    const probes = NO_LOAD
      ? []
      : [
          ['through the proxy', startStallProbe(proxy.port, ['GET', probeKey])],
          ['group 1 master directly', startStallProbe(p1, ['GET', probeKey])],
        ];
    const markProbes = (label) => probes.forEach(([, p]) => p.mark(label));

    // 2. Before: warm-up (unrecorded), then BEFORE_RUNS runs of GET and SET.
    const before = [];
    if (NO_LOAD) await new Promise((r) => setTimeout(r, 2000)); // the probes' "before"
    else {
      log('warm-up');
      await bench(proxy.port, 'set', Math.max(5000, REQUESTS >> 2));
      await bench(proxy.port, 'get', Math.max(5000, REQUESTS >> 2));
    }
    for (let i = 0; i < (NO_LOAD ? 0 : BEFORE_RUNS); i++) {
      for (const test of ['get', 'set']) {
        const r = await bench(proxy.port, test, REQUESTS);
        if (!r.ok) throw new Error(`before: ${test}: ${r.why}`);
        before.push(r);
        log(`before  ${test.toUpperCase()} ${fmtInt(r.rps)} ops/s p50 ${fmt(r.p50)} p99 ${fmt(r.p99)} ms`);
      }
    }

    // 3. During: the migration in this process; GET/SET runs back to back until it ends.
    const logger = pino({ level: 'info' }, pino.destination({ dest: path.join(tmp, 'runner.log'), sync: false }));
    const runner = new MigrationRunner({ store, logger, ...RUNNER_TUNING });
    const task = await createMigration(store, {
      first: FIRST, last: LAST, to: 2,
      ...(flags['max-source-latency'] === undefined ? {} : { maxSourceLatencyMs: positiveInt('max-source-latency', flags['max-source-latency']) }),
    });
    const g2Before = dbsize(p2);
    const migStart = Date.now();
    markProbes('during');
    let migEnd = Infinity;
    // finally, not then: a runTask() that rejects must end the loop below too (its error is
    // thrown by the `await migration` after it).
    const migration = runner.runTask(task.id).finally(() => {
      migEnd = Date.now();
      markProbes('after');
    });
    migration.catch(() => undefined);
    const during = [];
    // isStopping(): after Ctrl-C every run fails at once; don't spin until the migration ends.
    for (let i = 0; !NO_LOAD && migEnd === Infinity && !isStopping(); i++) {
      const test = i % 2 === 0 ? 'get' : 'set';
      const r = await bench(proxy.port, test, REQUESTS);
      r.inside = r.end <= migEnd;
      r.overlap = (Math.min(r.end, migEnd) - r.start) / Math.max(1, r.end - r.start);
      during.push(r);
      log(`during  ${test.toUpperCase()} ${r.ok ? `${fmtInt(r.rps)} ops/s p50 ${fmt(r.p50)} p99 ${fmt(r.p99)} ms` : `failed: ${r.why}`}${r.inside ? '' : ` (${Math.round(r.overlap * 100)} % inside the migration)`}`);
    }
    const end = await migration;
    const seconds = (migEnd - migStart) / 1000;
    const stalls = [];
    for (const [name, p] of probes) stalls.push([name, await p.stop()]);
    if (end.state !== 'done') throw new Error(`migration ${end.state}: ${end.error}`);

    busy.push(await cpuBusy());

    // 4. Checks: every moved slot online in group 2, none of their keys left in group 1, no key lost.
    const slotsAfter = await store.listSlots();
    const wrong = slotsAfter.filter((s) => s.state !== 'online' || s.group !== (s.id <= LAST ? 2 : ownerOfSlot(s.id)));
    if (wrong.length > 0) throw new Error(`slots not where they should be: ${JSON.stringify(wrong.slice(0, 5))}`);
    const after = ports.map(dbsize);
    if (after[0] + after[1] !== KEYS + bigKeys.length) throw new Error(`DBSIZE after ${after} does not sum to ${KEYS + bigKeys.length}: keys lost or duplicated`);
    for (const [key, type, n] of bigKeys) {
      const [on1, on2] = [bigLen(p1, key, type), bigLen(p2, key, type)];
      if (on1 !== 0 || on2 !== n) throw new Error(`big key ${key}: ${on1} elements on group 1, ${on2} on group 2, want 0 and ${n}`);
    }
    const left = after[0] - (sizes[0] - toMove);
    if (left !== 0) throw new Error(`group 1 holds ${after[0]} keys, want ${sizes[0] - toMove}`);
    const moved = after[1] - g2Before - bigKeys.length; // small keys
    const rate = moved / seconds;

    // Report.
    const sel = (runs, test) => runs.filter((r) => r.ok && r.test === test && (r.inside ?? true));
    /** The runs inside the migration; failing that, the one that overlapped it most (flagged). */
    const duringRuns = (test) => {
      const inside = sel(during, test);
      if (inside.length > 0) return { runs: inside, partial: null };
      const best = during.filter((r) => r.ok && r.test === test).sort((a, b) => b.overlap - a.overlap)[0];
      return best ? { runs: [best], partial: best.overlap } : { runs: [], partial: null };
    };
    const rows = [];
    const goals = [];
    for (const test of ['get', 'set']) {
      const b = sel(before, test);
      const { runs: d, partial } = duringRuns(test);
      const flag = partial === null ? '' : ` (${Math.round(partial * 100)} % inside)`;
      const bp99 = median(b.map((r) => r.p99));
      const dp99 = median(d.map((r) => r.p99));
      const ratio = dp99 / bp99;
      rows.push(
        `| ${test.toUpperCase()} | ${fmtInt(median(b.map((r) => r.rps)))} | ${fmt(median(b.map((r) => r.p50)))} | ${fmt(bp99)} | ` +
          `${partial === null ? d.length : `0${flag}`} | ${fmtInt(median(d.map((r) => r.rps)))} | ${fmt(median(d.map((r) => r.p50)))} | ${fmt(dp99)} | ${fmt(Math.max(...d.map((r) => r.p99)))} | ${fmt(ratio, 2)}× |`,
      );
      goals.push(
        d.length === 0
          ? `- ${test.toUpperCase()} p99 during ≤ ${TARGET_P99_RATIO}× before — n/a: no ${test.toUpperCase()} run during the migration (raise --keys or lower --requests)`
          : `- ${test.toUpperCase()} p99 during ≤ ${TARGET_P99_RATIO}× before — ${fmt(ratio, 2)}× ${ratio <= TARGET_P99_RATIO ? 'PASS' : 'FAIL'}` +
              (partial === null ? '' : ` (indicative only: the one ${test.toUpperCase()} run was ${Math.round(partial * 100)} % inside the migration; raise --keys or lower --requests)`),
      );
    }
    if (NO_LOAD) goals.length = 0; // no client load: the p99 goals do not apply
    const worstStall = Math.max(0, ...stalls.map(([, st]) => st.during?.max ?? 0));
    goals.unshift(`- no steady client of the source group waits more than ${TARGET_STALL_MS} ms during the migration — longest wait ${fmt(worstStall)} ms ${worstStall <= TARGET_STALL_MS ? 'PASS' : 'FAIL'}`);
    goals.unshift(
      NO_LOAD || BIG_KEYS
        ? `- migration speed ≥ ${fmtInt(TARGET_KEYS_PER_S)} keys/s without client load — ${fmtInt(rate)} keys/s ${NO_LOAD && !BIG_KEYS ? (rate >= TARGET_KEYS_PER_S ? 'PASS' : 'FAIL') : '(n/a: ' + (BIG_KEYS ? 'big keys moved too' : 'under load') + ')'}`
        : `- migration speed: ${fmtInt(rate)} keys/s under client load (the ${fmtInt(TARGET_KEYS_PER_S)} keys/s goal is measured with --no-load)`,
    );
    const stallRows = stalls.map(
      ([name, st]) => `| ${name} | ${fmt(st.before?.max ?? 0)} | ${fmt(st.during?.p99 ?? 0)} | ${fmt(st.during?.max ?? 0)} | ${fmtInt(st.during?.count ?? 0)} | ${st.errors} |`,
    );
    const failedRuns = during.filter((r) => !r.ok).map((r) => `${r.test}: ${r.why}`);
    const cpu = busySummary(busy);
    const busyNote =
      cpu !== null
        ? `CPU used by other processes, sampled before and after the measurements: ${cpu.list}` +
          (cpu.notIdle ? ' — the machine was NOT idle; treat these numbers as noisy' : '')
        : 'CPU use of other processes: unknown (no /proc/stat)';
    const report = [
      '# reborn migration benchmark',
      '',
      `${machine.date} · ${machine.nproc} × ${machine.cpuModel} · node ${machine.node} · redis ${machine.redis}`,
      '',
      `Command: \`node bench/migration.mjs ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
      '',
      `${fmtInt(KEYS)} keys (\`key:%012d\`, ${VALUE_SIZE}-byte values) over 2 groups (1 master each${replica === null ? '' : ', group 1 with one replica'}; slots 0–511 → group 1, 512–1023 → group 2); ` +
        `migration of slots ${FIRST}–${LAST} (half of group 1) to group 2 by the runner (default batch size, unthrottled). ` +
        `redis-benchmark -c ${CLIENTS} -P 1 -d ${VALUE_SIZE} -r ${KEYS}, ${fmtInt(REQUESTS)} requests per run, through one reborn-proxy. ` +
        `Wall time ${Math.round((Date.now() - began) / 1000)} s.`,
      '',
      '| keys moved | seconds | keys/s | moved by the runner | by proxies (touched) |',
      '|---:|---:|---:|---:|---:|',
      `| ${fmtInt(moved)} | ${fmt(seconds, 2)} | ${fmtInt(rate)} | ${fmtInt(end.progress.keysMoved)} | ${fmtInt(moved - end.progress.keysMoved)} |`,
      '',
      ...(NO_LOAD ? ['No client load (--no-load): the table of redis-benchmark runs is empty.', ''] : []),
      `| test | before ops/s | p50 ms | p99 ms | runs during | during ops/s | p50 ms | p99 ms | worst p99 ms | p99 during / before |`,
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      `Before: median of ${BEFORE_RUNS} runs each. During: median of the runs that started and ended while the migration ran ` +
        `(${during.filter((r) => r.inside).length} of ${during.length}; the last one usually ends after it); a test with no such run ` +
        'shows the run that overlapped the migration most, marked with its share inside.',
      '',
      `A steady client (one GET at a time of \`${probeKey}\`, a key of group 1 outside the moved slots):`,
      '',
      '| client | longest wait before ms | p99 during ms | longest wait during ms | requests during | errors |',
      '|---|---:|---:|---:|---:|---:|',
      ...stallRows,
      ...(bigKeys.length > 0 ? ['', `Big keys moved with the slots: ${bigKeys.map(([k, type, n]) => `\`${k}\` (${type}, ${fmtInt(n)} elements)`).join(', ')}; each checked whole on group 2 and gone from group 1.`] : []),
      '',
      'Goals (bench/README.md):',
      '',
      ...goals,
      ...(failedRuns.length > 0 ? ['', 'Failed runs during the migration:', '', ...failedRuns.map((f) => `- ${f}`)] : []),
      '',
      busyNote,
      '',
      `Checks after the migration: slots ${FIRST}–${LAST} online in group 2; group 1 holds none of their keys; ` +
        `DBSIZE ${fmtInt(after[0])} + ${fmtInt(after[1])} = ${fmtInt(KEYS)} (no key lost or duplicated).`,
      '',
    ].join('\n');
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, report);
    process.stdout.write(`${report}\n`);
    log(`report written to ${path.relative(process.cwd(), OUT) || OUT}`);
  });
}

await runMain(main);
