/**
 * The agent's HTTP API (the agent part of docs/architecture.md §5 "Supervisor"). JSON in, JSON out;
 * every failure is `{error, code}` with a 4xx/5xx status saying what is wrong.
 *
 *   POST /api/start_redis   {port?, args?, dataDir?, host?}  201 app (no port: one of --redis-ports)
 *   POST /api/start_proxy   {addr, adminAddr, id?, args?}     201 app
 *   POST /api/stop          {id}                              200 app (state stopped)
 *   GET  /api/apps                                            200 [app, …]
 *   GET  /api/ha                                              200 leadership and server health
 *   GET  /api/events?limit=N                                  200 [event, …] (from etcd)
 *   GET  /api/check_redis?addr=host:port                      200 {ok:true} | 503 {ok:false}
 *   GET  /healthz                                             200 {ok, id, …}
 *   GET  /metrics                                             Prometheus text
 *
 * Every request passes the shared HttpGuard first (coordinator/http-guard.ts): Host an IP
 * literal, localhost or an --allow-host name; no foreign Origin; no CORS preflight; POST only
 * with `Content-Type: application/json`; and, with a token, `Authorization: Bearer <token>` on
 * every route but /healthz. listen() refuses a non-loopback address without a token.
 */
import http from 'node:http';
import type { Logger } from 'pino';
import { HttpGuard, ValidationError, isValidAddr, openBindRefusal } from '@reborn/coordinator';
import { AgentError, BadRequestError, StartFailedError } from './errors.js';

export type Handler = (req: { body: unknown; query: URLSearchParams }) => Promise<{ status?: number; body: unknown; type?: string }>;

interface Route {
  method: 'GET' | 'POST';
  handler: Handler;
}

const MAX_BODY = 64 * 1024;

export interface HttpApiSecurity {
  /** Bearer token of every route but /healthz; null: none (then only loopback is served). */
  token: string | null;
  /** Host names allowed in the Host header besides IP literals, localhost and the listen host. */
  allowHosts: readonly string[];
}

/** Routes anyone who reaches the port may call: /healthz says only whether the agent runs. */
const OPEN_PATHS = new Set(['/healthz']);

export class HttpApi {
  private readonly routes = new Map<string, Route[]>();
  private server: http.Server | null = null;
  private readonly log: Logger;
  // Replaced by listen(), which knows the host name it serves under.
  private guard: HttpGuard;

  constructor(
    logger: Logger,
    private readonly security: HttpApiSecurity = { token: null, allowHosts: [] },
  ) {
    this.log = logger.child({ component: 'http' });
    this.guard = new HttpGuard({ ...security, realm: 'reborn-agent' });
  }

  on(method: 'GET' | 'POST', path: string, handler: Handler): this {
    const list = this.routes.get(path) ?? [];
    list.push({ method, handler });
    this.routes.set(path, list);
    return this;
  }

  /** Listens on `host:port`; resolves with the bound address (port 0 picks one). */
  listen(addr: string): Promise<string> {
    const refusal = openBindRefusal(addr, this.security.token, { flag: '--token', env: 'REBORN_AGENT_TOKEN' });
    if (refusal !== null) return Promise.reject(new ValidationError(refusal));
    this.guard = new HttpGuard({ ...this.security, realm: 'reborn-agent', listenAddr: addr });
    const i = addr.lastIndexOf(':');
    const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(addr.slice(i + 1));
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5000;
    server.requestTimeout = 60_000;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        const a = server.address();
        const bound = a && typeof a === 'object' ? `${host.includes(':') ? `[${host}]` : host}:${a.port}` : addr;
        resolve(bound);
      });
    });
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const send = (status: number, body: unknown, type = 'application/json'): void => {
      const text = type === 'application/json' ? JSON.stringify(body) + '\n' : String(body);
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://agent');
      if (!this.guard.admit(req, res, { needsToken: !OPEN_PATHS.has(url.pathname) })) return;
      const routes = this.routes.get(url.pathname);
      if (!routes) {
        send(404, { error: `no such endpoint: ${req.method} ${url.pathname}`, code: 'ENOTFOUND' });
        return;
      }
      const route = routes.find((r) => r.method === req.method);
      if (!route) {
        res.setHeader('allow', routes.map((r) => r.method).join(', '));
        send(405, { error: `${req.method} is not allowed on ${url.pathname}; use ${routes.map((r) => r.method).join(' or ')}`, code: 'EMETHOD' });
        return;
      }
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      const out = await route.handler({ body, query: url.searchParams });
      send(out.status ?? 200, out.body, out.type);
    } catch (err) {
      if (err instanceof AgentError) {
        if (err.status >= 500) this.log.warn({ code: err.code, err: err.message, url: req.url }, 'request failed');
        send(err.status, { error: err.message, code: err.code, ...(err instanceof StartFailedError ? { logTail: err.logTail } : {}) });
        return;
      }
      this.log.error({ err: (err as Error).message, url: req.url }, 'request failed unexpectedly');
      send(500, { error: (err as Error).message, code: 'EINTERNAL' });
    }
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new BadRequestError(`the body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') throw new BadRequestError('the body must be a JSON object; it is empty');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadRequestError(`the body is not valid JSON: ${(err as Error).message}`);
  }
}

export function queryAddr(query: URLSearchParams, name: string): string {
  const v = query.get(name);
  if (v === null || v === '') throw new BadRequestError(`missing query parameter ${name}`);
  if (!isValidAddr(v)) throw new BadRequestError(`${name} must be host:port, got ${JSON.stringify(v)}`);
  return v;
}

export function queryInt(query: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const v = query.get(name);
  if (v === null || v === '') return dflt;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new BadRequestError(`${name} must be an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return n;
}
