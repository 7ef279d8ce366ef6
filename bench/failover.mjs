#!/usr/bin/env node
// `node bench/failover.mjs`: what a master crash costs, and what `--durable` costs.
//
//  (a) Failover write outage. etcd, two groups (master + one replica each), a reborn-proxy and
//      a reborn-agent with --ha; a writer does INCR on group-1 keys through the proxy every
//      ~2 ms; group 1's master gets kill -9. Outage = from the last acknowledged INCR before
//      the first error to the first acknowledged INCR after it. Measured with the agent's
//      default --down-after-ms (3000) and with 1500; a fresh cluster for every measurement.
//  (b) `--durable` throughput. One cluster (two groups with one replica each) and two
//      proxies on it, one normal and one with --durable; redis-benchmark -t set -c 50 -d 64
//      -r 100000 at -P 16 and -P 1 against each, interleaved, and the durable/normal ratio.
//  (c) HA layouts (`--only layouts`), each on a fresh cluster with an HA agent at its defaults,
//      8 concurrent writers INCRing group-1 keys, every acknowledged INCR counted, and at the
//      end each key read back: lost = acknowledged − present.
//      - durable, master + 1 replica: kill -9 the master; then restart the old server (it
//        rejoins as a replica and re-enters the in-sync set) and kill -9 the new master.
//      - durable, master + 2 replicas: kill -9 one replica (it leaves the in-sync set), then
//        kill -9 the master.
//      - frozen master: SIGSTOP group 1's master for 10 s, then SIGCONT; writers on a normal
//        and on a --durable proxy at once, lost counted for each. Once with the agent's stall
//        window (15 s: no failover), once with --stall-down-after-ms 5000 (failed over while
//        frozen; the old master wakes up as a zombie).
//
// Everything runs on free loopback ports through @reborn/testkit (the same launchers the
// end-to-end tests use); every process it started is stopped at the end, on errors and on
// Ctrl-C. Needs a build (`npm run build`) and redis-server, redis-benchmark, etcd on PATH.
//
// Flags: --rounds N (3)  --requests N (400000: -P 16 runs N, -P 1 runs N/4)
//        --down-after 3000,1500  --only outage|throughput  --out FILE
// See bench/README.md, "Failover and durability".
import fs from 'node:fs';
import path from 'node:path';
import {
  busySummary, cellStats, cpuBusy, fmtNum, fmtOps as ops, isInterrupted, isStopping, log, machineInfo, median,
  missingBuild, onPath, onSignals, pairedRatio, parseFlags, positiveInt as positiveIntOr, root, runMain,
  runRedisBenchmark, setLogTag, sleep, spreadCell, tableHead,
} from './lib.mjs';

setLogTag('failover-bench');

const flags = parseFlags(
  {
    rounds: { type: 'string' },
    requests: { type: 'string' },
    'down-after': { type: 'string' },
    only: { type: 'string' },
    layout: { type: 'string' },
    out: { type: 'string' },
  },
  [
    'usage: node bench/failover.mjs [--rounds N] [--requests N] [--down-after MS,MS] [--only outage|throughput|layouts] [--out FILE]',
    '',
    '  --rounds N        failovers per --down-after value, and throughput rounds (default 3)',
    '  --requests N      redis-benchmark requests at -P 16; -P 1 runs N/4 (default 400000)',
    '  --down-after L    comma-separated --down-after-ms values for the agent (default 3000,1500)',
    '  --only WHAT       run only one part: outage, throughput or layouts',
    '  --layout N,…      with layouts: only these (1replica, 2replicas, frozen, frozen-failover)',
    '  --out FILE        markdown report (default bench/results/failover.md)',
    '',
  ],
);

function fail(msg) {
  process.stderr.write(`failover bench: ${msg}\n`);
  process.exit(2);
}
const positiveInt = (name, raw, dflt) => positiveIntOr(name, raw, dflt, 'failover bench');

const ROUNDS = positiveInt('rounds', flags.rounds, 3);
const REQUESTS = positiveInt('requests', flags.requests, 400_000);
const DOWN_AFTER = (flags['down-after'] ?? '3000,1500').split(',').map((s) => positiveInt('down-after', s.trim()));
if (flags.only !== undefined && !['outage', 'throughput', 'layouts'].includes(flags.only)) fail(`--only wants outage, throughput or layouts, got ${flags.only}`);
const RUN_OUTAGE = flags.only === undefined || flags.only === 'outage';
const RUN_THROUGHPUT = flags.only === undefined || flags.only === 'throughput';
const RUN_LAYOUTS = flags.only === undefined || flags.only === 'layouts';
const OUT = path.resolve(flags.out ?? path.join(root, 'bench/results/failover.md'));
const OUTAGE_TARGET_S = 3;
const RATIO_TARGET = 0.7;
const CLIENTS = 50;
const VALUE_SIZE = 64;
const KEYSPACE = 100_000;
const BENCH_TIMEOUT_MS = 180_000;
const WRITE_PAUSE_MS = 2;
const AGENT_BIN = path.join(root, 'packages/agent/bin/reborn-agent.js');

const missing = missingBuild(['packages/testkit/dist/index.js', 'packages/proxy/dist/main.js', 'packages/agent/dist/main.js', 'packages/protocol/dist/index.js']);
if (missing !== null) fail(missing);
for (const cmd of ['redis-server', 'redis-benchmark', 'etcd']) {
  if (!onPath(cmd)) fail(`${cmd} is not on PATH`);
}

const { startCluster, stopAll, waitFor, freePort, tempDir, ManagedProcess } = await import('@reborn/testkit');
const { keySlot, SLOT_COUNT } = await import('@reborn/protocol');
const { Redis } = await import('ioredis');

const busySamples = [];

// ---------------------------------------------------------------------------------------------
// The agent

async function startAgent(cluster, downAfterMs, extraArgs = []) {
  const { dir } = await tempDir('reborn-bench-agent-');
  for (let attempt = 1; ; attempt++) {
    const httpAddr = `127.0.0.1:${await freePort()}`;
    const proc = new ManagedProcess({
      name: `reborn-agent ${httpAddr}`,
      command: process.execPath,
      args: [
        AGENT_BIN, '--http-addr', httpAddr, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product,
        '--id', 'bench-agent', '--data-dir', dir, '--ha', '--down-after-ms', String(downAfterMs), ...extraArgs,
      ],
      cwd: root,
      maxLines: 2000,
    });
    const api = async (p) => (await fetch(`http://${httpAddr}${p}`, { signal: AbortSignal.timeout(5000) })).json();
    try {
      await proc.waitReady('healthy /healthz', async () => (await fetch(`http://${httpAddr}/healthz`, { signal: AbortSignal.timeout(1000) })).ok, 15_000);
      return { proc, api, stop: () => proc.terminate('SIGTERM') };
    } catch (err) {
      await proc.terminate('SIGKILL');
      if (attempt >= 3 || !proc.lines.some((l) => l.includes('EADDRINUSE'))) throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// (a) Failover outage

/** `n` keys whose slots the initial split of a 2-group cluster gives to group 1 (slots 0–511). */
function group1Keys(n) {
  const keys = [];
  for (let i = 0; keys.length < n; i++) {
    const k = `fo:bench:${i}`;
    if (keySlot(Buffer.from(k)) < SLOT_COUNT / 2) keys.push(k);
  }
  return keys;
}

async function measureOutage(downAfterMs, round) {
  const cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
  let agent = null;
  let client = null;
  try {
    agent = await startAgent(cluster, downAfterMs);
    await waitFor(async () => (await agent.api('/api/ha')).leader === true, { timeoutMs: 20_000, intervalMs: 100, what: 'the agent to lead' });
    await waitFor(
      async () => {
        const s = (await agent.api('/api/ha')).servers;
        return Array.isArray(s) && s.length === 4 && s.every((x) => x.up);
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'the leader to see all four servers up' },
    );
    const g1 = cluster.groups[0];
    const replica = g1.replicas[0];
    const proxy = cluster.proxies[0];
    client = new Redis({ host: '127.0.0.1', port: proxy.port, maxRetriesPerRequest: 0, enableReadyCheck: false, commandTimeout: 5000 });
    client.on('error', () => undefined);

    // One writer: one INCR at a time, ~every 2 ms.
    const w = startWriters(client, group1Keys(16), 'normal', { writers: 1, pauseMs: WRITE_PAUSE_MS });
    await waitFor(() => w.ops.some((o) => o.ok), { what: 'writes flowing' });
    // 2–3 s of steady load; the random part puts the crash at a random point of the agent's
    // 1 s check cycle (its checks started in step with our "all four up" wait above).
    await sleep(2000 + Math.random() * 1000);
    const killedAt = performance.now();
    await g1.master.kill('SIGKILL');
    let switchedAt = null;
    await waitFor(
      async () => {
        if (switchedAt === null) {
          const g = await cluster.store.getGroup(1);
          if (g?.servers[0]?.addr === replica.addr) switchedAt = performance.now();
        }
        const o = outageAfter(w.ops, killedAt);
        return o.failed > 0 && o.outageMs !== null;
      },
      { timeoutMs: 60_000, intervalMs: 20, what: 'writes to group 1 to fail and then succeed again' },
    );
    await w.stop();
    const { outageMs, failed, firstError } = outageAfter(w.ops, killedAt);
    const events = await agent.api('/api/events');
    const fo = (Array.isArray(events) ? events : []).find((e) => e.kind === 'failover' && e.group === 1)?.data ?? {};
    // Lost acknowledged INCRs (asynchronous replication): acknowledged minus what is there.
    const lost = await lostOf(client, w.acked);
    const r = {
      downAfterMs,
      round,
      outageMs,
      killToSwitchMs: switchedAt === null ? null : switchedAt - killedAt,
      agentDownForMs: fo.downForMs ?? null,
      failed,
      firstError,
      lost,
      acked: [...w.acked.values()].reduce((a, b) => a + b, 0),
    };
    log(
      `--down-after-ms ${downAfterMs} round ${round}: outage ${(outageMs / 1000).toFixed(3)} s ` +
        `(kill → etcd switch ${r.killToSwitchMs === null ? 'n/a' : (r.killToSwitchMs / 1000).toFixed(3) + ' s'}, ` +
        `agent downForMs ${r.agentDownForMs}, ${failed} failed INCRs, ${lost} acknowledged INCRs lost)`,
    );
    return r;
  } finally {
    client?.disconnect();
    await agent?.stop();
    await cluster.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// (b) Durable throughput

/** One `redis-benchmark -t set` run (-c 50 -d 64 -r 100000) against `port`. */
function runBenchmark(port, pipeline, requests) {
  return runRedisBenchmark({
    port, test: 'set', requests, pipeline, clients: CLIENTS, valueSize: VALUE_SIZE, keyspace: KEYSPACE, timeoutMs: BENCH_TIMEOUT_MS,
  });
}

/** calls of WAIT and SET on a server, from INFO commandstats. */
async function commandCalls(server) {
  const c = server.client({ maxRetriesPerRequest: 0 });
  try {
    const text = await c.info('commandstats');
    const calls = (cmd) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(text)?.[1] ?? 0);
    return { wait: calls('wait'), set: calls('set') };
  } finally {
    c.disconnect();
  }
}

async function measureThroughput() {
  const cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
  try {
    const normal = cluster.proxies[0];
    const durable = await cluster.addProxy(['--durable']);
    const targets = { normal, durable };
    const tests = [
      { name: 'SET -P 16', pipeline: 16, requests: REQUESTS },
      { name: 'SET -P 1', pipeline: 1, requests: Math.max(1000, Math.round(REQUESTS / 4)) },
    ];
    // Sanity: the durable proxy acknowledges a write, and it is on the replica by then.
    {
      const c = durable.client({ maxRetriesPerRequest: 0 });
      await c.set('durable:probe', 'x');
      c.disconnect();
    }
    log('warm-up');
    for (const t of Object.values(targets)) await runBenchmark(t.port, 16, Math.max(10_000, Math.round(REQUESTS / 8)));
    // After Ctrl-C (lib's handler sets `stopping`, then runs testkit's stopAll) no new round or
    // run starts: the cluster is going away under them.
    const masters = cluster.groups.map((g) => g.master);
    const results = Object.fromEntries(tests.map((t) => [t.name, { normal: [], durable: [], waitsPerSet: [] }]));
    busySamples.push(await cpuBusy());
    for (let round = 0; round < ROUNDS && !isStopping(); round++) {
      for (const test of tests) {
        const order = round % 2 === 0 ? ['normal', 'durable'] : ['durable', 'normal'];
        for (const name of order) {
          if (isStopping()) return { tests, results };
          const before = name === 'durable' ? await Promise.all(masters.map(commandCalls)) : null;
          const r = await runBenchmark(targets[name].port, test.pipeline, test.requests);
          results[test.name][name].push(r);
          if (before !== null) {
            const after = await Promise.all(masters.map(commandCalls));
            const waits = after.reduce((n, a, i) => n + a.wait - before[i].wait, 0);
            const sets = after.reduce((n, a, i) => n + a.set - before[i].set, 0);
            results[test.name].waitsPerSet.push(sets > 0 ? waits / sets : NaN);
          }
          log(
            `round ${round + 1}/${ROUNDS} ${test.name.padEnd(9)} ${name.padEnd(7)} ` +
              (r.ok ? `${ops(r.rps).padStart(9)} ops/s  p50 ${fmtNum(r.p50)}  p99 ${fmtNum(r.p99)}` : `n/a: ${r.why}`) +
              `  (${r.seconds.toFixed(1)} s)`,
          );
        }
      }
      busySamples.push(await cpuBusy());
    }
    return { tests, results };
  } finally {
    await cluster.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// (c) HA layouts

const WRITERS = 8;
const FREEZE_MS = 10_000;

/**
 * `writers` loops (default WRITERS), each INCRing its own keys — back to back, or `pauseMs`
 * apart; every op's start, end and outcome kept, every acknowledged INCR counted.
 */
function startWriters(client, keys, label, { writers = WRITERS, pauseMs = 0 } = {}) {
  const ops = [];
  const acked = new Map(keys.map((k) => [k, 0]));
  let stop = false;
  const loops = Array.from({ length: writers }, async (_, w) => {
    const mine = keys.filter((_, i) => i % writers === w);
    for (let i = 0; !stop; i++) {
      const key = mine[i % mine.length];
      const startedAt = performance.now();
      try {
        await client.incr(key);
        acked.set(key, acked.get(key) + 1);
        ops.push({ startedAt, endedAt: performance.now(), ok: true });
      } catch (err) {
        ops.push({ startedAt, endedAt: performance.now(), ok: false, error: err.message });
        await sleep(5); // an error comes back at once: do not spin
      }
      if (pauseMs > 0) await sleep(pauseMs);
    }
  });
  return {
    label,
    ops,
    acked,
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

/** The write outage after `since`: last ok before the first error → first ok after it; null when nothing failed. */
function outageAfter(ops, since) {
  const sorted = ops.filter((o) => o.endedAt >= since - 1000).sort((a, b) => a.endedAt - b.endedAt);
  const first = sorted.findIndex((o) => !o.ok && o.endedAt >= since);
  if (first < 0) return { outageMs: 0, failed: 0, firstError: null };
  const lastOkBefore = sorted.slice(0, first).findLast((o) => o.ok);
  const firstOkAfter = sorted.slice(first).find((o) => o.ok);
  if (firstOkAfter === undefined) return { outageMs: null, failed: sorted.slice(first).length, firstError: sorted[first].error };
  const failedOps = sorted.slice(first).filter((o) => !o.ok && o.endedAt <= firstOkAfter.endedAt);
  const lastError = failedOps.at(-1)?.error ?? null;
  return { outageMs: firstOkAfter.endedAt - (lastOkBefore?.endedAt ?? sorted[first].startedAt), failed: failedOps.length, firstError: sorted[first].error, lastError };
}

/** Writes succeed again, steadily, after `since` (an ok followed by 200 ms without an error). */
async function waitWritesBack(w, since, what) {
  await waitFor(
    () => {
      const after = w.ops.filter((o) => o.endedAt >= since);
      const lastErr = after.findLast((o) => !o.ok);
      const okAfter = after.filter((o) => o.ok && (lastErr === undefined || o.endedAt > lastErr.endedAt));
      return okAfter.length > 0 && performance.now() - okAfter[0].endedAt > 200;
    },
    { timeoutMs: 60_000, intervalMs: 20, what },
  );
}

async function lostOf(client, acked) {
  let lost = 0;
  for (const [k, n] of acked) lost += Math.max(0, n - Number((await client.get(k)) ?? 0));
  return lost;
}

async function waitInSync(cluster, gid, pred, what) {
  await waitFor(async () => {
    const g = await cluster.store.getGroup(gid);
    return g !== null && Array.isArray(g.inSync) && pred(g.inSync, g);
  }, { timeoutMs: 60_000, intervalMs: 50, what });
}

async function withHaCluster(opts, body, agentArgs = []) {
  const cluster = await startCluster({ groups: 2, proxies: 0, ...opts });
  let agent = null;
  const clients = [];
  try {
    agent = await startAgent(cluster, 3000, agentArgs);
    const servers = cluster.groups.length * (1 + (opts.replicas ?? 0));
    await waitFor(async () => (await agent.api('/api/ha')).leader === true, { timeoutMs: 20_000, intervalMs: 100, what: 'the agent to lead' });
    await waitFor(async () => {
      const s = (await agent.api('/api/ha')).servers;
      return Array.isArray(s) && s.length === servers && s.every((x) => x.up);
    }, { timeoutMs: 20_000, intervalMs: 100, what: 'the leader to see every server up' });
    const client = (proxy) => {
      const c = new Redis({ host: '127.0.0.1', port: proxy.port, maxRetriesPerRequest: 0, enableReadyCheck: false, commandTimeout: 5000 });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    };
    const result = await body({ cluster, agent, client });
    // A slow failover is worth a look: keep the agent's log next to the report.
    if (result.steps.some((st) => st.outageMs === null || st.outageMs > 3000)) {
      const file = path.join(path.dirname(OUT), `failover-agent-${result.layout.replace(/[^a-z0-9]+/gi, '-')}-r${result.round}.log`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, agent.proc.lines.join('\n') + '\n');
      cluster.proxies.forEach((p, i) => fs.writeFileSync(file.replace(/\.log$/, `-proxy${i}.log`), p.logs.join('\n') + '\n'));
      log(`an outage above 3 s: the agent's log is in ${path.relative(process.cwd(), file)}`);
    }
    return result;
  } finally {
    for (const c of clients) c.disconnect();
    await agent?.stop();
    await cluster.stop();
  }
}

async function layoutOneReplica(round) {
  return withHaCluster({ replicas: 1 }, async ({ cluster, client }) => {
    const durable = await cluster.addProxy(['--durable']);
    const g1 = cluster.groups[0];
    const [first, second] = [g1.master, g1.replicas[0]];
    await waitInSync(cluster, 1, (s) => s.length === 1, 'group 1 to have its replica in sync');
    const c = client(durable);
    const w = startWriters(c, group1Keys(64), 'durable');
    await waitFor(() => w.ops.some((o) => o.ok), { what: 'writes flowing' });
    await sleep(2000 + Math.random() * 1000);
    const kill1 = performance.now();
    await first.kill('SIGKILL');
    await waitWritesBack(w, kill1, 'writes after the first failover');
    const o1 = outageAfter(w.ops, kill1);
    await first.restart();
    await waitInSync(cluster, 1, (s, g) => s.includes(first.addr) && g.servers[0]?.addr === second.addr, 'the old master to rejoin the in-sync set');
    await sleep(1000);
    const kill2 = performance.now();
    await second.kill('SIGKILL');
    await waitWritesBack(w, kill2, 'writes after the second failover');
    await sleep(500);
    await w.stop();
    const o2 = outageAfter(w.ops, kill2);
    const lost = await lostOf(c, w.acked);
    const acked = [...w.acked.values()].reduce((a, b) => a + b, 0);
    log(`durable 1 replica round ${round}: outage ${s3(o1.outageMs)} s then ${s3(o2.outageMs)} s; ${lost} of ${acked} acknowledged INCRs lost`);
    return { layout: 'durable, master + 1 replica', round, steps: [{ what: 'kill -9 master', ...o1 }, { what: 'old master back, in sync; kill -9 new master', ...o2 }], lost, acked };
  });
}

async function layoutTwoReplicas(round) {
  return withHaCluster({ replicas: 2 }, async ({ cluster, client }) => {
    const durable = await cluster.addProxy(['--durable']);
    const g1 = cluster.groups[0];
    await waitInSync(cluster, 1, (s) => s.length === 2, 'group 1 to have both replicas in sync');
    const c = client(durable);
    const w = startWriters(c, group1Keys(64), 'durable');
    await waitFor(() => w.ops.some((o) => o.ok), { what: 'writes flowing' });
    await sleep(2000);
    const kill1 = performance.now();
    await g1.replicas[0].kill('SIGKILL');
    await waitInSync(cluster, 1, (s) => !s.includes(g1.replicas[0].addr), 'the dead replica to leave the in-sync set');
    await waitWritesBack(w, kill1, 'writes after the replica left the set');
    const o1 = outageAfter(w.ops, kill1);
    await sleep(1000 + Math.random() * 1000);
    const kill2 = performance.now();
    await g1.master.kill('SIGKILL');
    await waitWritesBack(w, kill2, 'writes after the failover');
    await sleep(500);
    await w.stop();
    const o2 = outageAfter(w.ops, kill2);
    const lost = await lostOf(c, w.acked);
    const acked = [...w.acked.values()].reduce((a, b) => a + b, 0);
    log(`durable 2 replicas round ${round}: replica kill ${s3(o1.outageMs)} s, master kill ${s3(o2.outageMs)} s; ${lost} of ${acked} lost (errors: first ${JSON.stringify(o2.firstError)}, last ${JSON.stringify(o2.lastError)})`);
    return { layout: 'durable, master + 2 replicas', round, steps: [{ what: 'kill -9 a replica', ...o1 }, { what: 'then kill -9 the master', ...o2 }], lost, acked };
  });
}

/** `stallMs` null: the agent's default stall window (longer than the freeze: no failover). */
async function layoutFrozen(round, stallMs = null) {
  const agentArgs = stallMs === null ? [] : ['--stall-down-after-ms', String(stallMs)];
  return withHaCluster({ replicas: 1 }, async ({ cluster, agent, client }) => {
    const normal = await cluster.addProxy([]);
    const durable = await cluster.addProxy(['--durable']);
    const g1 = cluster.groups[0];
    await waitInSync(cluster, 1, (s) => s.length === 1, 'group 1 to have its replica in sync');
    const keys = group1Keys(128);
    const cn = client(normal);
    const cd = client(durable);
    const wn = startWriters(cn, keys.filter((_, i) => i % 2 === 0), 'normal');
    const wd = startWriters(cd, keys.filter((_, i) => i % 2 === 1), 'durable');
    await waitFor(() => wn.ops.some((o) => o.ok) && wd.ops.some((o) => o.ok), { what: 'writes flowing' });
    await sleep(2000);
    const frozeAt = performance.now();
    await g1.master.pause();
    await sleep(FREEZE_MS);
    g1.master.resume();
    await waitWritesBack(wn, frozeAt, 'normal writes after the freeze');
    await waitWritesBack(wd, frozeAt, 'durable writes after the freeze');
    await sleep(3000); // let the agent settle whatever it decided
    await Promise.all([wn.stop(), wd.stop()]);
    const events = await agent.api('/api/events');
    const failedOver = (Array.isArray(events) ? events : []).some((e) => e.kind === 'failover' && e.group === 1);
    const out = [];
    for (const [w, c] of [[wn, cn], [wd, cd]]) {
      const lost = await lostOf(c, w.acked);
      const acked = [...w.acked.values()].reduce((a, b) => a + b, 0);
      out.push({ what: `${w.label} proxy`, ...outageAfter(w.ops, frozeAt), lost, acked });
    }
    log(`frozen master round ${round}: failover ${failedOver ? 'yes' : 'no'}; ` + out.map((o) => `${o.what}: outage ${s3(o.outageMs)} s, ${o.lost} of ${o.acked} lost`).join('; '));
    const layout = `master frozen ${FREEZE_MS / 1000} s (SIGSTOP, SIGCONT)` + (stallMs === null ? '' : `, --stall-down-after-ms ${stallMs}`);
    return { layout, round, failedOver, steps: out, lost: out.reduce((n, o) => n + o.lost, 0), acked: out.reduce((n, o) => n + o.acked, 0) };
  }, agentArgs);
}

// ---------------------------------------------------------------------------------------------
// Report

const s3 = (ms) => (ms === null || ms === undefined ? 'n/a' : (ms / 1000).toFixed(2));

function layoutReport(layouts) {
  const lines = ['## HA layouts', ''];
  lines.push(
    `A fresh cluster per run (two groups, an HA agent at its defaults), ${WRITERS} writers INCRing group-1 keys through the proxy; ` +
      'outage = last acknowledged INCR before the first error → first acknowledged INCR after it (0: no write failed); ' +
      'lost = acknowledged INCRs missing at the end.',
  );
  lines.push('');
  lines.push(...tableHead(['layout', 'round', 'step', 'outage s', 'failed writes', 'lost / acknowledged']));
  for (const l of layouts) {
    if (l.why) {
      lines.push(`| ${l.layout} | ${l.round} | failed: ${l.why} | | | |`);
      continue;
    }
    l.steps.forEach((st, i) => {
      const lost = st.lost !== undefined ? `${st.lost} / ${st.acked}` : i === l.steps.length - 1 ? `${l.lost} / ${l.acked}` : '';
      lines.push(`| ${i === 0 ? l.layout : ''} | ${i === 0 ? l.round : ''} | ${st.what}${l.failedOver !== undefined && i === 0 ? (l.failedOver ? ' (failed over)' : ' (no failover)') : ''} | ${s3(st.outageMs)} | ${st.failed} | ${lost} |`);
    });
  }
  lines.push('');
  const byLayout = new Map();
  for (const l of layouts.filter((x) => !x.why)) {
    l.steps.forEach((st, i) => {
      const k = `${l.layout}: ${st.what}`;
      if (!byLayout.has(k)) byLayout.set(k, []);
      byLayout.get(k).push(st.outageMs ?? Infinity);
    });
  }
  lines.push('Medians over the rounds (target ≤ 3 s for a kill -9):', '');
  for (const [k, v] of byLayout) lines.push(`- ${k}: ${s3(median(v))} s`);
  lines.push('');
  return lines;
}

function report({ outages, throughput, layouts, seconds }) {
  const lines = ['# reborn failover and durability benchmark', ''];
  const m = machineInfo('cpu');
  lines.push(`${m.date} · ${m.cpus} × ${m.cpuModel} · node ${m.node} · redis ${m.redis} · ${m.os}`);
  lines.push('');
  lines.push(`Command: \`${['node', 'bench/failover.mjs', ...process.argv.slice(2)].join(' ')}\` · wall time ${Math.round(seconds)} s`);
  lines.push('');
  if (outages !== null) {
    lines.push('## Write outage after kill -9 of a master');
    lines.push('');
    lines.push(
      'Two groups (master + one replica), one reborn-proxy, one reborn-agent `--ha`; one client INCRs group-1 keys through ' +
        `the proxy every ~${WRITE_PAUSE_MS} ms; after 2–3 s (random: the crash lands anywhere in the agent's 1 s check cycle) group 1's master gets kill -9. Outage = last acknowledged INCR before the first ` +
        'error → first acknowledged INCR after it (seconds). A new cluster for every failover.',
    );
    lines.push('');
    const head = ['--down-after-ms', ...Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}`), 'median', `target ≤ ${OUTAGE_TARGET_S} s`];
    lines.push(...tableHead(head));
    for (const d of DOWN_AFTER) {
      const rs = outages.filter((o) => o.downAfterMs === d);
      const ok = rs.filter((o) => o.outageMs !== undefined);
      const med = ok.length === rs.length && ok.length > 0 ? median(ok.map((o) => o.outageMs)) : undefined;
      const cells = rs.map((o) => (o.outageMs === undefined ? `n/a (${o.why})` : s3(o.outageMs)));
      const verdict = med === undefined ? 'n/a' : med / 1000 <= OUTAGE_TARGET_S ? 'PASS' : 'FAIL';
      lines.push(`| ${d}${d === 3000 ? ' (default)' : ''} | ${cells.join(' | ')} | ${med === undefined ? 'n/a' : s3(med)} | ${verdict} |`);
    }
    lines.push('');
    lines.push('Per failover: kill → group switched in etcd (s) · the agent\'s `downForMs` (from its last good check) · failed INCRs · acknowledged INCRs lost:');
    lines.push('');
    for (const o of outages) {
      if (o.outageMs === undefined) {
        lines.push(`- ${o.downAfterMs} ms, round ${o.round}: failed: ${o.why}`);
        continue;
      }
      lines.push(`- ${o.downAfterMs} ms, round ${o.round}: switch ${s3(o.killToSwitchMs)} s · downForMs ${o.agentDownForMs} · ${o.failed} failed (first: \`${o.firstError}\`) · ${o.lost} of ${o.acked} lost`);
    }
    lines.push('');
  }
  if (throughput !== null) {
    const { tests, results } = throughput;
    lines.push('## `--durable` throughput');
    lines.push('');
    lines.push(
      `Two groups (master + one replica), a normal and a \`--durable\` reborn-proxy on the same cluster; ` +
        `\`redis-benchmark -t set -c ${CLIENTS} -d ${VALUE_SIZE} -r ${KEYSPACE}\` (-P 16: -n ${REQUESTS}, -P 1: -n ${tests[1].requests}), ` +
        `${ROUNDS} rounds interleaved (the order alternates); medians; the ratio is the median of the per-round ratios. ` +
        'WAIT/SET = WAIT commands the masters ran per SET during the durable runs (one WAIT per write batch per backend connection).',
    );
    lines.push('');
    const head = ['test', 'normal ops/s', 'p50 ms', 'p99 ms', 'durable ops/s', 'p50 ms', 'p99 ms', 'durable / normal', 'WAIT/SET', 'target'];
    lines.push(...tableHead(head));
    for (const t of tests) {
      const r = results[t.name];
      const n = cellStats(r.normal);
      const d = cellStats(r.durable);
      const ratio = pairedRatio(r.durable, r.normal);
      const target = t.pipeline === 16 ? (ratio === undefined ? `≥ ${RATIO_TARGET}× n/a` : `≥ ${RATIO_TARGET}× ${ratio >= RATIO_TARGET ? 'PASS' : 'FAIL'}`) : '—';
      const wps = r.waitsPerSet.filter(Number.isFinite);
      lines.push(
        `| ${t.name} | ${ops(n?.rps)} | ${fmtNum(n?.p50)} | ${fmtNum(n?.p99)} | ${ops(d?.rps)} | ${fmtNum(d?.p50)} | ` +
          `${fmtNum(d?.p99)} | ${ratio === undefined ? 'n/a' : ratio.toFixed(2) + '×'} | ${wps.length ? median(wps).toFixed(3) : 'n/a'} | ${target} |`,
      );
    }
    lines.push('');
    lines.push('Spread (ops/s, min–max over rounds):');
    lines.push('');
    for (const t of tests) {
      const parts = ['normal', 'durable'].map((name) => spreadCell(name, results[t.name][name]));
      lines.push(`- ${t.name}: ${parts.join('; ')}`);
    }
    lines.push('');
  }
  if (layouts !== null) lines.push(...layoutReport(layouts));
  const cpu = busySummary(busySamples);
  if (cpu !== null) {
    lines.push(
      `CPU used by other processes (sampled with our servers idle): ${cpu.list}` +
        (cpu.notIdle ? ' — the machine was NOT idle; treat these numbers as noisy.' : ' (idle machine).'),
    );
    lines.push('');
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

onSignals(stopAll);

async function main() {
  const began = Date.now();
  let outages = null;
  if (RUN_OUTAGE) {
    outages = [];
    busySamples.push(await cpuBusy());
    // Interleaved: each round measures every --down-after-ms value once.
    for (let round = 1; round <= ROUNDS; round++) {
      for (const d of DOWN_AFTER) {
        if (isInterrupted()) return;
        try {
          outages.push(await measureOutage(d, round));
        } catch (err) {
          log(`--down-after-ms ${d} round ${round} failed: ${err.message}`);
          outages.push({ downAfterMs: d, round, why: err.message.split('\n')[0] });
        }
      }
    }
    busySamples.push(await cpuBusy());
  }
  const throughput = RUN_THROUGHPUT && !isInterrupted() ? await measureThroughput() : null;
  let layouts = null;
  if (RUN_LAYOUTS) {
    layouts = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const all = [
        ['1replica', 'durable, master + 1 replica', layoutOneReplica],
        ['2replicas', 'durable, master + 2 replicas', layoutTwoReplicas],
        ['frozen', 'master frozen', layoutFrozen],
        ['frozen-failover', 'master frozen past the stall window', (r) => layoutFrozen(r, 5000)],
      ];
      const wanted = flags.layout === undefined ? null : new Set(flags.layout.split(','));
      const unknown = [...(wanted ?? [])].filter((k) => !all.some(([key]) => key === k));
      if (unknown.length > 0) fail(`--layout: unknown ${unknown.join(', ')} (known: ${all.map(([k]) => k).join(', ')})`);
      for (const [key, name, run] of all) {
        if (wanted !== null && !wanted.has(key)) continue;
        if (isInterrupted()) return;
        try {
          layouts.push(await run(round));
        } catch (err) {
          log(`${name} round ${round} failed: ${err.message}`);
          layouts.push({ layout: name, round, why: err.message.split('\n')[0] });
        }
      }
    }
  }
  if (isInterrupted()) return;
  const text = report({ outages, throughput, layouts, seconds: (Date.now() - began) / 1000 });
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, text + '\n');
  process.stdout.write(text + '\n');
  log(`written to ${path.relative(process.cwd(), OUT) || OUT}`);
}

await runMain(main, stopAll);
