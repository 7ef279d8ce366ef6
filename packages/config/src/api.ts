/**
 * The REST API of reborn-config (served by `reborn-config dashboard`): the CLI's verbs under
 * `/api/…`, JSON in and out, plus `/metrics` (Prometheus, own registry) and `/healthz`.
 *
 *   GET    /api/overview                      product, groups, slot counts, proxies, fences,
 *                                             stalled barriers, active migrations, topologyAlarm
 *                                             (topology-alarms.ts)
 *   GET    /api/groups                        POST /api/groups {id}
 *   GET    /api/groups/:gid                   DELETE /api/groups/:gid
 *   PATCH  /api/groups/:gid {minInSync?, wantReplicas?, force?}   a number sets, null clears
 *   POST   /api/groups/:gid/servers {addr}    DELETE /api/groups/:gid/servers/:addr
 *   POST   /api/groups/:gid/promote {addr}
 *   GET    /api/slots                         GET /api/slots/:id
 *   POST   /api/slots/init {force?}           POST /api/slots/set {from, to, group}
 *   GET    /api/migrations                    POST /api/migrations {from, to, group, throttle?, batchSlots?}
 *   GET    /api/migrations/:id                POST /api/migrations/:id/{pause,resume,cancel}
 *   GET    /api/rebalance (the plan)          POST /api/rebalance {confirm: true}
 *   GET    /api/proxies                       POST /api/proxies/:id/offline
 *   GET    /api/stats                         live QPS: total, per proxy (with sessions, fenced), per slot
 *                                             (rates from the proxies' admin counters, stats.ts)
 *   GET    /api/servers                       INFO of every server: role, replication lag, memory, keys
 *   GET    /api/events                        the HA agents' events (failovers …), the newest 50
 *   GET    /api/check                         reborn-config check: strays, duplicates, stuck slots
 *   POST   /api/check {fix?, scanCount?, throttle?, maxExamples?}   the same, --fix with fix:true
 *   GET    /api/redis-config                 the product-wide redis parameters and the whitelist
 *   PUT    /api/redis-config/:param {value}  DELETE /api/redis-config/:param   (api/redis-config.ts)
 *
 * Errors: `{ "error": "<message>", "code": "<CODE>" }` with the status of errors.ts (400
 * validation or a value redis refused (EREFUSED), 401 token, 404 unknown, 409 conflict, 502
 * redis unreachable, 503 etcd down, 504 a bounded wait ran out). Bodies are validated by a small schema per route; the message
 * names the field that is wrong.
 *
 * `GET /` is the web dashboard of dashboard/page.ts (static; it polls this API every 2 s).
 *
 * Every request first passes the shared HttpGuard (coordinator/http-guard.ts): Host an IP
 * literal, localhost or an --allow-host name; no foreign Origin; no CORS preflight; POST,
 * PUT, PATCH and DELETE only with `Content-Type: application/json`. With a token configured every route but
 * /healthz and the page needs `Authorization: Bearer <token>` (never a token in the URL).
 * Without a token the server only listens on loopback. The page is served with a strict
 * Content-Security-Policy (only its own script runs) and may not be framed.
 *
 * This module wires the API together; the parts live in api/: the route table (routes.ts,
 * with one handler module per noun: groups, slots, migrations, views, check, redis-config), the dispatch of
 * a request to its route (routing.ts), the body schemas (schema.ts), the metrics (metrics.ts)
 * and the listening socket (server.ts). Invariant: every response is JSON with the status of
 * errors.ts, except `/` (the page) and `/metrics`; no failure escapes as a crash.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { HttpGuard, type Store } from '@reborn/coordinator';
import { errorCode, httpStatusOf, oneLine } from './errors.js';
import { explainEtcdSilence } from './etcd-trouble.js';
import { Admin, type AdminOptions } from './servers.js';
import { DASHBOARD_HTML, DASHBOARD_PAGE_HEADERS } from './dashboard/page.js';
import { Stats, type StatsOptions } from './stats.js';
import { createMetrics, type ApiMetrics } from './api/metrics.js';
import { apiRoutes } from './api/routes.js';
import { HttpError, dispatch, type Route } from './api/routing.js';
import { checkListenAddr, startServer, type ApiServer } from './api/server.js';

export { SCHEMAS, validateBody, type BodySchema, type FieldSchema } from './api/schema.js';
export type { ApiServer } from './api/server.js';

/** Loopback: 127.0.0.0/8, ::1, localhost (the shared test of http-guard.ts). */
export { isLoopbackHost } from '@reborn/coordinator';

export interface ApiOptions {
  store: Store;
  logger: Logger;
  /** When set, every route but /healthz and the page needs `Authorization: Bearer <token>`. */
  token?: string | null;
  /** Host names the Host header may carry besides IP literals, localhost and the listen host. */
  allowHosts?: readonly string[];
  /** Metrics go here; default a fresh registry (with the process' default metrics). */
  registry?: Registry;
  /** Timeouts of redis operations. */
  admin?: AdminOptions;
  /** Timeouts of the live numbers (proxies' admin endpoints, INFO). */
  stats?: StatsOptions;
  /**
   * The etcd endpoints the store talks to: when given, a 503 for a silent etcd names them and
   * says how many accept a connection (etcd-trouble.ts).
   */
  etcdEndpoints?: readonly string[];
  /** The store's call timeout, for that message. Default 5000. */
  etcdTimeoutMs?: number;
}

export interface Api {
  /** The node:http request handler. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  registry: Registry;
  admin: Admin;
  /** Listens on `host:port` (port 0 for a free one); refuses non-loopback without a token. */
  listen(addr: string): Promise<ApiServer>;
}

export function createApi(opts: ApiOptions): Api {
  const { store, logger } = opts;
  const token = opts.token ?? null;
  const guardOptions = { token, allowHosts: opts.allowHosts ?? [], realm: 'reborn-config' };
  const admin = new Admin(store, { ...opts.admin, logger });
  const registry = opts.registry ?? new Registry();
  if (!opts.registry) collectDefaultMetrics({ register: registry, prefix: 'reborn_config_' });
  const metrics = createMetrics(registry);
  // One Stats for every live-numbers route: it holds the proxies' rate histories and the
  // single-flight rounds (and the one AgentStore the events and health records are read with).
  const stats = new Stats(store, opts.stats);
  const routes = apiRoutes({ store, admin, stats, logger, redisPassword: opts.admin?.redisPassword ?? null });
  // Replaced by listen(), which knows the host name it serves under.
  let guard = new HttpGuard(guardOptions);
  const explain = (err: unknown, method: string): Promise<unknown> =>
    opts.etcdEndpoints
      ? explainEtcdSilence(err, opts.etcdEndpoints, opts.etcdTimeoutMs ?? 5000, API_OUTCOME(method))
      : Promise.resolve(err);
  const handler = requestHandler({ store, logger, admin, registry, metrics, routes, guard: () => guard, explain });

  const listen = async (addr: string): Promise<ApiServer> => {
    const { host, port } = checkListenAddr(addr, token);
    guard = new HttpGuard({ ...guardOptions, listenAddr: addr });
    return startServer(host, port, handler);
  };

  return { handler, registry, admin, listen };
}

interface HandlerDeps {
  store: Store;
  logger: Logger;
  admin: Admin;
  registry: Registry;
  metrics: ApiMetrics;
  routes: readonly Route[];
  /** The current guard (listen() replaces it). */
  guard: () => HttpGuard;
  /** An etcd-unavailable error in the operator's words (etcd-trouble.ts); others as they are. */
  explain: (err: unknown, method: string) => Promise<unknown>;
}

/** What a request that met a silent etcd left behind: reads nothing; a write may have landed. */
function API_OUTCOME(method: string): string {
  return method === 'GET' || method === 'HEAD'
    ? 'nothing was changed'
    : 'the change may or may not have been made: read it back once etcd answers again';
}

function send(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(payload) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/** The node:http handler: one request through the guard to its answer; counts it; never throws. */
function requestHandler(deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { logger, metrics } = deps;
  return (req, res) => {
    const method = req.method ?? 'GET';
    handle(deps, req, res).then(
      (route) => metrics.requests.inc({ method, route, status: String(res.statusCode) }),
      async (raw: unknown) => {
        const err = await deps.explain(raw, method).catch(() => raw);
        const status = err instanceof HttpError ? err.status : httpStatusOf(err);
        if (status >= 500) logger.warn({ err: oneLine(err), code: errorCode(err), method, url: req.url }, 'API request failed');
        if (!res.headersSent) send(res, status, { error: oneLine(err), code: errorCode(err) });
        else res.destroy();
        metrics.requests.inc({ method, route: 'error', status: String(status) });
        // Drain an unread body so the connection can be reused.
        req.resume();
      },
    );
  };
}

/** Answers one request; returns the route label for the metrics, throws an error to answer with. */
async function handle(deps: HandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<string> {
  const { store, logger, admin, registry, metrics } = deps;
  const method = req.method ?? 'GET';
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  // /healthz says only ok / not ok, and the page holds no data: neither needs the token.
  const open = path === '/healthz' || (path === '/' && method === 'GET');
  if (!deps.guard().admit(req, res, { needsToken: !open })) return 'refused';
  if (path === '/healthz') {
    try {
      await store.call('health check', () => store.etcd.get(store.paths.root).exec());
      send(res, 200, { status: 'ok', product: store.product, pid: process.pid });
    } catch (raw) {
      const err = await deps.explain(raw, 'GET');
      send(res, 503, { status: 'etcd unavailable', error: oneLine(err), code: errorCode(err) });
    }
    return '/healthz';
  }
  if (path === '/' && method === 'GET') {
    // The page itself holds no data; it calls the API with the token the operator types in.
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...DASHBOARD_PAGE_HEADERS });
    res.end(DASHBOARD_HTML);
    return '/';
  }
  if (path === '/metrics' && method === 'GET') {
    await metrics.refresh(admin).catch((err: unknown) => logger.warn({ err: oneLine(err) }, 'metrics: could not read the cluster'));
    res.writeHead(200, { 'content-type': registry.contentType });
    res.end(await registry.metrics());
    return '/metrics';
  }
  const { route, reply } = await dispatch(deps.routes, req, method, path);
  send(res, reply.status ?? 200, reply.body);
  return route;
}
