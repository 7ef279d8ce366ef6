/**
 * reborn-proxy: the client listener, the admin HTTP endpoint and the slot table kept in step
 * with etcd.
 *
 * Start-up order: listen first (clients get `-ERR proxy not ready` rather than a refused
 * connection), load groups and slots from etcd at one revision (retrying while etcd is
 * unreachable), watch from that revision, then register under a lease. When etcd goes away
 * the proxy keeps serving with the table it has; the watch resumes (or the table is reloaded
 * whole when etcd compacted past it) once etcd is back.
 */
import http from 'node:http';
import net from 'node:net';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { encodeError } from '@reborn/protocol';
import { Store, type ProxyInfo } from '@reborn/coordinator';
import { Dispatcher } from './dispatch.js';
import { Flusher } from './flusher.js';
import type { LocalContext } from './local-commands.js';
import { ProxyMetrics } from './metrics.js';
import type { ProxyOptions } from './options.js';
import type { ClientRequest } from './request.js';
import { Router } from './router.js';
import { Session, type SessionHost, type SessionLimits } from './session.js';

const MAX_CLIENTS_REPLY = encodeError('ERR max number of clients reached');

function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

export class Proxy implements SessionHost {
  readonly flusher = new Flusher();
  readonly limits: SessionLimits;
  readonly authRequired: boolean;
  readonly router: Router;
  readonly metrics: ProxyMetrics;
  private readonly dispatcher: Dispatcher;
  private readonly sessions = new Set<Session>();
  private nextSessionId = 1;
  private connections = 0;
  private server: net.Server | null = null;
  private admin: http.Server | null = null;
  private store: Store | null = null;
  private watch: { close(): void | Promise<void> } | null = null;
  private registration: { close(): Promise<void> } | null = null;
  private stopping = false;
  private readonly startedAt = Date.now();
  private listenPort = 0;

  constructor(private readonly options: ProxyOptions, readonly logger: Logger) {
    this.authRequired = options.auth !== null;
    this.limits = {
      maxPipeline: options.maxPipeline,
      maxClientOutputBytes: options.maxClientOutputBytes,
      maxBulkLength: options.maxBulkLength,
      maxMultibulkLength: options.maxMultibulkLength,
    };
    this.router = new Router(
      options.backendConnections,
      {
        connectTimeoutMs: options.backendConnectTimeoutMs,
        timeoutMs: options.backendTimeoutMs,
        logger: logger.child({ component: 'backend' }),
        flusher: this.flusher,
      },
      logger.child({ component: 'router' }),
    );
    this.metrics = new ProxyMetrics({
      clients: () => this.sessions.size,
      backends: () => this.router.backends(),
      ready: () => this.router.isReady,
    });
    const self = this;
    const local: LocalContext = {
      router: this.router,
      password: options.auth,
      proxyId: options.id,
      product: options.product,
      get port() {
        return self.listenPort;
      },
      startedAt: this.startedAt,
      clientCount: () => this.sessions.size,
      totalConnections: () => this.connections,
      totalCommands: () => this.metrics.commands.totalCalls(),
    };
    this.dispatcher = new Dispatcher(this.router, this.metrics.commands, local);
  }

  dispatch(session: Session, args: Buffer[], raw: Buffer | null): void {
    this.dispatcher.dispatch(session, args, raw);
  }

  requestDone(req: ClientRequest, now: number): void {
    if (req.statIndex >= 0) this.metrics.commands.record(req.statIndex, (now - req.startedAt) / 1000, req.reply![0] === 0x2d);
  }

  sessionClosed(session: Session): void {
    this.sessions.delete(session);
  }

  async start(): Promise<void> {
    await this.listen();
    await this.listenAdmin();
    this.store = await Store.open({ endpoints: this.options.etcd, product: this.options.product });
    await this.loadTopology();
    await this.register();
  }

  get address(): { port: number; adminPort: number } {
    const a = this.server?.address();
    const b = this.admin?.address();
    return { port: typeof a === 'object' && a ? a.port : 0, adminPort: typeof b === 'object' && b ? b.port : 0 };
  }

  /** Stops accepting, lets in-flight requests finish (bounded), then closes everything. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.logger.info({ sessions: this.sessions.size }, 'proxy stopping');
    this.server?.close();
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && [...this.sessions].some((s) => s.pendingRequests > 0)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const s of this.sessions) s.close();
    await Promise.resolve(this.watch?.close());
    await this.registration?.close().catch(() => undefined);
    await this.store?.close().catch(() => undefined);
    this.router.close();
    await new Promise<void>((r) => (this.admin ? this.admin.close(() => r()) : r()));
    this.logger.info('proxy stopped');
  }

  private listen(): Promise<void> {
    const { host, port } = splitHostPort(this.options.addr);
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, backlog: 1024 }, () => {
        server.off('error', reject);
        this.listenPort = this.address.port;
        this.logger.info({ addr: `${host}:${this.listenPort}` }, 'listening for clients');
        resolve();
      });
    });
  }

  private accept(socket: net.Socket): void {
    if (this.stopping || this.sessions.size >= this.options.maxClients) {
      this.metrics.rejectedConnections.inc();
      socket.on('error', () => undefined);
      socket.end(MAX_CLIENTS_REPLY);
      return;
    }
    this.connections++;
    this.metrics.connectionsTotal.inc();
    this.sessions.add(new Session(socket, this.nextSessionId++, this));
  }

  private listenAdmin(): Promise<void> {
    const { host, port } = splitHostPort(this.options.adminAddr);
    const admin = http.createServer((req, res) => void this.handleAdmin(req, res));
    this.admin = admin;
    return new Promise((resolve, reject) => {
      admin.once('error', reject);
      admin.listen({ host, port }, () => {
        admin.off('error', reject);
        this.logger.info({ addr: `${host}:${this.address.adminPort}` }, 'admin endpoint listening');
        resolve();
      });
    });
  }

  private async handleAdmin(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/metrics') {
        const text = await this.metrics.render();
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
        res.end(text);
      } else if (req.method === 'GET' && path === '/healthz') {
        const ready = this.router.isReady && !this.stopping;
        json(ready ? 200 : 503, { ready, id: this.options.id, product: this.options.product });
      } else if (req.method === 'GET' && path === '/api/proxy') {
        json(200, this.describe());
      } else {
        json(404, { error: `no such endpoint: ${req.method} ${path}` });
      }
    } catch (err) {
      json(500, { error: (err as Error).message });
    }
  }

  describe(): Record<string, unknown> {
    const states: Record<string, number> = {};
    for (const s of this.router.slots) states[s.state] = (states[s.state] ?? 0) + 1;
    return {
      id: this.options.id,
      product: this.options.product,
      addr: this.options.addr,
      adminAddr: this.options.adminAddr,
      pid: process.pid,
      ready: this.router.isReady,
      sessions: this.sessions.size,
      slots: states,
      backends: this.router.backends(),
      startedAt: new Date(this.startedAt).toISOString(),
    };
  }

  /** Loads the table, retrying until etcd answers, then follows changes with a watch. */
  private async loadTopology(): Promise<void> {
    const store = this.store!;
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        const topo = await store.loadTopology();
        this.router.load(topo.groups, topo.slots);
        this.watch = await store.watchTopology(topo.revision, {
          onSlot: (slot) => {
            this.metrics.topologyUpdates.inc();
            this.router.updateSlot(slot);
          },
          onGroup: (id, group) => {
            this.metrics.topologyUpdates.inc();
            this.router.updateGroup(id, group);
          },
          onError: (err) => this.logger.warn({ err: err.message }, 'topology watch error; serving with the current table'),
          onResync: () => void this.resync(),
        });
        return;
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, attempt }, 'cannot load topology from etcd, retrying');
        await new Promise((r) => setTimeout(r, Math.min(1000 * attempt, 5000)));
      }
    }
  }

  /** The watch fell behind etcd's compaction: reload the whole table and watch again. */
  private async resync(): Promise<void> {
    this.logger.warn('topology watch lost its revision; reloading the table');
    await Promise.resolve(this.watch?.close());
    this.watch = null;
    await this.loadTopology();
  }

  private async register(): Promise<void> {
    const { host: listenHost } = splitHostPort(this.options.addr);
    const info: ProxyInfo = {
      id: this.options.id,
      addr: `${listenHost}:${this.address.port}`,
      adminAddr: `${splitHostPort(this.options.adminAddr).host}:${this.address.adminPort}`,
      pid: process.pid,
      host: hostname(),
      startedAt: new Date(this.startedAt).toISOString(),
      state: 'online',
    };
    try {
      this.registration = await this.store!.registerProxy(info);
      this.logger.info({ addr: info.addr }, 'proxy registered in etcd');
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'cannot register in etcd yet; serving anyway');
    }
  }
}
