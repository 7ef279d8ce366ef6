#!/usr/bin/env node
// `node bench/before-after.mjs --before <checkout>`: this tree's reborn-proxy against another
// checkout's (built: `npm ci` there), side by side on the same redis masters, with RESP2 and,
// for this tree, RESP3 (redis-benchmark -3). The figure to trust on a shared machine is the
// proxy's CPU time per request, read from /proc around each run; ops/s and p99 are shown too.
//
//   etcd ─ topology ─▶ proxy "before" ─┐
//                      proxy "after"  ─┴─▶ redis group 1 master, redis group 2 master
//
// Pinning: run the script itself under `taskset -c 0` and pass `--client-cpu 1`: every server
// (redis, etcd, both proxies) inherits CPU 0, redis-benchmark runs on CPU 1.
//
//   taskset -c 0 node bench/before-after.mjs --before ../old --client-cpu 1 [--rounds 3] [--requests 100000]
//
// Rounds are interleaved (round → test → target, the target order rotating), each cell is the
// median over the rounds; ratios are per-round pairs. Only processes this script started are
// stopped, at the end, on Ctrl-C and on errors.
import fs from 'node:fs';
import path from 'node:path';
import {
  alive, fmtOps, freePort, isStopping, loadKeys, log, makeTempDir, median, onPath, onSignals, pairedRatio, parseFlags,
  positiveInt, runMain, runRedisBenchmark, startEtcd, startProxy, startRedis, withStore, writeTopology,
} from './lib.mjs';

const flags = parseFlags(
  {
    before: { type: 'string' },
    rounds: { type: 'string' },
    requests: { type: 'string' },
    'client-cpu': { type: 'string' },
    out: { type: 'string' },
  },
  [
    'usage: taskset -c 0 node bench/before-after.mjs --before DIR [--client-cpu 1] [--rounds N] [--requests N] [--out FILE]',
    '',
    '  --before DIR     a built checkout of reborn to compare with (e.g. a git worktree of an older commit)',
    '  --client-cpu N   run redis-benchmark on CPU N (taskset)',
    '  --rounds N       interleaved rounds (default 3)',
    '  --requests N     -P 1 requests per run; -P 16 runs 4N, MSET N/2 (default 100000)',
    '  --out FILE       also write the markdown table here',
    '',
  ],
);
if (flags.before === undefined) {
  process.stderr.write('bench: --before DIR is required (a built reborn checkout)\n');
  process.exit(2);
}
const BEFORE_BIN = path.resolve(flags.before, 'packages/proxy/bin/reborn-proxy.js');
if (!fs.existsSync(path.resolve(flags.before, 'packages/proxy/dist/main.js'))) {
  process.stderr.write(`bench: ${flags.before} has no built proxy (run npm ci there)\n`);
  process.exit(2);
}
const ROUNDS = positiveInt('rounds', flags.rounds, 3);
const BASE = positiveInt('requests', flags.requests, 100_000);
const CLIENT_CPU = flags['client-cpu'] === undefined ? null : positiveInt('client-cpu', flags['client-cpu'], 1) ;
const KEYSPACE = 100_000;
const VALUE_SIZE = 64;
const TESTS = [
  { name: 'GET -P 1', test: 'get', pipeline: 1, share: 1 },
  { name: 'SET -P 1', test: 'set', pipeline: 1, share: 1 },
  { name: 'GET -P 16', test: 'get', pipeline: 16, share: 4 },
  { name: 'SET -P 16', test: 'set', pipeline: 16, share: 4 },
  { name: 'MSET(10) -P 1', test: 'mset', pipeline: 1, share: 0.5 },
];
const TARGETS = ['before', 'after', 'after RESP3'];

/** CPU time (user + system) of a process so far, in µs (clock ticks of 10 ms). */
function cpuMicros(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

onSignals();

async function main() {
  for (const cmd of ['redis-server', 'redis-benchmark', 'etcd']) if (!onPath(cmd)) throw new Error(`${cmd} is not on PATH`);
  makeTempDir('reborn-before-after-');
  const ports = [await startRedis(1), await startRedis(2)];
  for (const p of ports) await loadKeys([p], KEYSPACE, VALUE_SIZE);
  const etcd = await startEtcd();
  await withStore(etcd, 'bench', (store) => writeTopology(store, ports));
  const before = await startProxy(etcd, 'bench', { id: 'before', bin: BEFORE_BIN });
  const after = await startProxy(etcd, 'bench', { id: 'after' });
  const proxyOf = { before, after, 'after RESP3': after };
  log(`before :${before.port} (${flags.before}), after :${after.port}`);

  const run = async (target, t, requests) => {
    const proxy = proxyOf[target];
    const pid = proxy.entry.proc.pid;
    const cpu0 = cpuMicros(pid);
    const r = await runRedisBenchmark({
      port: proxy.port, test: t.test, requests, pipeline: t.pipeline, clients: 50, valueSize: VALUE_SIZE, keyspace: KEYSPACE,
      timeoutMs: 120_000, resp3: target === 'after RESP3', cpu: CLIENT_CPU,
    });
    if (r.ok) r.cpuPerRequest = (cpuMicros(pid) - cpu0) / requests;
    if (!alive(proxy.entry)) throw new Error(`proxy ${target} died`);
    return r;
  };

  log('warm-up');
  for (const target of TARGETS) for (const t of TESTS) await run(target, t, 20_000);

  const results = Object.fromEntries(TESTS.map((t) => [t.name, Object.fromEntries(TARGETS.map((x) => [x, []]))]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]);
    for (const t of TESTS) {
      for (const target of order) {
        if (isStopping()) return;
        const r = await run(target, t, Math.round(BASE * t.share));
        results[t.name][target].push(r);
        log(`round ${round + 1}/${ROUNDS} ${t.name.padEnd(14)} ${target.padEnd(12)} ${r.ok ? `${fmtOps(r.rps)} ops/s p99 ${r.p99} ms ${r.cpuPerRequest.toFixed(1)} µs/req` : `n/a: ${r.why}`}`);
      }
    }
  }

  const cell = (runs, f) => (runs.every((r) => r.ok) ? median(runs.map(f)) : undefined);
  const fmt = (x, digits = 1) => (x === undefined ? 'n/a' : x.toFixed(digits));
  const lines = [
    `before: ${flags.before} · after: this tree · ${ROUNDS} interleaved rounds, medians · redis-benchmark -c 50 -d 64 -r ${KEYSPACE}` +
      (CLIENT_CPU === null ? '' : ` on CPU ${CLIENT_CPU}`),
    '',
    '| test | CPU µs/req before | after | after RESP3 | ops/s before | after | after RESP3 | p99 ms before | after | after RESP3 | after / before | RESP3 / RESP2 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const t of TESTS) {
    const r = results[t.name];
    const row = [t.name];
    for (const x of TARGETS) row.push(fmt(cell(r[x], (y) => y.cpuPerRequest)));
    for (const x of TARGETS) row.push(fmtOps(cell(r[x], (y) => y.rps)));
    for (const x of TARGETS) row.push(fmt(cell(r[x], (y) => y.p99), 2));
    row.push(`${fmt(pairedRatio(r.after, r.before), 2)}×`, `${fmt(pairedRatio(r['after RESP3'], r.after), 2)}×`);
    lines.push(`| ${row.join(' | ')} |`);
  }
  const report = lines.join('\n') + '\n';
  process.stdout.write(report);
  if (flags.out) fs.writeFileSync(flags.out, report);
}

await runMain(main);
