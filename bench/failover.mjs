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
    out: { type: 'string' },
  },
  [
    'usage: node bench/failover.mjs [--rounds N] [--requests N] [--down-after MS,MS] [--only outage|throughput] [--out FILE]',
    '',
    '  --rounds N        failovers per --down-after value, and throughput rounds (default 3)',
    '  --requests N      redis-benchmark requests at -P 16; -P 1 runs N/4 (default 400000)',
    '  --down-after L    comma-separated --down-after-ms values for the agent (default 3000,1500)',
    '  --only WHAT       run only the outage or only the throughput part',
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
if (flags.only !== undefined && !['outage', 'throughput'].includes(flags.only)) fail(`--only wants outage or throughput, got ${flags.only}`);
const RUN_OUTAGE = flags.only !== 'throughput';
const RUN_THROUGHPUT = flags.only !== 'outage';
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

async function startAgent(cluster, downAfterMs) {
  const { dir } = await tempDir('reborn-bench-agent-');
  for (let attempt = 1; ; attempt++) {
    const httpAddr = `127.0.0.1:${await freePort()}`;
    const proc = new ManagedProcess({
      name: `reborn-agent ${httpAddr}`,
      command: process.execPath,
      args: [
        AGENT_BIN, '--http-addr', httpAddr, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product,
        '--id', 'bench-agent', '--data-dir', dir, '--ha', '--down-after-ms', String(downAfterMs),
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
    const keys = group1Keys(16);
    const acked = new Map(keys.map((k) => [k, 0]));
    client = new Redis({ host: '127.0.0.1', port: proxy.port, maxRetriesPerRequest: 0, enableReadyCheck: false, commandTimeout: 5000 });
    client.on('error', () => undefined);

    // The writer: one INCR at a time, ~every 2 ms; remembers when each one ended and how.
    const ops = [];
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const key = keys[i % keys.length];
        const startedAt = performance.now();
        try {
          await client.incr(key);
          acked.set(key, acked.get(key) + 1);
          ops.push({ startedAt, endedAt: performance.now(), ok: true });
        } catch (err) {
          ops.push({ startedAt, endedAt: performance.now(), ok: false, error: err.message });
        }
        await sleep(WRITE_PAUSE_MS);
      }
    })();
    await waitFor(() => ops.some((o) => o.ok), { what: 'writes flowing' });
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
        const first = ops.findIndex((o) => !o.ok && o.endedAt >= killedAt);
        return first >= 0 && ops.slice(first).some((o) => o.ok);
      },
      { timeoutMs: 60_000, intervalMs: 20, what: 'writes to group 1 to fail and then succeed again' },
    );
    stop = true;
    await writer;

    const first = ops.findIndex((o) => !o.ok && o.endedAt >= killedAt);
    const lastOkBefore = ops.slice(0, first).findLast((o) => o.ok);
    const firstOkAfter = ops.slice(first).find((o) => o.ok);
    const failed = ops.slice(first).filter((o) => !o.ok).length;
    const outageMs = firstOkAfter.endedAt - (lastOkBefore?.endedAt ?? ops[first].startedAt);
    const events = await agent.api('/api/events');
    const fo = (Array.isArray(events) ? events : []).find((e) => e.kind === 'failover' && e.group === 1)?.data ?? {};
    // Lost acknowledged INCRs (asynchronous replication): acknowledged minus what is there.
    let lost = 0;
    for (const [k, n] of acked) lost += Math.max(0, n - Number((await client.get(k)) ?? 0));
    const r = {
      downAfterMs,
      round,
      outageMs,
      killToSwitchMs: switchedAt === null ? null : switchedAt - killedAt,
      agentDownForMs: fo.downForMs ?? null,
      failed,
      firstError: ops[first].error,
      lost,
      acked: [...acked.values()].reduce((a, b) => a + b, 0),
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
// Report

const s3 = (ms) => (ms === null || ms === undefined ? 'n/a' : (ms / 1000).toFixed(2));

function report({ outages, throughput, seconds }) {
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
  if (isInterrupted()) return;
  const text = report({ outages, throughput, seconds: (Date.now() - began) / 1000 });
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, text + '\n');
  process.stdout.write(text + '\n');
  log(`written to ${path.relative(process.cwd(), OUT) || OUT}`);
}

await runMain(main, stopAll);
