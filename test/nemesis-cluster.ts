/**
 * The nemesis test's system under test, brought up as in production (not a test file itself):
 * a three-member etcd; one reborn-agent (--ha) that runs and heals the six redis-servers of
 * three groups (master + one replica each, registered in etcd with minInSync 1); three
 * --durable reborn-proxies, the third of which reaches etcd only through a TcpRelay; and a
 * `reborn-config dashboard` process, where the migration runner lives.
 *
 * Every process can be taken away and brought back the way an operator would: the same
 * --id, ports and data dir. Redis-servers are the agent's children: their pids are read from
 * the agent's API (or its state file while the agent is down) at the moment they are needed.
 *
 * Invariant: stop() stops exactly what was started here — the agent's apps through its API and
 * by every pid ever seen running one of them, then the agent, proxies, dashboard, relay, etcd.
 */
import type { Redis } from 'ioredis';
import { Store, ServerRole, type GroupInfo } from '@reborn/coordinator';
import { replicaOf } from '@reborn/coordinator/admin';
import {
  CONFIG_BIN,
  ManagedProcess,
  ProxyProcess,
  REPO_ROOT,
  TcpRelay,
  appsLeftInStateFile,
  assignSlots,
  dashboardArgs,
  freePort,
  healthzFrom,
  startEtcdCluster,
  startProxy,
  waitFor,
  type EtcdCluster,
  type StartProxyOptions,
} from '@reborn/testkit';
import { killApps, startAgent, type AgentProcess } from './agent-helpers.js';
import { onServer } from './helpers.js';

export const GROUPS = [1, 2, 3] as const;
const PASSWORD = 'nemesis-test-password';
const FAST_SYNC = ['--repl-diskless-sync-delay', '0'];
/**
 * HA windows short enough that a failover happens within a fault's lifetime, long enough that
 * a loaded 2-core machine does not fail masters over that merely answered late.
 */
const AGENT_HA_ARGS = [
  '--ha',
  '--down-after-ms', '3000',
  '--dead-down-after-ms', '1500',
  '--stall-down-after-ms', '6000',
  '--migration-stall-down-after-ms', '10000',
  '--check-timeout-ms', '1000',
];

/** One reborn-proxy slot: its id and ports stay across restarts. */
export interface ProxySlot {
  id: string;
  port: number;
  adminPort: number;
  /** What `--etcd` it gets: the cluster, or the relay. */
  etcd: string;
  proc: ProxyProcess;
  /** Reaches etcd only through the relay. */
  viaRelay: boolean;
  /** Down on purpose (a fault killed it): the supervisor leaves it alone. */
  held: boolean;
}

/** What the agent says of one of its apps (GET /api/apps). */
interface AppView {
  id: string;
  kind: string;
  pid: number | null;
  port: number;
  addr: string;
  state: string;
}

export class NemesisCluster {
  /** Every pid an agent app was ever seen with: all of them are candidates for cleanup. */
  readonly appPids = new Set<number>();
  private dashboardProc: ManagedProcess | null = null;
  private agentProc: AgentProcess | null = null;

  private constructor(
    readonly product: string,
    readonly etcd: EtcdCluster,
    readonly relay: TcpRelay,
    readonly store: Store,
    readonly agentSpec: { httpAddr: string; id: string; dataDir: string },
    readonly proxies: ProxySlot[],
    readonly dashboardPort: number,
    /** Every redis-server's address, per group, as first registered. */
    readonly servers: Map<number, string[]>,
  ) {}

  get password(): string {
    return PASSWORD;
  }

  get agent(): AgentProcess | null {
    return this.agentProc;
  }

  get dashboard(): ManagedProcess | null {
    return this.dashboardProc;
  }

  get etcdList(): string {
    return this.etcd.endpoints.join(',');
  }

  static async start(log: (msg: string) => void): Promise<NemesisCluster> {
    const product = `nemesis${process.pid}`;
    const etcd = await startEtcdCluster(3);
    log(`etcd members ${etcd.endpoints.join(' ')}`);
    const endpoints = etcd.endpoints;
    const store = await Store.open({ endpoints, product });
    const relayTarget = etcd.members[0]!;
    const relay = await TcpRelay.start({ port: relayTarget.port });

    const agent = await startAgent({ etcd: endpoints.join(','), product, id: 'nemesis-agent', args: ['--redis-password', PASSWORD, ...AGENT_HA_ARGS] });
    const servers = new Map<number, string[]>();
    const cluster = new NemesisCluster(product, etcd, relay, store, { httpAddr: agent.httpAddr, id: agent.id, dataDir: agent.dataDir }, [], await freePort(), servers);
    cluster.agentProc = agent;
    // A bring-up that fails half-way stops what it started (the agent's redis-servers are not
    // our children: nothing else would stop them).
    try {
      for (const gid of GROUPS) {
        const addrs: string[] = [];
        for (let i = 0; i < 2; i++) addrs.push(await cluster.startRedisApp());
        const [master, replica] = addrs as [string, string];
        await cluster.redis(replica, (c) => replicaOf(c, master, PASSWORD));
        await waitFor(
          async () => (await cluster.redis(replica, (c) => c.info('replication'))).includes('master_link_status:up'),
          { timeoutMs: 30_000, intervalMs: 100, what: `${replica} linked to ${master}` },
        );
        const group: GroupInfo = { id: gid, servers: [{ addr: master, role: ServerRole.Master }, { addr: replica, role: ServerRole.Replica }], minInSync: 1 };
        await store.putGroup(group);
        servers.set(gid, addrs);
        log(`group ${gid}: master ${master}, replica ${replica}`);
      }
      await assignSlots(store, 0, 340, 1);
      await assignSlots(store, 341, 681, 2);
      await assignSlots(store, 682, 1023, 3);

      for (let i = 1; i <= 3; i++) {
        const viaRelay = i === 3;
        const etcdArg = viaRelay ? relay.url : endpoints.join(',');
        const p = await startProxy(cluster.proxyOptions(`nemesis-proxy-${i}`, etcdArg));
        cluster.proxies.push({ id: `nemesis-proxy-${i}`, port: p.port, adminPort: p.adminPort, etcd: etcdArg, proc: p, viaRelay, held: false });
        log(`proxy ${i}: ${p.addr} (admin ${p.adminAddr})${viaRelay ? ` reaching etcd through relay ${relay.url} → ${relayTarget.clientUrl}` : ''}`);
      }
      await cluster.startDashboard();
      await waitFor(() => cluster.runnerAlive(), { timeoutMs: 30_000, intervalMs: 200, what: 'the dashboard to lead the runner election' });
      log(`dashboard (runner) http://127.0.0.1:${cluster.dashboardPort}`);
    } catch (err) {
      await cluster.stop().catch(() => undefined);
      throw err;
    }
    return cluster;
  }

  proxyOptions(id: string, etcd: string): StartProxyOptions {
    return { etcd, product: this.product, id, args: ['--durable'], env: { REBORN_REDIS_PASSWORD: PASSWORD } };
  }

  /** A redis-server started through the agent on a free port; resolves to its address. */
  private async startRedisApp(): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const res = await this.agentProc!.api('POST', '/api/start_redis', { port, args: FAST_SYNC });
      if (res.status === 201) {
        if (typeof res.body.pid === 'number') this.appPids.add(res.body.pid);
        return `127.0.0.1:${port}`;
      }
      if (attempt >= 3) throw new Error(`start_redis on ${port}: ${res.status} ${JSON.stringify(res.body)}`);
    }
  }

  /** Runs `fn` on a short-lived authenticated connection to `addr` (bounded: a paused server fails it). */
  redis<T>(addr: string, fn: (c: Redis) => Promise<T>, timeoutMs = 3000): Promise<T> {
    return onServer(addr, PASSWORD, fn, timeoutMs);
  }

  // ---------------------------------------------------------------------------------------
  // The agent's apps

  /** The agent's apps: from its API, or its state file while it is down. Every pid is remembered. */
  async apps(): Promise<AppView[]> {
    let apps: AppView[] | null = null;
    if (this.agentProc?.running) {
      try {
        const r = await this.agentProc.api('GET', '/api/apps');
        if (r.status === 200) apps = r.body as AppView[];
      } catch {
        // a paused or dying agent: fall back to its state file
      }
    }
    if (apps === null) {
      apps = appsLeftInStateFile(this.agentSpec.dataDir).map((a) => ({
        id: a.id,
        kind: a.spec.kind,
        pid: a.pid,
        port: a.spec.kind === 'redis' ? a.spec.port : 0,
        addr: a.spec.kind === 'redis' ? `127.0.0.1:${a.spec.port}` : a.spec.addr,
        state: a.state,
      }));
    }
    for (const a of apps) if (a.pid) this.appPids.add(a.pid);
    return apps;
  }

  /** The pid of the redis-server at `addr` now, or null (down, restarting). */
  async redisPid(addr: string): Promise<number | null> {
    const app = (await this.apps()).find((a) => a.kind === 'redis' && a.addr === addr);
    return app?.pid ?? null;
  }

  /** etcd's view of group `gid` (null when etcd does not answer). */
  async group(gid: number): Promise<GroupInfo | null> {
    try {
      return await this.store.getGroup(gid);
    } catch {
      return null;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Restarts

  async restartAgent(): Promise<void> {
    this.agentProc = await startAgent({
      etcd: this.etcdList,
      product: this.product,
      id: this.agentSpec.id,
      dataDir: this.agentSpec.dataDir,
      httpAddr: this.agentSpec.httpAddr,
      args: ['--redis-password', PASSWORD, ...AGENT_HA_ARGS],
    });
  }

  /**
   * Starts the proxy of `slot` again with its --id and ports. Not waited for: a proxy that
   * cannot reach etcd (its relay cut) does not get ready, and the nemesis goes on meanwhile.
   */
  restartProxy(slot: ProxySlot): void {
    slot.proc = new ProxyProcess(slot.port, slot.adminPort, this.proxyOptions(slot.id, slot.etcd));
    slot.held = false;
  }

  /**
   * Plays the proxies' process supervisor (systemd's Restart=always, the agent's restarts): a
   * proxy that exits on its own — not killed by a fault — is logged with the end of its output
   * and started again a second later. Returns the function that stops supervising.
   */
  superviseProxies(onExit: (slot: ProxySlot, tail: string) => void): () => void {
    const restarts = new Set<NodeJS.Timeout>();
    const timer = setInterval(() => {
      for (const slot of this.proxies) {
        if (slot.held || slot.proc.running) continue;
        slot.held = true;
        onExit(slot, slot.proc.logs.slice(-6).join('\n'));
        const t = setTimeout(() => {
          restarts.delete(t);
          this.restartProxy(slot);
        }, 1000);
        restarts.add(t);
      }
    }, 500);
    return () => {
      clearInterval(timer);
      for (const t of restarts) clearTimeout(t);
    };
  }

  /**
   * After the heals: whatever is still down (a heal that failed, a daemon that gave up while
   * starting) is started again, each named through `note`. Bounded by each start's own timeout.
   */
  async ensureUp(note: (line: string) => void): Promise<void> {
    for (const m of this.etcd.members) {
      m.resume();
      if (!m.running) {
        note(`etcd member ${m.clientUrl} still down after the heals: restarting it`);
        await m.restart();
      }
    }
    if (!this.agentProc?.running) {
      note('the agent is still down after the heals: restarting it');
      await this.restartAgent();
    } else this.agentProc.proc.signal('SIGCONT');
    for (const slot of this.proxies) {
      slot.proc.resume();
      if (!slot.proc.running && !slot.held) {
        note(`proxy ${slot.id} still down after the heals: restarting it`);
        this.restartProxy(slot);
      }
    }
    for (let attempt = 1; !this.dashboardProc?.running; attempt++) {
      note(`the runner (dashboard) is still down after the heals: starting it (attempt ${attempt})`);
      await this.startDashboard().catch((err: Error) => {
        if (attempt >= 3) throw err;
      });
    }
  }

  async startDashboard(): Promise<void> {
    const proc = new ManagedProcess({
      name: 'reborn-config dashboard (nemesis runner)',
      command: process.execPath,
      args: [CONFIG_BIN, ...dashboardArgs({ etcd: this.etcdList, product: this.product, httpAddr: `127.0.0.1:${this.dashboardPort}` })],
      env: { ...process.env, REBORN_REDIS_PASSWORD: PASSWORD },
      cwd: REPO_ROOT,
      maxLines: 2000,
    });
    this.dashboardProc = proc;
    await proc.waitReady('healthz', () => healthzFrom(`http://127.0.0.1:${this.dashboardPort}/healthz`, proc.pid), 30_000);
  }

  async runnerAlive(): Promise<boolean> {
    const res = await fetch(`http://127.0.0.1:${this.dashboardPort}/api/overview`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return false;
    return ((await res.json()) as { runnerAlive?: boolean }).runnerAlive === true;
  }

  /** The last warnings and errors of every proxy and of the runner, for a failure's diagnosis. */
  problemLogs(): string {
    const out: string[] = [];
    // Distinct messages, last seen last, with how often and when last: a retry loop's line
    // must not hide the one warning that says why.
    const problems = (lines: readonly string[]): string[] => {
      const seen = new Map<string, { n: number; last: string }>();
      for (const l of lines) {
        try {
          const r = JSON.parse(l) as { level?: number; msg?: string; err?: unknown; time?: number };
          if ((r.level ?? 0) < 40) continue;
          const text = `${r.msg}${r.err ? `: ${JSON.stringify(r.err).slice(0, 240)}` : ''}`;
          const prev = seen.get(text);
          seen.delete(text);
          seen.set(text, { n: (prev?.n ?? 0) + 1, last: new Date(r.time ?? 0).toISOString().slice(11, 23) });
        } catch {
          // not a pino record
        }
      }
      return [...seen].slice(-12).map(([text, { n, last }]) => `${last} ${n > 1 ? `(${n}×) ` : ''}${text}`);
    };
    for (const p of this.proxies) out.push(`[nemesis] last warnings of proxy ${p.id} (pid ${p.proc.pid}):`, ...problems(p.proc.logs).map((l) => `    ${l}`));
    if (this.dashboardProc) out.push(`[nemesis] last warnings of the runner (dashboard pid ${this.dashboardProc.pid}):`, ...problems(this.dashboardProc.lines).map((l) => `    ${l}`));
    return out.join('\n');
  }

  // ---------------------------------------------------------------------------------------

  async stop(): Promise<void> {
    if (this.agentProc?.running) {
      this.agentProc.proc.signal('SIGCONT');
      const apps = await this.apps().catch(() => [] as AppView[]);
      await Promise.all(apps.filter((a) => a.state !== 'stopped').map((a) => this.agentProc!.api('POST', '/api/stop', { id: a.id }).catch(() => undefined)));
      await this.agentProc.stop().catch(() => undefined);
    }
    for (const a of appsLeftInStateFile(this.agentSpec.dataDir)) if (a.pid) this.appPids.add(a.pid);
    killApps(this.appPids);
    for (const p of this.proxies) {
      p.proc.resume();
      await p.proc.stop().catch(() => undefined);
    }
    if (this.dashboardProc) {
      this.dashboardProc.signal('SIGCONT');
      await this.dashboardProc.terminate('SIGTERM').catch(() => undefined);
    }
    await this.store.close().catch(() => undefined);
    await this.relay.stop().catch(() => undefined);
    for (const m of this.etcd.members) m.resume();
    await this.etcd.stop().catch(() => undefined);
  }
}

/** Sends `sig` to `pid`, ignoring a pid that is gone. */
export function signalPid(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}
