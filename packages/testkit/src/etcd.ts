/**
 * A real single-member etcd for tests: free client and peer ports, private data dir, ready
 * when GET /health says the member has a leader. restart() reuses ports and data, so tests
 * can take etcd away and bring the same cluster (same revisions, same leases) back.
 */
import { join } from 'node:path';
import { tempDir, trackHandle } from './cleanup.js';
import { freePort } from './ports.js';
import { ExitedEarlyError, ManagedProcess } from './process.js';

export interface StartEtcdOptions {
  /** Extra arguments, e.g. `['--auto-compaction-retention', '1']`. */
  args?: readonly string[];
  /** Default `etcd` from PATH. */
  bin?: string;
  startTimeoutMs?: number;
}

const HOST = '127.0.0.1';
const PORT_ATTEMPTS = 3;

export class EtcdServer {
  readonly host = HOST;
  readonly port: number;
  readonly peerPort: number;
  /** The data dir (`--data-dir`), inside a temp dir removed by stop(). */
  readonly dir: string;
  private proc: ManagedProcess | null = null;
  private stopped = false;
  private readonly untrack: () => void;

  /** @internal use startEtcd() */
  constructor(
    port: number,
    peerPort: number,
    dir: string,
    private readonly removeDir: () => Promise<void>,
    private readonly opts: StartEtcdOptions,
  ) {
    this.port = port;
    this.peerPort = peerPort;
    this.dir = dir;
    this.untrack = trackHandle(this);
  }

  get clientUrl(): string {
    return `http://${this.host}:${this.port}`;
  }

  get pid(): number {
    return this.proc?.pid ?? -1;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  logTail(n = 40): string {
    return this.proc?.tail(n) ?? '';
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.abandon();
    await this.proc?.terminate('SIGTERM');
    await this.removeDir();
  }

  /** @internal */
  abandon(): void {
    this.stopped = true;
    this.untrack();
  }

  /** Crash it; the data dir stays, so restart() brings the same cluster back. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.proc?.terminate(signal);
  }

  /** Stops it if running and starts it again on the same ports with the same data dir. */
  async restart(): Promise<void> {
    if (this.stopped) throw new Error(`etcd ${this.clientUrl} was stopped; start a new one`);
    await this.proc?.terminate('SIGTERM');
    await this.launch();
  }

  /** SIGSTOP: connections stay open but nothing answers, like a hung or partitioned etcd. */
  pause(): void {
    this.proc?.signal('SIGSTOP');
  }

  resume(): void {
    this.proc?.signal('SIGCONT');
  }

  /** @internal */
  async launch(): Promise<void> {
    const peerUrl = `http://${HOST}:${this.peerPort}`;
    const name = 'reborn-test';
    const proc = new ManagedProcess({
      name: `etcd ${this.clientUrl}`,
      command: this.opts.bin ?? 'etcd',
      args: [
        '--name', name,
        '--data-dir', this.dir,
        '--listen-client-urls', this.clientUrl,
        '--advertise-client-urls', this.clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', `${name}=${peerUrl}`,
        '--logger', 'zap',
        '--log-outputs', 'stderr',
        ...(this.opts.args ?? []),
      ],
      maxLines: 500,
    });
    this.proc = proc;
    try {
      await proc.waitReady('healthy /health', () => healthy(this.clientUrl), this.opts.startTimeoutMs ?? 20_000);
    } catch (err) {
      await proc.terminate('SIGKILL');
      throw err;
    }
  }
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const tmp = await tempDir('reborn-etcd-');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let peerPort = await freePort();
    while (peerPort === port) peerPort = await freePort();
    // A fresh data dir per attempt: a failed start may have bootstrapped it with other ports.
    const dir = join(tmp.dir, `data-${attempt}`);
    const server = new EtcdServer(port, peerPort, dir, tmp.remove, opts);
    try {
      await server.launch();
      return server;
    } catch (err) {
      server.abandon();
      if (!(err instanceof ExitedEarlyError) || attempt >= PORT_ATTEMPTS) {
        await tmp.remove();
        throw err;
      }
    }
  }
}

/** etcd answers 200 {"health":"true"} once the member has a leader and serves requests. */
async function healthy(clientUrl: string): Promise<boolean> {
  const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
  if (!res.ok) return false;
  const body = (await res.json()) as { health?: unknown };
  return body.health === 'true';
}
