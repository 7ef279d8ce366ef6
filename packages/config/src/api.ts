/**
 * The REST API of reborn-config (served by `reborn-config dashboard`): the CLI's verbs under
 * `/api/…`, JSON in and out, plus `/metrics` (Prometheus, own registry) and `/healthz`.
 *
 *   GET    /api/overview                      product, groups, slot counts, proxies, fences,
 *                                             stalled barriers, active migrations, topologyAlarm
 *                                             (topology-alarms.ts)
 *   GET    /api/groups                        POST /api/groups {id}
 *   GET    /api/groups/:gid                   DELETE /api/groups/:gid
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
 *
 * Errors: `{ "error": "<message>", "code": "<CODE>" }` with the status of errors.ts (400
 * validation, 401 token, 404 unknown, 409 conflict, 502 redis unreachable, 503 etcd down,
 * 504 a bounded wait ran out). Bodies are validated by a small schema per route; the message
 * names the field that is wrong.
 *
 * `GET /` is the web dashboard of dashboard/page.ts (static; it polls this API every 2 s).
 *
 * Every request first passes the shared HttpGuard (coordinator/http-guard.ts): Host an IP
 * literal, localhost or an --allow-host name; no foreign Origin; no CORS preflight; POST and
 * DELETE only with `Content-Type: application/json`. With a token configured every route but
 * /healthz and the page needs `Authorization: Bearer <token>` (never a token in the URL).
 * Without a token the server only listens on loopback. The page is served with a strict
 * Content-Security-Policy (only its own script runs) and may not be framed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { HttpGuard, SLOT_COUNT, ValidationError, openBindRefusal, type Store } from '@reborn/coordinator';
import { CoordinatorError, errorCode, httpStatusOf, oneLine } from './errors.js';
import { Admin, checkAddr, checkMigrationId, checkProxyId, type AdminOptions, type MigrationOp } from './servers.js';
import { DASHBOARD_HTML, DASHBOARD_PAGE_HEADERS } from './dashboard/page.js';
import { Stats, type StatsOptions } from './stats.js';
import { topologyAlarms } from './topology-alarms.js';

// ---------------------------------------------------------------------------------------------
// A small JSON schema: enough to say which field is wrong and why.

export type FieldSchema =
  | { type: 'integer'; minimum?: number; maximum?: number; description?: string }
  | { type: 'string'; minLength?: number; maxLength?: number; description?: string }
  | { type: 'boolean'; const?: boolean; description?: string };

export interface BodySchema {
  properties: Record<string, FieldSchema>;
  required?: readonly string[];
}

/** Checks `body` against `schema`; throws ValidationError naming the first bad field. */
export function validateBody(body: unknown, schema: BodySchema): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('invalid request body: want a JSON object');
  }
  const o = body as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    // Own properties only: "toString" or "__proto__" are not fields of any schema.
    if (!Object.hasOwn(schema.properties, name)) throw new ValidationError(`invalid request body: unknown field "${name}"`);
  }
  for (const name of schema.required ?? []) {
    if (o[name] === undefined) throw new ValidationError(`invalid request body: field "${name}" is required`);
  }
  for (const [name, f] of Object.entries(schema.properties)) {
    const v = o[name];
    if (v === undefined) continue;
    const bad = (want: string): never => {
      throw new ValidationError(`invalid request body: field "${name}" must be ${want}, got ${JSON.stringify(v)}`);
    };
    switch (f.type) {
      case 'integer': {
        const range =
          f.minimum !== undefined && f.maximum !== undefined
            ? ` in ${f.minimum}..${f.maximum}`
            : f.minimum !== undefined
              ? ` ≥ ${f.minimum}`
              : f.maximum !== undefined
                ? ` ≤ ${f.maximum}`
                : '';
        if (typeof v !== 'number' || !Number.isSafeInteger(v)) bad(`an integer${range}`);
        const n = v as number;
        if ((f.minimum !== undefined && n < f.minimum) || (f.maximum !== undefined && n > f.maximum)) bad(`an integer${range}`);
        break;
      }
      case 'string':
        if (typeof v !== 'string') bad('a string');
        if (f.minLength !== undefined && (v as string).length < f.minLength) bad(`a string of at least ${f.minLength} characters`);
        if (f.maxLength !== undefined && (v as string).length > f.maxLength) bad(`a string of at most ${f.maxLength} characters`);
        break;
      case 'boolean':
        if (typeof v !== 'boolean') bad('a boolean');
        if (f.const !== undefined && v !== f.const) bad(String(f.const));
        break;
    }
  }
  return o;
}

const slotField: FieldSchema = { type: 'integer', minimum: 0, maximum: SLOT_COUNT - 1 };
const groupField: FieldSchema = { type: 'integer', minimum: 1, maximum: 9999 };
const addrField: FieldSchema = { type: 'string', minLength: 1, maxLength: 300 };

export const SCHEMAS = {
  addGroup: { properties: { id: groupField }, required: ['id'] },
  addServer: { properties: { addr: addrField }, required: ['addr'] },
  promote: { properties: { addr: addrField }, required: ['addr'] },
  initSlots: { properties: { force: { type: 'boolean' } } },
  setSlots: { properties: { from: slotField, to: slotField, group: groupField }, required: ['from', 'to', 'group'] },
  migrate: {
    properties: {
      from: slotField,
      to: slotField,
      group: groupField,
      throttle: { type: 'integer', minimum: 0 },
      batchSlots: { type: 'integer', minimum: 1, maximum: SLOT_COUNT },
    },
    required: ['from', 'to', 'group'],
  },
  rebalance: { properties: { confirm: { type: 'boolean', const: true } }, required: ['confirm'] },
  check: {
    properties: {
      fix: { type: 'boolean' },
      scanCount: { type: 'integer', minimum: 1, maximum: 100_000 },
      throttle: { type: 'integer', minimum: 0 },
      maxExamples: { type: 'integer', minimum: 0, maximum: 10_000 },
    },
  },
  empty: { properties: {} },
} satisfies Record<string, BodySchema>;

// ---------------------------------------------------------------------------------------------
// Routing

class HttpError extends CoordinatorError {
  constructor(
    code: string,
    readonly status: number,
    message: string,
  ) {
    super(code, message);
    this.name = 'HttpError';
  }
}

interface Ctx {
  params: Record<string, string>;
  body: unknown;
}

interface Reply {
  status?: number;
  body: unknown;
}

type Handler = (ctx: Ctx) => Promise<Reply>;

interface Route {
  method: string;
  /** `/api/groups/:gid` — `:name` segments capture one path segment, URL-decoded. */
  path: string;
  /** Label for metrics (the pattern, never the concrete path). */
  handler: Handler;
}

function matchRoute(route: Route, segments: readonly string[]): Record<string, string> | null {
  const pattern = route.path.split('/').slice(1);
  if (pattern.length !== segments.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = segments[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = s;
    else if (p !== s) return null;
  }
  return params;
}

function intParam(text: string | undefined, what: string, min: number, max: number): number {
  const t = text ?? '';
  if (!/^\d{1,6}$/.test(t) || Number(t) < min || Number(t) > max) {
    throw new ValidationError(`invalid ${what} ${JSON.stringify(t)} in the path: want an integer ${min}..${max}`);
  }
  return Number(t);
}

const MAX_BODY_BYTES = 64 * 1024;

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError('ETOOLARGE', 413, `request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`invalid request body: not JSON (${(err as Error).message})`);
  }
}

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
}

export interface ApiServer {
  /** `host:port` actually bound (port 0 resolved). */
  readonly address: string;
  readonly port: number;
  readonly server: Server;
  /** Stops accepting, ends idle keep-alive connections, resolves when closed. */
  close(): Promise<void>;
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
  // Replaced by listen(), which knows the host name it serves under.
  let guard = new HttpGuard(guardOptions);
  const admin = new Admin(store, { ...opts.admin, logger });
  const registry = opts.registry ?? new Registry();
  if (!opts.registry) collectDefaultMetrics({ register: registry, prefix: 'reborn_config_' });
  const metrics = createMetrics(registry);
  // One Stats for every live-numbers route: it holds the proxies' rate histories and the
  // single-flight rounds (and the one AgentStore the events and health records are read with).
  const stats = new Stats(store, opts.stats);

  const body = (ctx: Ctx, schema: BodySchema): Record<string, unknown> => validateBody(ctx.body, schema);
  const gidOf = (ctx: Ctx): number => intParam(ctx.params['gid'], 'group id', 1, 9999);
  const migrationOp = (op: MigrationOp): Handler => async (ctx) => ({ body: await admin.changeMigration(checkMigrationId(ctx.params['id']!), op) });
  // One check at a time: two fixes would race for the same strays.
  let checking = false;
  const runCheck = async (options: Record<string, unknown>): Promise<{ body: unknown }> => {
    if (checking) throw new HttpError('ECONFLICT', 409, 'a check is already running on this dashboard; wait for it');
    checking = true;
    try {
      const { checkProduct } = await import('./check.js');
      return { body: await checkProduct(store, { ...options, redisPassword: opts.admin?.redisPassword ?? null, logger }) };
    } finally {
      checking = false;
    }
  };

  const routes: Route[] = [
    {
      method: 'GET',
      path: '/api/overview',
      handler: async () => {
        const [overview, topologyAlarm] = await Promise.all([admin.overview(), topologyAlarms(store)]);
        return { body: { ...overview, topologyAlarm } };
      },
    },
    { method: 'GET', path: '/api/groups', handler: async () => ({ body: await admin.listGroups() }) },
    {
      method: 'POST',
      path: '/api/groups',
      handler: async (ctx) => ({ status: 201, body: await admin.addGroup(body(ctx, SCHEMAS.addGroup)['id'] as number) }),
    },
    { method: 'GET', path: '/api/groups/:gid', handler: async (ctx) => ({ body: await admin.getGroup(gidOf(ctx)) }) },
    {
      method: 'DELETE',
      path: '/api/groups/:gid',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        await admin.removeGroup(gid);
        return { body: { removed: gid } };
      },
    },
    {
      method: 'POST',
      path: '/api/groups/:gid/servers',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const addr = checkAddr(body(ctx, SCHEMAS.addServer)['addr'] as string);
        const r = await admin.addServer(gid, addr);
        return { status: 201, body: { addr, role: r.role, group: r.group } };
      },
    },
    {
      method: 'DELETE',
      path: '/api/groups/:gid/servers/:addr',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const addr = checkAddr(ctx.params['addr']!);
        const r = await admin.removeServer(gid, addr);
        return { body: { removed: addr, role: r.role, group: await admin.getGroup(gid) } };
      },
    },
    {
      method: 'POST',
      path: '/api/groups/:gid/promote',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const addr = checkAddr(body(ctx, SCHEMAS.promote)['addr'] as string);
        return { body: await admin.promoteServer(gid, addr) };
      },
    },
    { method: 'GET', path: '/api/slots', handler: async () => ({ body: await admin.listSlots() }) },
    {
      method: 'GET',
      path: '/api/slots/:id',
      handler: async (ctx) => ({ body: await admin.slotInfo(intParam(ctx.params['id'], 'slot', 0, SLOT_COUNT - 1)) }),
    },
    {
      method: 'POST',
      path: '/api/slots/init',
      handler: async (ctx) => ({ body: { assigned: await admin.initSlots(body(ctx, SCHEMAS.initSlots)['force'] === true) } }),
    },
    {
      method: 'POST',
      path: '/api/slots/set',
      handler: async (ctx) => {
        const b = body(ctx, SCHEMAS.setSlots);
        const [from, to, group] = [b['from'] as number, b['to'] as number, b['group'] as number];
        const r = await admin.setSlots(from, to, group);
        return { body: { from, to, group, changedOwner: r.changedOwner, note: 'no data was moved' } };
      },
    },
    { method: 'GET', path: '/api/migrations', handler: async () => ({ body: await admin.listMigrations() }) },
    {
      method: 'POST',
      path: '/api/migrations',
      handler: async (ctx) => {
        const b = body(ctx, SCHEMAS.migrate);
        const r = await admin.startMigration(b['from'] as number, b['to'] as number, b['group'] as number, {
          ...(b['throttle'] === undefined ? {} : { throttle: b['throttle'] as number }),
          ...(b['batchSlots'] === undefined ? {} : { batchSlots: b['batchSlots'] as number }),
        });
        return { status: r.task !== null && !r.resumed ? 201 : 200, body: r };
      },
    },
    { method: 'GET', path: '/api/migrations/:id', handler: async (ctx) => ({ body: await admin.getMigration(checkMigrationId(ctx.params['id']!)) }) },
    { method: 'POST', path: '/api/migrations/:id/pause', handler: migrationOp('pause') },
    { method: 'POST', path: '/api/migrations/:id/resume', handler: migrationOp('resume') },
    { method: 'POST', path: '/api/migrations/:id/cancel', handler: migrationOp('cancel') },
    { method: 'GET', path: '/api/rebalance', handler: async () => ({ body: await admin.rebalancePlan() }) },
    {
      method: 'POST',
      path: '/api/rebalance',
      handler: async (ctx) => {
        body(ctx, SCHEMAS.rebalance);
        return { body: await admin.rebalance() };
      },
    },
    { method: 'GET', path: '/api/proxies', handler: async () => ({ body: await admin.listProxies() }) },
    {
      method: 'POST',
      path: '/api/proxies/:id/offline',
      handler: async (ctx) => ({ body: await admin.proxyOffline(checkProxyId(ctx.params['id']!)) }),
    },
    { method: 'GET', path: '/api/stats', handler: async () => ({ body: await stats.proxies() }) },
    { method: 'GET', path: '/api/servers', handler: async () => ({ body: await stats.servers() }) },
    { method: 'GET', path: '/api/events', handler: async () => ({ body: await stats.events() }) },
    { method: 'GET', path: '/api/check', handler: async () => runCheck({}) },
    { method: 'POST', path: '/api/check', handler: async (ctx) => runCheck(body(ctx, SCHEMAS.check)) },
  ];

  const send = (res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void => {
    const text = JSON.stringify(payload) + '\n';
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<string> => {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    // /healthz says only ok / not ok, and the page holds no data: neither needs the token.
    const open = path === '/healthz' || (path === '/' && method === 'GET');
    if (!guard.admit(req, res, { needsToken: !open })) return 'refused';
    if (path === '/healthz') {
      try {
        await store.call('health check', () => store.etcd.get(store.paths.root).exec());
        send(res, 200, { status: 'ok', product: store.product, pid: process.pid });
      } catch (err) {
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
    const segments = path.split('/').slice(1).map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
    let methodMismatch = false;
    for (const route of routes) {
      const params = matchRoute(route, segments);
      if (params === null) continue;
      if (route.method !== method) {
        methodMismatch = true;
        continue;
      }
      const reqBody = method === 'POST' || method === 'PUT' ? await readBody(req) : {};
      const reply = await route.handler({ params, body: reqBody });
      send(res, reply.status ?? 200, reply.body);
      return route.path;
    }
    if (methodMismatch) throw new HttpError('EMETHOD', 405, `method ${method} not allowed on ${path}`);
    throw new HttpError('ENOTFOUND', 404, `no route ${method} ${path}`);
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    handle(req, res).then(
      (route) => metrics.requests.inc({ method, route, status: String(res.statusCode) }),
      (err: unknown) => {
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

  const listen = async (addr: string): Promise<ApiServer> => {
    const i = addr.lastIndexOf(':');
    const rawHost = addr.slice(0, i);
    const port = Number(addr.slice(i + 1));
    if (i <= 0 || !/^\d{1,5}$/.test(addr.slice(i + 1)) || port > 65535) {
      throw new ValidationError(`invalid HTTP address ${JSON.stringify(addr)}: want host:port`);
    }
    const host = rawHost.startsWith('[') && rawHost.endsWith(']') ? rawHost.slice(1, -1) : rawHost;
    const refusal = openBindRefusal(addr, token, { flag: '--token', env: 'REBORN_DASHBOARD_TOKEN' });
    if (refusal !== null) throw new ValidationError(refusal);
    guard = new HttpGuard({ ...guardOptions, listenAddr: addr });
    const server = createServer({ requestTimeout: 120_000, headersTimeout: 10_000 }, handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address();
    const boundPort = typeof a === 'object' && a !== null ? a.port : port;
    const address = `${isIP(host) === 6 ? `[${host}]` : host}:${boundPort}`;
    let closing: Promise<void> | null = null;
    return {
      address,
      port: boundPort,
      server,
      close: () => {
        closing ??= new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // Requests still running (a replica sync) get a moment, then their sockets go.
          setTimeout(() => server.closeAllConnections(), 2000).unref();
        });
        return closing;
      },
    };
  };

  return { handler, registry, admin, listen };
}

// ---------------------------------------------------------------------------------------------
// Metrics: cluster gauges are read from etcd on each scrape (an overview), never in a loop.

function createMetrics(registry: Registry) {
  const requests = new Counter({
    name: 'reborn_config_http_requests_total',
    help: 'REST API requests by route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const etcdUp = new Gauge({ name: 'reborn_config_etcd_up', help: '1 when the last scrape could read etcd', registers: [registry] });
  const slots = new Gauge({ name: 'reborn_config_slots', help: 'Slots by state', labelNames: ['state'] as const, registers: [registry] });
  const groupSlots = new Gauge({ name: 'reborn_config_group_slots', help: 'Slots owned by each group', labelNames: ['group'] as const, registers: [registry] });
  const groupServers = new Gauge({ name: 'reborn_config_group_servers', help: 'Servers of each group by role', labelNames: ['group', 'role'] as const, registers: [registry] });
  const migrations = new Gauge({ name: 'reborn_config_migrations_active', help: 'Active migration tasks by state', labelNames: ['state'] as const, registers: [registry] });
  const keysMoved = new Gauge({ name: 'reborn_config_migration_keys_moved', help: 'Keys moved by each active migration', labelNames: ['id'] as const, registers: [registry] });
  const slotsLeft = new Gauge({ name: 'reborn_config_migration_slots_left', help: 'Slots left to move by each active migration', labelNames: ['id'] as const, registers: [registry] });
  const proxies = new Gauge({ name: 'reborn_config_proxies', help: 'Proxies by state', labelNames: ['state'] as const, registers: [registry] });
  const barriers = new Gauge({ name: 'reborn_config_barriers_waiting', help: 'Barrier actions still waiting for acks', registers: [registry] });
  const runner = new Gauge({ name: 'reborn_config_runner_alive', help: '1 when some migration runner leads the product', registers: [registry] });

  const refresh = async (admin: Admin): Promise<void> => {
    let o;
    try {
      o = await admin.overview();
    } catch (err) {
      etcdUp.set(0);
      throw err;
    }
    etcdUp.set(1);
    slots.reset();
    for (const [state, n] of Object.entries(o.slots.byState)) slots.set({ state }, n);
    groupSlots.reset();
    groupServers.reset();
    for (const g of o.groups) {
      groupSlots.set({ group: String(g.id) }, g.slots);
      groupServers.set({ group: String(g.id), role: 'master' }, g.servers.filter((s) => s.role === 'master').length);
      groupServers.set({ group: String(g.id), role: 'replica' }, g.servers.filter((s) => s.role === 'replica').length);
    }
    migrations.reset();
    keysMoved.reset();
    slotsLeft.reset();
    for (const t of o.migrations) {
      migrations.inc({ state: t.state });
      keysMoved.set({ id: t.id }, t.progress.keysMoved);
      slotsLeft.set({ id: t.id }, t.progress.slotsTotal - t.progress.slotsDone);
    }
    proxies.reset();
    for (const p of o.proxies) proxies.inc({ state: p.state });
    barriers.set(o.barriers.length);
    runner.set(o.runnerAlive ? 1 : 0);
  };
  return { requests, refresh };
}
