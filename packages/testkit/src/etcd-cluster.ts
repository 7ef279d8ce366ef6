/**
 * A real three-member (or n-member) etcd cluster for tests that take members away: quorum
 * loss, a member restarted on its old data. Members are EtcdServer processes on free loopback
 * ports sharing one temp dir; they start together (no member serves before a quorum has
 * formed) and each can be killed, paused or restarted alone.
 * Invariant: stop() stops exactly the members started here, then removes their dir.
 */
import { join } from 'node:path';
import { tempDir } from './cleanup.js';
import { EtcdServer, type StartEtcdOptions } from './etcd.js';
import { freePort } from './ports.js';
import { HOST } from './server-process.js';
import { ExitedEarlyError } from './process.js';

const CLUSTER_ATTEMPTS = 3;

export class EtcdCluster {
  constructor(
    readonly members: readonly EtcdServer[],
    private readonly removeDir: () => Promise<void>,
  ) {}

  /** Every member's client URL, what `--etcd` takes (comma-joined). */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** The members whose process runs now. */
  get running(): EtcdServer[] {
    return this.members.filter((m) => m.running);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
    await this.removeDir();
  }
}

/** Starts `size` (default 3) members that form one cluster; resolves once every member is healthy. */
export async function startEtcdCluster(size = 3, opts: Omit<StartEtcdOptions, 'member'> = {}): Promise<EtcdCluster> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`an etcd cluster needs a whole number ≥ 1 of members, got ${size}`);
  const tmp = await tempDir('reborn-etcd-cluster-');
  for (let attempt = 1; ; attempt++) {
    const taken = new Set<number>();
    const port = async (): Promise<number> => {
      let p = await freePort();
      while (taken.has(p)) p = await freePort();
      taken.add(p);
      return p;
    };
    const plan: { name: string; port: number; peerPort: number }[] = [];
    for (let i = 1; i <= size; i++) plan.push({ name: `member-${i}`, port: await port(), peerPort: await port() });
    const initialCluster = plan.map((m) => `${m.name}=http://${HOST}:${m.peerPort}`).join(',');
    // Each member's own removeDir is a no-op: the cluster removes the shared dir once all stopped.
    const members = plan.map(
      (m) => new EtcdServer(m.port, m.peerPort, join(tmp.dir, `a${attempt}-${m.name}`), async () => {}, { ...opts, member: { name: m.name, initialCluster } }),
    );
    const launched = await Promise.allSettled(members.map((m) => m.launch()));
    const failure = launched.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failure) return new EtcdCluster(members, tmp.remove);
    await Promise.all(members.map((m) => m.stop()));
    if (!(failure.reason instanceof ExitedEarlyError) || attempt >= CLUSTER_ATTEMPTS) {
      await tmp.remove();
      throw failure.reason;
    }
  }
}
