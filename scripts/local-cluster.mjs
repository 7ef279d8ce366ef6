#!/usr/bin/env node
// `npm start`: a complete local reborn cluster on loopback, for trying it out.
//
//   etcd → reborn-agent (HA leader; it supervises the rest) → through the agent: two groups
//   (master + replica each) and one reborn-proxy → slots split evenly → reborn-config
//   dashboard (REST API and the product's migration runner)
//
// The agent restarts a redis-server or the proxy that dies, and fails a dead master over.
// Data lives under .reborn/ (override with REBORN_HOME) and is reused on the next start.
// Ctrl-C (or SIGTERM, or a closed terminal) stops the agent's apps through its API, then every process this script
// started, and only those: nothing of the cluster keeps running.
// The launcher itself is @reborn/testkit's LocalCluster; this script checks the system, builds
// if needed, prints, and owns the signals. docs/local-cluster.md is the operator's guide.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const home = path.resolve(process.env.REBORN_HOME ?? path.join(root, '.reborn'));
const product = process.env.REBORN_PRODUCT ?? 'local';
let cluster = null;
let stopping = false;

function log(msg) {
  process.stdout.write(`[reborn] ${msg}\n`);
}

function fail(msg) {
  process.stderr.write(`[reborn] ${msg}\n`);
  void stopAll(1);
}

async function stopAll(code = 0) {
  if (stopping) return;
  stopping = true;
  log('stopping…');
  await cluster?.stop().catch((err) => process.stderr.write(`[reborn] stopping: ${err.message}\n`));
  log('stopped');
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));
// The daemons run in process groups of their own (a terminal's Ctrl-C reaches only this
// script, which stops them in order), so a closed terminal's hangup must stop them too.
process.on('SIGHUP', () => void stopAll(0));

const deps = spawnSync(process.execPath, [path.join(root, 'scripts/ensure-system-deps.mjs'), '--run'], { stdio: 'inherit' });
if (deps.status !== 0) process.exit(1);
if (!['proxy/dist/main.js', 'testkit/dist/index.js'].every((f) => fs.existsSync(path.join(root, 'packages', f)))) {
  log('building (npx tsc -b)…');
  if (spawnSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit' }).status !== 0) process.exit(1);
}
const { LocalCluster, LauncherBusyError } = await import('@reborn/testkit');

try {
  cluster = new LocalCluster({ home, product, log, onFatal: fail });
  const { etcdUrl, proxyPort, adminPort, agentPort, dashboardPort, passwordFile, agentDir } = await cluster.start();
  log('');
  log('reborn is up. Try it:');
  log(`  redis-cli -p ${proxyPort}`);
  log(`  metrics:  curl http://127.0.0.1:${adminPort}/metrics`);
  log(`  dashboard and REST API: http://127.0.0.1:${dashboardPort}/  (curl http://127.0.0.1:${dashboardPort}/api/overview)`);
  log(`  agent (HA on): http://127.0.0.1:${agentPort}/api/ha  (the processes it supervises: /api/apps)`);
  log(`  reborn-config: REBORN_ETCD=${etcdUrl} REBORN_PRODUCT=${product} REBORN_REDIS_PASSWORD=$(cat ${passwordFile}) npx reborn-config slot list`);
  log(`  the redis servers themselves ask for that password (REDISCLI_AUTH=… redis-cli -p <port>)`);
  log(`  data and logs under ${home} (the redis servers' and the proxy's: ${path.join(agentDir, 'logs')})`);
  log('Ctrl-C stops everything.');
} catch (err) {
  if (err instanceof LauncherBusyError) {
    process.stderr.write(`[reborn] another "npm start" (pid ${err.pid}) is running with ${home}; stop it first, or set REBORN_HOME to another directory\n`);
    process.exit(1);
  }
  fail(err instanceof Error ? err.message : String(err));
}
