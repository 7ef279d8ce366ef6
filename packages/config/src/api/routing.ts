/**
 * The route table's types and the dispatch of one request to its route: match the path,
 * read the body, parse the path parameters, check the body against the route's schema, run
 * the handler. Invariant: a route's handler only ever sees parameters its parsers accepted and
 * a body its schema accepted; each failure is a clear 4xx (`HttpError` or ValidationError),
 * checked in this order: body size/JSON, path parameters in declaration order, body fields.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { ValidationError, type Store } from '@reborn/coordinator';
import { CoordinatorError } from '../errors.js';
import type { Admin } from '../servers.js';
import type { Stats } from '../stats.js';
import { validateBody, type BodySchema } from './schema.js';

/** An error with its own HTTP status (405, 409, 413, 404 of the routing itself). */
export class HttpError extends CoordinatorError {
  constructor(
    code: string,
    readonly status: number,
    message: string,
  ) {
    super(code, message);
    this.name = 'HttpError';
  }
}

/** What the route handlers work with: one of each per API. */
export interface ApiDeps {
  store: Store;
  admin: Admin;
  /** One Stats for every live-numbers route (it holds the proxies' rate histories). */
  stats: Stats;
  logger: Logger;
  redisPassword: string | null;
}

export interface RouteContext {
  /** The path parameters, as the route's parsers returned them. */
  params: Record<string, unknown>;
  /** The body as the route's schema accepted it ({} for a route without a schema). */
  body: Record<string, unknown>;
}

export interface Reply {
  status?: number;
  body: unknown;
}

export type Handler = (ctx: RouteContext) => Promise<Reply>;

/** Turns one URL-decoded path segment into a parameter value, or throws ValidationError. */
export type ParamParser = (text: string) => unknown;

export interface Route {
  method: string;
  /** `/api/groups/:gid` — `:name` segments capture one path segment, URL-decoded. Also the metrics label. */
  path: string;
  /** Parsers of the `:name` segments, run in this order (a route without one keeps the text). */
  params?: Readonly<Record<string, ParamParser>>;
  /** The body's schema; a route without one ignores its body. */
  schema?: BodySchema;
  handler: Handler;
}

/** A path parameter that must be an integer in min..max; `what` names it in the message. */
export function intParam(what: string, min: number, max: number): ParamParser {
  return (text) => {
    if (!/^\d{1,6}$/.test(text) || Number(text) < min || Number(text) > max) {
      throw new ValidationError(`invalid ${what} ${JSON.stringify(text)} in the path: want an integer ${min}..${max}`);
    }
    return Number(text);
  };
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

/** `/api/groups/1/servers/a%3A1` → ['api', 'groups', '1', 'servers', 'a:1'] (a bad escape stays as is). */
function pathSegments(path: string): string[] {
  return path.split('/').slice(1).map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
}

/**
 * Runs the first route whose pattern and method match; returns the route's pattern and its
 * reply. Throws 405 when only another method's route matches the path, 404 when none does.
 */
export async function dispatch(
  routes: readonly Route[],
  req: IncomingMessage,
  method: string,
  path: string,
): Promise<{ route: string; reply: Reply }> {
  const segments = pathSegments(path);
  let methodMismatch = false;
  for (const route of routes) {
    const raw = matchRoute(route, segments);
    if (raw === null) continue;
    if (route.method !== method) {
      methodMismatch = true;
      continue;
    }
    const reqBody = method === 'POST' || method === 'PUT' || method === 'PATCH' ? await readBody(req) : {};
    const params: Record<string, unknown> = { ...raw };
    for (const [name, parse] of Object.entries(route.params ?? {})) params[name] = parse(raw[name]!);
    const body = route.schema ? validateBody(reqBody, route.schema) : {};
    return { route: route.path, reply: await route.handler({ params, body }) };
  }
  if (methodMismatch) throw new HttpError('EMETHOD', 405, `method ${method} not allowed on ${path}`);
  throw new HttpError('ENOTFOUND', 404, `no route ${method} ${path}`);
}
