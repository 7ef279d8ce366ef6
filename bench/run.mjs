#!/usr/bin/env node
// `npm run bench`: reborn-proxy against direct redis and twemproxy, with redis-benchmark.
//
//   etcd ─ topology ─▶ reborn-proxy ─┐
//                      twemproxy   ──┼─▶ redis group 1 master, redis group 2 master
//   redis-benchmark ─▶ direct ───────┘   (direct = group 1's master alone)
//
// Everything runs on free loopback ports with data in a temp dir, and is stopped at the end,
// on Ctrl-C and on errors (only the processes this script started). The tests run
// interleaved — for each round, for each test, for each target — so slow drift of the machine
// (thermal, other load) spreads over every target instead of biasing the one that ran last;
// each cell is the median over the rounds.
//
// Flags: --quick  --rounds N  --requests N  --out FILE  --targets redis,twemproxy,reborn
//        --keep (keep the temp dir and its logs)  --no-warmup
// See bench/README.md.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  alive, busySummary, cellStats, cpuBusy, fmtNum, fmtOps, freePort, isStopping, loadKeys, log, machineInfo,
  makeTempDir, onPath, onSignals, pairedRatio, parseFlags, ping, positiveInt, redisCli, root, runMain,
  runRedisBenchmark, spreadCell, start, startEtcd, startProxy, startRedis, tableHead, tail, tmpPath, waitFor,
  withStore, writeTopology,
} from './lib.mjs';

// ---------------------------------------------------------------------------------------------
// Options

const flags = parseFlags(
  {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    requests: { type: 'string' },
    out: { type: 'string' },
    targets: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'no-warmup': { type: 'boolean', default: false },
  },
  [
    'usage: node bench/run.mjs [--quick] [--rounds N] [--requests N] [--out FILE]',
    '                          [--targets redis,twemproxy,reborn] [--keep] [--no-warmup]',
    '',
    '  --quick      1 round of 60000 base requests (about 25-40 s)',
    '  --rounds N   rounds of the whole matrix; each cell is the median (default 3)',
    '  --requests N base request count: -P 1 tests use N, -P 16 tests 4N, MSET N/2 (default 150000)',
    '  --out FILE   where to write the markdown report (default bench/results/latest.md)',
    '  --targets    comma-separated subset of redis,twemproxy,reborn (default: all available)',
    '  --keep       keep the temp dir (configs and logs) after the run',
    '  --no-warmup  skip the unrecorded warm-up pass',
    '',
  ],
);

const ROUNDS = positiveInt('rounds', flags.rounds, flags.quick ? 1 : 3);
const BASE_REQUESTS = positiveInt('requests', flags.requests, flags.quick ? 60_000 : 150_000);
const OUT = path.resolve(flags.out ?? path.join(root, 'bench/results/latest.md'));
const CLIENTS = 50;
const VALUE_SIZE = 64;
const KEYSPACE = 100_000;
const PRODUCT = 'bench';
/** A redis-benchmark run that takes longer than this is killed and its cell shown as n/a. */
const RUN_TIMEOUT_MS = 120_000;

// The matrix. `share` scales the base request count so every cell runs for a similar time:
// pipelined runs are several times faster, MSET of 10 keys several times slower.
const TESTS = [
  { name: 'GET -P 1', test: 'get', pipeline: 1, share: 1 },
  { name: 'GET -P 16', test: 'get', pipeline: 16, share: 4 },
  { name: 'SET -P 1', test: 'set', pipeline: 1, share: 1 },
  { name: 'SET -P 16', test: 'set', pipeline: 16, share: 4 },
  { name: 'MSET(10) -P 1', test: 'mset', pipeline: 1, share: 0.5 },
];

// reborn-resp3: the same proxy, with redis-benchmark speaking RESP3 (-3, HELLO 3 first).
const ALL_TARGETS = ['redis', 'twemproxy', 'reborn', 'reborn-resp3'];
const TARGET_LABEL = { redis: 'redis (direct)', twemproxy: 'twemproxy', reborn: 'reborn', 'reborn-resp3': 'reborn RESP3' };

let wanted = ALL_TARGETS;
if (flags.targets !== undefined) {
  wanted = flags.targets.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = wanted.filter((t) => !ALL_TARGETS.includes(t));
  if (bad.length > 0 || wanted.length === 0) {
    process.stderr.write(`bench: --targets wants a subset of ${ALL_TARGETS.join(',')}, got ${flags.targets}\n`);
    process.exit(2);
  }
}

onSignals();

// ---------------------------------------------------------------------------------------------
// Setup

async function startTwemproxy(ports) {
  const port = await freePort();
  const statsPort = await freePort();
  const conf = tmpPath('nutcracker.yml');
  fs.writeFileSync(
    conf,
    [
      'bench:',
      `  listen: 127.0.0.1:${port}`,
      '  hash: fnv1a_64',
      '  distribution: ketama',
      '  redis: true',
      '  auto_eject_hosts: false',
      '  preconnect: true',
      '  servers:',
      ...ports.map((p, i) => `    - 127.0.0.1:${p}:1 group${i + 1}`),
      '',
    ].join('\n'),
  );
  const logFile = tmpPath('nutcracker.log');
  const entry = start('twemproxy', 'nutcracker', [
    '-c', conf, '-s', String(statsPort), '-a', '127.0.0.1',
    '-p', tmpPath('nutcracker.pid'), '-o', logFile,
  ], tmpPath('nutcracker.stdout.log'));
  await waitFor('twemproxy PING', () => ping(port), 10_000, entry);
  return { port, logFile };
}

// ---------------------------------------------------------------------------------------------
// Running redis-benchmark

/** CPU time (user + system) a process has used so far, in µs, from /proc; null where unreadable. */
function cpuMicros(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
  } catch {
    return null;
  }
}

/**
 * One run of the matrix's redis-benchmark (-c 50 -d 64 -r 100000) against `target`. For the
 * reborn targets, also the proxy's CPU per request (µs): the figure that does not swing with
 * the machine's other load the way ops/s does.
 */
async function runBenchmark(ports, target, test, requests, pipeline, proxyPid = null) {
  const before = proxyPid === null ? null : cpuMicros(proxyPid);
  const r = await runRedisBenchmark({
    port: ports[target], test, requests, pipeline, clients: CLIENTS, valueSize: VALUE_SIZE, keyspace: KEYSPACE, timeoutMs: RUN_TIMEOUT_MS,
    resp3: target === 'reborn-resp3',
  });
  const after = proxyPid === null ? null : cpuMicros(proxyPid);
  if (r.ok && before !== null && after !== null) r.cpuPerRequest = (after - before) / requests;
  return r;
}

function medianCpu(runs) {
  const xs = (runs ?? []).map((r) => r.cpuPerRequest).filter((x) => x !== undefined).sort((a, b) => a - b);
  return xs.length === 0 ? undefined : xs[Math.floor(xs.length / 2)];
}

// ---------------------------------------------------------------------------------------------
// Report

const fmtMs = (x) => fmtNum(x, 3);
function fmtRatio(x) {
  return x === undefined ? 'n/a' : `${x.toFixed(2)}×`;
}

function buildReport({ targets, results, machine, command, notes, seconds }) {
  const lines = [];
  lines.push(`# reborn benchmark`);
  lines.push('');
  lines.push(
    `${machine.date} · ${machine.cpus} × ${machine.cpuModel} (nproc ${machine.nproc}) · node ${machine.node} · ` +
      `redis ${machine.redis} · ${machine.twemproxy ?? 'twemproxy not installed'} · ${machine.os}`,
  );
  lines.push('');
  lines.push(`Command: \`${command}\``);
  lines.push('');
  lines.push(
    `redis-benchmark -c ${CLIENTS} -d ${VALUE_SIZE} -r ${KEYSPACE}; ${ROUNDS} round(s) interleaved ` +
      `(round → test → target); each cell is the median over the rounds; ratios are the median of ` +
      `the per-round ratios; ops/s = requests/s ` +
      `(an MSET of 10 keys is one request). Base requests ${BASE_REQUESTS} (-P 1 ×1, -P 16 ×4, MSET ×0.5). ` +
      `Wall time ${Math.round(seconds)} s.`,
  );
  lines.push('');

  const head = ['test'];
  for (const t of ALL_TARGETS) head.push(`${TARGET_LABEL[t]} ops/s`, 'p50 ms', 'p99 ms');
  head.push('reborn / redis', 'reborn / twemproxy', 'RESP3 / RESP2', 'proxy CPU µs/req RESP2', 'RESP3');
  lines.push(...tableHead(head));
  const stats = {};
  for (const test of TESTS) {
    const row = [test.name];
    stats[test.name] = {};
    for (const t of ALL_TARGETS) {
      const s = targets.includes(t) ? cellStats(results[test.name][t]) : undefined;
      stats[test.name][t] = s;
      row.push(fmtOps(s?.rps), fmtMs(s?.p50), fmtMs(s?.p99));
    }
    // reborn's ops/s over the other target's, paired by round (see pairedRatio).
    stats[test.name].ratio = {
      redis: pairedRatio(results[test.name].reborn, results[test.name].redis),
      twemproxy: pairedRatio(results[test.name].reborn, results[test.name].twemproxy),
      resp3: pairedRatio(results[test.name]['reborn-resp3'], results[test.name].reborn),
    };
    row.push(fmtRatio(stats[test.name].ratio.redis), fmtRatio(stats[test.name].ratio.twemproxy), fmtRatio(stats[test.name].ratio.resp3));
    const cpu2 = medianCpu(results[test.name].reborn);
    const cpu3 = medianCpu(results[test.name]['reborn-resp3']);
    row.push(cpu2 === undefined ? 'n/a' : cpu2.toFixed(1), cpu3 === undefined ? 'n/a' : cpu3.toFixed(1));
    lines.push(`| ${row.join(' | ')} |`);
  }
  lines.push('');

  // Goals from bench/README.md.
  const goals = [];
  const check = (test, other, want) => {
    const ratio = stats[test]?.ratio[other];
    if (ratio === undefined) {
      goals.push(`- ${test}: reborn / ${other} ≥ ${want.toFixed(1)} — n/a`);
      return;
    }
    goals.push(`- ${test}: reborn / ${other} ≥ ${want.toFixed(1)} — ${ratio.toFixed(2)} ${ratio >= want ? 'PASS' : 'FAIL'}`);
  };
  for (const t of ['GET -P 16', 'SET -P 16']) {
    check(t, 'twemproxy', 1.0);
    check(t, 'redis', 0.6);
  }
  for (const t of ['GET -P 1', 'SET -P 1']) check(t, 'twemproxy', 0.9);
  // RESP3 costs at most 10 % (the same backend bytes pass through; only HELLO differs).
  for (const t of ['GET -P 1', 'SET -P 1', 'GET -P 16', 'SET -P 16']) {
    const ratio = stats[t]?.ratio.resp3;
    goals.push(`- ${t}: reborn RESP3 / RESP2 ≥ 0.9 — ${ratio === undefined ? 'n/a' : `${ratio.toFixed(2)} ${ratio >= 0.9 ? 'PASS' : 'FAIL'}`}`);
  }
  lines.push('Goals (bench/README.md):');
  lines.push('');
  lines.push(...goals);
  lines.push('');

  lines.push('Spread (ops/s, min–max over rounds):');
  lines.push('');
  for (const test of TESTS) {
    const cells = targets.map((t) => spreadCell(t, results[test.name][t]));
    lines.push(`- ${test.name}: ${cells.join('; ')}`);
  }
  lines.push('');
  if (notes.length > 0) {
    lines.push('Notes:');
    lines.push('');
    lines.push(...notes.map((n) => `- ${n}`));
    lines.push('');
  }
  return lines.join('\n');
}

/** Warnings and errors from the proxy's pino log (level ≥ 40), grouped by message. */
function proxyLogSummary(logFile) {
  let text = '';
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  const counts = new Map();
  let other = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let rec;
    try {
      rec = JSON.parse(line);
    } catch {
      other++;
      continue;
    }
    if (typeof rec.level === 'number' && rec.level >= 40) {
      const name = rec.level >= 50 ? 'error' : 'warn';
      const key = `${name}: ${rec.msg ?? '(no msg)'}${rec.err?.message ? ` (${rec.err.message})` : ''}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  const out = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k, n]) => `reborn-proxy log ${k} ×${n}`);
  if (other > 0) out.push(`reborn-proxy wrote ${other} non-JSON line(s) to its log`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const began = Date.now();
  for (const cmd of ['redis-server', 'redis-benchmark', 'redis-cli']) {
    if (!onPath(cmd)) throw new Error(`${cmd} is not on PATH`);
  }
  let targets = [...wanted];
  if (targets.includes('reborn-resp3') && !targets.includes('reborn')) targets.push('reborn');
  if (targets.includes('reborn') && !onPath('etcd')) throw new Error('etcd is not on PATH (needed for reborn)');
  if (targets.includes('twemproxy') && !onPath('nutcracker')) {
    if (flags.targets !== undefined) throw new Error('nutcracker (twemproxy) is not on PATH');
    log('nutcracker (twemproxy) is not on PATH: its columns will be n/a');
    targets = targets.filter((t) => t !== 'twemproxy');
  }

  makeTempDir('reborn-bench-', { keep: flags.keep });
  const machine = {
    ...machineInfo(),
    twemproxy: onPath('nutcracker')
      ? (spawnSync('nutcracker', ['--version'], { encoding: 'utf8' }).stderr || '').trim().split('\n')[0].replace(/^This is /, '') || 'nutcracker'
      : null,
  };

  const ports = {};
  const redisPorts = [await startRedis(1), await startRedis(2)];
  log(`redis masters on ${redisPorts.join(', ')}`);
  ports.redis = redisPorts[0];
  // Every key redis-benchmark can pick (`key:%012d` for -r 100000) gets a 64-byte value on BOTH
  // masters, so a GET finds a value whichever server a target routes the key to (direct, the
  // twemproxy hash and reborn's slot table disagree on placement).
  log(`prefilling ${KEYSPACE} keys on both masters`);
  for (const p of redisPorts) await loadKeys([p], KEYSPACE, VALUE_SIZE);

  let reborn = null;
  if (targets.includes('reborn')) {
    const etcdUrl = await startEtcd();
    log(`etcd on ${etcdUrl}`);
    // Product `bench`: groups 1 and 2 on the two masters, slots 0–511 → 1, 512–1023 → 2.
    await withStore(etcdUrl, PRODUCT, (store) => writeTopology(store, redisPorts));
    reborn = await startProxy(etcdUrl, PRODUCT);
    ports.reborn = reborn.port;
    ports['reborn-resp3'] = reborn.port;
    log(`reborn-proxy on ${reborn.port} (admin ${reborn.adminPort})`);
  }
  let twem = null;
  if (targets.includes('twemproxy')) {
    twem = await startTwemproxy(redisPorts);
    ports.twemproxy = twem.port;
    log(`twemproxy on ${twem.port}`);
  }

  const notes = [];
  // What each target answers to the CONFIG GETs redis-benchmark sends before it starts.
  for (const t of targets) {
    for (const param of ['save', 'appendonly']) {
      const r = redisCli(ports[t], ['CONFIG', 'GET', param]);
      const answer = r.out.replace(/\s*\n\s*/g, ' ⏎ ') || '(empty)';
      if (t !== 'redis') notes.push(`${t} answers \`CONFIG GET ${param}\` with: ${answer}`);
    }
    if (!(await ping(ports[t]))) throw new Error(`${t} stopped answering PING after CONFIG GET`);
    // Routing sanity: every key was prefilled on both masters, so any placement finds it.
    const got = redisCli(ports[t], ['GET', 'key:000000000042']);
    if (got.out !== 'v'.repeat(VALUE_SIZE)) throw new Error(`${t}: GET key:000000000042 answered ${JSON.stringify(got.out.slice(0, 200))}`);
  }

  if (!flags['no-warmup']) {
    // Unrecorded: lets the proxy's JIT warm up and every pool connect before round 1.
    log('warm-up');
    for (const t of targets) {
      for (const [test, p] of [['set', 16], ['get', 16], ['get', 1]]) {
        await runBenchmark(ports, t, test, Math.max(5000, Math.round(BASE_REQUESTS / 5)), p);
      }
    }
  }

  const busy = [await cpuBusy()];
  const results = {};
  for (const test of TESTS) results[test.name] = Object.fromEntries(targets.map((t) => [t, []]));
  const stderrSeen = new Map(); // target → Set of stderr lines
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the target order each round so no target always runs right after another.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const test of TESTS) {
      for (const t of order) {
        if (isStopping()) return; // Ctrl-C: the signal handler tears down and exits
        const n = Math.max(1000, Math.round(BASE_REQUESTS * test.share));
        const r = await runBenchmark(ports, t, test.test, n, test.pipeline, t.startsWith('reborn') ? reborn?.entry.proc.pid ?? null : null);
        results[test.name][t].push(r);
        for (const line of r.notes) {
          if (!stderrSeen.has(t)) stderrSeen.set(t, new Set());
          stderrSeen.get(t).add(line);
        }
        log(
          `round ${round + 1}/${ROUNDS} ${test.name.padEnd(14)} ${t.padEnd(10)} ` +
            (r.ok ? `${fmtOps(r.rps).padStart(9)} ops/s  p50 ${fmtMs(r.p50)}  p99 ${fmtMs(r.p99)}` : `n/a: ${r.why}`) +
            `  (${r.seconds.toFixed(1)} s)`,
        );
        if (reborn !== null && !alive(reborn.entry)) throw new Error(`reborn-proxy died during ${test.name}; see ${reborn.logFile}\n${tail(reborn.logFile)}`);
      }
    }
    busy.push(await cpuBusy());
  }
  const cpu = busySummary(busy);
  if (cpu !== null) {
    notes.unshift(
      `CPU used by other processes, sampled before and after each round: ${cpu.list}` +
        (cpu.notIdle ? ' — the machine was NOT idle; treat these numbers as noisy' : ' (idle machine)'),
    );
    if (cpu.notIdle) log(`other processes used up to ${Math.round(cpu.worst * 100)} % CPU during the run: numbers are noisy`);
  }

  for (const [t, lines] of stderrSeen) {
    for (const line of lines) notes.push(`redis-benchmark stderr against ${t}: ${line}`);
  }
  if (reborn !== null) notes.push(...proxyLogSummary(reborn.logFile));

  const command = ['node', 'bench/run.mjs', ...process.argv.slice(2)].join(' ');
  const report = buildReport({ targets, results, machine, command, notes, seconds: (Date.now() - began) / 1000 });
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, report + '\n');
  process.stdout.write(report + '\n');
  log(`written to ${path.relative(process.cwd(), OUT) || OUT}`);
}

await runMain(main);
