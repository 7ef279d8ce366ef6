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
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const { values: flags } = parseArgs({
  options: {
    keys: { type: 'string' },
    requests: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (flags.help) {
  process.stdout.write(
    [
      'usage: node bench/migration.mjs [--keys N] [--requests N] [--quick] [--out FILE] [--keep]',
      '',
      '  --keys N      keys loaded before the migration (default 1000000; --quick 200000)',
      '  --requests N  requests per redis-benchmark run, GET or SET (default 20000; --quick 10000)',
      '  --quick       fewer keys and shorter runs',
      '  --out FILE    markdown report (default bench/results/migration.md)',
      '  --keep        keep the temp dir (logs of every process) after the run',
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

const KEYS = positiveInt('keys', flags.keys, flags.quick ? 200_000 : 1_000_000);
const REQUESTS = positiveInt('requests', flags.requests, flags.quick ? 10_000 : 20_000);
const OUT = path.resolve(flags.out ?? path.join(root, 'bench/results/migration.md'));
const CLIENTS = 50;
const VALUE_SIZE = 16;
const PRODUCT = 'bench-migration';
const BEFORE_RUNS = 3; // per test (GET, SET)
const FIRST = 0;
const LAST = 255; // half of group 1's slots
const TARGET_KEYS_PER_S = 50_000;
const TARGET_P99_RATIO = 2;
const RUN_TIMEOUT_MS = 120_000;

// ---------------------------------------------------------------------------------------------
// Processes: everything spawned is recorded and stopped by stopAll().

const children = [];
let stopping = false;
let tmp = null;
let failed = false;
let current = null; // the running redis-benchmark

function log(msg) {
  process.stderr.write(`[bench:migration] ${msg}\n`);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
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
    if (!stopping) log(`${name} exited unexpectedly (${signal ?? code}); see ${logFile}`);
  });
  child.on('error', (err) => {
    entry.exited = err.message;
    if (!stopping) log(`${name} failed to start: ${err.message}`);
  });
  return entry;
}

function alive(e) {
  return e.child.exitCode === null && e.child.signalCode === null && e.exited === null;
}

async function stopAll() {
  if (stopping) return;
  stopping = true;
  if (current !== null) current.kill('SIGKILL');
  for (const e of children.filter(alive).reverse()) {
    e.child.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (alive(e) && Date.now() < deadline) await sleep(20);
    if (alive(e)) {
      e.child.kill('SIGKILL');
      const hard = Date.now() + 2000;
      while (alive(e) && Date.now() < hard) await sleep(20);
    }
  }
  if (tmp !== null) {
    if (flags.keep || failed) log(`logs kept in ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping`);
    void stopAll().then(() => process.exit(130));
  });
}

async function waitFor(what, check, timeoutMs = 20_000, entry = null) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (entry !== null && !alive(entry)) throw new Error(`${what}: process exited (${entry.exited}); see ${entry.logFile}`);
    try {
      if (await check()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs / 1000} s`);
    await sleep(50);
  }
}

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

function redisCli(port, args, timeoutMs = 10_000) {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
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
  await waitFor(`redis-server :${port}`, () => redisCli(port, ['PING'], 1000).out === 'PONG', 10_000, entry);
  return port;
}

async function startProxy(etcdUrl) {
  const port = await freePort();
  const adminPort = await freePort();
  const logFile = path.join(tmp, 'reborn-proxy.log');
  const entry = start('reborn-proxy', process.execPath, [
    path.join(root, 'packages/proxy/bin/reborn-proxy.js'),
    '--addr', `127.0.0.1:${port}`, '--admin-addr', `127.0.0.1:${adminPort}`,
    '--etcd', etcdUrl, '--product', PRODUCT, '--id', 'bench-proxy',
  ], logFile);
  await waitFor('reborn-proxy /healthz', async () => (await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status === 200, 20_000, entry);
  return { port, adminPort, logFile, entry };
}

const keyName = (i) => `key:${String(i).padStart(12, '0')}`;

/**
 * Writes keys 0..n-1 to the master owning each key's slot, through `redis-cli --pipe` (one
 * per master, fed in chunks with back-pressure). Returns the number of keys per group.
 */
async function load(n, ports, ownerOfSlot, keySlot) {
  const value = 'v'.repeat(VALUE_SIZE);
  const pipes = ports.map((port) => {
    const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--pipe'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
    const done = new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
    return { child, done, parts: [], count: 0 };
  });
  const flush = async (p) => {
    if (p.parts.length === 0) return;
    const ok = p.child.stdin.write(p.parts.join(''));
    p.parts = [];
    if (!ok) await new Promise((r) => p.child.stdin.once('drain', r));
  };
  for (let i = 0; i < n; i++) {
    const key = keyName(i);
    const p = pipes[ownerOfSlot(keySlot(Buffer.from(key))) - 1];
    p.parts.push(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${VALUE_SIZE}\r\n${value}\r\n`);
    p.count++;
    if (p.parts.length >= 10_000) await flush(p);
  }
  for (const p of pipes) {
    await flush(p);
    p.child.stdin.end();
  }
  const counts = [];
  for (const p of pipes) {
    const { code, out } = await p.done;
    if (code !== 0 || !/errors: 0, replies: \d+/.test(out)) throw new Error(`redis-cli --pipe failed: ${out}`);
    counts.push(p.count);
  }
  return counts;
}

// ---------------------------------------------------------------------------------------------
// redis-benchmark

/** One run of `test` (get|set) through the proxy: { ok, rps, p50, p99, start, end } (ms epoch). */
function bench(port, test, requests) {
  const args = [
    '-h', '127.0.0.1', '-p', String(port), '-t', test, '-n', String(requests),
    '-c', String(CLIENTS), '-P', '1', '-d', String(VALUE_SIZE), '-r', String(KEYS), '--csv',
  ];
  return new Promise((resolve) => {
    const startAt = Date.now();
    const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    current = child;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      current = null;
      const end = Date.now();
      const text = `${stdout}\n${stderr}`;
      const serverError = /Error from server: ?(.*)/.exec(text);
      const lines = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('"'));
      const header = lines[0] ? lines[0].split(',').map((f) => f.replace(/^"|"$/g, '')) : [];
      const row = lines[1] ? lines[1].split(',').map((f) => f.replace(/^"|"$/g, '')) : [];
      const col = (name) => Number(row[header.indexOf(name)]);
      if (serverError || code !== 0 || !(col('rps') > 0)) {
        resolve({ ok: false, test, why: serverError ? `server error: ${serverError[1]}` : `exit ${signal ?? code}: ${stderr.trim().slice(-200)}`, start: startAt, end });
        return;
      }
      resolve({ ok: true, test, rps: col('rps'), p50: col('p50_latency_ms'), p99: col('p99_latency_ms'), start: startAt, end });
    });
  });
}

/**
 * Share of all CPUs busy over `ms`, from /proc/stat (null where there is none), sampled while
 * our own servers are idle: it measures what other processes take, and a busy machine makes
 * every number here noisy.
 */
async function cpuBusy(ms = 1000) {
  const read = () => {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      return { idle: (f[3] ?? 0) + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
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

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  for (const cmd of ['redis-server', 'redis-cli', 'redis-benchmark', 'etcd']) {
    if (!onPath(cmd)) throw new Error(`${cmd} is not on PATH`);
  }
  for (const f of ['packages/coordinator/dist/index.js', 'packages/config/dist/index.js', 'packages/protocol/dist/index.js', 'packages/proxy/dist/main.js']) {
    if (!fs.existsSync(path.join(root, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
  }
  const { Store } = await import(pathToFileURL(path.join(root, 'packages/coordinator/dist/index.js')).href);
  const { MigrationRunner, createMigration } = await import(pathToFileURL(path.join(root, 'packages/config/dist/index.js')).href);
  const { keySlot } = await import(pathToFileURL(path.join(root, 'packages/protocol/dist/index.js')).href);
  const pino = createRequire(path.join(root, 'package.json'))('pino');

  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reborn-bench-migration-'));
  const began = Date.now();
  const machine = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    nproc: spawnSync('nproc', { encoding: 'utf8' }).stdout?.trim() ?? String(os.availableParallelism()),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown cpu',
    node: process.version,
    redis: /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? '?',
  };

  const [etcdUrl, p1, p2] = await Promise.all([startEtcd(), startRedis(1), startRedis(2)]);
  const ports = [p1, p2];
  const store = await Store.open({ endpoints: [etcdUrl], product: PRODUCT });
  try {
    await store.putGroup({ id: 1, servers: [{ addr: `127.0.0.1:${p1}`, role: 'master' }] });
    await store.putGroup({ id: 2, servers: [{ addr: `127.0.0.1:${p2}`, role: 'master' }] });
    const slots = [];
    for (let id = 0; id < 1024; id++) slots.push({ id, state: 'online', group: id < 512 ? 1 : 2 });
    await store.putSlots(slots);
    const proxy = await startProxy(etcdUrl);
    log(`etcd ${etcdUrl}, masters :${p1} :${p2}, proxy :${proxy.port}`);

    // 1. Load, and check the slot distribution on the servers themselves.
    const ownerOfSlot = (s) => (s < 512 ? 1 : 2);
    let t = Date.now();
    const counts = await load(KEYS, ports, ownerOfSlot, keySlot);
    const dbsize = (port) => Number(redisCli(port, ['DBSIZE']).out);
    const sizes = ports.map(dbsize);
    log(`loaded ${KEYS} keys in ${((Date.now() - t) / 1000).toFixed(1)} s: group 1 ${sizes[0]}, group 2 ${sizes[1]}`);
    if (sizes[0] !== counts[0] || sizes[1] !== counts[1]) throw new Error(`DBSIZE ${sizes} but wrote ${counts}`);
    let toMove = 0;
    for (let i = 0; i < KEYS; i++) {
      const s = keySlot(Buffer.from(keyName(i)));
      if (s >= FIRST && s <= LAST) toMove++;
    }
    const sample = redisCli(proxy.port, ['GET', keyName(42)]).out;
    if (sample !== 'v'.repeat(VALUE_SIZE)) throw new Error(`GET ${keyName(42)} through the proxy answered ${JSON.stringify(sample)}`);

    const busy = [await cpuBusy()];

    // 2. Before: warm-up (unrecorded), then BEFORE_RUNS runs of GET and SET.
    log('warm-up');
    await bench(proxy.port, 'set', Math.max(5000, REQUESTS >> 2));
    await bench(proxy.port, 'get', Math.max(5000, REQUESTS >> 2));
    const before = [];
    for (let i = 0; i < BEFORE_RUNS; i++) {
      for (const test of ['get', 'set']) {
        const r = await bench(proxy.port, test, REQUESTS);
        if (!r.ok) throw new Error(`before: ${test}: ${r.why}`);
        before.push(r);
        log(`before  ${test.toUpperCase()} ${fmtInt(r.rps)} ops/s p50 ${fmt(r.p50)} p99 ${fmt(r.p99)} ms`);
      }
    }

    // 3. During: the migration in this process; GET/SET runs back to back until it ends.
    const logger = pino({ level: 'info' }, pino.destination({ dest: path.join(tmp, 'runner.log'), sync: false }));
    const runner = new MigrationRunner({ store, logger });
    const task = await createMigration(store, { first: FIRST, last: LAST, to: 2 });
    const g2Before = dbsize(p2);
    const migStart = Date.now();
    let migEnd = Infinity;
    const migration = runner.runTask(task.id).then((end) => {
      migEnd = Date.now();
      return end;
    });
    migration.catch(() => undefined);
    const during = [];
    for (let i = 0; migEnd === Infinity; i++) {
      const test = i % 2 === 0 ? 'get' : 'set';
      const r = await bench(proxy.port, test, REQUESTS);
      r.inside = r.end <= migEnd;
      r.overlap = (Math.min(r.end, migEnd) - r.start) / Math.max(1, r.end - r.start);
      during.push(r);
      log(`during  ${test.toUpperCase()} ${r.ok ? `${fmtInt(r.rps)} ops/s p50 ${fmt(r.p50)} p99 ${fmt(r.p99)} ms` : `failed: ${r.why}`}${r.inside ? '' : ` (${Math.round(r.overlap * 100)} % inside the migration)`}`);
    }
    const end = await migration;
    const seconds = (migEnd - migStart) / 1000;
    if (end.state !== 'done') throw new Error(`migration ${end.state}: ${end.error}`);

    busy.push(await cpuBusy());

    // 4. Checks: every moved slot online in group 2, none of their keys left in group 1, no key lost.
    const slotsAfter = await store.listSlots();
    const wrong = slotsAfter.filter((s) => s.state !== 'online' || s.group !== (s.id <= LAST ? 2 : ownerOfSlot(s.id)));
    if (wrong.length > 0) throw new Error(`slots not where they should be: ${JSON.stringify(wrong.slice(0, 5))}`);
    const after = ports.map(dbsize);
    if (after[0] + after[1] !== KEYS) throw new Error(`DBSIZE after ${after} does not sum to ${KEYS}: keys lost or duplicated`);
    const left = after[0] - (sizes[0] - toMove);
    if (left !== 0) throw new Error(`group 1 holds ${after[0]} keys, want ${sizes[0] - toMove}`);
    const moved = after[1] - g2Before;
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
    goals.unshift(`- migration speed ≥ ${fmtInt(TARGET_KEYS_PER_S)} keys/s — ${fmtInt(rate)} keys/s ${rate >= TARGET_KEYS_PER_S ? 'PASS' : 'FAIL'}`);
    const failedRuns = during.filter((r) => !r.ok).map((r) => `${r.test}: ${r.why}`);
    const busyNote =
      busy.every((b) => b !== null)
        ? `CPU used by other processes, sampled before and after the measurements: ${busy.map((b) => `${Math.round(b * 100)} %`).join(', ')}` +
          (busy.some((b) => b > 0.15) ? ' — the machine was NOT idle; treat these numbers as noisy' : '')
        : 'CPU use of other processes: unknown (no /proc/stat)';
    const report = [
      '# reborn migration benchmark',
      '',
      `${machine.date} · ${machine.nproc} × ${machine.cpuModel} · node ${machine.node} · redis ${machine.redis}`,
      '',
      `Command: \`node bench/migration.mjs ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
      '',
      `${fmtInt(KEYS)} keys (\`key:%012d\`, ${VALUE_SIZE}-byte values) over 2 groups (1 master each; slots 0–511 → group 1, 512–1023 → group 2); ` +
        `migration of slots ${FIRST}–${LAST} (half of group 1) to group 2 by the runner (default batch size, unthrottled). ` +
        `redis-benchmark -c ${CLIENTS} -P 1 -d ${VALUE_SIZE} -r ${KEYS}, ${fmtInt(REQUESTS)} requests per run, through one reborn-proxy. ` +
        `Wall time ${Math.round((Date.now() - began) / 1000)} s.`,
      '',
      '| keys moved | seconds | keys/s | moved by the runner | by proxies (touched) |',
      '|---:|---:|---:|---:|---:|',
      `| ${fmtInt(moved)} | ${fmt(seconds, 2)} | ${fmtInt(rate)} | ${fmtInt(end.progress.keysMoved)} | ${fmtInt(moved - end.progress.keysMoved)} |`,
      '',
      `| test | before ops/s | p50 ms | p99 ms | runs during | during ops/s | p50 ms | p99 ms | worst p99 ms | p99 during / before |`,
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      `Before: median of ${BEFORE_RUNS} runs each. During: median of the runs that started and ended while the migration ran ` +
        `(${during.filter((r) => r.inside).length} of ${during.length}; the last one usually ends after it); a test with no such run ` +
        'shows the run that overlapped the migration most, marked with its share inside.',
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
  } finally {
    await store.close();
  }
}

main()
  .catch((err) => {
    failed = true;
    log(`failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
