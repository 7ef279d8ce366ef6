/**
 * A real reborn-proxy process for end-to-end tests, started the way an operator would:
 *
 *   node packages/proxy/bin/reborn-proxy.js --addr 127.0.0.1:<free> --admin-addr 127.0.0.1:<free>
 *        --etcd <url> --product <p> [--id <id>] ...args
 *
 * Ready when GET http://<admin>/healthz answers 200 naming this process (its pid). All output
 * (pino JSON lines on stdout, anything on stderr) is kept in `logs` so tests can assert on
 * log records.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { trackHandle } from './cleanup.js';
import { PROXY_BIN, REPO_ROOT, proxyArgs } from './daemon-args.js';
import { freePort } from './ports.js';
import { ExitedEarlyError, ManagedProcess, healthzFrom } from './process.js';

export { PROXY_BIN };

export interface StartProxyOptions {
  /** etcd client URL(s), comma-separated. */
  etcd: string;
  product: string;
  /** Passed as `--id` when set. */
  id?: string;
  args?: readonly string[];
  /** Added to the inherited environment. */
  env?: NodeJS.ProcessEnv;
  /** Script to run instead of the real binary (tests of the testkit use a fake). */
  bin?: string;
  startTimeoutMs?: number;
  /** Also give the proxy a Redis Cluster face (`--cluster-addr` on a free port). */
  clusterFace?: boolean;
}

const HOST = '127.0.0.1';
const PORT_ATTEMPTS = 3;

export class ProxyProcess {
  readonly host = HOST;
  readonly port: number;
  readonly adminPort: number;
  /** The port of the Redis Cluster face, or null when the proxy has none. */
  readonly clusterPort: number | null;
  private readonly proc: ManagedProcess;
  private readonly clients = new Set<Redis>();
  private stopped = false;
  private readonly untrack: () => void;

  /** @internal use startProxy() */
  constructor(port: number, adminPort: number, opts: StartProxyOptions, clusterPort: number | null = null) {
    this.port = port;
    this.adminPort = adminPort;
    this.clusterPort = clusterPort;
    const args = [
      opts.bin ?? PROXY_BIN,
      ...proxyArgs({
        addr: this.addr,
        adminAddr: this.adminAddr,
        etcd: opts.etcd,
        product: opts.product,
        ...(opts.id === undefined ? {} : { id: opts.id }),
        ...(this.clusterAddr === null ? {} : { clusterAddr: this.clusterAddr }),
      }),
      ...(opts.args ?? []),
    ];
    this.proc = new ManagedProcess({
      name: `reborn-proxy ${this.addr}`,
      command: process.execPath,
      args,
      env: { ...process.env, ...opts.env },
      cwd: REPO_ROOT,
    });
    this.untrack = trackHandle(this);
  }

  get addr(): string {
    return `${this.host}:${this.port}`;
  }

  get adminAddr(): string {
    return `${this.host}:${this.adminPort}`;
  }

  /** `host:port` of the Redis Cluster face, or null. */
  get clusterAddr(): string | null {
    return this.clusterPort === null ? null : `${this.host}:${this.clusterPort}`;
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.running;
  }

  /** Every output line so far (stdout and stderr, in arrival order). */
  get logs(): readonly string[] {
    return this.proc.lines;
  }

  /** The log lines that parse as JSON objects (pino records). */
  logRecords(): Record<string, unknown>[] {
    return this.logs.flatMap((l) => {
      const rec = parseRecord(l);
      return rec ? [rec] : [];
    });
  }

  /** Resolves with the first log record (past or future) that `match` accepts. */
  waitForLog(match: (rec: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const seen = this.logRecords().find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const onLine = (line: string) => {
        const rec = parseRecord(line);
        if (rec && match(rec)) {
          cleanup();
          resolve(rec);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.proc.name}: no matching log line within ${timeoutMs} ms; last output:\n${this.proc.tail()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.proc.off('line', onLine);
      };
      this.proc.on('line', onLine);
    });
  }

  /** An ioredis client connected to the proxy, disconnected by stop(). */
  client(opts: RedisOptions = {}): Redis {
    const c = new Redis({ host: this.host, port: this.port, ...opts });
    this.clients.add(c);
    c.once('end', () => this.clients.delete(c));
    return c;
  }

  /** GET /metrics from the admin port (Prometheus text). */
  async metrics(): Promise<string> {
    return this.adminGet('/metrics');
  }

  /** GET `path` from the admin port; throws on a non-2xx answer. */
  async adminGet(path: string): Promise<string> {
    const res = await fetch(`http://${this.adminAddr}${path}`, { signal: AbortSignal.timeout(5000) });
    const body = await res.text();
    if (!res.ok) throw new Error(`GET ${path} on ${this.adminAddr}: ${res.status} ${body}`);
    return body;
  }

  /** SIGTERM (a graceful shutdown), wait for the exit (SIGKILL after 10 s). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.untrack();
    for (const c of this.clients) c.disconnect();
    this.clients.clear();
    await this.proc.terminate('SIGTERM');
  }

  /** Sends `signal` and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.proc.terminate(signal);
  }

  /** SIGSTOP; resolves once the process is stopped. */
  async pause(): Promise<void> {
    await this.proc.freeze();
  }

  resume(): void {
    this.proc.signal('SIGCONT');
  }

  /** @internal */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const url = `http://${this.adminAddr}/healthz`;
    try {
      await this.proc.waitReady(
        'healthy /healthz',
        () => healthzFrom(url, this.proc.pid),
        timeoutMs,
      );
    } catch (err) {
      this.stopped = true;
      this.untrack();
      await this.proc.terminate('SIGKILL');
      throw err;
    }
  }
}

export async function startProxy(opts: StartProxyOptions): Promise<ProxyProcess> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let adminPort = await freePort();
    while (adminPort === port) adminPort = await freePort();
    let clusterPort: number | null = null;
    while (opts.clusterFace && (clusterPort === null || clusterPort === port || clusterPort === adminPort)) clusterPort = await freePort();
    const proxy = new ProxyProcess(port, adminPort, opts, clusterPort);
    try {
      // 30 s: on a starved 2-core machine Node alone took 9–12 s to start listening, and
      // loading the table then took the rest of a 15 s bound (measured at load ~19).
      await proxy.waitHealthy(opts.startTimeoutMs ?? 30_000);
      return proxy;
    } catch (err) {
      // An early exit may be a port taken meanwhile; a bad flag fails the same way every time.
      if (!(err instanceof ExitedEarlyError) || attempt >= PORT_ATTEMPTS || !portInUse(proxy.logs)) throw err;
    }
  }
}

/** Whether the output says a listen failed on a taken port (Node's EADDRINUSE). */
function portInUse(lines: readonly string[]): boolean {
  return lines.some((l) => l.includes('EADDRINUSE'));
}

function parseRecord(line: string): Record<string, unknown> | null {
  if (!line.startsWith('{')) return null;
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
