/**
 * The API's listening socket: checks the `host:port` to listen on (and refuses an open bind
 * without a token), starts the node:http server, and closes it. Invariant: nothing listens
 * beyond loopback unless a token is configured (openBindRefusal), and close() resolves once
 * the server is closed, ending idle keep-alive connections at once and busy ones after 2 s.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { ValidationError, openBindRefusal } from '@reborn/coordinator';

export interface ApiServer {
  /** `host:port` actually bound (port 0 resolved). */
  readonly address: string;
  readonly port: number;
  readonly server: Server;
  /** Stops accepting, ends idle keep-alive connections, resolves when closed. */
  close(): Promise<void>;
}

/** `host:port` (IPv6 in brackets) → the host to bind and the port; throws ValidationError. */
export function checkListenAddr(addr: string, token: string | null): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const rawHost = addr.slice(0, i);
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !/^\d{1,5}$/.test(addr.slice(i + 1)) || port > 65535) {
    throw new ValidationError(`invalid HTTP address ${JSON.stringify(addr)}: want host:port`);
  }
  const host = rawHost.startsWith('[') && rawHost.endsWith(']') ? rawHost.slice(1, -1) : rawHost;
  const refusal = openBindRefusal(addr, token, { flag: '--token', env: 'REBORN_DASHBOARD_TOKEN' });
  if (refusal !== null) throw new ValidationError(refusal);
  return { host, port };
}

export async function startServer(
  host: string,
  port: number,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<ApiServer> {
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
}
