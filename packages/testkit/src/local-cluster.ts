/**
 * The cluster of `npm start` (scripts/local-cluster.mjs), all on loopback, with data, logs and
 * ports kept under a home dir and reused on the next start:
 *
 *   etcd → reborn-agent (--ha; it supervises the rest) → through the agent's API: the two
 *   groups' redis-servers (masters first, then replicas, each replica pointed at its master)
 *   → groups and slots in etcd (slots split evenly on first start) → one reborn-proxy, also
 *   through the agent → the reborn-config dashboard.
 *
 * The launcher runs three processes itself (etcd, the agent, the dashboard); the agent runs
 * and heals the redis-servers and the proxy (a killed one is restarted; a dead master is
 * failed over by the agent's HA leader, a restarted replica re-pointed at its master).
 *
 * Invariants:
 * - No redis server has an open default user: the password is made once in
 *   <home>/redis-password (0600) and reaches the agent, the proxy and the dashboard through
 *   REBORN_REDIS_PASSWORD (never argv); the agent writes it into each server's 0600 config.
 * - Each group's master is the server etcd names as master, so a restart never resyncs the
 *   newer data from the older.
 * - stop() leaves nothing running: the agent leaves its apps running when it exits, so they
 *   are stopped through its API first (proxy, replicas, masters), then the launcher's own
 *   daemons; whatever the agent's state file still names as running afterwards (the agent
 *   died first) is signalled by pid, after checking the pid still runs that app.
 * - Only processes of this home are ever signalled: the launcher's own by pid and start time
 *   (launcher-lock.ts), the agent's through the agent or by its state file.
 * - A port found free can be taken before the daemon binds it (a probe is not a reservation):
 *   a daemon that dies of "address already in use" while starting is started again on another
 *   port, and is not taken for a cluster failure. Only a daemon that was ready and then ended
 *   stops the cluster (onFatal).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store, ServerRole, splitAddr, withServers, type GroupInfo, type GroupServer } from '@reborn/coordinator';
import { info as redisInfo, ping, replicaOf, replicationInfo, replicatesFrom, withRedis } from '@reborn/coordinator/admin';
import { AgentApi, AgentApiError, appsLeftInStateFile, stillRunsApp, type AgentAppView } from './agent-api.js';
import { AGENT_BIN, CONFIG_BIN, agentArgs, dashboardArgs, etcdArgs } from './daemon-args.js';
import { DaemonSet, DaemonStartupExit, type Daemon } from './daemons.js';
import { LauncherLock } from './launcher-lock.js';
import { portFrom } from './ports.js';
import { healthzFrom } from './process.js';

export interface LocalClusterOptions {
  /** Data, logs, the password and the lock live here. */
  home: string;
  product: string;
  /** Progress and notices, one line each. */
  log(msg: string): void;
  /** A daemon of the launcher (etcd, the agent, the dashboard) ended on its own: the cluster is broken and should stop. */
  onFatal(msg: string): void;
}

export interface LocalEndpoints {
  etcdUrl: string;
  proxyPort: number;
  adminPort: number;
  agentPort: number;
  dashboardPort: number;
  passwordFile: string;
  /** The agent's data dir: its state file, the redis data dirs, and logs/ of the apps it runs. */
  agentDir: string;
}

const HOST = '127.0.0.1';
const AGENT_ID = 'local-agent-1';
const PROXY_ID = 'local-proxy-1';
/**
 * The agent's config turns AOF on; no RDB snapshots besides (a fork shows up as latency). One
 * replica per group: a full sync need not wait (5 s by default) for more replicas to join it.
 */
const REDIS_APP_ARGS = ['--save', '', '--repl-diskless-sync-delay', '0'];
/** A port found free can be taken before the app binds it: so many tries, each on a fresh port. */
const START_ATTEMPTS = 3;
/** Codes of the agent that a start on another port may cure (the port was taken meanwhile). */
const RETRY_ON_OTHER_PORT = new Set(['ESTART', 'EEXISTS']);
/** How long each process may take to answer its readiness check before the start fails. */
const READY_TIMEOUT_MS = 60_000;
/** How long a leftover app gets after SIGTERM before SIGKILL (the agent's own stop waits 10 s too). */
const LEFTOVER_GRACE_MS = 10_000;
/** How long the SIGKILLed daemons of a killed launcher get to release their ports. */
const STALE_GONE_MS = 10_000;
/** What etcd (Go) and node print when a port is taken: `bind: address already in use`, `EADDRINUSE: address already in use 127.0.0.1:18090`. */
const PORT_TAKEN = /address already in use/;

export class LocalCluster {
  private readonly daemons: DaemonSet;
  private readonly lock: LauncherLock;
  private readonly logs: string;
  private readonly env: NodeJS.ProcessEnv = { ...process.env };
  private agent: AgentApi | null = null;
  /** True once the lock is ours: only then may stop() touch this home's processes. */
  private ownsHome = false;
  /** <home>/servers.json: the port each server (and etcd) had last time, preferred again. */
  private lastPorts: Record<string, number> = {};

  constructor(private readonly opts: LocalClusterOptions) {
    this.logs = path.join(opts.home, 'logs');
    this.lock = new LauncherLock(path.join(opts.home, 'launcher.json'));
    this.daemons = new DaemonSet({
      onChange: () => this.lock.write(this.daemons.daemons.map((d) => ({ name: d.name, pid: d.proc.pid }))),
      // Every process the launcher runs itself is needed: the agent heals the others.
      onUnexpectedExit: (d, why) => this.opts.onFatal(`${d.name} exited unexpectedly (${why}); see ${d.logFile}`),
    });
  }

  get passwordFile(): string {
    return path.join(this.opts.home, 'redis-password');
  }

  get agentDir(): string {
    return path.join(this.opts.home, 'agent');
  }

  private get portsFile(): string {
    return path.join(this.opts.home, 'servers.json');
  }

  private get password(): string {
    return this.env['REBORN_REDIS_PASSWORD']!;
  }

  /** Takes the lock (LauncherBusyError if another launcher runs on this home) and starts everything. */
  async start(): Promise<LocalEndpoints> {
    fs.mkdirSync(this.logs, { recursive: true });
    const stale: number[] = [];
    this.lock.take((p) => {
      this.opts.log(`stopping ${p.name} (pid ${p.pid}), left running by an earlier launcher that was killed`);
      stale.push(p.pid!);
    });
    this.ownsHome = true;
    // Their ports free up only once they are gone, and etcd should get its old port back.
    const still = await waitGone(stale, STALE_GONE_MS);
    if (still.length > 0) this.opts.log(`pid ${still.join(', ')} still ${still.length === 1 ? 'runs' : 'run'} ${STALE_GONE_MS / 1000} s after SIGKILL; their ports will be avoided`);
    this.env['REBORN_REDIS_PASSWORD'] = ensureSecretFile(this.passwordFile);
    this.lock.write([]);
    this.lastPorts = readJson<Record<string, number>>(this.portsFile) ?? {};
    const previousEtcdPort = this.lastPorts['etcd'];
    const etcdUrl = await this.startEtcd();
    const agentPort = await this.startAgent(etcdUrl);
    // Apps still running from an earlier start (the launcher was killed, not stopped) are
    // re-adopted by the agent from its state file: use them rather than start them twice.
    const apps = await this.api().apps();
    await this.startGroups(etcdUrl, apps);
    const etcdMoved = previousEtcdPort !== undefined && previousEtcdPort !== this.lastPorts['etcd'];
    const { proxyPort, adminPort } = await this.startProxy(apps, etcdMoved);
    const dashboardPort = await this.startDashboard(etcdUrl);
    return { etcdUrl, proxyPort, adminPort, agentPort, dashboardPort, passwordFile: this.passwordFile, agentDir: this.agentDir };
  }

  /**
   * Stops the agent's apps through its API, then every process this launcher started
   * (SIGTERM, SIGKILL after 5 s), then whatever the agent left running; releases the lock.
   */
  async stop(): Promise<void> {
    if (!this.ownsHome) return;
    await this.stopApps().catch((err: Error) => this.opts.log(`stopping through the agent: ${err.message}`));
    await this.daemons.stopAll({ oneAtATime: false, graceMs: 5000 });
    await this.stopLeftovers();
    this.lock.remove();
  }

  private api(): AgentApi {
    if (this.agent === null) throw new Error('reborn-agent is not started');
    return this.agent;
  }

  private waitFor(what: string, check: () => boolean | Promise<boolean>, daemon?: Daemon): Promise<void> {
    return this.daemons.waitReady(what, check, {
      // Generous: on a loaded machine a node daemon alone can take many seconds to load.
      timeoutMs: READY_TIMEOUT_MS,
      timeoutMessage: (w, ms) => `${w} did not come up in ${ms / 1000} s`,
      ...(daemon === undefined ? {} : { daemon }),
    });
  }

  /**
   * Runs a daemon of the launcher on the ports `choose` picks and waits for `ready`, in its own
   * process group: a terminal's Ctrl-C reaches only the launcher, which stops the agent's apps
   * through the agent before the agent itself. When it dies while starting because a port was
   * taken meanwhile, it is started again: `choose` gets the taken port (null when unknown, or on
   * the first try) and the last ports, to pick others. Any other failure is thrown.
   */
  private async startOnFreePorts<P extends readonly number[]>(
    name: string,
    logName: string,
    choose: (taken: number | null, last: P | null) => Promise<P>,
    spawnOn: (ports: P) => { command: string; args: readonly string[]; ready: (d: Daemon) => () => Promise<boolean> },
  ): Promise<P> {
    let ports: P | null = null;
    let taken: number | null = null;
    for (let attempt = 1; ; attempt++) {
      ports = await choose(taken, ports);
      const { command, args, ready } = spawnOn(ports);
      const logFile = path.join(this.logs, logName);
      // The log is appended across starts: only what this attempt wrote tells why it failed.
      const logStart = sizeOf(logFile);
      const d = this.daemons.start({ name, command, args, logFile, env: this.env, ownProcessGroup: true, quietStartup: true });
      try {
        await this.waitFor(name, ready(d), d);
        return ports;
      } catch (err) {
        const output = err instanceof DaemonStartupExit ? readFrom(logFile, logStart) : '';
        if (!PORT_TAKEN.test(output) || attempt >= START_ATTEMPTS) throw err;
        this.daemons.forget(d);
        taken = portTakenIn(output, ports);
        this.opts.log(`${name} could not bind port ${taken ?? ports.join('/')} (taken since it was found free); trying another`);
      }
    }
  }

  /**
   * etcd on its last ports when free. Client and peer port never coincide: each scan finds
   * the other's port free until etcd binds it. On a retry only the taken port moves, so a
   * taken peer port does not move the client port (which would restart an adopted proxy).
   */
  private async startEtcd(): Promise<string> {
    const dataDir = path.join(this.opts.home, 'etcd');
    fs.mkdirSync(dataDir, { recursive: true });
    const [etcdPort] = await this.startOnFreePorts<[number, number]>(
      'etcd',
      'etcd.log',
      async (taken, last) => {
        const client = await portFrom(last === null ? (this.lastPorts['etcd'] ?? 23790) : last[0] + (taken === null || taken === last[0] ? 1 : 0));
        const peerFrom = last === null ? (this.lastPorts['etcd-peer'] ?? client + 1) : last[1] + (taken === null || taken === last[1] ? 1 : 0);
        return [client, await portFrom(peerFrom, HOST, [client])];
      },
      ([client, peer]) => ({
        command: 'etcd',
        args: etcdArgs({ name: 'reborn-local', dataDir, clientUrl: `http://${HOST}:${client}`, peerUrl: `http://${HOST}:${peer}` }),
        ready: () => () => healthy(`http://${HOST}:${client}/health`),
      }),
    ).then((ports) => {
      this.lastPorts['etcd'] = ports[0];
      this.lastPorts['etcd-peer'] = ports[1];
      return ports;
    });
    const etcdUrl = `http://${HOST}:${etcdPort}`;
    this.opts.log(`etcd        ${etcdUrl}`);
    return etcdUrl;
  }

  /** reborn-agent with HA on; resolves to its HTTP port once /healthz is answered by this very process. */
  private async startAgent(etcd: string): Promise<number> {
    fs.mkdirSync(this.agentDir, { recursive: true });
    const [agentPort] = await this.startOnFreePorts<[number]>(
      'reborn-agent',
      'agent.log',
      async (_taken, last) => [await portFrom(last === null ? 18090 : last[0] + 1)],
      ([port]) => ({
        command: process.execPath,
        args: [AGENT_BIN, ...agentArgs({ httpAddr: `${HOST}:${port}`, ha: true, etcd, product: this.opts.product, id: AGENT_ID, dataDir: this.agentDir })],
        ready: (d) => () => healthzFrom(`http://${HOST}:${port}/healthz`, d.proc.pid),
      }),
    );
    // An operator's REBORN_AGENT_TOKEN reaches the agent through the environment: send it too.
    this.agent = new AgentApi(`http://${HOST}:${agentPort}`, process.env['REBORN_AGENT_TOKEN'] || null);
    this.opts.log(`agent       http://${HOST}:${agentPort}  (HA on; supervises the redis servers and the proxy)`);
    return agentPort;
  }

  /**
   * Each server keeps its data directory and, when free, its port across starts. The master
   * of a group is the server etcd names as master (after a failover, the former replica):
   * starting the other one as master instead would resync the newer one from the older data.
   * Every master is up before any replica, so the HA leader can never see a group's replica
   * answer while its master does not (and promote it).
   */
  private async startGroups(etcdUrl: string, apps: readonly AgentAppView[]): Promise<void> {
    const store = await Store.open({ endpoints: [etcdUrl], product: this.opts.product });
    try {
      const lastPorts = this.lastPorts;
      const ports = { last: lastPorts, next: 26379 };
      const plan: { gid: number; stored: GroupInfo | null; masterDir: string; replicaDir: string }[] = [];
      for (const gid of [1, 2]) {
        const stored = await store.getGroup(gid);
        const masterPort = Number(stored?.servers.find((sv) => sv.role === ServerRole.Master)?.addr.split(':')[1]);
        // The two directories, the one whose last port etcd names as master first.
        const dirs = [`redis-${gid}-master`, `redis-${gid}-replica`];
        if (lastPorts[dirs[1]!] !== undefined && lastPorts[dirs[1]!] === masterPort) dirs.reverse();
        plan.push({ gid, stored, masterDir: dirs[0]!, replicaDir: dirs[1]! });
      }
      const masters = new Map<number, string>();
      for (const p of plan) masters.set(p.gid, await this.ensureRedis(p.gid, p.masterDir, 'master', ports, apps));
      const changed: GroupInfo[] = [];
      for (const p of plan) {
        const master = masters.get(p.gid)!;
        const replica = await this.ensureRedis(p.gid, p.replicaDir, 'replica', ports, apps);
        await this.ensureReplicaOf(replica, master);
        const servers: GroupServer[] = [
          { addr: master, role: ServerRole.Master },
          { addr: replica, role: ServerRole.Replica },
        ];
        // The HA leader's settings (in-sync set, minInSync) stay; an unchanged group is not rewritten.
        if (p.stored === null) changed.push({ id: p.gid, servers });
        else if (!sameServers(p.stored.servers, servers)) changed.push(withServers(p.stored, servers));
      }
      fs.writeFileSync(this.portsFile, JSON.stringify(lastPorts));
      for (const g of changed) await store.putGroup(g);
      const slots = await store.listSlots();
      if (slots.every((s) => s.state === 'offline')) {
        // First start: split the 1024 slots evenly. Later starts keep whatever the operator set.
        await store.putSlots(slots.map((s) => ({ id: s.id, state: 'online' as const, group: s.id < 512 ? 1 : 2 })));
      }
    } finally {
      await store.close();
    }
  }

  /**
   * The redis-server of group `gid` kept in <agent dir>/<name>: the one the agent already runs
   * there, or one started through the agent (on the last port when free). Resolves to its
   * address once it answers.
   */
  private async ensureRedis(
    gid: number,
    name: string,
    role: 'master' | 'replica',
    ports: { last: Record<string, number>; next: number },
    apps: readonly AgentAppView[],
  ): Promise<string> {
    this.adoptOldLayout(name);
    const running = apps.find((a) => a.kind === 'redis' && a.state !== 'stopped' && a.dataDir !== undefined && path.basename(a.dataDir) === name);
    const port = running?.port ?? (await this.startRedisApp(name, ports));
    ports.last[name] = port;
    ports.next = Math.max(ports.next, port + 1);
    const addr = `${HOST}:${port}`;
    await this.waitFor(`redis-server ${addr}`, () => ping(addr, { password: this.password, connectTimeoutMs: 1000, commandTimeoutMs: 1000 }).then(() => true));
    this.opts.log(`group ${gid}     ${role.padEnd(8)} ${addr}  (${name}${running ? ', already running' : ''})`);
    return addr;
  }

  private async startRedisApp(name: string, ports: { last: Record<string, number>; next: number }): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const port = await portFrom(attempt === 1 ? (ports.last[name] ?? ports.next) : ports.next);
      ports.next = Math.max(ports.next, port + 1);
      try {
        await this.api().startRedis({ port, dataDir: name, args: REDIS_APP_ARGS });
        return port;
      } catch (err) {
        if (!(err instanceof AgentApiError) || !RETRY_ON_OTHER_PORT.has(err.code) || attempt >= START_ATTEMPTS) throw err;
        this.opts.log(`redis-server for ${name} did not start on port ${port} (${err.code}); trying another port`);
      }
    }
  }

  /**
   * Data dirs of the launcher before the agent ran the servers (<home>/redis-1-master, …)
   * move under the agent's dir, which is where the agent keeps every app's data.
   */
  private adoptOldLayout(name: string): void {
    const old = path.join(this.opts.home, name);
    const now = path.join(this.agentDir, name);
    if (!fs.existsSync(old) || fs.existsSync(now)) return;
    fs.renameSync(old, now);
    this.opts.log(`moved ${old} to ${now} (the agent keeps the servers' data now)`);
  }

  /**
   * REPLICAOF <master> on `replica` unless it replicates from it already. The agent's API
   * has no replicaof argument (and the agent writes each server's config at every start), so
   * a restarted replica comes back a master: the HA leader then points it at its master.
   */
  private async ensureReplicaOf(replica: string, master: string): Promise<void> {
    const auth = { password: this.password };
    if (replicatesFrom(replicationInfo(await redisInfo(replica, 'replication', auth)), master)) return;
    await withRedis(replica, (c) => replicaOf(c, master, this.password), auth);
  }

  /**
   * reborn-proxy through the agent: the one it already runs, if any, unless etcd moved to
   * another port (that proxy would watch a dead etcd: it is started again, on its ports).
   * Resolves once /healthz answers.
   */
  private async startProxy(apps: readonly AgentAppView[], etcdMoved: boolean): Promise<{ proxyPort: number; adminPort: number }> {
    let running = apps.find((a) => a.kind === 'proxy' && a.state !== 'stopped' && a.adminAddr !== undefined);
    let from = 19000;
    if (running !== undefined && etcdMoved) {
      this.opts.log(`restarting ${running.id}: etcd has another port now`);
      await this.api().stop(running.id);
      from = running.port;
      running = undefined;
    }
    let addr = running?.addr;
    let adminAddr = running?.adminAddr;
    for (let attempt = 1; addr === undefined || adminAddr === undefined; attempt++) {
      const proxyPort = await portFrom(from);
      const adminPort = await portFrom(proxyPort + 1);
      from = adminPort + 1;
      try {
        await this.api().startProxy({ addr: `${HOST}:${proxyPort}`, adminAddr: `${HOST}:${adminPort}`, id: PROXY_ID });
        addr = `${HOST}:${proxyPort}`;
        adminAddr = `${HOST}:${adminPort}`;
      } catch (err) {
        if (!(err instanceof AgentApiError) || !RETRY_ON_OTHER_PORT.has(err.code) || attempt >= START_ATTEMPTS) throw err;
        this.opts.log(`reborn-proxy did not start on ports ${proxyPort}/${adminPort} (${err.code}); trying others`);
      }
    }
    await this.waitFor('reborn-proxy', () => healthy(`http://${adminAddr}/healthz`));
    this.opts.log(`proxy       ${addr}  (admin ${adminAddr}${running ? ', already running' : ''})`);
    return { proxyPort: splitAddr(addr).port, adminPort: splitAddr(adminAddr).port };
  }

  private async startDashboard(etcd: string): Promise<number> {
    const [dashboardPort] = await this.startOnFreePorts<[number]>(
      'reborn-config dashboard',
      'dashboard.log',
      async (_taken, last) => [await portFrom(last === null ? 18087 : last[0] + 1)],
      ([port]) => ({
        command: process.execPath,
        args: [CONFIG_BIN, ...dashboardArgs({ etcd, product: this.opts.product, httpAddr: `${HOST}:${port}` })],
        ready: () => () => healthy(`http://${HOST}:${port}/healthz`),
      }),
    );
    return dashboardPort;
  }

  /**
   * Every app the agent runs, stopped through its API: the proxy first (no client writes
   * into servers going away), then the replicas, then the masters. Replicas before masters,
   * because the HA leader runs until the agent stops: a master gone while its replica still
   * answers could be failed over to it, and the next start would take the wrong master.
   */
  private async stopApps(): Promise<void> {
    if (this.agent === null) return;
    const live = (await this.agent.apps()).filter((a) => a.state !== 'stopped');
    const stop = (apps: AgentAppView[]): Promise<unknown> =>
      Promise.all(apps.map((a) => this.api().stop(a.id).catch((err: Error) => this.opts.log(`stopping ${a.id}: ${err.message}`))));
    await stop(live.filter((a) => a.kind === 'proxy'));
    const redis = live.filter((a) => a.kind === 'redis');
    const isMaster = await Promise.all(redis.map((a) => this.isMaster(a.addr)));
    await stop(redis.filter((_, i) => !isMaster[i]));
    await stop(redis.filter((_, i) => isMaster[i]));
  }

  /** Whether the server says it is a master; one that does not answer is not (it goes first). */
  private async isMaster(addr: string): Promise<boolean> {
    try {
      return replicationInfo(await redisInfo(addr, 'replication', { password: this.password, connectTimeoutMs: 1000, commandTimeoutMs: 1000 })).role === 'master';
    } catch {
      return false;
    }
  }

  /**
   * Apps the agent's state file still names as running once the agent is gone — it died
   * before it could stop them, or a stop through it failed: SIGTERM, SIGKILL after a grace.
   */
  private async stopLeftovers(): Promise<void> {
    const left = appsLeftInStateFile(this.agentDir).filter((a) => stillRunsApp(a.pid!, a));
    if (left.length === 0) return;
    for (const a of left) {
      this.opts.log(`stopping ${a.id} (pid ${a.pid}), left running by the agent`);
      signal(a.pid!, 'SIGTERM');
    }
    const deadline = Date.now() + LEFTOVER_GRACE_MS;
    while (left.some((a) => stillRunsApp(a.pid!, a)) && Date.now() < deadline) await sleep(50);
    for (const a of left) if (stillRunsApp(a.pid!, a)) signal(a.pid!, 'SIGKILL');
  }
}

/** The secret in `file`, made (random, written 0600) when the file does not exist yet. */
export function ensureSecretFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    const secret = randomBytes(18).toString('base64url');
    fs.writeFileSync(file, secret + '\n', { mode: 0o600 });
    return secret;
  }
}

/** Resolves once none of `pids` runs any more, or after `ms`, to those still running then. */
async function waitGone(pids: readonly number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  while (pids.some(stillRuns) && Date.now() < deadline) await sleep(50);
  return pids.filter(stillRuns);
}

/**
 * Whether `pid` may still hold ports. A zombie waiting to be reaped holds none — but a
 * multithreaded one (etcd is a Go program) shows its main thread as a zombie while its other
 * threads still exit, and the last of them closes the sockets: it is gone only once no other
 * thread is left in /proc/<pid>/task (measured: etcd SIGKILLed, main thread 'Z' with 2-7
 * threads left and its ports still bound, for up to ~100 ms under load).
 */
function stillRuns(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') return true;
    return fs.readdirSync(`/proc/${pid}/task`).length > 1;
  } catch {
    return false; // reaped
  }
}

/** The port of `ports` a daemon's output says it could not bind, if it names one. */
function portTakenIn(output: string, ports: readonly number[]): number | null {
  for (const line of output.split('\n').filter((l) => PORT_TAKEN.test(l))) {
    for (const m of line.matchAll(/:(\d+)\b/g)) if (ports.includes(Number(m[1]))) return Number(m[1]);
  }
  return null;
}

function sameServers(a: readonly GroupServer[], b: readonly GroupServer[]): boolean {
  return a.length === b.length && a.every((s, i) => s.addr === b[i]!.addr && s.role === b[i]!.role);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone meanwhile
  }
}

/** A health check that cannot hang: a server that accepts but never answers counts as down. */
async function healthy(url: string): Promise<boolean> {
  return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** The text of `file` from byte `offset` on (a failed start's output is a few lines). */
function readFrom(file: string, offset: number): string {
  try {
    return fs.readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return null; // first start
  }
}
