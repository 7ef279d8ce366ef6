/**
 * What the CLI and the REST API use of the migration machinery: create and run tasks, plan
 * and apply a rebalance, fence a proxy, and two helpers to decide who runs a task and to
 * follow one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Migrations, NotFoundError, electionLeader, type MigrationTask, type Store } from '@reborn/coordinator';
import { isTerminal } from './migration-runner.js';

export { createMigration, MigrationRunner } from './migration-runner.js';
export { planRebalance, executeRebalance } from './rebalance.js';
export { fenceProxy, FenceError } from './fence.js';

/** Whether some runner (a dashboard, another CLI) currently leads the product's runner election. */
export async function isRunnerAlive(store: Store): Promise<boolean> {
  return (await electionLeader(store, 'read runner election', store.paths.runnerElection)) !== undefined;
}

const POLL_MS = 500;

/**
 * Polls the task until it is done, cancelled or failed and resolves with it; `onProgress`
 * sees every version of the task that differs from the previous one (including the first).
 * Rejects with NotFoundError when the task disappears, with the abort reason on `signal`.
 * Transient etcd failures are waited out.
 */
export async function waitForMigration(
  store: Store,
  id: string,
  onProgress: (t: MigrationTask) => void,
  signal?: AbortSignal,
  /** Hears of each transient etcd failure while waiting (null: etcd answered again). */
  onEtcd?: (err: Error | null) => void,
): Promise<MigrationTask> {
  const migrations = new Migrations(store);
  let last = '';
  for (;;) {
    signal?.throwIfAborted();
    let task: MigrationTask | null = null;
    try {
      const stored = await migrations.get(id);
      onEtcd?.(null);
      if (!stored) throw new NotFoundError(`migration ${id} does not exist`);
      task = stored.task;
    } catch (err) {
      if (!(err instanceof Error && 'retryable' in err && err.retryable === true)) throw err;
      onEtcd?.(err);
    }
    if (task) {
      const sig = JSON.stringify(task);
      if (sig !== last) {
        last = sig;
        onProgress(task);
      }
      if (isTerminal(task)) return task;
    }
    try {
      await sleep(POLL_MS, undefined, signal ? { signal } : undefined);
    } catch {
      signal?.throwIfAborted();
    }
  }
}
