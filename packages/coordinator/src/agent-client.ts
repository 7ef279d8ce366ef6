/**
 * A client of another reborn-agent's HTTP API, for the programs that ask an agent to start or
 * stop a redis-server on their behalf: reborn-config (`server add --agent`) and the HA
 * leader's replica healer. It lives here because config and agent never import each other.
 *
 * Invariant: every call is bounded by a timeout (a hung agent cannot hang the caller), and
 * every failure is one of two errors with a stable code: AgentUnreachableError (no HTTP answer
 * at all) or AgentRefusedError (the agent answered with an error: its own `{error, code}`,
 * its HTTP status and, for a failed start, the end of the server's log).
 */
import { CoordinatorError } from './errors.js';
import { splitAddr } from './models.js';
import type { AgentInfo } from './agents.js';

/** What POST /api/start_redis answers (the fields callers read). */
export interface StartedRedis {
  /** The app id on that agent (`redis-<port>`), for POST /api/stop. */
  id: string;
  addr: string;
  port: number;
  pid: number | null;
}

/** The agent did not answer (refused, timed out, not HTTP). */
export class AgentUnreachableError extends CoordinatorError {
  constructor(message: string, cause?: unknown) {
    super('EUNREACHABLE', message, { cause, retryable: true });
    this.name = 'AgentUnreachableError';
  }
}

/** The agent answered with an error; `code` is the agent's own (ENOPORT, ESTARTFAILED, …). */
export class AgentRefusedError extends CoordinatorError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    /** The end of the app's log, when a start failed. */
    readonly logTail = '',
  ) {
    super(/^E[A-Z_]+$/.test(code) ? code : 'EAGENT', message, { retryable: status >= 500 });
    this.name = 'AgentRefusedError';
  }
}

/** A start waits for the server to answer (up to 10 s in the agent): allow well beyond that. */
const START_TIMEOUT_MS = 30_000;
const CALL_TIMEOUT_MS = 15_000;

export class AgentClient {
  constructor(
    /** The agents' shared API token (REBORN_AGENT_TOKEN), sent as Bearer; null: none. */
    private readonly token: string | null,
  ) {}

  /**
   * Has `agent` start a redis-server on `port`, or on one it picks from its --redis-ports
   * range when `port` is absent. It binds the host the agent's API is registered under
   * (unless that is a wildcard address): the server must be reachable where the agent is.
   */
  async startRedis(agent: AgentInfo, port?: number): Promise<StartedRedis> {
    const host = serviceHost(agent.httpAddr);
    const body = { ...(port === undefined ? {} : { port }), ...(host === null ? {} : { host }) };
    const app = (await this.call(agent, 'POST', '/api/start_redis', body, START_TIMEOUT_MS)) as Partial<StartedRedis>;
    if (typeof app.id !== 'string' || typeof app.port !== 'number' || typeof app.addr !== 'string') {
      throw new AgentRefusedError(502, 'EAGENT', `agent ${agent.id} answered start_redis without an app id, port and addr`);
    }
    return { id: app.id, addr: app.addr, port: app.port, pid: typeof app.pid === 'number' ? app.pid : null };
  }

  /** POST /api/stop: the app stays known to the agent, stopped (it is not restarted). */
  async stop(agent: AgentInfo, appId: string): Promise<void> {
    await this.call(agent, 'POST', '/api/stop', { id: appId }, START_TIMEOUT_MS);
  }

  /** GET /api/apps: what the agent supervises. */
  async apps(agent: AgentInfo): Promise<Array<{ id: string; kind: string; state: string }>> {
    const list = await this.call(agent, 'GET', '/api/apps', undefined, CALL_TIMEOUT_MS);
    if (!Array.isArray(list)) throw new AgentRefusedError(502, 'EAGENT', `agent ${agent.id} answered /api/apps with something that is not a list`);
    return list as Array<{ id: string; kind: string; state: string }>;
  }

  private async call(agent: AgentInfo, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (method === 'POST') headers['content-type'] = 'application/json';
    if (this.token !== null) headers['authorization'] = `Bearer ${this.token}`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(`http://${agent.httpAddr}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const why = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
      throw new AgentUnreachableError(`agent ${agent.id} at ${agent.httpAddr} is unreachable: ${why}`, err);
    }
    let parsed: unknown = null;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // not JSON: reported below with the status
    }
    if (res.ok) return parsed;
    const o = (parsed ?? {}) as { error?: unknown; code?: unknown; logTail?: unknown };
    const message = typeof o.error === 'string' ? o.error : `HTTP ${res.status}`;
    const code = typeof o.code === 'string' ? o.code : 'EAGENT';
    throw new AgentRefusedError(res.status, code, `agent ${agent.id} refused ${method} ${path}: ${message}`, typeof o.logTail === 'string' ? o.logTail : '');
  }
}

/** The host a server started through `httpAddr`'s agent should bind, or null for the agent's default. */
function serviceHost(httpAddr: string): string | null {
  const { host } = splitAddr(httpAddr);
  // A wildcard is where the agent listens, not an address anyone can reach a server at.
  return host === '0.0.0.0' || host === '::' ? null : host;
}
