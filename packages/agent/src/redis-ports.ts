/**
 * POST /api/start_redis without a port: the agent picks one from its --redis-ports range.
 *
 * Invariant: a picked port is one no app of this agent has ever used (a stopped app's data
 * dir `redis-<port>` still holds its data, and a fresh server must start empty) and that this
 * host could bind a moment ago. Between that probe and redis-server's own bind another process
 * may take the port; the start then fails with the server's log, like any failed start, and
 * the caller may ask again. Two picks racing inside this agent cannot both win a port: the
 * supervisor refuses the second (AppExistsError) and the next port is tried.
 */
import { createServer } from 'node:net';
import { isValidAddr } from '@reborn/coordinator';
import { asBody } from './app-requests.js';
import { AgentError, AppExistsError, BadRequestError } from './errors.js';
import type { PortRange } from './options.js';
import type { AppView } from './supervisor.js';

/** No port of the range is free: 409, the request itself was fine. */
export class NoFreePortError extends AgentError {
  constructor(range: PortRange) {
    super('ENOPORT', `no free port in this agent's --redis-ports ${range.first}-${range.last}`, 409);
    this.name = 'NoFreePortError';
  }
}

/** How often a pick that lost a race inside this agent tries the next port. */
const MAX_PICKS = 5;

export interface RedisStarter {
  startRedis(body: unknown): Promise<AppView>;
  list(): AppView[];
}

/** Starts a redis-server on the body's port, or on a free one of `range` when it names none. */
export async function startRedisAnyPort(supervisor: RedisStarter, range: PortRange | null, body: unknown): Promise<AppView> {
  const o = asBody(body);
  if (o['port'] !== undefined) return supervisor.startRedis(body);
  if (range === null) throw new BadRequestError('missing port: this agent has no --redis-ports range to pick one from');
  const host = o['host'] === undefined ? '127.0.0.1' : o['host'];
  if (typeof host !== 'string' || !isValidAddr(`${host}:1`)) throw new BadRequestError(`host must be a host name or IP address, got ${JSON.stringify(host)}`);
  const taken = new Set(supervisor.list().flatMap((a) => [a.port, ...(a.adminAddr ? [Number(a.adminAddr.slice(a.adminAddr.lastIndexOf(':') + 1))] : [])]));
  for (let pick = 1; pick <= MAX_PICKS; pick++) {
    const port = await firstBindablePort(range, host, taken);
    if (port === null) throw new NoFreePortError(range);
    try {
      return await supervisor.startRedis({ ...o, port });
    } catch (err) {
      if (!(err instanceof AppExistsError)) throw err;
      taken.add(port);
    }
  }
  throw new NoFreePortError(range);
}

/** The lowest port of `range` not in `taken` that `host` can bind now, or null. */
export async function firstBindablePort(range: PortRange, host: string, taken: ReadonlySet<number>): Promise<number | null> {
  for (let port = range.first; port <= range.last; port++) {
    if (!taken.has(port) && (await canBind(host, port))) return port;
  }
  return null;
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
