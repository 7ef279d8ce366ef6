#!/usr/bin/env node
// `npm start`: a complete local reborn cluster on loopback, for trying it out.
//
//   etcd → two groups (master + replica each) → slots split evenly → one reborn-proxy
//   → reborn-agent (HA leader: fails a dead master over) → reborn-config dashboard (REST API
//   and the product's migration runner)
//
// Data lives under .reborn/ (override with REBORN_HOME) and is reused on the next start.
// Ctrl-C (or SIGTERM) stops every process this script started, and only those.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const home = path.resolve(process.env.REBORN_HOME ?? path.join(root, '.reborn'));
const product = process.env.REBORN_PRODUCT ?? 'local';
const children = [];
let stopping = false;

function log(msg) {
  process.stdout.write(`[reborn] ${msg}\n`);
}

function fail(msg) {
  process.stderr.write(`[reborn] ${msg}\n`);
  stopAll(1);
}

const deps = spawnSync(process.execPath, [path.join(root, 'scripts/ensure-system-deps.mjs'), '--run'], { stdio: 'inherit' });
if (deps.status !== 0) process.exit(1);
if (!fs.existsSync(path.join(root, 'packages/proxy/dist/main.js'))) {
  log('building (npx tsc -b)…');
  if (spawnSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit' }).status !== 0) process.exit(1);
}
const { Store } = await import(path.join(root, 'packages/coordinator/dist/index.js'));

/** The first free port at or after `start`, so a second cluster or a busy port doesn't fail us. */
async function portFrom(start) {
  for (let port = start; port < start + 200; port++) {
    const free = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port near ${start}`);
}

/** This launcher's lock and the processes it started, so a later start can clean up after a kill -9. */
const lockFile = path.join(home, 'launcher.json');

/** A process's start time (field 22 of /proc/<pid>/stat): with the pid, its identity. */
function startTimeOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function writeLock() {
  const procs = children.map(({ name, child }) => ({ name, pid: child.pid, start: startTimeOf(child.pid) }));
  fs.writeFileSync(lockFile, JSON.stringify({ pid: process.pid, start: startTimeOf(process.pid), procs }));
}

/**
 * Another launcher alive on this home: refuse (its etcd holds the data dir's lock, and a
 * second one would wait on it forever). One that was killed: stop what it left running, each
 * process checked by pid and start time, so nothing else is ever signalled.
 */
function takeLock() {
  let prev = null;
  try {
    prev = JSON.parse(fs.readFileSync(lockFile, 'utf8'));
  } catch {
    return;
  }
  if (prev.pid && startTimeOf(prev.pid) !== null && startTimeOf(prev.pid) === prev.start) {
    process.stderr.write(`[reborn] another "npm start" (pid ${prev.pid}) is running with ${home}; stop it first, or set REBORN_HOME to another directory\n`);
    process.exit(1);
  }
  const left = (prev.procs ?? []).filter((p) => p.pid && p.start !== null && startTimeOf(p.pid) === p.start);
  for (const p of left) {
    log(`stopping ${p.name} (pid ${p.pid}), left running by an earlier launcher that was killed`);
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
}

/** Processes whose end does not stop the cluster: with HA on, a dead master is failed over. */
const MAY_DIE = /^redis /;

function run(name, cmd, args, logFile) {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', out, out], detached: false });
  children.push({ name, child });
  writeLock();
  child.on('exit', (code, signal) => {
    if (stopping) return;
    if (MAY_DIE.test(name)) log(`${name} exited (${signal ?? code}); if it was a master, the agent fails its group over. Start again to bring it back. See ${logFile}`);
    else fail(`${name} exited unexpectedly (${signal ?? code}); see ${logFile}`);
  });
  return child;
}

/** A health check that cannot hang: a server that accepts but never answers counts as down. */
async function healthy(url) {
  return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
}

async function waitFor(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${what} did not come up in ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function redisCli(port, ...args) {
  // REDISCLI_AUTH keeps the password out of argv.
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 2000, env: { ...process.env, REDISCLI_AUTH: redisPassword } });
  return r.status === 0 ? r.stdout.trim() : null;
}

function stopAll(code = 0) {
  if (stopping) return;
  stopping = true;
  log('stopping…');
  for (const { child } of children.reverse()) if (child.exitCode === null) child.kill('SIGTERM');
  const deadline = Date.now() + 5000;
  const timer = setInterval(() => {
    const alive = children.filter(({ child }) => child.exitCode === null && child.signalCode === null);
    if (alive.length === 0 || Date.now() > deadline) {
      for (const { child } of alive) child.kill('SIGKILL');
      clearInterval(timer);
      try {
        fs.rmSync(lockFile, { force: true });
      } catch {
        /* nothing to clean */
      }
      log('stopped');
      process.exit(code);
    }
  }, 50);
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

/**
 * The redis servers' default-user password: made once, kept in <home>/redis-password (0600), and
 * given to every daemon through REBORN_REDIS_PASSWORD (inherited), to redis-server through a
 * 0600 config file in its data dir: no server of the local cluster has an open default user.
 */
function ensureRedisPassword() {
  const file = path.join(home, 'redis-password');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    const pw = randomBytes(18).toString('base64url');
    fs.writeFileSync(file, pw + '\n', { mode: 0o600 });
    return pw;
  }
}
let redisPassword = '';

try {
  fs.mkdirSync(path.join(home, 'logs'), { recursive: true });
  takeLock();
  redisPassword = ensureRedisPassword();
  process.env.REBORN_REDIS_PASSWORD = redisPassword;
  writeLock();
  const logs = path.join(home, 'logs');

  const etcdPort = await portFrom(23790);
  const etcdPeer = await portFrom(etcdPort + 1);
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  fs.mkdirSync(path.join(home, 'etcd'), { recursive: true });
  run('etcd', 'etcd', [
    '--name', 'reborn-local', '--data-dir', path.join(home, 'etcd'),
    '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
    '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
    '--initial-cluster', `reborn-local=http://127.0.0.1:${etcdPeer}`,
  ], path.join(logs, 'etcd.log'));
  await waitFor('etcd', () => healthy(`${etcdUrl}/health`));
  log(`etcd        ${etcdUrl}`);

  // Each server keeps its data directory and, when free, its port across starts. The master
  // of a group is the server etcd names as master (after a failover, the former replica):
  // starting the other one as master instead would resync the newer one from the older data.
  const store = await Store.open({ endpoints: [etcdUrl], product });
  const serversFile = path.join(home, 'servers.json');
  let lastPorts = {};
  try {
    lastPorts = JSON.parse(fs.readFileSync(serversFile, 'utf8'));
  } catch {
    /* first start */
  }
  const groups = [];
  let nextPort = 26379;
  for (const gid of [1, 2]) {
    const stored = await store.getGroup(gid);
    const masterPort = Number(stored?.servers.find((sv) => sv.role === 'master')?.addr.split(':')[1]);
    // The two directories, the one whose last port etcd names as master first.
    const dirs = [{ name: `redis-${gid}-master` }, { name: `redis-${gid}-replica` }];
    if (lastPorts[dirs[1].name] !== undefined && lastPorts[dirs[1].name] === masterPort) dirs.reverse();
    const servers = [];
    for (const [i, { name }] of dirs.entries()) {
      const role = i === 0 ? 'master' : 'replica';
      const port = await portFrom(lastPorts[name] ?? nextPort);
      nextPort = Math.max(nextPort, port + 1);
      lastPorts[name] = port;
      const dir = path.join(home, name);
      fs.mkdirSync(dir, { recursive: true });
      const conf = path.join(dir, 'reborn-redis.conf');
      fs.writeFileSync(conf, `requirepass "${redisPassword}"\nmasterauth "${redisPassword}"\n`, { mode: 0o600 });
      const args = [conf, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''];
      if (role === 'replica') args.push('--replicaof', '127.0.0.1', String(servers[0].port));
      run(`redis ${gid} ${role}`, 'redis-server', args, path.join(logs, `${name}.log`));
      await waitFor(`redis-server :${port}`, () => redisCli(port, 'PING') === 'PONG');
      servers.push({ port, addr: `127.0.0.1:${port}`, role });
      log(`group ${gid}     ${role.padEnd(8)} 127.0.0.1:${port}  (${name})`);
    }
    groups.push({ id: gid, servers: servers.map(({ addr, role }) => ({ addr, role })) });
  }
  fs.writeFileSync(serversFile, JSON.stringify(lastPorts));

  for (const g of groups) await store.putGroup(g);
  const slots = await store.listSlots();
  if (slots.every((s) => s.state === 'offline')) {
    // First start: split the 1024 slots evenly. Later starts keep whatever the operator set.
    await store.putSlots(slots.map((s) => ({ id: s.id, state: 'online', group: s.id < 512 ? 1 : 2 })));
  }
  await store.close();

  const proxyPort = await portFrom(19000);
  const adminPort = await portFrom(proxyPort + 1);
  run('reborn-proxy', process.execPath, [
    path.join(root, 'packages/proxy/bin/reborn-proxy.js'),
    '--addr', `127.0.0.1:${proxyPort}`, '--admin-addr', `127.0.0.1:${adminPort}`,
    '--etcd', etcdUrl, '--product', product, '--id', 'local-proxy-1',
  ], path.join(logs, 'proxy.log'));
  await waitFor('reborn-proxy', () => healthy(`http://127.0.0.1:${adminPort}/healthz`));

  const agentPort = await portFrom(18090);
  fs.mkdirSync(path.join(home, 'agent'), { recursive: true });
  run('reborn-agent', process.execPath, [
    path.join(root, 'packages/agent/bin/reborn-agent.js'),
    '--http-addr', `127.0.0.1:${agentPort}`, '--ha', '--etcd', etcdUrl, '--product', product,
    '--id', 'local-agent-1', '--data-dir', path.join(home, 'agent'),
  ], path.join(logs, 'agent.log'));
  await waitFor('reborn-agent', () => healthy(`http://127.0.0.1:${agentPort}/healthz`));

  const dashboardPort = await portFrom(18087);
  run('reborn-config dashboard', process.execPath, [
    path.join(root, 'packages/config/bin/reborn-config.js'),
    '--etcd', etcdUrl, '--product', product, 'dashboard', '--http-addr', `127.0.0.1:${dashboardPort}`,
  ], path.join(logs, 'dashboard.log'));
  await waitFor('reborn-config dashboard', () => healthy(`http://127.0.0.1:${dashboardPort}/healthz`));

  log('');
  log('reborn is up. Try it:');
  log(`  redis-cli -p ${proxyPort}`);
  log(`  metrics:  curl http://127.0.0.1:${adminPort}/metrics`);
  log(`  dashboard and REST API: http://127.0.0.1:${dashboardPort}/  (curl http://127.0.0.1:${dashboardPort}/api/overview)`);
  log(`  agent (HA on): http://127.0.0.1:${agentPort}/api/ha`);
  log(`  reborn-config: REBORN_ETCD=${etcdUrl} REBORN_PRODUCT=${product} REBORN_REDIS_PASSWORD=$(cat ${path.join(home, 'redis-password')}) npx reborn-config slot list`);
  log(`  the redis servers themselves ask for that password (REDISCLI_AUTH=… redis-cli -p <port>)`);
  log(`  data and logs under ${home}`);
  log('Ctrl-C stops everything.');
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
