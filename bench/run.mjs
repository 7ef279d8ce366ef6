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
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------------------------------------
// Options

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    requests: { type: 'string' },
    out: { type: 'string' },
    targets: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'no-warmup': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (flags.help) {
  process.stdout.write(
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
    ].join('\n'),
  );
  process.exit(0);
}

function positiveInt(name, raw, dflt) {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`bench: --${name} wants a positive integer, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return n;
}

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

const ALL_TARGETS = ['redis', 'twemproxy', 'reborn'];
const TARGET_LABEL = { redis: 'redis (direct)', twemproxy: 'twemproxy', reborn: 'reborn' };

let wanted = ALL_TARGETS;
if (flags.targets !== undefined) {
  wanted = flags.targets.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = wanted.filter((t) => !ALL_TARGETS.includes(t));
  if (bad.length > 0 || wanted.length === 0) {
    process.stderr.write(`bench: --targets wants a subset of ${ALL_TARGETS.join(',')}, got ${flags.targets}\n`);
    process.exit(2);
  }
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: everything we spawn is recorded here and stopped by stopAll().

const children = []; // { name, child, logFile }
let stopping = false;
let tmp = null;
let failed = false;

function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

function start(name, cmd, args, logFile) {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const entry = { name, child, logFile, exited: null };
  children.push(entry);
  child.on('exit', (code, signal) => {
    entry.exited = signal ?? code;
    if (!stopping) {
      log(`${name} exited unexpectedly (${signal ?? code}); see ${logFile}`);
    }
  });
  child.on('error', (err) => {
    entry.exited = err.message;
    if (!stopping) log(`${name} failed to start: ${err.message}`);
  });
  return entry;
}

function alive(entry) {
  return entry.child.exitCode === null && entry.child.signalCode === null && entry.exited === null;
}

/**
 * Stops every child, newest first and one at a time (so the proxy shuts down while etcd and
 * redis are still there to say goodbye to): SIGTERM, then SIGKILL after 5 s. Idempotent.
 */
async function stopAll() {
  if (stopping) return;
  stopping = true;
  for (const e of children.filter(alive).reverse()) {
    e.child.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (alive(e) && Date.now() < deadline) await sleep(20);
    if (alive(e)) {
      log(`${e.name} ignored SIGTERM for 5 s; killing`);
      e.child.kill('SIGKILL');
      const hard = Date.now() + 2000;
      while (alive(e) && Date.now() < hard) await sleep(20);
    }
  }
  if (tmp !== null) {
    if (flags.keep || failed) {
      log(`logs and configs kept in ${tmp}`);
    } else {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping`);
    if (current !== null) current.kill('SIGKILL');
    void stopAll().then(() => process.exit(130));
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` every 100 ms until it returns true; throws after `timeoutMs`. */
async function waitFor(what, check, timeoutMs = 20_000, entry = null) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (entry !== null && !alive(entry)) {
      throw new Error(`${what} exited (${entry.exited}) before becoming ready; see ${entry.logFile}\n${tail(entry.logFile)}`);
    }
    try {
      if (await check()) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${what} did not become ready within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

function tail(file, lines = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Free loopback ports, distinct from each other (the OS picks them; we close and reuse). */
const handedOut = new Set();
async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port: p } = srv.address();
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/**
 * Share of all CPUs busy over `ms`, from /proc/stat (null where there is none). Sampled while
 * no benchmark runs — our servers are idle then — so it measures what *other* processes take:
 * a busy machine makes every number noisy, and the report says so.
 */
async function cpuBusy(ms = 1000) {
  const read = () => {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      const idle = (f[3] ?? 0) + (f[4] ?? 0);
      return { idle, total: f.reduce((a, b) => a + b, 0) };
    } catch {
      return null;
    }
  };
  const a = read();
  await sleep(ms);
  const b = read();
  if (a === null || b === null || b.total === a.total) return null;
  return 1 - (b.idle - a.idle) / (b.total - a.total);
}

function redisCli(port, args, timeoutMs = 3000) {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

async function ping(port) {
  return redisCli(port, ['PING'], 1000).out === 'PONG';
}

// ---------------------------------------------------------------------------------------------
// Setup

async function startEtcd() {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const entry = start('etcd', 'etcd', [
    '--name', 'bench', '--data-dir', path.join(tmp, 'etcd'),
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `bench=${peer}`,
  ], path.join(tmp, 'etcd.log'));
  await waitFor('etcd', async () => (await fetch(`${url}/health`)).ok, 20_000, entry);
  return url;
}

async function startRedis(gid) {
  const port = await freePort();
  const dir = path.join(tmp, `redis-${gid}`);
  fs.mkdirSync(dir);
  const entry = start(`redis group ${gid}`, 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no', '--protected-mode', 'no',
  ], path.join(tmp, `redis-${gid}.log`));
  await waitFor(`redis-server :${port}`, () => ping(port), 10_000, entry);
  return port;
}

/**
 * Every key redis-benchmark can pick (`key:%012d` for -r 100000) gets a 64-byte value on BOTH
 * masters, so a GET finds a value whichever server a target routes the key to (direct, the
 * twemproxy hash and reborn's slot table disagree on placement).
 */
function prefill(port) {
  const value = 'v'.repeat(VALUE_SIZE);
  const parts = [];
  for (let i = 0; i < KEYSPACE; i++) {
    const key = `key:${String(i).padStart(12, '0')}`;
    parts.push(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n${value}\r\n`);
  }
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--pipe'], {
    input: parts.join(''),
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0 || !/errors: 0, replies: \d+/.test(r.stdout)) {
    throw new Error(`prefill of redis :${port} failed: ${r.stdout}${r.stderr}`);
  }
}

async function writeTopology(etcdUrl, ports) {
  const index = path.join(root, 'packages/coordinator/dist/index.js');
  if (!fs.existsSync(index)) throw new Error(`${index} is missing: run \`npm run build\` first`);
  const mod = await import(pathToFileURL(index).href);
  if (typeof mod.Store?.open !== 'function') {
    throw new Error('packages/coordinator/dist/index.js does not export Store (yet): run `npm run build`');
  }
  const store = await mod.Store.open({ endpoints: [etcdUrl], product: PRODUCT });
  try {
    for (const [i, port] of ports.entries()) {
      await store.putGroup({ id: i + 1, servers: [{ addr: `127.0.0.1:${port}`, role: 'master' }] });
    }
    const slots = [];
    for (let id = 0; id < 1024; id++) slots.push({ id, state: 'online', group: id < 512 ? 1 : 2 });
    await store.putSlots(slots);
  } finally {
    await store.close();
  }
}

async function startReborn(etcdUrl) {
  const bin = path.join(root, 'packages/proxy/bin/reborn-proxy.js');
  if (!fs.existsSync(path.join(root, 'packages/proxy/dist/main.js'))) {
    throw new Error('packages/proxy/dist/main.js is missing: run `npm run build` first');
  }
  const port = await freePort();
  const adminPort = await freePort();
  const logFile = path.join(tmp, 'reborn-proxy.log');
  const entry = start('reborn-proxy', process.execPath, [
    bin, '--addr', `127.0.0.1:${port}`, '--admin-addr', `127.0.0.1:${adminPort}`,
    '--etcd', etcdUrl, '--product', PRODUCT, '--id', 'bench-proxy',
  ], logFile);
  await waitFor('reborn-proxy /healthz', async () => (await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status === 200, 20_000, entry);
  await waitFor('reborn-proxy PING', () => ping(port), 10_000, entry);
  return { port, adminPort, logFile, entry };
}

async function startTwemproxy(ports) {
  const port = await freePort();
  const statsPort = await freePort();
  const conf = path.join(tmp, 'nutcracker.yml');
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
  const logFile = path.join(tmp, 'nutcracker.log');
  const entry = start('twemproxy', 'nutcracker', [
    '-c', conf, '-s', String(statsPort), '-a', '127.0.0.1',
    '-p', path.join(tmp, 'nutcracker.pid'), '-o', logFile,
  ], path.join(tmp, 'nutcracker.stdout.log'));
  await waitFor('twemproxy PING', () => ping(port), 10_000, entry);
  return { port, logFile };
}

// ---------------------------------------------------------------------------------------------
// Running redis-benchmark

let current = null; // the redis-benchmark child, so Ctrl-C can stop it too

function runBenchmark(port, test, requests, pipeline) {
  const args = [
    '-h', '127.0.0.1', '-p', String(port), '-t', test, '-n', String(requests),
    '-c', String(CLIENTS), '-P', String(pipeline), '-d', String(VALUE_SIZE), '-r', String(KEYSPACE), '--csv',
  ];
  return new Promise((resolve) => {
    if (stopping) {
      resolve({ ok: false, why: 'stopping', notes: [], seconds: 0 });
      return;
    }
    const started = Date.now();
    const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    current = child;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      current = null;
      resolve({ ...parseCsv(stdout, stderr, code, signal, timedOut), seconds: (Date.now() - started) / 1000 });
    });
  });
}

/**
 * redis-benchmark 7 `--csv`:
 *   "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
 *   "GET","69444.45","0.403","0.112","0.383","0.615","1.015","3.711"
 * Error replies don't stop it (they are counted as requests), so any "Error from server" in
 * its output marks the cell as failed rather than reporting the speed of an error path.
 */
function parseCsv(stdout, stderr, code, signal, timedOut) {
  const notes = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const text = `${stdout}\n${stderr}`;
  const serverError = /Error from server: ?(.*)/.exec(text);
  if (timedOut) return { ok: false, why: `timed out after ${RUN_TIMEOUT_MS / 1000} s`, notes };
  if (serverError) return { ok: false, why: `server error: ${serverError[1].trim()}`, notes };
  const lines = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('"'));
  const header = lines[0] ? splitCsv(lines[0]) : [];
  const row = lines[1] ? splitCsv(lines[1]) : [];
  const col = (name) => Number(row[header.indexOf(name)]);
  const rps = col('rps');
  if (code !== 0 || header.indexOf('rps') < 0 || !Number.isFinite(rps) || rps <= 0) {
    const why = `exit ${signal ?? code}: ${(stderr || stdout).trim().split('\n').slice(-2).join(' / ') || 'no CSV row'}`;
    return { ok: false, why, notes };
  }
  return {
    ok: true,
    rps,
    avg: col('avg_latency_ms'),
    p50: col('p50_latency_ms'),
    p95: col('p95_latency_ms'),
    p99: col('p99_latency_ms'),
    max: col('max_latency_ms'),
    notes,
  };
}

function splitCsv(line) {
  return line.split(',').map((f) => f.replace(/^"|"$/g, ''));
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// ---------------------------------------------------------------------------------------------
// Report

function fmtOps(x) {
  return x === undefined ? 'n/a' : Math.round(x).toLocaleString('en-US');
}
function fmtMs(x) {
  return x === undefined ? 'n/a' : x.toFixed(3);
}
function fmtRatio(x) {
  return x === undefined ? 'n/a' : `${x.toFixed(2)}×`;
}

/**
 * reborn's ops/s over `other`'s: the median of the per-round ratios. Within a round the
 * targets ran back to back, so pairing by round cancels load that drifts between rounds
 * (it can differ a little from the ratio of the two median columns).
 */
function pairedRatio(results, other) {
  const a = results.reborn;
  const b = results[other];
  if (a === undefined || b === undefined || a.length === 0 || a.length !== b.length) return undefined;
  if (![...a, ...b].every((r) => r.ok)) return undefined;
  return median(a.map((r, i) => r.rps / b[i].rps));
}

function cellStats(results) {
  const ok = results.filter((r) => r.ok);
  // A cell with any failed round is n/a: a median over the rounds that happened to work
  // would hide a target that fails intermittently.
  if (ok.length === 0 || ok.length < results.length) return undefined;
  return {
    rps: median(ok.map((r) => r.rps)),
    p50: median(ok.map((r) => r.p50)),
    p99: median(ok.map((r) => r.p99)),
    min: Math.min(...ok.map((r) => r.rps)),
    max: Math.max(...ok.map((r) => r.rps)),
  };
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
  head.push('reborn / redis', 'reborn / twemproxy');
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  const stats = {};
  for (const test of TESTS) {
    const row = [test.name];
    stats[test.name] = {};
    for (const t of ALL_TARGETS) {
      const s = targets.includes(t) ? cellStats(results[test.name][t]) : undefined;
      stats[test.name][t] = s;
      row.push(fmtOps(s?.rps), fmtMs(s?.p50), fmtMs(s?.p99));
    }
    stats[test.name].ratio = {
      redis: pairedRatio(results[test.name], 'redis'),
      twemproxy: pairedRatio(results[test.name], 'twemproxy'),
    };
    row.push(fmtRatio(stats[test.name].ratio.redis), fmtRatio(stats[test.name].ratio.twemproxy));
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
  lines.push('Goals (bench/README.md):');
  lines.push('');
  lines.push(...goals);
  lines.push('');

  lines.push('Spread (ops/s, min–max over rounds):');
  lines.push('');
  for (const test of TESTS) {
    const cells = targets.map((t) => {
      const rs = results[test.name][t];
      const failedRounds = rs.filter((r) => !r.ok);
      if (failedRounds.length > 0) return `${t} n/a (${failedRounds[0].why})`;
      const s = stats[test.name][t];
      return `${t} ${fmtOps(s.min)}–${fmtOps(s.max)}`;
    });
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
  if (targets.includes('reborn') && !onPath('etcd')) throw new Error('etcd is not on PATH (needed for reborn)');
  if (targets.includes('twemproxy') && !onPath('nutcracker')) {
    if (flags.targets !== undefined) throw new Error('nutcracker (twemproxy) is not on PATH');
    log('nutcracker (twemproxy) is not on PATH: its columns will be n/a');
    targets = targets.filter((t) => t !== 'twemproxy');
  }

  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reborn-bench-'));
  const machine = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    nproc: spawnSync('nproc', { encoding: 'utf8' }).stdout?.trim() ?? String(os.availableParallelism()),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown cpu',
    node: process.version,
    redis: /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? '?',
    twemproxy: onPath('nutcracker')
      ? (spawnSync('nutcracker', ['--version'], { encoding: 'utf8' }).stderr || '').trim().split('\n')[0].replace(/^This is /, '') || 'nutcracker'
      : null,
    os: `${os.type()} ${os.release()}`,
  };

  const ports = {};
  const redisPorts = [await startRedis(1), await startRedis(2)];
  log(`redis masters on ${redisPorts.join(', ')}`);
  ports.redis = redisPorts[0];
  log(`prefilling ${KEYSPACE} keys on both masters`);
  for (const p of redisPorts) prefill(p);

  let reborn = null;
  if (targets.includes('reborn')) {
    const etcdUrl = await startEtcd();
    log(`etcd on ${etcdUrl}`);
    await writeTopology(etcdUrl, redisPorts);
    reborn = await startReborn(etcdUrl);
    ports.reborn = reborn.port;
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
        await runBenchmark(ports[t], test, Math.max(5000, Math.round(BASE_REQUESTS / 5)), p);
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
        if (stopping) return; // Ctrl-C: the signal handler tears down and exits
        const n = Math.max(1000, Math.round(BASE_REQUESTS * test.share));
        const r = await runBenchmark(ports[t], test.test, n, test.pipeline);
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
  if (busy.every((b) => b !== null)) {
    const pct = busy.map((b) => `${Math.round(b * 100)} %`).join(', ');
    const worst = Math.max(...busy);
    notes.unshift(
      `CPU used by other processes, sampled before and after each round: ${pct}` +
        (worst > 0.15 ? ' — the machine was NOT idle; treat these numbers as noisy' : ' (idle machine)'),
    );
    if (worst > 0.15) log(`other processes used up to ${Math.round(worst * 100)} % CPU during the run: numbers are noisy`);
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

try {
  await main();
} catch (err) {
  failed = true;
  process.exitCode = 1;
  log(`error: ${err instanceof Error ? err.message : String(err)}`);
  if (current !== null) current.kill('SIGKILL');
} finally {
  if (!interrupted) await stopAll();
}
