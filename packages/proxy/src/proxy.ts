/**
 * reborn-proxy: the client listener (and with --cluster-addr a second one, the Redis Cluster
 * face of cluster-face.ts), the admin HTTP endpoint and the slot table kept in step with etcd.
 *
 * Start-up order: listen first (clients are held, --startup-hold, rather than refused),
 * register under a lease and write the member record, then load groups and slots from etcd at
 * one revision (everything retrying while etcd is unreachable) and watch from that revision:
 * member before table, so no barrier can pass without this proxy. When etcd goes away
 * the proxy keeps serving with the table it has; the watch resumes (or the table is reloaded
 * whole when etcd compacted past it) once etcd is back. A topology that comes back empty or
 * foreign is never installed (topology-follower.ts): the table stays and an alarm goes up.
 *
 * Barrier (docs/architecture.md §4, "Slot migration"): an action that names this proxy is
 * acked once the table holds its slot changes and every request sent before is answered
 * (barrier-acks.ts).
 *
 * Fencing (fence-recovery.ts): the proxy talks to redis as its own ACL user. When a backend
 * refuses it and etcd holds a fence record for us (we missed a barrier), the proxy stops
 * serving data commands, registers again, reloads the table, re-enables its user on every
 * server that answers (one that is down cannot hold it hostage), then serves again; without a
 * record the server is stale and only gets our user back (refusal-check.ts). While fenced,
 * /healthz, the admin view and our registration say what the recovery waits for.
 *
 * Start-up hold: data commands that arrive before the proxy serves wait (at most
 * --startup-hold each, in order per client) instead of being refused (startup-hold.ts).
 */
import http from 'node:http';
import net from 'node:net';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import { encodeError } from '@reborn/protocol';
import {
  Barrier,
  CoordinatorError,
  HttpGuard,
  joinAddr,
  proxyAclUser,
  splitAddr,
  Store,
  type ProxyInfo,
  type ProxyRegistration,
} from '@reborn/coordinator';
import { BarrierAcks } from './barrier-acks.js';
import { KeyHolds } from './key-holds.js';
import { FenceRecovery } from './fence-recovery.js';
import { StartupHold } from './startup-hold.js';
import { StrayWatch } from './stray-watch.js';
import { Dispatcher } from './dispatch.js';
import { Forwarder } from './forward.js';
import { Flusher } from './flusher.js';
import type { LocalContext } from './local-commands.js';
import { ProxyMetrics } from './metrics.js';
import { serveAdmin } from './admin-http.js';
import type { ProxyOptions } from './options.js';
import type { ClientRequest } from './request.js';
import { Router } from './router.js';
import { groupWriteBody } from './in-sync.js';
import { BlockingCommands } from './blocking.js';
import { ClusterFace } from './cluster-face.js';
import { Transactions } from './transactions.js';
import { PubSub } from './pubsub.js';
import { ProductConfig } from './product-config.js';
import { SlowLog } from './slowlog.js';
import { Session, type SessionHost, type SessionLimits } from './session.js';
import { TopologyFollower } from './topology-follower.js';
import { trackingForProxy, type Tracking } from './tracking.js';

const MAX_CLIENTS_REPLY = encodeError('ERR max number of clients reached');
const NOT_A_MEMBER = encodeError('ERR proxy not ready: not yet registered in etcd');
const FENCED = encodeError('ERR this proxy has been fenced and is reloading its slot table; try again');

export class Proxy implements SessionHost {
  readonly flusher = new Flusher((err) => this.logger.error({ err }, 'unexpected error while flushing a socket'));
  readonly limits: SessionLimits;
  readonly authRequired: boolean;
  readonly router: Router;
  readonly metrics: ProxyMetrics;
  /** Keys under a big-key move, and the requests waiting for them (key-holds.ts). */
  readonly keyHolds: KeyHolds;
  private readonly dispatcher: Dispatcher;
  private readonly blocking: BlockingCommands;
  private readonly transactions: Transactions;
  private readonly pubsub: PubSub;
  private readonly strays: StrayWatch | null;
  /** Keeps the product-wide redis parameters on every server (product-config.ts). */
  private readonly productConfig: ProductConfig;
  readonly slowlog: SlowLog;
  private readonly sessions = new Set<Session>();
  /** Client-side caching: CLIENT TRACKING state and the invalidation listeners. */
  private readonly tracking: Tracking;
  private nextSessionId = 1;
  private connections = 0;
  private server: net.Server | null = null;
  /** The Redis Cluster face (--cluster-addr): its listener and the map it serves. */
  private clusterServer: net.Server | null = null;
  private readonly clusterFace: ClusterFace | null;
  private admin: http.Server | null = null;
  /** Host/Origin checks of the admin port (it only reads, so no token): no DNS rebinding. */
  private readonly adminGuard: HttpGuard;
  private store: Store | null = null;
  private follower: TopologyFollower | null = null;
  private registration: ProxyRegistration | null = null;
  private barrier: Barrier | null = null;
  /** Acks the barrier actions that name us, each once and only drained. */
  private readonly acks: BarrierAcks;
  /** Our fence (refused ACL user, fence record) and the recovery from it. */
  private readonly fence: FenceRecovery;
  /** Data commands that arrive before the proxy serves wait here (bounded). */
  private readonly startupHold: StartupHold;
  /** True once our member record is in etcd: only then may data commands reach redis. */
  private member = false;
  private readonly aclUser: string;
  private readonly aclPassword = randomBytes(24).toString('hex');
  private stopping = false;
  private readonly startedAt = Date.now();
  private listenPort = 0;

  constructor(private readonly options: ProxyOptions, readonly logger: Logger) {
    this.authRequired = options.auth !== null;
    this.adminGuard = new HttpGuard({ allowHosts: options.allowHosts, listenAddr: options.adminAddr });
    this.aclUser = proxyAclUser(options.product, options.id);
    this.limits = {
      maxPipeline: options.maxPipeline,
      maxClientOutputBytes: options.maxClientOutputBytes,
      maxBulkLength: options.maxBulkLength,
      maxMultibulkLength: options.maxMultibulkLength,
    };
    const backendOptions = {
      connectTimeoutMs: options.backendConnectTimeoutMs,
      timeoutMs: options.backendTimeoutMs,
      logger: logger.child({ component: 'backend' }),
      flusher: this.flusher,
      auth: { user: this.aclUser, password: this.aclPassword, adminPassword: options.redisPassword, onRefused: (addr: string) => this.fence.refused(addr) },
    };
    this.startupHold = new StartupHold(options.startupHoldMs, () => !this.fence.fenced && !this.stopping && !this.serving);
    this.blocking = new BlockingCommands(backendOptions, options.maxBlocked);
    this.slowlog = new SlowLog(options.slowlogSlowerThan, options.slowlogMaxLen);
    this.router = new Router(
      options.backendConnections,
      backendOptions,
      logger.child({ component: 'router' }),
      { holdTimeoutMs: options.holdTimeoutMs, maxHeld: 100_000 },
      options.durable ? options.durableTimeoutMs : null,
    );
    this.pubsub = new PubSub(this.router, backendOptions, logger.child({ component: 'pubsub' }));
    this.clusterFace = options.clusterAddr === null ? null : new ClusterFace({
      product: options.product, proxyId: options.id, logger: logger.child({ component: 'cluster-face' }), serving: () => this.serving,
    });
    this.strays = options.watchStrays ? new StrayWatch(this.router, backendOptions, logger) : null;
    this.tracking = trackingForProxy(this.router, backendOptions, logger, { maxKeys: options.trackingMaxKeys, maxPrefixes: options.trackingMaxPrefixes }, () => this.sessions);
    this.router.onGroupsChanged = () => {
      this.pubsub.groupsChanged();
      this.strays?.groupsChanged();
      this.productConfig.topologyChanged();
      this.tracking.groupsChanged();
    };
    // Same bound as the barrier hold's: a request waits for a key move no more than for a slot.
    this.keyHolds = new KeyHolds({ timeoutMs: options.keyHoldTimeoutMs, maxHeld: 100_000 });
    // The slot path (barrier holds, key holds, key moves), for the dispatcher and for EXEC alike.
    const forward = new Forwarder({
      router: this.router,
      blocking: this.blocking,
      holds: this.keyHolds,
      onBusyKey: (slot, keys) => logger.error({ slot, keys: keys.map((k) => k.toString('latin1')) }, 'MIGRATE answered BUSYKEY: a key exists in both groups of a migrating slot'),
    });
    this.transactions = new Transactions({
      router: this.router,
      backendOptions,
      forward,
      graceMs: options.watchGraceMs,
      maxQueuedBytes: options.maxMultiBytes,
    });
    this.router.onMasterReplaced = (addr, _group, reply) => {
      this.blocking.failOn(addr, reply);
      this.transactions.abortWatchesOn(addr, reply);
    };
    this.metrics = new ProxyMetrics({
      clients: () => this.sessions.size,
      held: () => this.router.heldRequests,
      keyHolds: () => ({ waiting: this.keyHolds.waitingRequests, timeouts: this.keyHolds.timeouts, keys: this.keyHolds.heldKeys }),
      onTouch: () => ({ sourceReads: forward.sourceReads, busyKeyRetries: forward.busyKeyRetries, copyingRetries: forward.copyingRetries, bigKeyRetries: forward.bigKeyRetries }),
      fenced: () => this.fence.fenced,
      startupHeld: () => this.startupHold.waiting,
      backends: () => this.router.backends(),
      // A proxy that refuses (no table of its own, only the empty stand-in) is not ready.
      ready: () => this.router.isReady && (this.follower?.ready ?? false),
      pubsubSubscriptions: () => this.pubsub.subscriptions,
      pubsubDelivered: () => this.pubsub.delivered,
      strays: () => this.strays?.counts ?? new Map(),
      topologyAlarm: () => this.follower?.alarm.reason ?? null,
      tracking: () => this.tracking.stats(),
      groupWrites: () => this.router.groupWrites(),
    });
    this.acks = new BarrierAcks({
      proxyId: options.id,
      router: this.router,
      blocking: this.blocking,
      transactions: this.transactions,
      barrier: () => this.barrier!,
      follower: () => this.follower!,
      acked: this.metrics.barrierAcks,
      stopping: () => this.stopping,
      logger,
    });
    this.fence = new FenceRecovery({
      proxyId: options.id,
      router: this.router,
      aclUser: { user: this.aclUser, password: this.aclPassword, adminPassword: options.redisPassword, timeoutMs: 2000 },
      barrier: () => this.barrier,
      registration: () => this.registration,
      reregister: async () => {
        await this.registration?.close().catch(() => undefined);
        this.registration = null;
        const registration = await this.register(1);
        if (registration === null) throw new Error('not registered');
        return registration;
      },
      putMember: () => this.putMember(),
      forgetActions: () => this.acks.forget(),
      reloadTable: () => this.follower!.load(),
      resumed: () => this.startupHold.wake(),
      metrics: this.metrics,
      stopping: () => this.stopping,
      logger,
    });
    this.productConfig = new ProductConfig({
      router: this.router,
      password: options.redisPassword,
      proxyId: options.id,
      logger: logger.child({ component: 'redis-config' }),
      registry: this.metrics.registry,
      keepNewKeyEvents: options.watchStrays,
    });
    const self = this;
    const local: LocalContext = {
      router: this.router,
      refusal: () => this.refusal(),
      keyspace: { maxKeysReply: options.maxKeysReply, flushAllowed: !options.noFlush },
      slowlog: this.slowlog,
      password: options.auth,
      proxyId: options.id,
      product: options.product,
      get port() {
        return self.listenPort;
      },
      startedAt: this.startedAt,
      clientCount: () => this.sessions.size,
      sessions: () => this.sessions,
      maxClients: options.maxClients,
      blockedClients: () => this.blocking.count,
      totalConnections: () => this.connections,
      totalCommands: () => this.metrics.commands.totalCalls(),
      productConfig: this.productConfig,
      tracking: this.tracking,
    };
    this.dispatcher = new Dispatcher({
      router: this.router,
      stats: this.metrics.commands,
      local,
      refusal: () => this.refusal(),
      hold: this.startupHold,
      forward,
      transactions: this.transactions,
      pubsub: this.pubsub,
      maxWaitTimeoutMs: options.maxWaitTimeoutMs,
    });
  }

  dispatch(session: Session, args: Buffer[], raw: Buffer | null): void {
    this.dispatcher.dispatch(session, args, raw);
  }

  requestDone(req: ClientRequest, now: number): void {
    if (req.statIndex < 0) return;
    const ms = now - req.startedAt;
    this.metrics.commands.record(req.statIndex, ms / 1000, req.reply![0] === 0x2d);
    const session = req.sink as Session;
    this.slowlog.consider(ms * 1000, req.payload, this.metrics.commands.nameOf(req.statIndex), session.remote, session.name);
  }

  sessionClosed(session: Session): void {
    this.sessions.delete(session);
  }

  protocolError(): void {
    this.metrics.protocolErrors.inc();
  }

  /** Data commands are served: table loaded, member recorded, not fenced. */
  get serving(): boolean {
    return this.router.isReady && this.member && !this.fence.fenced && !this.stopping && this.follower?.notReadyReason === null;
  }

  /** The error a data command gets instead of being served, or null. */
  private refusal(): Buffer | null {
    if (this.fence.fenced) return FENCED;
    const why = this.follower?.notReadyReason ?? null;
    if (why !== null) return encodeError(`ERR proxy not ready: ${why}`);
    return this.member ? null : NOT_A_MEMBER;
  }

  async start(): Promise<void> {
    this.server = await this.listen(this.options.addr, 'listening for clients', null);
    this.listenPort = this.address.port;
    if (this.clusterFace !== null) {
      this.clusterServer = await this.listen(this.options.clusterAddr!, 'listening for cluster clients', this.clusterFace);
      const bound = joinAddr(splitAddr(this.options.clusterAddr!).host, this.address.clusterPort);
      this.clusterFace.announceAt(this.options.clusterAnnounce ?? bound);
    }
    await this.listenAdmin();
    this.store = await this.openStore();
    if (this.store === null) return; // stopped while etcd was away
    this.clusterFace?.follow(this.store);
    this.barrier = new Barrier(this.store);
    this.productConfig.start(this.store);
    this.follower = new TopologyFollower(
      this.store,
      this.router,
      {
        proxyId: this.options.id,
        product: this.options.product,
        startedAt: new Date(this.startedAt).toISOString(),
        logger: this.logger.child({ component: 'topology' }),
        stopping: () => this.stopping,
      },
      {
        installed: () => this.acks.ackListed(),
        onAction: (action) => this.acks.onAction(action),
        // Learn of our own fence from etcd too (e.g. after SIGCONT), not only from a backend.
        onFence: (proxyId, fenced) => {
          if (fenced && proxyId === this.options.id) this.fence.onFenced('etcd', 'etcd holds a fence record for this proxy');
        },
        stateChanged: () => this.publishState(),
        recovered: () => void this.becomeMember(),
        changeApplied: () => this.metrics.topologyUpdates.inc(),
        movesLoaded: (moves) => this.keyHolds.replaceAll(moves),
        moveChanged: (id, move) => this.keyHolds.apply(id, move),
      },
    );
    // Member before table, as in a fence recovery: a barrier created before our member record
    // has its slot writes in the table we load after it; one created after names us, and we
    // ack it only once our table has its slot writes (barrier-acks.ts). Loading first would
    // leave a window where a barrier neither names us nor is in our table, and we would write
    // the old group after it went on.
    await this.register();
    await this.becomeMember();
    await this.follower.load();
  }

  /**
   * Connects to etcd, waiting for it as long as it takes: a proxy started while etcd is away
   * (no quorum, its only endpoint cut off) comes up when etcd does, as it already loads the
   * table and registers with retries — it does not exit for a supervisor to restart it.
   * Connected clients are held meanwhile (--startup-hold), then told the proxy is not ready.
   */
  private async openStore(): Promise<Store | null> {
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        return await Store.open({ endpoints: this.options.etcd, product: this.options.product });
      } catch (err) {
        if (!(err instanceof CoordinatorError && err.retryable)) throw err;
        this.logger.warn({ err: err.message, attempt }, 'cannot reach etcd yet, retrying');
        await new Promise((r) => setTimeout(r, Math.min(200 * attempt, 2000)));
      }
    }
    return null;
  }

  /**
   * Writes our member record (barrier.ts: a record without a lease, so a barrier names this
   * proxy even when its lease lapsed while it kept serving). Data commands wait for it.
   */
  private async becomeMember(): Promise<void> {
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        await this.putMember();
        this.member = true;
        this.startupHold.wake();
        return;
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, attempt }, 'cannot record membership in etcd yet; data commands wait');
        await new Promise((r) => setTimeout(r, Math.min(200 * attempt, 2000)));
      }
    }
  }

  private putMember(): Promise<void> {
    return this.barrier!.putMember(this.options.id, { addr: this.options.addr, pid: process.pid, host: hostname() });
  }

  get address(): { port: number; adminPort: number; clusterPort: number } {
    const portOf = (s: net.Server | http.Server | null): number => {
      const a = s?.address();
      return typeof a === 'object' && a ? a.port : 0;
    };
    return { port: portOf(this.server), adminPort: portOf(this.admin), clusterPort: portOf(this.clusterServer) };
  }

  /** Stops accepting, lets in-flight requests finish (bounded), then closes everything. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.logger.info({ sessions: this.sessions.size }, 'proxy stopping');
    this.server?.close();
    this.clusterServer?.close();
    this.acks.cancelWaits();
    this.startupHold.wake();
    // Out of the cluster map before connections close, so clients refreshing then find the others.
    const leaving = this.clusterFace && this.registration?.update({ state: 'offline' }).catch(() => undefined);
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...[...this.sessions].map((s) => s.whenAnswered()), leaving]),
      new Promise((r) => (grace = setTimeout(r, graceMs))),
    ]);
    clearTimeout(grace);
    for (const s of this.sessions) s.close();
    // No session is left to write anything: a barrier need not wait for this proxy any more.
    if (this.member) await this.barrier?.deleteMember(this.options.id).catch(() => undefined);
    await this.follower?.close();
    await this.clusterFace?.close();
    await this.productConfig.close();
    await this.registration?.close().catch(() => undefined);
    await this.store?.close().catch(() => undefined);
    this.blocking.closeAll();
    this.transactions.closeAll();
    this.pubsub.close();
    this.strays?.close();
    this.tracking.close();
    this.router.close();
    this.keyHolds.close();
    await new Promise<void>((r) => (this.admin ? this.admin.close(() => r()) : r()));
    this.logger.info('proxy stopped');
  }

  /** A client listener; sessions it accepts belong to `face` (a cluster listener) or to none. */
  private listen(addr: string, what: string, face: ClusterFace | null): Promise<net.Server> {
    const { host, port } = splitAddr(addr);
    // allowHalfOpen: a client that sends its requests and shuts down its write side (as
    // `printf … | nc` does) still gets every reply before the proxy closes.
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket, face));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, backlog: 1024 }, () => {
        server.off('error', reject);
        const bound = server.address();
        this.logger.info({ addr: joinAddr(host, typeof bound === 'object' && bound ? bound.port : port) }, what);
        resolve(server);
      });
    });
  }

  private accept(socket: net.Socket, face: ClusterFace | null): void {
    if (this.stopping || this.sessions.size >= this.options.maxClients) {
      this.metrics.rejectedConnections.inc();
      socket.on('error', () => undefined);
      socket.end(MAX_CLIENTS_REPLY);
      return;
    }
    this.connections++;
    this.metrics.connectionsTotal.inc();
    const session = new Session(socket, this.nextSessionId++, this);
    face?.adopt(session);
    this.sessions.add(session);
  }

  private async listenAdmin(): Promise<void> {
    this.admin = await serveAdmin(this.options.adminAddr, { guard: this.adminGuard, metrics: this.metrics, health: () => this.health(), describe: () => this.describe() }, this.logger);
  }

  /**
   * `/healthz`. Serving a kept table under a topology alarm: 203 (a non-authoritative answer:
   * the table is no longer backed by etcd), still 2xx, so load balancers keep this proxy,
   * which serves correctly, in rotation; the body and the metric say why. pid and ppid let
   * whoever started the proxy check that the answer comes from its own process.
   */
  private health(): { status: number; body: Record<string, unknown> } {
    const ready = this.serving;
    const alarm = this.follower?.alarm.view ?? null;
    const notReady = this.follower?.notReadyReason ?? null;
    const body = {
      ready,
      ...(alarm !== null && ready ? { degraded: true } : {}),
      ...(notReady !== null ? { reason: `proxy not ready: ${notReady}` } : {}),
      fenced: this.fence.fenced,
      ...(this.fence.fenced ? { fencedReason: this.fence.reason } : {}),
      id: this.options.id,
      product: this.options.product,
      pid: process.pid,
      ppid: process.ppid,
      topologyAlarm: alarm,
      // Groups whose writes are acknowledged on the master alone, or refused (in-sync.ts):
      // the proxy itself is healthy, so the status stays 2xx.
      groupsDegraded: this.router.groupWrites().filter((g) => g.state !== 'ok').map(groupWriteBody),
    };
    return { status: !ready ? 503 : alarm !== null ? 203 : 200, body };
  }

  describe(): Record<string, unknown> {
    const states: Record<string, number> = {};
    for (const s of this.router.slots) states[s.state] = (states[s.state] ?? 0) + 1;
    return {
      id: this.options.id,
      product: this.options.product,
      addr: this.options.addr,
      adminAddr: this.options.adminAddr,
      cluster: this.clusterFace === null ? null : { announce: this.clusterFace.announcedAddr, nodes: this.clusterFace.map },
      pid: process.pid,
      ready: this.router.isReady && (this.follower?.ready ?? false),
      member: this.member,
      fenced: this.fence.fenced,
      fencedReason: this.fence.fenced ? this.fence.reason : null,
      startupHeld: this.startupHold.waiting,
      topology: { identity: this.follower?.identityView ?? null, alarm: this.follower?.alarm.view ?? null },
      heldRequests: this.router.heldRequests,
      keyHolds: { moves: this.keyHolds.moveIds(), keys: this.keyHolds.heldKeys, waiting: this.keyHolds.waitingRequests, timeouts: this.keyHolds.timeouts },
      sessions: this.sessions.size,
      commands: this.metrics.commands.totalCalls(),
      pubsub: { subscriptions: this.pubsub.subscriptions, delivered: this.pubsub.delivered },
      tracking: this.tracking.view(),
      strays: this.strays ? { watching: true, byGroup: Object.fromEntries(this.strays.counts), recent: this.strays.recent } : { watching: false },
      blocking: { blocked: this.blocking.count, idleConnections: this.blocking.idleConnections },
      watch: this.transactions.pinnedView(),
      slots: states,
      groups: this.router.groupWrites().map(groupWriteBody),
      backends: this.router.backends(),
      startedAt: new Date(this.startedAt).toISOString(),
    };
  }

  /**
   * Our registration says `online` only while we serve a table: a proxy that is not ready
   * must not count as serving for a new proxy deciding whether etcd lost the topology.
   */
  private publishState(): void {
    this.startupHold.wake();
    if (this.stopping) return; // a stopping proxy stays as stop() left it
    const state = this.follower?.ready ? 'online' : 'starting';
    if (this.registration && this.registration.proxy.state !== state) {
      this.registration.update({ state }).catch((err: Error) => this.logger.warn({ err: err.message }, 'cannot update registration state'));
    }
  }

  /** Registers (retrying while etcd is away), at most `attempts` times when given; null when stopped first. */
  private async register(attempts = Infinity): Promise<ProxyRegistration | null> {
    const { host: listenHost } = splitAddr(this.options.addr);
    const info: ProxyInfo = {
      id: this.options.id,
      addr: joinAddr(listenHost, this.address.port),
      adminAddr: joinAddr(splitAddr(this.options.adminAddr).host, this.address.adminPort),
      pid: process.pid,
      host: hostname(),
      startedAt: new Date(this.startedAt).toISOString(),
      state: this.follower?.ready ? 'online' : 'starting',
      ...(this.fence.fenced && this.fence.reason !== null ? { fencedReason: this.fence.reason } : {}),
      ...(this.clusterFace?.announcedAddr ? { clusterAddr: this.clusterFace.announcedAddr } : {}),
    };
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        this.registration = await this.store!.registerProxy(info);
        const predecessor = this.registration.tookOverFrom;
        this.logger.info({ addr: info.addr, ...(predecessor !== null ? { tookOverFromPid: predecessor } : {}) }, 'proxy registered in etcd');
        return this.registration;
      } catch (err) {
        if (attempt >= attempts) throw err;
        this.logger.warn({ err: (err as Error).message, attempt }, 'cannot register in etcd yet, retrying');
        await new Promise((r) => setTimeout(r, Math.min(200 * attempt, 2000)));
      }
    }
    return null;
  }
}
