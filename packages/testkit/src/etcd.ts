/**
 * A real single-member etcd for tests: free client and peer ports, private data dir, ready
 * when GET /health says the member has a leader. restart() reuses ports and data, so tests
 * can take etcd away and bring the same cluster (same revisions, same leases) back.
 */
import { join } from 'node:path';
import { tempDir } from './cleanup.js';
import { etcdArgs } from './daemon-args.js';
import { freePort } from './ports.js';
import { HOST, ServerProcess, launchWithRetries } from './server-process.js';

export interface StartEtcdOptions {
  /** Extra arguments, e.g. `['--auto-compaction-retention', '1']`. */
  args?: readonly string[];
  /** Default `etcd` from PATH. */
  bin?: string;
  startTimeoutMs?: number;
  /** @internal set by startEtcdCluster(): this member's name and every member's `name=peerUrl`. */
  member?: { name: string; initialCluster: string };
}

export class EtcdServer extends ServerProcess {
  readonly port: number;
  readonly peerPort: number;
  /** The data dir (`--data-dir`), inside a temp dir removed by stop(). */
  readonly dir: string;

  /** @internal use startEtcd() */
  constructor(
    port: number,
    peerPort: number,
    dir: string,
    removeDir: () => Promise<void>,
    private readonly opts: StartEtcdOptions,
  ) {
    super(removeDir);
    this.port = port;
    this.peerPort = peerPort;
    this.dir = dir;
  }

  get clientUrl(): string {
    return `http://${this.host}:${this.port}`;
  }

  protected override get label(): string {
    return `etcd ${this.clientUrl}`;
  }

  /** @internal */
  override async launch(): Promise<void> {
    const peerUrl = `http://${HOST}:${this.peerPort}`;
    const name = this.opts.member?.name ?? 'reborn-test';
    await this.spawnAndWait(
      {
        name: `etcd ${this.clientUrl}`,
        command: this.opts.bin ?? 'etcd',
        args: [
          ...etcdArgs({ name, dataDir: this.dir, clientUrl: this.clientUrl, peerUrl, initialCluster: this.opts.member?.initialCluster }),
          '--logger', 'zap',
          '--log-outputs', 'stderr',
          ...(this.opts.args ?? []),
        ],
        maxLines: 500,
      },
      // Printed once the client listener is up (a taken port makes etcd exit before it).
      'serving client traffic',
      'healthy /health',
      () => healthy(this.clientUrl),
      this.opts.startTimeoutMs ?? 20_000,
    );
  }
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const tmp = await tempDir('reborn-etcd-');
  return launchWithRetries(async (attempt) => {
    const port = await freePort();
    let peerPort = await freePort();
    while (peerPort === port) peerPort = await freePort();
    // A fresh data dir per attempt: a failed start may have bootstrapped it with other ports.
    return new EtcdServer(port, peerPort, join(tmp.dir, `data-${attempt}`), tmp.remove, opts);
  }, tmp.remove);
}

/** @internal etcd answers 200 {"health":"true"} once the member has a leader and serves requests. */
export async function healthy(clientUrl: string): Promise<boolean> {
  const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
  if (!res.ok) return false;
  const body = (await res.json()) as { health?: unknown };
  return body.health === 'true';
}
