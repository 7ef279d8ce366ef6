// Shared plumbing of the benchmark scripts (run.mjs, migration.mjs, failover.mjs): flags,
// the processes a script starts and their teardown, etcd / redis / reborn-proxy launchers,
// the redis-benchmark runner, and (re-exported from stats.mjs) the statistics and formatting
// helpers of the reports.
//
// Processes are started through @reborn/testkit, the one launcher of the repository: its
// DaemonSet (named daemons logging to files, stopped newest first, only those) and its argv
// builders (etcdArgs, redisArgs, proxyArgs), which the tests and `npm start` use too. Each
// script is its own node process, so the DaemonSet below is module state: one per script run.
// failover.mjs starts its clusters through testkit's startCluster instead and uses only the
// runner, the helpers and runMain / onSignals with testkit's stopAll.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// Medians, ratios, CPU sampling and report cells live in stats.mjs; the scripts get them here.
export * from './stats.mjs';

/** The repository root: the scripts check the build (packages/*\/dist) here and write bench/results/. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Loaded here but required only once a process starts: `--help` and flag errors work unbuilt.
let testkit = null;
let testkitError = null;
try {
  testkit = await import('@reborn/testkit');
} catch (err) {
  testkitError = err;
}

/** @reborn/testkit, or the reason it is missing (`npm run build` first, as a rule). */
function kit() {
  if (testkit !== null) return testkit;
  throw new Error(missingBuild(['packages/testkit/dist/index.js']) ?? `@reborn/testkit: ${testkitError?.message}`);
}

// ---------------------------------------------------------------------------------------------
// Logging and flags

let tag = 'bench';

/** Sets the `[tag]` every progress line starts with (the scripts share stderr with each other's logs). */
export function setLogTag(t) {
  tag = t;
}

/** Progress goes to stderr, so stdout carries only the report. */
export function log(msg) {
  process.stderr.write(`[${tag}] ${msg}\n`);
}

/**
 * The command line, parsed strictly (a mistyped flag is an error, not a default run of minutes),
 * with `-h` / `--help` printing `usage` (an array of lines) and exiting.
 */
export function parseFlags(options, usage) {
  const { values } = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h', default: false } }, strict: true });
  if (values.help) {
    process.stdout.write(usage.join('\n'));
    process.exit(0);
  }
  return values;
}

/**
 * A flag that must be a positive integer, or `dflt` when absent. A bad value ends the process
 * with exit code 2 (a usage error) before anything is started, so there is nothing to clean up.
 */
export function positiveInt(name, raw, dflt, prefix = 'bench') {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`${prefix}: --${name} wants a positive integer, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return n;
}

/** Whether `cmd` is on PATH (checked up front so a missing tool fails before a long setup). */
export function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** The first of `files` (relative to the root) that is missing, as a message, or null: the scripts run the build, they don't make it. */
export function missingBuild(files) {
  const f = files.find((x) => !fs.existsSync(path.join(root, x)));
  return f === undefined ? null : `${f} is missing: run \`npm run build\` first`;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// Processes: everything started through start() is recorded and stopped by stopAll(), on the
// way out, on errors and on Ctrl-C — and only those, never other processes of the same name.

let daemons = null; // testkit's DaemonSet, made by the first start()
let stopping = false; // set by stopAll() and by the signal handler (whichever stop it runs)
let stopPromise = null; // the one teardown of stopAll(): every call returns it
let interrupted = false;
let failed = false;
let tmp = null;
let keepTmp = false;

/** True once teardown began (a signal or the end of main): long loops stop starting new work. */
export function isStopping() {
  return stopping;
}

/** True once a signal arrived: the signal handler tears down and exits, main must not. */
export function isInterrupted() {
  return interrupted;
}

/**
 * A fresh temp dir for data, configs and logs; stopAll() removes it unless `keep` or the run
 * failed (then the logs are what one needs to see why).
 */
export function makeTempDir(prefix, { keep = false } = {}) {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  keepTmp = keep;
  return tmp;
}

/** A path inside the temp dir of makeTempDir(). */
export function tmpPath(...parts) {
  if (tmp === null) throw new Error('bench/lib: tmpPath() before makeTempDir()');
  return path.join(tmp, ...parts);
}

function daemonSet() {
  daemons ??= new (kit().DaemonSet)({
    onUnexpectedExit: (d, why, spawnError) => {
      if (stopping) return;
      log(spawnError ? `${d.name} failed to start: ${spawnError.message}` : `${d.name} exited unexpectedly (${why}); see ${d.logFile}`);
    },
  });
  return daemons;
}

/**
 * Spawns `cmd` with stdout and stderr appended to `logFile`, and records it for stopAll().
 * Returns the entry ({ name, logFile, proc }) that alive() and waitFor() take.
 */
export function start(name, cmd, args, logFile) {
  return daemonSet().start({ name, command: cmd, args, logFile });
}

export function alive(entry) {
  return entry.proc.running;
}

/**
 * Stops every child, newest first and one at a time (so the proxy shuts down while etcd and
 * redis are still there to say goodbye to): SIGTERM, then SIGKILL after 5 s. Then removes the
 * temp dir (see makeTempDir). Every call returns the same promise, so a second caller (Ctrl-C
 * during the final teardown) waits for the first instead of exiting with children left.
 */
export function stopAll() {
  stopPromise ??= teardown();
  return stopPromise;
}

async function teardown() {
  stopping = true;
  killBenchmarks();
  await daemons?.stopAll({ oneAtATime: true, graceMs: 5000, onForceKill: (d) => log(`${d.name} ignored SIGTERM for 5 s; killing`) });
  if (tmp !== null) {
    if (keepTmp || failed) log(`logs and configs kept in ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// The last resort, for an exit that skipped the teardown (process.exit elsewhere, a crash):
// the DaemonSet SIGKILLs its live daemons by pid in its own 'exit' hook; the benchmarks here.
process.on('exit', () => killBenchmarks());

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * On Ctrl-C (and SIGTERM / SIGHUP): stop the running redis-benchmark at once, then `stop`
 * (this module's stopAll, or testkit's), then exit 130. A second signal while that runs is
 * ignored rather than leaving processes behind half-stopped.
 *
 * The handler sets `stopping` whichever `stop` it runs, so runRedisBenchmark() and the scripts'
 * loops (isStopping()) start no new work after Ctrl-C with testkit's stopAll too. And it is the
 * only signal handler: testkit installs its own (SIGKILL everything, re-raise) when it starts
 * its first child, which would race the orderly `stop` here, so signal listeners added by
 * anyone else are removed as they come. Testkit's 'exit' hook stays, as the last resort.
 */
export function onSignals(stop = stopAll) {
  const ours = new Set();
  process.on('newListener', (event, listener) => {
    // Removed after the add completes (removing inside 'newListener' would run before it).
    if (SIGNALS.includes(event) && !ours.has(listener)) queueMicrotask(() => process.removeListener(event, listener));
  });
  for (const sig of SIGNALS) {
    const handler = () => {
      if (interrupted) return;
      interrupted = true;
      stopping = true;
      log(`${sig}: stopping`);
      killBenchmarks();
      void Promise.resolve()
        .then(stop)
        .catch((err) => log(`stopping: ${err.message}`))
        .finally(() => process.exit(130));
    };
    ours.add(handler);
    process.on(sig, handler);
  }
}

/**
 * Runs `main`, and whatever happens tears down with `stop` — unless a signal handler is
 * already doing so (and then exits 130). An error sets exit code 1 and keeps the temp dir for
 * its logs.
 */
export async function runMain(main, stop = stopAll) {
  try {
    await main();
  } catch (err) {
    // After a signal, work cut short by the teardown fails on purpose: not a failed run.
    if (!interrupted) {
      failed = true;
      process.exitCode = 1;
      log(`error: ${err instanceof Error ? err.stack : String(err)}`);
    }
  } finally {
    stopping = true; // also when `stop` is testkit's: nothing new starts from here on
    killBenchmarks();
    if (!interrupted) await stop().catch((err) => log(`stopping: ${err.message}`));
  }
}

/**
 * Polls `check` until it returns true; throws after `timeoutMs`, or at once (with the end of
 * its log) when `entry`'s process died — waiting out the timeout then would only hide why.
 * A check that never settles counts as "not yet" once the deadline passes, so it can't hang
 * the wait (checks should still bound themselves, e.g. fetch with AbortSignal.timeout).
 */
export async function waitFor(what, check, timeoutMs = 20_000, entry = null, intervalMs = 100) {
  await daemonSet().waitReady(what, check, { timeoutMs, intervalMs, ...(entry === null ? {} : { daemon: entry }) });
}

/** The last lines of a log file ('' when there is none). */
export function tail(file, lines = 15) {
  return kit().tailOfFile(file, lines);
}

const handedOut = new Set();

/**
 * A free loopback port (the OS picks it; we close it and hand it on). Never the same one twice
 * in a run: two servers started back to back could otherwise be given the same port.
 */
export async function freePort() {
  for (;;) {
    const port = await kit().freePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// redis, etcd and reborn-proxy

/** One redis-cli command: { ok, out } with stdout and stderr together, trimmed. */
export function redisCli(port, args, timeoutMs = 10_000) {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

export async function ping(port) {
  return redisCli(port, ['PING'], 1000).out === 'PONG';
}

/** A one-member etcd with its data in the temp dir; resolves to its client URL once healthy. */
export async function startEtcd() {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = kit().etcdArgs({ name: 'bench', dataDir: tmpPath('etcd'), clientUrl: url, peerUrl: peer });
  const entry = start('etcd', 'etcd', args, tmpPath('etcd.log'));
  await waitFor('etcd', async () => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })).ok, 20_000, entry);
  return url;
}

/**
 * A redis-server master for group `gid` without persistence (`--save '' --appendonly no`): a
 * fork for a snapshot in the middle of a run would show up as latency. Resolves to its port.
 */
export async function startRedis(gid) {
  const port = await freePort();
  const dir = tmpPath(`redis-${gid}`);
  fs.mkdirSync(dir);
  const args = kit().redisArgs({ port, dir, persistence: 'none', unprotected: true });
  const entry = start(`redis group ${gid}`, 'redis-server', args, tmpPath(`redis-${gid}.log`));
  await waitFor(`redis-server :${port}`, () => ping(port), 10_000, entry);
  return port;
}

/**
 * Runs `fn(store)` with a `@reborn/coordinator` Store open on `product` at `etcdUrl` (the
 * package's build: the scripts run the build, they don't make it), closing it after.
 */
export async function withStore(etcdUrl, product, fn) {
  const index = 'packages/coordinator/dist/index.js';
  const missing = missingBuild([index]);
  if (missing !== null) throw new Error(missing);
  const { Store } = await import('@reborn/coordinator');
  if (typeof Store?.open !== 'function') throw new Error(`${index} does not export Store (yet): run \`npm run build\``);
  const store = await Store.open({ endpoints: [etcdUrl], product });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * Writes the topology of `ports.length` groups (one master each, group i + 1 on ports[i]) with
 * the 1024 slots split evenly in order (two groups: 0–511 → 1, 512–1023 → 2) through an open
 * `@reborn/coordinator` Store.
 */
export async function writeTopology(store, ports) {
  for (const [i, port] of ports.entries()) {
    await store.putGroup({ id: i + 1, servers: [{ addr: `127.0.0.1:${port}`, role: 'master' }] });
  }
  const slots = [];
  for (let id = 0; id < 1024; id++) slots.push({ id, state: 'online', group: Math.floor((id * ports.length) / 1024) + 1 });
  await store.putSlots(slots);
}

/**
 * reborn-proxy (packages/proxy/bin) on `product`, logging to the temp dir. Ready once its
 * admin `/healthz` answers 200 (it has read the topology) and it answers PING.
 */
export async function startProxy(etcdUrl, product, { id = 'bench-proxy', bin = null } = {}) {
  const missing = missingBuild(['packages/proxy/dist/main.js']);
  if (missing !== null) throw new Error(missing);
  const port = await freePort();
  const adminPort = await freePort();
  const logFile = tmpPath(`${id}.log`);
  const args = kit().proxyArgs({ addr: `127.0.0.1:${port}`, adminAddr: `127.0.0.1:${adminPort}`, etcd: etcdUrl, product, id });
  // `bin`: another checkout's reborn-proxy (bench/before-after.mjs), same arguments.
  const entry = start(id, process.execPath, [bin ?? kit().PROXY_BIN, ...args], logFile);
  await waitFor('reborn-proxy /healthz', async () => (await fetch(`http://127.0.0.1:${adminPort}/healthz`, { signal: AbortSignal.timeout(1000) })).status === 200, 20_000, entry);
  await waitFor('reborn-proxy PING', () => ping(port), 10_000, entry);
  return { port, adminPort, logFile, entry };
}

/** The keys redis-benchmark picks with `-r N`: `key:` and a 12-digit number. */
export const keyName = (i) => `key:${String(i).padStart(12, '0')}`;

/**
 * Writes `key:%012d` → `valueSize` bytes for i in 0..n-1 through `redis-cli --pipe`, one pipe
 * per port, each key to ports[pick(key)] (default: all to the first). Fed in chunks with
 * back-pressure, so a million keys don't sit in memory as one string. Resolves to the number
 * of keys written to each port; throws unless every pipe reports no errors.
 */
export async function loadKeys(ports, n, valueSize, pick = () => 0) {
  const value = 'v'.repeat(valueSize);
  const pipes = ports.map((port) => {
    const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--pipe'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
    const fail = (why) => new Error(`redis-cli --pipe to :${port} failed: ${why}${spawnError ? ` (${spawnError.message})` : ''}${out ? `: ${out.trim()}` : ''}`);
    // Without these, a spawn failure or an EPIPE on stdin (redis-cli died) would be an
    // unhandled 'error' and crash the script; `done` and flush() report them instead.
    let spawnError = null;
    child.on('error', (err) => (spawnError = err));
    child.stdin.on('error', () => {});
    const done = new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
    return { port, child, done, fail, parts: [], count: 0 };
  });
  const flush = async (p) => {
    if (p.parts.length === 0) return;
    const ok = p.child.stdin.write(p.parts.join(''));
    p.parts = [];
    if (ok) return;
    // A dead redis-cli never drains: race 'drain' against its exit, and fail with its output.
    const closed = await Promise.race([new Promise((r) => p.child.stdin.once('drain', () => r(null))), p.done]);
    if (closed !== null) throw p.fail(`exited (${closed.code}) while being fed`);
  };
  try {
    for (let i = 0; i < n; i++) {
      const key = keyName(i);
      const p = pipes[pick(key)];
      p.parts.push(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${valueSize}\r\n${value}\r\n`);
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
      if (code !== 0 || !/errors: 0, replies: \d+/.test(out)) throw p.fail(`exit ${code}`);
      counts.push(p.count);
    }
    return counts;
  } catch (err) {
    // The other pipes are not in the registry: don't leave them waiting on an open stdin.
    for (const p of pipes) p.child.kill('SIGKILL');
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// redis-benchmark

const benchmarks = new Set(); // running redis-benchmark children, so Ctrl-C can stop them too

/** Kills any running redis-benchmark (they are not in the registry: they end on their own). */
export function killBenchmarks() {
  for (const child of benchmarks) child.kill('SIGKILL');
}

/**
 * One `redis-benchmark --csv` run against 127.0.0.1:`port`. Resolves (never rejects) to
 * { ok, rps, avg, p50, p95, p99, max, notes, seconds, start, end } or { ok: false, why, notes,
 * seconds, start, end }: a failed run becomes an n/a cell, not the end of the whole benchmark.
 * `notes` are redis-benchmark's stderr lines; start/end are ms since the epoch. A run longer
 * than `timeoutMs` is killed.
 */
export function runRedisBenchmark({ port, test, requests, clients, pipeline, valueSize, keyspace, timeoutMs, resp3 = false, cpu = null }) {
  const args = [
    '-h', '127.0.0.1', '-p', String(port), '-t', test, '-n', String(requests),
    '-c', String(clients), '-P', String(pipeline), '-d', String(valueSize), '-r', String(keyspace), '--csv',
    ...(resp3 ? ['-3'] : []),
  ];
  return new Promise((resolve) => {
    const startAt = Date.now();
    if (stopping) {
      resolve({ ok: false, why: 'stopping', notes: [], seconds: 0, start: startAt, end: startAt });
      return;
    }
    // `cpu`: pinned (taskset) away from the servers, so the two do not share a core.
    const child = cpu === null
      ? spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('taskset', ['-c', String(cpu), 'redis-benchmark', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    benchmarks.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    // A spawn failure (no redis-benchmark, EAGAIN) becomes a failed run too: this never rejects.
    child.on('error', (err) => {
      clearTimeout(timer);
      benchmarks.delete(child);
      const end = Date.now();
      resolve({ ok: false, why: `redis-benchmark: ${err.message}`, notes: [], seconds: (end - startAt) / 1000, start: startAt, end });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      benchmarks.delete(child);
      const end = Date.now();
      const r = parseBenchmarkCsv(stdout, stderr, code, signal, timedOut ? timeoutMs : null);
      resolve({ ...r, seconds: (end - startAt) / 1000, start: startAt, end });
    });
  });
}

/**
 * redis-benchmark 7 `--csv`:
 *   "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
 *   "GET","69444.45","0.403","0.112","0.383","0.615","1.015","3.711"
 * Error replies don't stop it (they are counted as requests), so any "Error from server" in
 * its output fails the run rather than reporting the speed of an error path.
 */
function parseBenchmarkCsv(stdout, stderr, code, signal, timedOutAfterMs) {
  const notes = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const serverError = /Error from server: ?(.*)/.exec(`${stdout}\n${stderr}`);
  if (timedOutAfterMs !== null) return { ok: false, why: `timed out after ${timedOutAfterMs / 1000} s`, notes };
  if (serverError) return { ok: false, why: `server error: ${serverError[1].trim()}`, notes };
  const lines = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('"'));
  const split = (l) => l.split(',').map((f) => f.replace(/^"|"$/g, ''));
  const header = lines[0] ? split(lines[0]) : [];
  const row = lines[1] ? split(lines[1]) : [];
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
