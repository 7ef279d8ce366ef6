/**
 * The product-wide redis parameters, kept on every server (coordinator's redis-config.ts has
 * the whitelist and the record, docs/product-config.md the why): this proxy's enforcer, and
 * the CONFIG SET path through it.
 *
 * The enforcer applies the stored set (one CONFIG SET, over admin-redis.ts's one-off admin
 * connections with the servers' password) to every server, masters and replicas, of every
 * group: when the stored set changes (its etcd watch), when a server joins the topology or
 * changes role (a server added or promoted), and when a server comes (back) up — a restarted
 * redis has forgotten it (server-links.ts notices). A server that cannot be reached is tried
 * again with backoff while it stays in the topology.
 *
 * Invariants: applying is idempotent (the same CONFIG SET again), so every proxy doing it is
 * harmless; per server, applies run one at a time and each uses the newest set this proxy
 * knows, so the last apply to a server is of the newest set — whichever proxy makes it.
 * notify-keyspace-events keeps the stray watch's E and n (redis-config.ts keyspaceEventsToSet).
 */
import type { Logger } from 'pino';
import client from 'prom-client';
import { encodeError, errorReplyMessage, isErrorReply, OK, splitArrayReply } from '@reborn/protocol';
import {
  CoordinatorError,
  EMPTY_PRODUCT_CONFIG,
  RedisConfigRefusedError,
  RedisConfigStore,
  enforceConfig,
  setProductConfig,
  type ProductConfigRecord,
  type ProductConfigWatch,
  type ServerConfigAccess,
  type Store,
} from '@reborn/coordinator';
import { redisCommand } from './admin-redis.js';
import type { Router } from './router.js';
import { ServerLinks } from './server-links.js';

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

export interface ProductConfigOptions {
  router: Router;
  /** The servers' default-user password, or null. */
  password: string | null;
  proxyId: string;
  logger: Logger;
  registry: client.Registry;
  /** This proxy runs --watch-strays: notify-keyspace-events always keeps E and n. */
  keepNewKeyEvents: boolean;
  /** Bound of each admin command. Default 2000. */
  timeoutMs?: number;
}

/** What one apply to one server came to. */
export interface ApplyOutcome {
  addr: string;
  /** Parameters the server refused (an older redis without one of them). */
  refused: Array<{ param: string; message: string }>;
  /** The server could not be reached (it is tried again). */
  error?: string;
}

interface ServerState {
  role: string;
  /** The apply running now, if any. */
  running: Promise<ApplyOutcome> | null;
  /** The apply queued behind it (coalesces every trigger meanwhile). */
  queued: Promise<ApplyOutcome> | null;
  retry: NodeJS.Timeout | null;
  retryDelay: number;
}

/** An error message fit for one error reply line. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/** A bulk string element of an array reply as text (`$3\r\nfoo\r\n` → foo). */
function bulkText(el: Buffer): string {
  return el.toString('utf8', el.indexOf(0x0a) + 1, el.length - 2);
}

/** CONFIG GET/SET on a server over a fresh admin connection (admin-redis.ts). */
export function adminConfigAccess(password: string | null, timeoutMs: number): ServerConfigAccess {
  return {
    async get(addr, names) {
      const reply = await redisCommand(addr, ['CONFIG', 'GET', ...names], timeoutMs, password);
      if (isErrorReply(reply)) throw new RedisConfigRefusedError(addr, errorReplyMessage(reply));
      const parts = splitArrayReply(reply) ?? [];
      const out = new Map<string, string>();
      for (let i = 0; i + 1 < parts.length; i += 2) out.set(bulkText(parts[i]!).toLowerCase(), bulkText(parts[i + 1]!));
      return out;
    },
    async set(addr, pairs) {
      const reply = await redisCommand(addr, ['CONFIG', 'SET', ...pairs.flat()], timeoutMs, password);
      if (isErrorReply(reply)) throw new RedisConfigRefusedError(addr, errorReplyMessage(reply));
    },
  };
}

export class ProductConfig {
  private configs: RedisConfigStore | null = null;
  private watch: ProductConfigWatch | null = null;
  private desired: ProductConfigRecord = EMPTY_PRODUCT_CONFIG;
  private readonly servers = new Map<string, ServerState>();
  private readonly links: ServerLinks;
  private readonly access: ServerConfigAccess;
  private readonly log: Logger;
  private readonly applies: client.Counter<'result'>;
  private closed = false;

  constructor(private readonly opts: ProductConfigOptions) {
    this.log = opts.logger;
    this.access = adminConfigAccess(opts.password, opts.timeoutMs ?? 2000);
    this.links = new ServerLinks({
      password: opts.password,
      clientName: `reborn-config-watch:${opts.proxyId}`,
      logger: opts.logger,
      onUp: (addr) => void this.schedule(addr),
    });
    this.applies = new client.Counter({
      name: 'reborn_proxy_redis_config_applies_total',
      help: 'Applies of the product-wide redis parameters to a server, by result (ok, refused: some parameter refused, unreachable).',
      labelNames: ['result'],
      registers: [opts.registry],
    });
  }

  /** Starts following the stored set (call once etcd is open). */
  start(store: Store): void {
    this.configs = new RedisConfigStore(store);
    this.watch = this.configs.watch({
      onChange: (record) => this.changed(record),
      onError: (err) => this.log.warn({ err: err.message }, 'redis config watch: etcd trouble; keeping the parameters known so far'),
    });
  }

  /** The group table changed: link new servers (they get the set once up), re-apply where a role changed. */
  topologyChanged(): void {
    if (this.closed) return;
    const roles = new Map<string, string>();
    for (const g of this.opts.router.groupList()) for (const s of g.servers) roles.set(s.addr, s.role);
    for (const [addr, state] of this.servers) {
      if (roles.has(addr)) continue;
      if (state.retry) clearTimeout(state.retry);
      this.servers.delete(addr);
    }
    for (const [addr, role] of roles) {
      const state = this.servers.get(addr);
      if (state === undefined) this.servers.set(addr, { role, running: null, queued: null, retry: null, retryDelay: RETRY_MIN_MS });
      else if (state.role !== role) {
        state.role = role;
        void this.schedule(addr);
      }
    }
    // A new server's link fires onUp once connected: that is its first apply.
    this.links.sync(new Set(roles.keys()));
  }

  /**
   * CONFIG SET through the proxy: validate on the first master (its refusal, in redis' words,
   * is the answer and nothing is stored), store, then apply everywhere before answering.
   */
  async set(params: Readonly<Record<string, string>>): Promise<Buffer> {
    const master = this.opts.router.masters()[0];
    if (this.configs === null || master === undefined) return encodeError('ERR proxy not ready: no group has a master to validate the parameters on');
    try {
      await setProductConfig(this.configs, this.access, master.addr, params, { keepNewKeyEvents: this.opts.keepNewKeyEvents });
    } catch (err) {
      if (err instanceof RedisConfigRefusedError) return encodeError(err.redisMessage);
      const message = oneLine((err as Error).message);
      // The store's failures are coordinator errors; anything else is the master's connection.
      if (err instanceof CoordinatorError) return encodeError(`ERR the parameters were not stored in etcd: ${message}`);
      return encodeError(`ERR backend ${master.addr} did not answer CONFIG SET: ${message}`);
    }
    // Stored: the answer is OK whatever happens next. Applying is retried (and redone by every
    // proxy's watch), so an etcd hiccup while re-reading must not say the SET failed.
    try {
      const outcomes = await this.refresh();
      const failed = outcomes.filter((o) => o.error !== undefined || o.refused.length > 0);
      if (failed.length > 0) this.log.warn({ params, failed }, 'CONFIG SET stored, but not every server took it yet (unreachable ones are retried)');
    } catch (err) {
      this.log.warn({ err, params }, 'CONFIG SET stored; applying waits for the watch');
    }
    return OK;
  }

  /** Reads the stored set again and applies it to every server; resolves once each answered. */
  async refresh(): Promise<ApplyOutcome[]> {
    if (this.configs === null) return [];
    this.changed((await this.configs.read()).record, false);
    return Promise.all([...this.servers.keys()].map((addr) => this.schedule(addr)));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.links.close();
    for (const s of this.servers.values()) if (s.retry) clearTimeout(s.retry);
    this.servers.clear();
    await this.watch?.close();
  }

  private changed(record: ProductConfigRecord, applyNow = true): void {
    this.desired = record;
    if (applyNow) for (const addr of this.servers.keys()) void this.schedule(addr);
  }

  /** Queues an apply to `addr` behind the one running (at most one queued: triggers coalesce). */
  private schedule(addr: string): Promise<ApplyOutcome> {
    const state = this.servers.get(addr);
    if (state === undefined || this.closed) return Promise.resolve({ addr, refused: [] });
    if (state.queued !== null) return state.queued;
    const queued: Promise<ApplyOutcome> = (state.running ?? Promise.resolve()).then(() => {
      state.queued = null;
      state.running = queued;
      return this.applyNow(addr, state).finally(() => {
        if (state.running === queued) state.running = null;
      });
    });
    state.queued = queued;
    return queued;
  }

  private async applyNow(addr: string, state: ServerState): Promise<ApplyOutcome> {
    const params = this.desired.params;
    if (Object.keys(params).length === 0 || this.closed || this.servers.get(addr) !== state) return { addr, refused: [] };
    if (state.retry) clearTimeout(state.retry);
    state.retry = null;
    try {
      const refused = await enforceConfig(this.access, addr, params, { keepNewKeyEvents: this.opts.keepNewKeyEvents });
      state.retryDelay = RETRY_MIN_MS;
      this.applies.inc({ result: refused.length === 0 ? 'ok' : 'refused' });
      if (refused.length > 0) this.log.warn({ backend: addr, refused }, 'a server refused product-wide redis parameters (an older redis?)');
      else this.log.debug({ backend: addr, params }, 'product-wide redis parameters applied');
      return { addr, refused };
    } catch (err) {
      const error = (err as Error).message;
      this.applies.inc({ result: 'unreachable' });
      this.log.warn({ backend: addr, err: error, retryInMs: state.retryDelay }, 'cannot apply product-wide redis parameters yet');
      if (!this.closed && this.servers.get(addr) === state) {
        state.retry = setTimeout(() => void this.schedule(addr), state.retryDelay);
        state.retryDelay = Math.min(state.retryDelay * 2, RETRY_MAX_MS);
      }
      return { addr, refused: [], error };
    }
  }
}
