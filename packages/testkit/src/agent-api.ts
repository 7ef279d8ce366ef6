/**
 * A client of reborn-agent's HTTP API for launchers (`npm start`): list the supervised apps,
 * start a redis-server or a reborn-proxy, stop one. And, for when the agent itself is gone,
 * the apps its state file says it left running.
 *
 * Invariant: every call is bounded (a hung agent cannot hang the launcher), and a refusal
 * surfaces as an AgentApiError carrying the agent's own `{error, code}` and HTTP status, so
 * callers branch on the code, never on the message.
 */
import fs from 'node:fs';
import path from 'node:path';

/** What GET /api/apps shows for one app (the fields a launcher reads). */
export interface AgentAppView {
  id: string;
  kind: 'redis' | 'proxy';
  pid: number | null;
  port: number;
  addr: string;
  adminAddr?: string;
  state: 'running' | 'restarting' | 'stopped';
  restarts: number;
  logFile: string;
  dataDir?: string;
  note?: string;
}

export interface StartRedisBody {
  port: number;
  /** Relative to the agent's data dir, or absolute inside it. */
  dataDir?: string;
  args?: string[];
}

export interface StartProxyBody {
  addr: string;
  adminAddr: string;
  id?: string;
  args?: string[];
}

/** The agent refused a request (its status and `code`), or could not be reached (status 0, code EUNREACHABLE). */
export class AgentApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The end of the app's log, when a start failed. */
    readonly logTail = '',
  ) {
    super(message);
    this.name = 'AgentApiError';
  }
}

/** Starting an app waits until it answers (up to 15 s for a proxy in the agent), so allow more. */
const CALL_TIMEOUT_MS = 60_000;

export class AgentApi {
  constructor(
    /** `http://host:port` of the agent. */
    readonly baseUrl: string,
    private readonly token: string | null = null,
  ) {}

  apps(): Promise<AgentAppView[]> {
    return this.call('GET', '/api/apps') as Promise<AgentAppView[]>;
  }

  startRedis(body: StartRedisBody): Promise<AgentAppView> {
    return this.call('POST', '/api/start_redis', body) as Promise<AgentAppView>;
  }

  startProxy(body: StartProxyBody): Promise<AgentAppView> {
    return this.call('POST', '/api/start_proxy', body) as Promise<AgentAppView>;
  }

  /** POST /api/stop: resolves once the process has exited (the agent SIGKILLs it after 10 s). */
  stop(id: string): Promise<AgentAppView> {
    return this.call('POST', '/api/stop', { id }) as Promise<AgentAppView>;
  }

  private async call(method: 'GET' | 'POST', route: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = {};
    // The agent refuses a POST without this content type.
    if (method === 'POST') headers['content-type'] = 'application/json';
    if (this.token !== null) headers['authorization'] = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${route}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
    } catch (err) {
      throw new AgentApiError(0, 'EUNREACHABLE', `reborn-agent at ${this.baseUrl}: ${method} ${route}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    if (res.ok) return parsed;
    const e = (parsed ?? {}) as { error?: string; code?: string; logTail?: string };
    const why = e.error ?? `HTTP ${res.status}: ${text.slice(0, 200)}`;
    // A failed start's log tail usually says why (a port taken, a bad AOF file): keep it in the message.
    const tail = e.logTail ? `\n${e.logTail.trimEnd()}` : '';
    throw new AgentApiError(res.status, e.code ?? 'EHTTP', `reborn-agent: ${method} ${route}: ${why}${tail}`, e.logTail ?? '');
  }
}

/** One app of the agent's state file <data-dir>/agent-state.json, as far as a launcher needs it. */
export interface StateFileApp {
  id: string;
  pid: number | null;
  state: string;
  spec: { kind: 'redis'; port: number } | { kind: 'proxy'; addr: string };
}

/**
 * The apps the agent's state file names as not stopped, with a pid: what an agent that died
 * (or was killed) left running. Empty when there is no readable state file.
 */
export function appsLeftInStateFile(agentDataDir: string): StateFileApp[] {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(agentDataDir, 'agent-state.json'), 'utf8')) as { apps?: StateFileApp[] };
    return (v.apps ?? []).filter((a) => a.state !== 'stopped' && typeof a.pid === 'number' && typeof a.spec === 'object' && a.spec !== null);
  } catch {
    return [];
  }
}

/**
 * Whether `pid` still runs the app the state file describes (its command line names the
 * program and the port): a pid reused by another program since must never be signalled.
 */
export function stillRunsApp(pid: number, app: StateFileApp): boolean {
  let cmdline: string;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return false;
  }
  if (app.spec.kind === 'redis') return cmdline.includes('redis-server') && (cmdline.includes(`:${app.spec.port}`) || cmdline.includes(`--port ${app.spec.port}`));
  return cmdline.includes('reborn-proxy') && cmdline.includes(app.spec.addr);
}
