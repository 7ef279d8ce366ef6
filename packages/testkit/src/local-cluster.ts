/**
 * The cluster of `npm start` (scripts/local-cluster.mjs): etcd → two groups (master + replica,
 * AOF on) → slots split evenly on first start → one reborn-proxy → reborn-agent with HA → the
 * reborn-config dashboard, all on loopback, with data, logs and ports kept under a home dir
 * and reused on the next start.
 *
 * Invariants: no redis server has an open default user (the password is made once in
 * <home>/redis-password, 0600, and reaches redis through a 0600 config file, the daemons
 * through REBORN_REDIS_PASSWORD); stop() and a later start after a kill -9 signal only the
 * processes this launcher started (launcher-lock.ts); each group's master is the server etcd
 * names as master, so a restart never resyncs the newer data from the older.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '@reborn/coordinator';
import { AGENT_BIN, CONFIG_BIN, PROXY_BIN, agentArgs, dashboardArgs, etcdArgs, proxyArgs, redisArgs } from './daemon-args.js';
import { DaemonSet, type Daemon } from './daemons.js';
import { LauncherLock } from './launcher-lock.js';
import { portFrom } from './ports.js';

export interface LocalClusterOptions {
  /** Data, logs, the password and the lock live here. */
  home: string;
  product: string;
  /** Progress and notices, one line each. */
  log(msg: string): void;
  /** A daemon other than a redis server ended on its own: the cluster is broken and should stop. */
  onFatal(msg: string): void;
}

export interface LocalEndpoints {
  etcdUrl: string;
  proxyPort: number;
  adminPort: number;
  agentPort: number;
  dashboardPort: number;
  passwordFile: string;
}

/** Processes whose end does not stop the cluster: with HA on, a dead master is failed over. */
const MAY_DIE = /^redis /;
const HOST = '127.0.0.1';

export class LocalCluster {
  private readonly daemons: DaemonSet;
  private readonly lock: LauncherLock;
  private readonly logs: string;
  private readonly env: NodeJS.ProcessEnv = { ...process.env };

  constructor(private readonly opts: LocalClusterOptions) {
    this.logs = path.join(opts.home, 'logs');
    this.lock = new LauncherLock(path.join(opts.home, 'launcher.json'));
    this.daemons = new DaemonSet({
      onChange: () => this.lock.write(this.daemons.daemons.map((d) => ({ name: d.name, pid: d.proc.pid }))),
      onUnexpectedExit: (d, why) => this.onExit(d, why),
    });
  }

  get passwordFile(): string {
    return path.join(this.opts.home, 'redis-password');
  }

  /** Takes the lock (LauncherBusyError if another launcher runs on this home) and starts everything. */
  async start(): Promise<LocalEndpoints> {
    fs.mkdirSync(this.logs, { recursive: true });
    this.lock.take((p) => this.opts.log(`stopping ${p.name} (pid ${p.pid}), left running by an earlier launcher that was killed`));
    this.env.REBORN_REDIS_PASSWORD = ensureSecretFile(this.passwordFile);
    this.lock.write([]);
    const etcdUrl = await this.startEtcd();
    await this.startGroups(etcdUrl);
    return { etcdUrl, ...(await this.startServices(etcdUrl)), passwordFile: this.passwordFile };
  }

  /** Stops every process this launcher started (SIGTERM, SIGKILL after 5 s) and releases the lock. */
  async stop(): Promise<void> {
    await this.daemons.stopAll({ oneAtATime: false, graceMs: 5000 });
    this.lock.remove();
  }

  private onExit(d: Daemon, why: string | number | null): void {
    if (MAY_DIE.test(d.name)) {
      this.opts.log(`${d.name} exited (${why}); if it was a master, the agent fails its group over. Start again to bring it back. See ${d.logFile}`);
    } else {
      this.opts.onFatal(`${d.name} exited unexpectedly (${why}); see ${d.logFile}`);
    }
  }

  private run(name: string, command: string, args: readonly string[], logName: string): Daemon {
    return this.daemons.start({ name, command, args, logFile: path.join(this.logs, logName), env: this.env });
  }

  private waitFor(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
    return this.daemons.waitReady(what, check, { timeoutMessage: (w, ms) => `${w} did not come up in ${ms / 1000} s` });
  }

  private async startEtcd(): Promise<string> {
    const etcdPort = await portFrom(23790);
    const etcdPeer = await portFrom(etcdPort + 1);
    const etcdUrl = `http://${HOST}:${etcdPort}`;
    const dataDir = path.join(this.opts.home, 'etcd');
    fs.mkdirSync(dataDir, { recursive: true });
    const args = etcdArgs({ name: 'reborn-local', dataDir, clientUrl: etcdUrl, peerUrl: `http://${HOST}:${etcdPeer}` });
    this.run('etcd', 'etcd', args, 'etcd.log');
    await this.waitFor('etcd', () => healthy(`${etcdUrl}/health`));
    this.opts.log(`etcd        ${etcdUrl}`);
    return etcdUrl;
  }

  /**
   * Each server keeps its data directory and, when free, its port across starts. The master
   * of a group is the server etcd names as master (after a failover, the former replica):
   * starting the other one as master instead would resync the newer one from the older data.
   */
  private async startGroups(etcdUrl: string): Promise<void> {
    const store = await Store.open({ endpoints: [etcdUrl], product: this.opts.product });
    try {
      const serversFile = path.join(this.opts.home, 'servers.json');
      const lastPorts = readJson<Record<string, number>>(serversFile) ?? {};
      const ports = { last: lastPorts, next: 26379 };
      const groups = [];
      for (const gid of [1, 2]) {
        const stored = await store.getGroup(gid);
        const masterPort = Number(stored?.servers.find((sv) => sv.role === 'master')?.addr.split(':')[1]);
        // The two directories, the one whose last port etcd names as master first.
        const dirs = [`redis-${gid}-master`, `redis-${gid}-replica`];
        if (lastPorts[dirs[1]!] !== undefined && lastPorts[dirs[1]!] === masterPort) dirs.reverse();
        const master = await this.startRedis(gid, dirs[0]!, ports, null);
        const replica = await this.startRedis(gid, dirs[1]!, ports, master);
        groups.push({ id: gid, servers: [{ addr: `${HOST}:${master}`, role: 'master' as const }, { addr: `${HOST}:${replica}`, role: 'replica' as const }] });
      }
      fs.writeFileSync(serversFile, JSON.stringify(lastPorts));
      for (const g of groups) await store.putGroup(g);
      const slots = await store.listSlots();
      if (slots.every((s) => s.state === 'offline')) {
        // First start: split the 1024 slots evenly. Later starts keep whatever the operator set.
        await store.putSlots(slots.map((s) => ({ id: s.id, state: 'online' as const, group: s.id < 512 ? 1 : 2 })));
      }
    } finally {
      await store.close();
    }
  }

  /** One redis-server of group `gid` in <home>/<name>, a replica of `masterPort` unless null. Resolves to its port. */
  private async startRedis(gid: number, name: string, ports: { last: Record<string, number>; next: number }, masterPort: number | null): Promise<number> {
    const role = masterPort === null ? 'master' : 'replica';
    const port = await portFrom(ports.last[name] ?? ports.next);
    ports.next = Math.max(ports.next, port + 1);
    ports.last[name] = port;
    const dir = path.join(this.opts.home, name);
    fs.mkdirSync(dir, { recursive: true });
    const configFile = path.join(dir, 'reborn-redis.conf');
    const password = this.env.REBORN_REDIS_PASSWORD!;
    fs.writeFileSync(configFile, `requirepass "${password}"\nmasterauth "${password}"\n`, { mode: 0o600 });
    const replicaOf = masterPort === null ? undefined : { host: HOST, port: masterPort };
    this.run(`redis ${gid} ${role}`, 'redis-server', redisArgs({ port, dir, persistence: 'aof', configFile, ...(replicaOf ? { replicaOf } : {}) }), `${name}.log`);
    await this.waitFor(`redis-server :${port}`, () => redisCli(port, password, 'PING') === 'PONG');
    this.opts.log(`group ${gid}     ${role.padEnd(8)} ${HOST}:${port}  (${name})`);
    return port;
  }

  /** reborn-proxy, reborn-agent (HA on) and the dashboard, each ready before the next. */
  private async startServices(etcd: string): Promise<Omit<LocalEndpoints, 'etcdUrl' | 'passwordFile'>> {
    const { product } = this.opts;
    const node = process.execPath;
    const proxyPort = await portFrom(19000);
    const adminPort = await portFrom(proxyPort + 1);
    const proxy = proxyArgs({ addr: `${HOST}:${proxyPort}`, adminAddr: `${HOST}:${adminPort}`, etcd, product, id: 'local-proxy-1' });
    this.run('reborn-proxy', node, [PROXY_BIN, ...proxy], 'proxy.log');
    await this.waitFor('reborn-proxy', () => healthy(`http://${HOST}:${adminPort}/healthz`));

    const agentPort = await portFrom(18090);
    const dataDir = path.join(this.opts.home, 'agent');
    fs.mkdirSync(dataDir, { recursive: true });
    const agent = agentArgs({ httpAddr: `${HOST}:${agentPort}`, ha: true, etcd, product, id: 'local-agent-1', dataDir });
    this.run('reborn-agent', node, [AGENT_BIN, ...agent], 'agent.log');
    await this.waitFor('reborn-agent', () => healthy(`http://${HOST}:${agentPort}/healthz`));

    const dashboardPort = await portFrom(18087);
    this.run('reborn-config dashboard', node, [CONFIG_BIN, ...dashboardArgs({ etcd, product, httpAddr: `${HOST}:${dashboardPort}` })], 'dashboard.log');
    await this.waitFor('reborn-config dashboard', () => healthy(`http://${HOST}:${dashboardPort}/healthz`));
    return { proxyPort, adminPort, agentPort, dashboardPort };
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

/** A health check that cannot hang: a server that accepts but never answers counts as down. */
async function healthy(url: string): Promise<boolean> {
  return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
}

function redisCli(port: number, password: string, ...args: string[]): string | null {
  // REDISCLI_AUTH keeps the password out of argv.
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 2000, env: { ...process.env, REDISCLI_AUTH: password } });
  return r.status === 0 ? r.stdout.trim() : null;
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return null; // first start
  }
}
