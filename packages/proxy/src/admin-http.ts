/**
 * The proxy's admin endpoint (`--admin-addr`): `/metrics`, `/healthz`, `/api/proxy` and
 * `/api/slots`, behind the HTTP guard (loopback/allowed hosts, no cross-site requests).
 *
 * Invariant: read-only. Nothing here starts, stops or changes anything, so the guard's
 * host and origin checks are all it needs (docs/security-http.md).
 */
import http from 'node:http';
import type { Logger } from 'pino';
import { joinAddr, splitAddr, type HttpGuard } from '@reborn/coordinator';
import type { ProxyMetrics } from './metrics.js';

export interface AdminEndpoint {
  readonly guard: HttpGuard;
  readonly metrics: ProxyMetrics;
  /** `/healthz`: the status code and body. */
  health(): { status: number; body: Record<string, unknown> };
  /** `/api/proxy`. */
  describe(): Record<string, unknown>;
}

async function handle(endpoint: AdminEndpoint, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (!endpoint.guard.admit(req, res)) return;
  const json = (status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  try {
    const path = (req.url ?? '/').split('?')[0];
    const metrics = endpoint.metrics;
    if (req.method === 'GET' && path === '/metrics') {
      const text = await metrics.render();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
    } else if (req.method === 'GET' && path === '/healthz') {
      const { status, body } = endpoint.health();
      json(status, body);
    } else if (req.method === 'GET' && path === '/api/proxy') {
      json(200, endpoint.describe());
    } else if (req.method === 'GET' && path === '/api/slots') {
      // Cumulative counters: the dashboard turns two reads into per-slot QPS.
      json(200, { at: Date.now(), commands: metrics.commands.totalCalls(), slotOps: Array.from(metrics.commands.slotOps) });
    } else {
      json(404, { error: `no such endpoint: ${req.method} ${path}` });
    }
  } catch (err) {
    json(500, { error: (err as Error).message });
  }
}

/** Listens on `addr` (exclusive: with --workers each worker has its own admin port). */
export function serveAdmin(addr: string, endpoint: AdminEndpoint, logger: Logger): Promise<http.Server> {
  const { host, port } = splitAddr(addr);
  const server = http.createServer((req, res) => void handle(endpoint, req, res));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      const bound = server.address();
      logger.info({ addr: joinAddr(host, typeof bound === 'object' && bound !== null ? bound.port : port) }, 'admin endpoint listening');
      resolve(server);
    });
  });
}
