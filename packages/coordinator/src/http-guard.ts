/**
 * The request guard every reborn HTTP server puts in front of its routes (the dashboard's REST
 * API, the agent's API, the proxy's admin port), so that a web page an operator happens to
 * open can neither change the cluster nor read it:
 *
 *   Host        must be an IP literal, `localhost`, or a name the operator allowed
 *               (--allow-host): a name an attacker controls could be DNS-rebound to us.
 *   Origin      when present, the origin the request was sent to (http or https + Host);
 *               `Sec-Fetch-Site: cross-site` is refused too (but top-level navigations).
 *   OPTIONS     always 405: a CORS preflight is never approved, no Access-Control-* header
 *               is ever sent.
 *   token       `Authorization: Bearer <token>` when one is configured (compared in constant
 *               time on SHA-256 hashes), except on the routes the caller calls open.
 *   Content-Type  POST, PUT, PATCH and DELETE need `application/json`, body or not: a
 *               cross-site page can only send that with a preflight, which is refused.
 *
 * Invariant: a request the guard refuses has been answered (JSON `{error, code}`, no route ran),
 * and every response that passed through it carries nosniff, no-store and DENY framing.
 *
 * Also here: the loopback test and the "no public bind without a token" rule the daemons share.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { CoordinatorError } from './errors.js';
import { splitAddr } from './models.js';

/**
 * A request the guard does not let through; `status` is its HTTP status.
 *
 * | code          | HTTP | meaning                                                        |
 * |---------------|------|----------------------------------------------------------------|
 * | EHOST         | 403  | the Host header names a host that is not allowed               |
 * | EORIGIN       | 403  | a foreign (or `null`) Origin, or Sec-Fetch-Site: cross-site    |
 * | EMETHOD       | 405  | OPTIONS: CORS preflights are never approved                    |
 * | EUNAUTHORIZED | 401  | missing or wrong bearer token                                  |
 * | ECONTENTTYPE  | 415  | a state-changing request without Content-Type: application/json|
 */
export class RequestRefusedError extends CoordinatorError {
  constructor(
    code: 'EHOST' | 'EORIGIN' | 'EMETHOD' | 'EUNAUTHORIZED' | 'ECONTENTTYPE',
    readonly status: number,
    message: string,
  ) {
    super(code, message);
    this.name = 'RequestRefusedError';
  }
}

/** Headers on every response that went through the guard. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
};

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** A host name as --allow-host takes it: DNS labels, no port, no scheme, no wildcard. */
const HOST_NAME_RE = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;

/** Lower case, without the one trailing dot DNS allows (`localhost.` is `localhost`). */
function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** What is wrong with each --allow-host value (empty: all fine). */
export function allowHostProblems(names: readonly string[], flag = '--allow-host'): string[] {
  const problems: string[] = [];
  for (const name of names) {
    if (!HOST_NAME_RE.test(normalizeName(name))) {
      problems.push(`${flag} wants host names without port or scheme (like dash.example.com), got ${JSON.stringify(name)}`);
    }
  }
  return problems;
}

/** A Host header's host: an IP literal (v4, or v6 in brackets) or a name; null when malformed. */
export function parseHostHeader(value: string): { kind: 'ip' | 'name'; host: string } | null {
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?$/.exec(value);
  if (v6) return isIP(v6[1]!) === 6 ? { kind: 'ip', host: v6[1]!.toLowerCase() } : null;
  const m = /^([^:[\]]+)(?::\d{1,5})?$/.exec(value);
  if (!m) return null;
  if (isIP(m[1]!) === 4) return { kind: 'ip', host: m[1]! };
  const name = normalizeName(m[1]!);
  return HOST_NAME_RE.test(name) ? { kind: 'name', host: name } : null;
}

/** Loopback: 127.0.0.0/8, ::1 (also v4-mapped), localhost; brackets around v6 allowed. */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (normalizeName(h) === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./i.test(h);
  return false;
}

/**
 * Why `addr` must not be listened on without a token, or null. Anyone who can reach a public
 * address could use the API, so a daemon refuses to start that way; `how` says how to set one.
 */
export function openBindRefusal(addr: string, token: string | null, how: { flag: string; env: string }): string | null {
  if (token !== null || isLoopbackHost(splitAddr(addr).host)) return null;
  return `refusing to serve the API on non-loopback address ${addr} without a token: set ${how.flag} (or ${how.env}), or listen on 127.0.0.1`;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export interface HttpGuardOptions {
  /** When set, requests need `Authorization: Bearer <token>` (but on open routes). */
  token?: string | null;
  /** Host names allowed in the Host header besides IP literals and localhost. */
  allowHosts?: readonly string[];
  /**
   * The address the server listens on: its host, when a name, is allowed too (the operator
   * chose it, and it is the name the daemon registers for others to call it by).
   */
  listenAddr?: string;
  /** `WWW-Authenticate: Bearer realm="…"` on 401 answers. */
  realm?: string;
}

export interface AdmitOptions {
  /** false: no token needed here (/healthz, the dashboard's static page). Default true. */
  needsToken?: boolean;
}

export class HttpGuard {
  private readonly tokenHash: Buffer | null;
  private readonly allowed: ReadonlySet<string>;
  private readonly realm: string;

  constructor(opts: HttpGuardOptions = {}) {
    this.tokenHash = opts.token === undefined || opts.token === null ? null : sha256(opts.token);
    const names = [...(opts.allowHosts ?? [])];
    if (opts.listenAddr !== undefined) names.push(splitAddr(opts.listenAddr).host);
    this.allowed = new Set(names.map(normalizeName));
    this.realm = opts.realm ?? 'reborn';
  }

  get hasToken(): boolean {
    return this.tokenHash !== null;
  }

  /** What refuses this request, or null when it may go on. Checks in the order of the header. */
  check(req: IncomingMessage, opts: AdmitOptions = {}): RequestRefusedError | null {
    const method = (req.method ?? 'GET').toUpperCase();
    const host = req.headers.host;
    if (host !== undefined) {
      const parsed = parseHostHeader(host);
      if (parsed === null || (parsed.kind === 'name' && parsed.host !== 'localhost' && !this.allowed.has(parsed.host))) {
        return new RequestRefusedError(
          'EHOST',
          403,
          `Host ${JSON.stringify(host)} is not allowed: use an IP address or localhost, or start the server with --allow-host ${parsed?.host ?? '<name>'}`,
        );
      }
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, host)) {
      return new RequestRefusedError('EORIGIN', 403, `Origin ${JSON.stringify(origin)} is not this server's origin: cross-origin requests are refused`);
    }
    if (req.headers['sec-fetch-site'] === 'cross-site' && !isTopLevelNavigation(req, method)) {
      return new RequestRefusedError('EORIGIN', 403, 'cross-site requests are refused (Sec-Fetch-Site: cross-site)');
    }
    if (method === 'OPTIONS') {
      return new RequestRefusedError('EMETHOD', 405, 'OPTIONS is not supported: cross-origin (CORS) requests are never allowed');
    }
    if (this.tokenHash !== null && opts.needsToken !== false && !this.tokenMatches(req.headers.authorization)) {
      return new RequestRefusedError('EUNAUTHORIZED', 401, 'missing or wrong bearer token (Authorization: Bearer <token>)');
    }
    if (STATE_CHANGING.has(method)) {
      const type = req.headers['content-type'];
      const media = (type ?? '').split(';')[0]!.trim().toLowerCase();
      if (media !== 'application/json') {
        return new RequestRefusedError(
          'ECONTENTTYPE',
          415,
          `${method} needs Content-Type: application/json (even without a body), got ${type === undefined ? 'none' : JSON.stringify(type)}`,
        );
      }
    }
    return null;
  }

  /**
   * Sets the security headers on `res`, then checks the request: true when it may go on;
   * false when it was refused and answered (the caller just returns).
   */
  admit(req: IncomingMessage, res: ServerResponse, opts: AdmitOptions = {}): boolean {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    const refusal = this.check(req, opts);
    if (refusal === null) return true;
    const text = JSON.stringify({ error: refusal.message, code: refusal.code }) + '\n';
    const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) };
    if (refusal.status === 401) headers['www-authenticate'] = `Bearer realm="${this.realm}"`;
    res.writeHead(refusal.status, headers);
    res.end(text);
    // An unread body is drained so the connection stays usable.
    req.resume();
    return false;
  }

  private tokenMatches(authorization: string | undefined): boolean {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    // Hashes have equal lengths, so timingSafeEqual neither throws nor leaks the token's length.
    return m !== null && timingSafeEqual(sha256(m[1]!), this.tokenHash!);
  }
}

/**
 * Whether `origin` is the origin a browser would have for a page served at `http(s)://<host>`.
 * https counts too: behind a TLS-terminating reverse proxy the browser's origin is https while
 * the Host it forwards is the same.
 */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || origin === 'null') return false;
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return false;
  }
  if (o.protocol !== 'http:' && o.protocol !== 'https:') return false;
  try {
    // Through URL so that default ports (:80 / :443) compare equal to none.
    return o.host === new URL(`${o.protocol}//${host}`).host;
  } catch {
    return false;
  }
}

/**
 * An operator following a link to the dashboard from another site (a wiki, a chat): a GET of a
 * top-level document reads nothing the attacker can see and changes nothing, so it is let in.
 * Frames are not (Sec-Fetch-Dest iframe), and the page forbids framing anyway.
 */
function isTopLevelNavigation(req: IncomingMessage, method: string): boolean {
  return (method === 'GET' || method === 'HEAD') && req.headers['sec-fetch-mode'] === 'navigate' && req.headers['sec-fetch-dest'] === 'document';
}
