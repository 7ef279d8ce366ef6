#!/usr/bin/env node
// `node bench/big-key-ha.mjs`: a slot migration that moves one very large hash, with HA on.
//
// What it shows (issue "zero loss without the availability cliff", HA that knows what reborn
// itself is doing): MIGRATE of a big key blocks the source master for seconds; the HA leader
// must not take that for a death. And when a failover of the source group is forced in the
// middle of the move, every key must still end in exactly one group, readable.
//
// Setup (all through @reborn/testkit, free loopback ports, everything stopped at the end): etcd,
// two groups (master + one replica each), one reborn-proxy, one reborn-agent --ha at its
// defaults. One slot of group 1 holds a hash with --fields fields (default 2,000,000) and
// --keys small keys (default 20,000), all with the same hash tag. The migration runner (in this
// process) moves that slot to group 2, while this script PINGs the source master every 50 ms
// (the longest gap between two answers is how long MIGRATE blocked it) and reads /api/events.
//
//   --mode quiet    (default) nothing else happens: count failovers of group 1 (want 0).
//   --mode kill     kill -9 group 1's master while the hash is being moved: the agent fails
//                   it over, the runner resumes on the new master.
// At the end: every key of the slot in exactly one group (EXISTS on both masters), every value
// right through the proxy, HLEN of the hash, the task's state and counters.
//
// Flags: --fields N  --keys N  --mode quiet|kill  --out FILE (markdown, default bench/results/big-key-ha-<mode>.md)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { log, machineInfo, missingBuild, onPath, onSignals, parseFlags, positiveInt as positiveIntOr, root, runMain, setLogTag, sleep } from './lib.mjs';

setLogTag('big-key-ha');

const flags = parseFlags(
  { fields: { type: 'string' }, keys: { type: 'string' }, mode: { type: 'string' }, out: { type: 'string' } },
  ['usage: node bench/big-key-ha.mjs [--fields N] [--keys N] [--mode quiet|kill] [--out FILE]', ''],
);
const positiveInt = (name, raw, dflt) => positiveIntOr(name, raw, dflt, 'big-key-ha bench');
const FIELDS = positiveInt('fields', flags.fields, 2_000_000);
const KEYS = positiveInt('keys', flags.keys, 20_000);
const MODE = flags.mode ?? 'quiet';
if (!['quiet', 'kill'].includes(MODE)) {
  process.stderr.write(`big-key-ha bench: --mode wants quiet or kill, got ${MODE}\n`);
  process.exit(2);
}
const OUT = path.resolve(flags.out ?? path.join(root, `bench/results/big-key-ha-${MODE}.md`));
const TAG = '{mig}'; // slot 372: group 1's in the initial split
const AGENT_BIN = path.join(root, 'packages/agent/bin/reborn-agent.js');

const missing = missingBuild(['packages/testkit/dist/index.js', 'packages/config/dist/index.js', 'packages/agent/dist/main.js']);
if (missing !== null) {
  process.stderr.write(`big-key-ha bench: ${missing}\n`);
  process.exit(2);
}
for (const cmd of ['redis-server', 'etcd']) {
  if (!onPath(cmd)) {
    process.stderr.write(`big-key-ha bench: ${cmd} is not on PATH\n`);
    process.exit(2);
  }
}

const { startCluster, stopAll, waitFor, freePort, tempDir, ManagedProcess } = await import('@reborn/testkit');
const { keySlot } = await import('@reborn/protocol');
const { MigrationRunner, createMigration } = await import('@reborn/config');
const pino = createRequire(path.join(root, 'package.json'))('pino');

async function startAgent(cluster) {
  const { dir } = await tempDir('reborn-bench-agent-');
  const httpAddr = `127.0.0.1:${await freePort()}`;
  const proc = new ManagedProcess({
    name: `reborn-agent ${httpAddr}`,
    command: process.execPath,
    args: [AGENT_BIN, '--http-addr', httpAddr, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, '--id', 'bench-agent', '--data-dir', dir, '--ha'],
    cwd: root,
    maxLines: 5000,
  });
  await proc.waitReady('healthy /healthz', async () => (await fetch(`http://${httpAddr}/healthz`, { signal: AbortSignal.timeout(1000) })).ok, 15_000);
  const api = async (p) => (await fetch(`http://${httpAddr}${p}`, { signal: AbortSignal.timeout(5000) })).json();
  return { proc, api, stop: () => proc.terminate('SIGTERM') };
}

/** Longest gap between two PING answers of `client` while `running()` (ms), sampled every 50 ms. */
function pingGaps(client, running) {
  let last = performance.now();
  let longest = 0;
  const done = (async () => {
    while (running()) {
      try {
        await client.ping();
        const now = performance.now();
        longest = Math.max(longest, now - last);
        last = now;
      } catch {
        // a dead master: the gap keeps growing until it answers (or never)
      }
      await sleep(50);
    }
  })();
  return { longest: () => longest, done };
}

async function main() {
  const began = Date.now();
  const cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
  let agent = null;
  const clients = [];
  const client = (server) => {
    const c = server.client({ maxRetriesPerRequest: 0, enableReadyCheck: false });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  try {
    agent = await startAgent(cluster);
    await waitFor(async () => (await agent.api('/api/ha')).leader === true, { timeoutMs: 20_000, what: 'the agent to lead' });
    const slot = keySlot(Buffer.from(`${TAG}:x`));
    const [g1, g2] = cluster.groups;
    const source = g1.master;
    const m1 = client(source);
    // The slot is group 1's in the initial split when it is below 512: pick a tag that is.
    if (slot >= 512) throw new Error(`the tag ${TAG} hashes to slot ${slot}, not group 1's: pick another tag`);

    // Load: the hash in chunks of 1000 fields, the small keys in pipelines.
    let t = Date.now();
    const big = `${TAG}:hash`;
    for (let i = 0; i < FIELDS; i += 1000) {
      const args = [];
      for (let j = i; j < Math.min(FIELDS, i + 1000); j++) args.push(`f${j}`, `v${j}`);
      await m1.hset(big, ...args);
    }
    for (let i = 0; i < KEYS; i += 1000) {
      const p = m1.pipeline();
      for (let j = i; j < Math.min(KEYS, i + 1000); j++) p.set(`${TAG}:k${j}`, `v${j}`);
      await p.exec();
    }
    log(`loaded a ${FIELDS}-field hash and ${KEYS} keys into slot ${slot} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const r1 = client(g1.replicas[0]);
    await waitFor(async () => Number(await r1.dbsize()) === KEYS + 1 && Number(await r1.hlen(big)) === FIELDS, { timeoutMs: 120_000, what: 'the replica to catch up' });
    await waitFor(async () => ((await cluster.store.getGroup(1))?.inSync ?? []).length === 1, { timeoutMs: 30_000, what: "group 1's replica in sync" });

    // Migrate the slot.
    const logger = pino({ level: 'warn' }, pino.destination(2));
    const runner = new MigrationRunner({ store: cluster.store, logger });
    const task = await createMigration(cluster.store, { first: slot, last: slot, to: 2 });
    let running = true;
    const gaps = pingGaps(client(source), () => running);
    const migStart = Date.now();
    const migration = runner.runTask(task.id);
    migration.catch(() => undefined);
    let killedAt = null;
    if (MODE === 'kill') {
      // Kill once the hash is on its way: its MIGRATE blocks the source; a PING that takes
      // more than 300 ms means it is under way.
      const probe = client(source);
      await waitFor(async () => {
        const t0 = performance.now();
        await probe.ping();
        return performance.now() - t0 > 300 || (await m1.exists(big)) === 0;
      }, { timeoutMs: 120_000, intervalMs: 20, what: 'the big key move to start' });
      killedAt = Date.now();
      await source.kill('SIGKILL');
      log(`killed group 1's master ${((killedAt - migStart) / 1000).toFixed(1)} s into the migration`);
    }
    const end = await migration;
    running = false;
    await gaps.done;
    const seconds = (Date.now() - migStart) / 1000;
    const events = await agent.api('/api/events');
    const failovers = (Array.isArray(events) ? events : []).filter((e) => e.kind === 'failover' && e.group === 1);
    const ha = await agent.api('/api/ha');

    // Checks: every key in exactly one group, right values through the proxy.
    const g1now = await cluster.store.getGroup(1);
    const g1master = cluster.groups[0].replicas.concat([cluster.groups[0].master]).find((s) => s.addr === g1now.servers.find((x) => x.role === 'master')?.addr);
    const a = client(g1master);
    const b = client(g2.master);
    const px = client(cluster.proxies[0]);
    let inBoth = 0;
    let inNone = 0;
    let wrong = 0;
    const names = [big, ...Array.from({ length: KEYS }, (_, i) => `${TAG}:k${i}`)];
    for (let i = 0; i < names.length; i += 500) {
      const chunk = names.slice(i, i + 500);
      const [ea, eb] = await Promise.all([Promise.all(chunk.map((k) => a.exists(k))), Promise.all(chunk.map((k) => b.exists(k)))]);
      chunk.forEach((_, j) => {
        if (ea[j] && eb[j]) inBoth++;
        if (!ea[j] && !eb[j]) inNone++;
      });
      const small = chunk.filter((k) => k !== big);
      const values = await Promise.all(small.map((k) => px.get(k)));
      values.forEach((v, j) => {
        if (v !== `v${small[j].slice(`${TAG}:k`.length)}`) wrong++;
      });
    }
    const hlen = Number(await px.hlen(big));
    const report = {
      mode: MODE,
      fields: FIELDS,
      keys: KEYS,
      taskState: end.state,
      taskError: end.error ?? null,
      progress: end.progress,
      migrationSeconds: seconds,
      longestPingGapMs: Math.round(gaps.longest()),
      failoversOfGroup1: failovers.length,
      killedAt: killedAt === null ? null : (killedAt - migStart) / 1000,
      stalls: (ha.servers ?? []).filter((s) => s.stalled).length,
      inBoth,
      inNone,
      wrongValues: wrong,
      hlen,
      wallSeconds: (Date.now() - began) / 1000,
    };
    log(JSON.stringify(report));
    const m = machineInfo('cpu');
    const lines = [
      `# Big key migration with HA on (--mode ${MODE})`,
      '',
      `${m.date} · ${m.cpus} × ${m.cpuModel} · node ${m.node} · redis ${m.redis}`,
      '',
      `Command: \`${['node', 'bench/big-key-ha.mjs', ...process.argv.slice(2)].join(' ')}\``,
      '',
      '| what | value |',
      '|---|---|',
      ...Object.entries(report).map(([k, v]) => `| ${k} | ${typeof v === 'object' ? JSON.stringify(v) : v} |`),
      '',
    ];
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, lines.join('\n'));
    process.stdout.write(lines.join('\n') + '\n');
    const ok = end.state === 'done' && inBoth === 0 && inNone === 0 && wrong === 0 && hlen === FIELDS && (MODE === 'kill' || failovers.length === 0);
    if (!ok) process.exitCode = 1;
  } finally {
    for (const c of clients) c.disconnect();
    await agent?.stop();
    await cluster.stop();
  }
}

onSignals(stopAll);
await runMain(main, stopAll);
