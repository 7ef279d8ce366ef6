import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HttpGuard,
  RequestRefusedError,
  allowHostProblems,
  isLoopbackHost,
  openBindRefusal,
  parseHostHeader,
} from './http-guard.js';

/** The parts of a request the guard reads. */
function req(method: string, headers: Record<string, string> = {}): IncomingMessage {
  return { method, headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])) } as unknown as IncomingMessage;
}

const codeOf = (r: RequestRefusedError | null): string | null => (r === null ? null : `${r.status} ${r.code}`);

describe('parseHostHeader', () => {
  it('tells IP literals from names and refuses malformed values', () => {
    expect(parseHostHeader('127.0.0.1:18087')).toEqual({ kind: 'ip', host: '127.0.0.1' });
    expect(parseHostHeader('10.1.2.3')).toEqual({ kind: 'ip', host: '10.1.2.3' });
    expect(parseHostHeader('[::1]:80')).toEqual({ kind: 'ip', host: '::1' });
    expect(parseHostHeader('[FE80::1]')).toEqual({ kind: 'ip', host: 'fe80::1' });
    expect(parseHostHeader('Dash.Example.COM.:443')).toEqual({ kind: 'name', host: 'dash.example.com' });
    expect(parseHostHeader('localhost')).toEqual({ kind: 'name', host: 'localhost' });
    for (const bad of ['', '::1', '[::1', '[nope]:1', 'a b', 'host:port', 'evil.example:1:2', 'x'.repeat(300)]) expect(parseHostHeader(bad)).toBeNull();
  });
});

describe('HttpGuard.check', () => {
  const open = new HttpGuard({ allowHosts: ['dash.example.com'] });

  it('Host: IP literals, localhost and allowed names pass; any other name is refused', () => {
    for (const host of ['127.0.0.1:1', '10.0.0.5:18087', '[::1]:1', 'localhost:18087', 'LOCALHOST', 'dash.example.com', 'DASH.example.com.:8080']) {
      expect(codeOf(open.check(req('GET', { host }))), host).toBeNull();
    }
    for (const host of ['evil.example', 'evil.example:18087', 'localhost.evil.example', 'dash.example.com.evil.example', '127.0.0.1.nip.io', 'a b']) {
      expect(codeOf(open.check(req('GET', { host }))), host).toBe('403 EHOST');
    }
    expect(open.check(req('GET', { host: 'evil.example:1' }))!.message).toBe(
      'Host "evil.example:1" is not allowed: use an IP address or localhost, or start the server with --allow-host evil.example',
    );
    // No Host at all: not a browser (HTTP/1.0 tools); nothing to rebind.
    expect(open.check(req('GET'))).toBeNull();
  });

  it('the listen address names an allowed host', () => {
    const g = new HttpGuard({ listenAddr: 'proxy-1.internal:19001' });
    expect(g.check(req('GET', { host: 'proxy-1.internal:19001' }))).toBeNull();
    expect(codeOf(g.check(req('GET', { host: 'proxy-2.internal:19001' })))).toBe('403 EHOST');
  });

  it('Origin must be the origin of the Host the request came to', () => {
    const host = '127.0.0.1:18087';
    expect(open.check(req('GET', { host, origin: 'http://127.0.0.1:18087' }))).toBeNull();
    // Behind a TLS-terminating reverse proxy the browser's origin is https, the Host the same.
    expect(open.check(req('GET', { host: 'dash.example.com', origin: 'https://dash.example.com' }))).toBeNull();
    expect(open.check(req('GET', { host: 'dash.example.com:80', origin: 'http://dash.example.com' }))).toBeNull();
    for (const origin of ['http://evil.example', 'null', 'http://127.0.0.1:18088', 'http://localhost:18087', 'file://', 'ftp://127.0.0.1:18087', 'garbage']) {
      expect(codeOf(open.check(req('POST', { host, origin, 'content-type': 'application/json' }))), origin).toBe('403 EORIGIN');
    }
    expect(codeOf(open.check(req('GET', { origin: 'http://127.0.0.1:18087' })))).toBe('403 EORIGIN');
  });

  it('Sec-Fetch-Site: cross-site is refused, but for a top-level navigation (a link to the page)', () => {
    const host = '127.0.0.1:1';
    expect(codeOf(open.check(req('GET', { host, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' })))).toBe('403 EORIGIN');
    expect(codeOf(open.check(req('GET', { host, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'iframe' })))).toBe('403 EORIGIN');
    expect(codeOf(open.check(req('POST', { host, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'content-type': 'application/json' })))).toBe(
      '403 EORIGIN',
    );
    expect(open.check(req('GET', { host, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }))).toBeNull();
    expect(open.check(req('GET', { host, 'sec-fetch-site': 'same-origin' }))).toBeNull();
  });

  it('state-changing methods need Content-Type: application/json, with or without a body', () => {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      expect(codeOf(open.check(req(method))), method).toBe('415 ECONTENTTYPE');
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', 'text/json']) {
        expect(codeOf(open.check(req(method, { 'content-type': type }))), `${method} ${type}`).toBe('415 ECONTENTTYPE');
      }
      expect(open.check(req(method, { 'content-type': 'application/json' }))).toBeNull();
      expect(open.check(req(method, { 'content-type': 'Application/JSON; charset=utf-8' }))).toBeNull();
    }
    expect(open.check(req('POST', { 'content-type': 'text/plain' }))!.message).toBe('POST needs Content-Type: application/json (even without a body), got "text/plain"');
    expect(open.check(req('GET'))).toBeNull();
  });

  it('OPTIONS (a CORS preflight) is never approved', () => {
    expect(codeOf(open.check(req('OPTIONS', { host: '127.0.0.1:1' })))).toBe('405 EMETHOD');
    expect(codeOf(open.check(req('OPTIONS', { host: '127.0.0.1:1', origin: 'http://evil.example' })))).toBe('403 EORIGIN');
  });

  it('bearer token: required unless the route is open; wrong, missing or malformed → 401', () => {
    const g = new HttpGuard({ token: 'secret-token-1' });
    expect(g.hasToken).toBe(true);
    expect(g.check(req('GET', { authorization: 'Bearer secret-token-1' }))).toBeNull();
    expect(g.check(req('GET', { authorization: 'bearer   secret-token-1 ' }))).toBeNull();
    for (const authorization of [undefined, '', 'Bearer', 'Bearer secret-token-2', 'Bearer secret-token-1x', 'Basic c2VjcmV0', 'secret-token-1']) {
      expect(codeOf(g.check(req('GET', authorization === undefined ? {} : { authorization }))), String(authorization)).toBe('401 EUNAUTHORIZED');
    }
    expect(g.check(req('GET'), { needsToken: false })).toBeNull();
    // Host and Origin are checked before the token: a foreign page learns nothing about it.
    expect(codeOf(g.check(req('GET', { host: 'evil.example' })))).toBe('403 EHOST');
    // The token is checked before the content type.
    expect(codeOf(g.check(req('POST')))).toBe('401 EUNAUTHORIZED');
    expect(codeOf(g.check(req('POST', { authorization: 'Bearer secret-token-1' })))).toBe('415 ECONTENTTYPE');
    expect(new HttpGuard({ token: null }).hasToken).toBe(false);
  });
});

describe('HttpGuard.admit over real HTTP', () => {
  let server: Server;
  let base: string;
  let routed = 0;

  beforeAll(async () => {
    const guard = new HttpGuard({ token: 'secret-token-1', realm: 'test' });
    server = createServer((rq, rs) => {
      if (!guard.admit(rq, rs, { needsToken: rq.url !== '/open' })) return;
      routed++;
      rs.writeHead(200, { 'content-type': 'application/json' });
      rs.end('{"ok":true}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('answers a refusal with {error, code}, its status and the security headers; the route never runs', async () => {
    const before = routed;
    const res = await fetch(`${base}/x`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="test"');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(await res.json()).toEqual({ error: 'missing or wrong bearer token (Authorization: Bearer <token>)', code: 'EUNAUTHORIZED' });
    const pre = await fetch(`${base}/x`, { method: 'OPTIONS', headers: { origin: base, 'access-control-request-method': 'POST' } });
    expect(pre.status).toBe(405);
    expect([...pre.headers.keys()].filter((k) => k.startsWith('access-control-'))).toEqual([]);
    expect(routed).toBe(before);
  });

  it('lets an admitted request through with the security headers', async () => {
    const res = await fetch(`${base}/open`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    const authed = await fetch(`${base}/x`, { method: 'DELETE', headers: { authorization: 'Bearer secret-token-1', 'content-type': 'application/json' } });
    expect(authed.status).toBe(200);
  });
});

describe('helpers', () => {
  it('isLoopbackHost', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '10.0.0.1', '::', '[::]', 'example.com', '']) expect(isLoopbackHost(h), h).toBe(false);
  });

  it('openBindRefusal: a public address needs a token', () => {
    const how = { flag: '--token', env: 'REBORN_X_TOKEN' };
    expect(openBindRefusal('127.0.0.1:1', null, how)).toBeNull();
    expect(openBindRefusal('[::1]:1', null, how)).toBeNull();
    expect(openBindRefusal('0.0.0.0:1', 'a-token-of-8', how)).toBeNull();
    expect(openBindRefusal('0.0.0.0:18090', null, how)).toBe(
      'refusing to serve the API on non-loopback address 0.0.0.0:18090 without a token: set --token (or REBORN_X_TOKEN), or listen on 127.0.0.1',
    );
    expect(openBindRefusal('[::]:1', null, how)).not.toBeNull();
  });

  it('allowHostProblems', () => {
    expect(allowHostProblems(['dash.example.com', 'reborn-dashboard', 'Dash.Example.com.'])).toEqual([]);
    expect(allowHostProblems(['http://x', 'x:80', '*.example.com', ''])).toEqual([
      '--allow-host wants host names without port or scheme (like dash.example.com), got "http://x"',
      '--allow-host wants host names without port or scheme (like dash.example.com), got "x:80"',
      '--allow-host wants host names without port or scheme (like dash.example.com), got "*.example.com"',
      '--allow-host wants host names without port or scheme (like dash.example.com), got ""',
    ]);
  });
});
