/**
 * One reborn-agent: the supervisor and its HTTP API always; with --ha also a candidate for
 * HA leadership and, while leader, the health checks and failover of ha.ts and the replica
 * healer (replica-healer.ts), both under the leadership's AbortSignal.
 *
 * Start order: data dir lock → supervisor (re-adopts its apps; needs nothing but the disk) →
 * HTTP API → etcd in the background, retried until it answers (registration, then the
 * campaign). Supervision and the API work while etcd is down, except that a crashed
 * redis-server waits for etcd to say how to restart it (supervisor.ts).
 *
 * Stop order: leadership first (leader work stops, then resign so another agent takes over
 * at once), then the registration, the API, the supervisor (its apps keep running), etcd.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { AgentClient, AgentStore, Leadership, Store, type AgentRegistration } from '@reborn/coordinator';
import { RedisAdmin } from '@reborn/coordinator/admin';
import { AgentError, NotLeaderError, RedisCommandError, RedisTimeoutError } from './errors.js';
import { HaLoop } from './ha.js';
import { HttpApi, queryAddr, queryInt } from './http.js';
import { AgentMetrics } from './metrics.js';
import type { AgentOptions } from './options.js';
import { isAliveAs } from './proc.js';
import { startRedisAnyPort } from './redis-ports.js';
import { ReplicaHealer } from './replica-healer.js';
import { Supervisor } from './supervisor.js';

/** How long the healer lets a new replica's initial sync take before it gives up on it. */
const HEAL_SYNC_TIMEOUT_MS = 60_000;

export class Agent {
  readonly metrics: AgentMetrics;
  private readonly admin: RedisAdmin;
  private readonly supervisor: Supervisor;
  private readonly api: HttpApi;
  private store: Store | null = null;
  private agents: AgentStore | null = null;
  private registration: AgentRegistration | null = null;
  private leadership: Leadership | null = null;
  private ha: HaLoop | null = null;
  private healing: Promise<void> | null = null;
  private httpAddr: string;
  private stopping = false;
  private connecting: Promise<void> | null = null;
  private readonly abort = new AbortController();
  private readonly lockPath: string;
  private readonly startedAt = new Date();

  constructor(
    private readonly options: AgentOptions,
    private readonly logger: Logger,
  ) {
    this.httpAddr = options.httpAddr;
    this.lockPath = join(options.dataDir, 'agent.pid');
    this.admin = new RedisAdmin({
      password: options.redisPassword,
      connectionName: 'reborn-agent',
      errors: {
        timeout: (message, cause) => new RedisTimeoutError(message, cause),
        command: (message, cause) => new RedisCommandError(message, cause),
      },
    });
    this.metrics = new AgentMetrics(
      {
        apps: () => this.supervisor.list(),
        isLeader: () => this.leadership?.isLeader ?? false,
        servers: () => (this.ha?.status() ?? []).map((s) => ({ group: s.group, addr: s.addr, up: s.up })),
        topologyAlarm: () => this.ha?.topologyAlarm?.reason ?? null,
      },
      { agent: options.id, product: options.product },
    );
    this.supervisor = new Supervisor({
      dataDir: options.dataDir,
      etcd: options.etcd,
      product: options.product,
      redisBin: options.redisBin,
      proxyBin: options.proxyBin,
      redisPassword: options.redisPassword,
      logger,
      metrics: this.metrics,
      admin: this.admin,
    });
    this.api = this.routes(new HttpApi(logger, { token: options.token, allowHosts: options.allowHosts }));
  }

  /** The HTTP address actually bound. */
  get address(): string {
    return this.httpAddr;
  }

  async start(): Promise<void> {
    mkdirSync(this.options.dataDir, { recursive: true });
    this.lock();
    await this.supervisor.start();
    this.httpAddr = await this.api.listen(this.options.httpAddr);
    this.logger.info({ httpAddr: this.httpAddr, dataDir: this.options.dataDir, ha: this.options.ha }, 'agent listening');
    this.connecting = this.connect();
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.abort.abort();
    this.ha?.close();
    await this.leadership?.close();
    await this.ha?.stopped();
    await this.healing;
    await this.connecting;
    await this.registration?.close();
    await this.api.close();
    this.supervisor.close();
    this.admin.close();
    await this.store?.close();
    this.unlock();
    this.logger.info('agent stopped');
  }

  /** etcd: open (retrying), register, campaign. */
  private async connect(): Promise<void> {
    const o = this.options;
    for (let attempt = 1, delay = 200; !this.stopping; attempt++, delay = Math.min(delay * 2, 5000)) {
      try {
        this.store = await Store.open({ endpoints: o.etcd, product: o.product, callTimeoutMs: o.etcdTimeoutMs, dialTimeoutMs: o.etcdTimeoutMs });
        break;
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, attempt }, 'cannot reach etcd yet; supervising without it');
        try {
          await sleep(delay, undefined, { signal: this.abort.signal });
        } catch {
          return;
        }
      }
    }
    if (this.stopping || !this.store) return;
    const store = this.store;
    this.supervisor.useStore(store);
    this.agents = new AgentStore(store);
    this.registration = this.agents.register(
      {
        id: o.id,
        httpAddr: this.httpAddr,
        pid: process.pid,
        host: hostname(),
        startedAt: this.startedAt.toISOString(),
        ha: o.ha,
        ...(o.redisPorts === null ? {} : { redisPorts: `${o.redisPorts.first}-${o.redisPorts.last}` }),
      },
      o.leaseTtl,
    );
    this.registration.on('registered', (lease) => this.logger.info({ lease, key: this.agents!.paths.agent(o.id) }, 'agent registered in etcd'));
    this.registration.on('lost', (err) => this.logger.warn({ err: err.message }, 'agent registration lost; registering again'));
    if (!o.ha) return;
    const { root, electionName } = this.agents.paths;
    const leadership = new Leadership({
      store,
      namespace: root,
      name: electionName,
      id: o.id,
      ttlSeconds: o.leaseTtl,
      logger: this.logger,
      notLeader: (message) => new NotLeaderError(message),
    });
    this.leadership = leadership;
    const ha = new HaLoop(o, store, this.agents, leadership, this.admin, this.metrics, this.logger);
    this.ha = ha;
    const healer = new ReplicaHealer(
      { id: o.id, healAfterMs: o.healAfterMs, intervalMs: Math.max(1000, o.checkIntervalMs), commandTimeoutMs: o.commandTimeoutMs, syncTimeoutMs: HEAL_SYNC_TIMEOUT_MS },
      {
        agents: this.agents,
        client: new AgentClient(o.token),
        leadership,
        admin: this.admin,
        status: () => ha.status(),
        alarmed: () => ha.topologyAlarm !== null,
        loadGroups: () => store.listGroups(),
        log: this.logger,
      },
    );
    // The healer runs under the same leadership signal as the HA loop: it stops the moment
    // this agent stops leading.
    leadership.on('elected', (signal) => {
      this.healing = healer.run(signal).catch((err: unknown) => {
        if (!signal.aborted) this.logger.error({ err: (err as Error).message }, 'replica healer failed');
      });
    });
    leadership.on('elected', () => this.metrics.leaderTransitions.inc({ to: 'leader' }));
    leadership.on('lost', () => this.metrics.leaderTransitions.inc({ to: 'follower' }));
    leadership.start();
  }

  private routes(api: HttpApi): HttpApi {
    const o = this.options;
    return api
      .on('POST', '/api/start_redis', async ({ body }) => ({ status: 201, body: await startRedisAnyPort(this.supervisor, o.redisPorts, body) }))
      .on('POST', '/api/start_proxy', async ({ body }) => ({ status: 201, body: await this.supervisor.startProxy(body) }))
      .on('POST', '/api/stop', async ({ body }) => ({ body: await this.supervisor.stop(body) }))
      .on('GET', '/api/apps', async () => ({ body: this.supervisor.list() }))
      .on('GET', '/api/ha', async () => {
        let leaderId: string | null = null;
        if (this.leadership) leaderId = await this.leadership.currentLeader().catch(() => null);
        return {
          body: {
            id: o.id,
            enabled: o.ha,
            leader: this.leadership?.isLeader ?? false,
            leaderId,
            leaderSince: this.leadership?.leaderSince ? new Date(this.leadership.leaderSince).toISOString() : null,
            downAfterMs: o.downAfterMs,
            checkIntervalMs: o.checkIntervalMs,
            failovers: this.ha?.failoverCount ?? 0,
            failover: this.ha?.failoverState ?? 'standby',
            topologyAlarm: this.ha?.topologyAlarm ?? null,
            knownGroups: this.ha?.knownGroups ?? 0,
            servers: this.ha?.status() ?? [],
          },
        };
      })
      .on('GET', '/api/events', async ({ query }) => {
        const limit = queryInt(query, 'limit', 100, 1, 1000);
        if (!this.agents) throw new AgentError('EUNAVAILABLE', 'not connected to etcd yet', 503);
        return { body: await this.agents.listEvents(limit) };
      })
      .on('GET', '/api/check_redis', async ({ query }) => {
        const addr = queryAddr(query, 'addr');
        const t0 = Date.now();
        try {
          const reply = await this.admin.call(addr, ['PING'], o.checkTimeoutMs);
          return { body: { addr, ok: reply === 'PONG', ms: Date.now() - t0 } };
        } catch (err) {
          return { status: 503, body: { addr, ok: false, error: (err as Error).message } };
        }
      })
      .on('GET', '/healthz', async () => ({
        body: {
          ok: true,
          id: o.id,
          product: o.product,
          pid: process.pid,
          ha: o.ha,
          leader: this.leadership?.isLeader ?? false,
          etcd: this.registration?.registered ?? false,
          apps: this.supervisor.list().length,
          // The process is fine (ok); its view of the product may not be: say why.
          degraded: (this.ha?.topologyAlarm ?? null) !== null,
          failover: this.ha?.failoverState ?? 'standby',
          topologyAlarm: this.ha?.topologyAlarm ?? null,
        },
      }))
      .on('GET', '/metrics', async () => ({ body: await this.metrics.render(), type: this.metrics.registry.contentType }));
  }

  /** One agent per data dir: two would both restart the same processes. */
  private lock(): void {
    try {
      const pid = Number(readFileSync(this.lockPath, 'utf8').trim());
      if (pid !== process.pid && isAliveAs(pid, (c) => c.includes('reborn-agent') || c.includes('agent/dist/main'))) {
        throw new AgentError('ELOCKED', `another reborn-agent (pid ${pid}) uses the data dir ${this.options.dataDir}`, 500);
      }
    } catch (err) {
      if (err instanceof AgentError) throw err;
    }
    writeFileSync(this.lockPath, `${process.pid}\n`);
  }

  private unlock(): void {
    try {
      if (Number(readFileSync(this.lockPath, 'utf8').trim()) === process.pid) rmSync(this.lockPath);
    } catch {
      // gone already
    }
  }
}
