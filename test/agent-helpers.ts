/**
 * Helpers for the reborn-agent end-to-end tests (not a test file itself): launching the real
 * binary on a free port, calling its API, reading its JSON logs, a steady INCR write load
 * that measures outages and lost writes, and cleanup of the processes the agent spawned.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { ExitedEarlyError, ManagedProcess, healthzFrom, freePort, tempDir, waitFor } from '@reborn/testkit';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const AGENT_BIN = `${REPO_ROOT}packages/agent/bin/reborn-agent.js`;

export interface StartAgentOptions {
  etcd: string;
  product: string;
  id?: string;
  dataDir?: string;
  args?: readonly string[];
  /** Reuse an address (restarting "the same" agent). */
  httpAddr?: string;
  /** --token: then api() sends it as a bearer token. */
  token?: string;
}

export interface ApiResult {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export class AgentProcess {
  constructor(
    readonly proc: ManagedProcess,
    readonly httpAddr: string,
    readonly id: string,
    readonly dataDir: string,
    readonly token: string | null = null,
  ) {}

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.running;
  }

  async api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiResult> {
    const headers: Record<string, string> = {};
    // The agent refuses a POST without this content type, body or not.
    if (method === 'POST') headers['content-type'] = 'application/json';
    if (this.token !== null) headers['authorization'] = `Bearer ${this.token}`;
    const res = await fetch(`http://${this.httpAddr}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
  }

  /** The agent's pino records so far. */
  records(): Record<string, unknown>[] {
    return this.proc.lines.flatMap((l) => {
      if (!l.startsWith('{')) return [];
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  async isLeader(): Promise<boolean> {
    const r = await this.api('GET', '/api/ha');
    return r.status === 200 && r.body.leader === true;
  }

  /** SIGTERM: a graceful stop (supervised apps keep running). */
  async stop(): Promise<void> {
    await this.proc.terminate('SIGTERM');
  }

  async kill(): Promise<void> {
    await this.proc.terminate('SIGKILL');
  }
}

export async function startAgent(opts: StartAgentOptions): Promise<AgentProcess> {
  const dataDir = opts.dataDir ?? (await tempDir('reborn-agent-')).dir;
  for (let attempt = 1; ; attempt++) {
    const httpAddr = opts.httpAddr ?? `127.0.0.1:${await freePort()}`;
    const id = opts.id ?? `agent-${httpAddr.split(':')[1]}`;
    const proc = new ManagedProcess({
      name: `reborn-agent ${id}`,
      command: process.execPath,
      args: [
        AGENT_BIN, '--http-addr', httpAddr, '--etcd', opts.etcd, '--product', opts.product, '--id', id, '--data-dir', dataDir,
        ...(opts.token === undefined ? [] : ['--token', opts.token]),
        ...(opts.args ?? []),
      ],
      cwd: REPO_ROOT,
    });
    const agent = new AgentProcess(proc, httpAddr, id, dataDir, opts.token ?? null);
    try {
      await proc.waitReady(
        'healthy /healthz',
        () => healthzFrom(`http://${httpAddr}/healthz`, proc.pid),
        15_000,
      );
      return agent;
    } catch (err) {
      await proc.terminate('SIGKILL');
      const portRace = err instanceof ExitedEarlyError && proc.lines.some((l) => l.includes('EADDRINUSE'));
      if (!portRace || opts.httpAddr !== undefined || attempt >= 3) throw err;
    }
  }
}

/** Kills (SIGKILL) processes the agents spawned, if they still run the expected program. */
export function killApps(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes('redis-server') || cmdline.includes('reborn-proxy')) process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** INFO replication of a server, as a map. */
export async function replication(port: number): Promise<Map<string, string>> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const text = await c.info('replication');
    return new Map(
      text
        .split(/\r?\n/)
        .filter((l) => l.includes(':'))
        .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)] as [string, string]),
    );
  } finally {
    c.disconnect();
  }
}

// -----------------------------------------------------------------------------------------
// A steady write load: one INCR in flight per key, each key on its own connection (so a
// request stuck on a dead group cannot delay another group's replies).

interface KeyStats {
  key: string;
  group: number;
  acked: number;
  errors: number;
  /** Highest value an INCR reply returned. */
  maxReply: number;
  /** Acknowledged increments that a later reply shows were lost (the counter went back). */
  regressions: number;
}

export interface Outage {
  group: number;
  firstErrorAt: number;
  recoveredAt: number | null;
  errors: number;
  firstError: string;
}

export class WriteLoad {
  readonly stats: KeyStats[];
  readonly outages: Outage[] = [];
  private readonly clients: Redis[] = [];
  private stopped = false;
  private loops: Promise<void>[] = [];
  private readonly open = new Map<number, Outage>();
  readonly lastOkAt = new Map<number, number>();

  constructor(
    private readonly port: number,
    keys: { key: string; group: number }[],
    private readonly pauseMs = 2,
  ) {
    this.stats = keys.map((k) => ({ ...k, acked: 0, errors: 0, maxReply: 0, regressions: 0 }));
  }

  start(): void {
    this.loops = this.stats.map((s) => this.loop(s));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    for (const c of this.clients) c.disconnect();
  }

  /** Acknowledged writes of `group` after time `t`. */
  succeededSince(group: number, t: number): boolean {
    return (this.lastOkAt.get(group) ?? 0) > t;
  }

  private async loop(s: KeyStats): Promise<void> {
    const c = new Redis({ host: '127.0.0.1', port: this.port, maxRetriesPerRequest: 0, enableReadyCheck: false, commandTimeout: 5000 });
    c.on('error', () => undefined);
    this.clients.push(c);
    while (!this.stopped) {
      try {
        const v = await c.incr(s.key);
        const now = Date.now();
        s.acked++;
        if (v <= s.maxReply) s.regressions += s.maxReply - (v - 1);
        s.maxReply = Math.max(s.maxReply, v);
        this.lastOkAt.set(s.group, now);
        const o = this.open.get(s.group);
        if (o) {
          o.recoveredAt = now;
          this.open.delete(s.group);
        }
      } catch (err) {
        s.errors++;
        const now = Date.now();
        let o = this.open.get(s.group);
        if (!o) {
          o = { group: s.group, firstErrorAt: now, recoveredAt: null, errors: 0, firstError: (err as Error).message };
          this.open.set(s.group, o);
          this.outages.push(o);
        }
        o.errors++;
      }
      await new Promise((r) => setTimeout(r, this.pauseMs));
    }
  }
}

/** Waits until `agent` is the leader. */
export async function waitLeader(agent: AgentProcess, timeoutMs = 20_000): Promise<void> {
  await waitFor(() => agent.isLeader(), { timeoutMs, intervalMs: 100, what: `${agent.id} to become HA leader` });
}
