/**
 * The migration runner (docs/architecture.md §4 "Slot migration"): campaigns for the
 * product's runner election (coordinator's Leadership) and, while leader, runs every active
 * task (task-run.ts), tasks with disjoint groups at once, the others in creation order. runTask() runs one task to its end in this
 * process, holding the election meanwhile.
 *
 * Invariant: only the leader acts, and a task run stops before a new term can start
 * (leadership is lost → its signal aborts first). See docs/architecture.md (migration protocol).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import {
  ACTIVE_MIGRATION_STATES,
  Barrier,
  Leadership,
  Migrations,
  NotFoundError,
  ValidationError,
  type MigrationTask,
  type Store,
  BIG_KEY_BYTES,
} from '@reborn/coordinator';
import type { RedisAdminOptions } from '@reborn/coordinator/admin';
import {
  Halt,
  isTerminal,
  nap,
  errText,
  type Lead,
  type MigrationRunnerOptions,
  type RunnerContext,
  type RunnerTunables,
} from './migration-common.js';
import { TaskRun } from './task-run.js';

// The public face of the migration machinery stays importable from here.
export { createMigration, type CreateMigrationOptions } from './migration-create.js';
export { MigrationError, isTerminal, ranges, type MigrationRunnerOptions } from './migration-common.js';

// ---------------------------------------------------------------------------------------------
// The runner

export class MigrationRunner {
  readonly id: string;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly migrations: Migrations;
  private readonly barrier: Barrier;
  readonly opts: RunnerTunables;
  /** How the runner's own connections log in (timeouts are set per use). */
  readonly redis: RedisAdminOptions;
  private stopCtl: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private leading = false;
  private readonly running = new Set<string>();

  constructor(options: MigrationRunnerOptions) {
    this.store = options.store;
    this.id = options.id ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.log = options.logger.child({ component: 'migration-runner', runner: this.id });
    this.migrations = new Migrations(this.store);
    this.barrier = new Barrier(this.store);
    this.redis = { password: options.redisPassword ?? null };
    this.opts = {
      barrierTimeoutMs: options.barrierTimeoutMs ?? 5000,
      scanCount: options.scanCount ?? 5000,
      migrateKeys: options.migrateKeys ?? 5000,
      migrateTimeoutMs: options.migrateTimeoutMs ?? 5000,
      waitTimeoutMs: options.waitTimeoutMs ?? 1000,
      parallel: options.parallel ?? 2,
      bigKeyBytes: options.bigKeyBytes ?? BIG_KEY_BYTES,
      leaseTtlSeconds: options.leaseTtlSeconds ?? 10,
      pollIntervalMs: options.pollIntervalMs ?? 500,
    };
    for (const [k, v] of Object.entries(this.opts)) {
      if (!(Number.isSafeInteger(v) && v >= 1)) throw new ValidationError(`migration runner: ${k} must be a positive integer, got ${v}`);
    }
  }

  /** Whether this runner currently leads the product's election. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Ids of the tasks this runner is executing now. */
  get activeTasks(): string[] {
    return [...this.running];
  }

  /** Campaigns for leadership and, while leader, runs every active task. */
  start(): void {
    if (this.loop) throw new Error('migration runner already started');
    const ctl = new AbortController();
    this.stopCtl = ctl;
    this.loop = this.elect(ctl.signal, (lead) => this.schedule(lead)).catch((err: unknown) => {
      this.log.error({ err: errText(err) }, 'migration runner stopped by an error');
    });
  }

  /** Stops at a safe point (slots stay as they are, the next leader resumes), resigns, waits. */
  async stop(): Promise<void> {
    this.stopCtl?.abort(new Halt('runner stopping'));
    await this.loop;
    this.loop = null;
    this.stopCtl = null;
  }

  /**
   * Runs one task to a terminal state in this process, holding the election while it does
   * (so it never acts next to another runner). If another runner finishes the task while
   * this one waits to be elected, returns that result. Rejects when `signal` aborts.
   */
  async runTask(id: string, { signal }: { signal?: AbortSignal } = {}): Promise<MigrationTask> {
    const first = await this.migrations.get(id);
    if (!first) throw new NotFoundError(`migration ${id} does not exist`);
    if (isTerminal(first.task)) return first.task;
    signal?.throwIfAborted();

    const ctl = new AbortController();
    const onAbort = () => ctl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let result: MigrationTask | null = null;
    // While another runner leads, it may be the one that finishes the task.
    const watcher = (async () => {
      while (!ctl.signal.aborted) {
        await nap(this.opts.pollIntervalMs, ctl.signal);
        if (ctl.signal.aborted || this.running.has(id)) continue;
        const cur = await this.migrations.get(id).catch(() => null);
        if (cur && isTerminal(cur.task)) {
          result ??= cur.task;
          ctl.abort(new Halt('task ended elsewhere'));
        }
      }
    })();
    try {
      await this.elect(ctl.signal, async (lead) => {
        const t = await this.drive(id, lead);
        if (t) result = t;
        return t ? 'done' : 'continue';
      });
    } finally {
      ctl.abort(new Halt('runTask finished'));
      signal?.removeEventListener('abort', onAbort);
      await watcher;
    }
    if (result) return result;
    throw signal?.reason ?? new Halt('runTask interrupted');
  }

  // -------------------------------------------------------------------------------------------
  // Leadership (coordinator's Leadership): on lease loss stop acting first, then campaign again.

  /**
   * Campaigns until `stop` aborts or `work` says 'done' (then resigns). Each term runs `work`
   * once, after the previous term's work has returned, so two terms never act at once.
   */
  private elect(stop: AbortSignal, work: (lead: Lead) => Promise<'done' | 'continue'>): Promise<void> {
    if (stop.aborted) return Promise.resolve();
    const leadership = new Leadership({
      store: this.store,
      namespace: '',
      name: this.store.paths.runnerElection,
      id: this.id,
      ttlSeconds: this.opts.leaseTtlSeconds,
      logger: this.log,
      component: 'migration-runner',
      notLeader: (message) => new Halt(message ?? 'leadership lost'),
      messages: RUNNER_ELECTION_MESSAGES,
    });
    return new Promise<void>((resolve, reject) => {
      let terms: Promise<void> = Promise.resolve();
      let failure: { err: unknown } | null = null;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        stop.removeEventListener('abort', finish);
        void (async () => {
          await leadership.close();
          await terms;
          if (failure) reject(failure.err);
          else resolve();
        })();
      };
      const term = async (signal: AbortSignal, guardKey: string) => {
        if (signal.aborted || finished) return;
        this.leading = true;
        let result: 'done' | 'continue' = 'continue';
        try {
          result = await work({ signal: AbortSignal.any([stop, signal]), guardKey, lose: () => leadership.relinquish('a guarded write was refused') });
        } catch (err) {
          failure = { err };
          result = 'done';
        } finally {
          this.leading = false;
          this.log.info({ lost: signal.aborted }, signal.aborted ? 'runner leadership lost' : 'runner leadership released');
        }
        if (result === 'done') finish();
        else if (!stop.aborted) leadership.relinquish('leader work ended; campaigning again');
      };
      leadership.on('elected', (signal) => {
        let guardKey: string;
        try {
          guardKey = leadership.guardKey();
        } catch {
          return; // lost again before we could act
        }
        terms = terms.then(() => term(signal, guardKey));
      });
      stop.addEventListener('abort', finish, { once: true });
      leadership.start();
    });
  }

  /** The leader's loop: start every runnable task, in creation order, disjoint groups at once. */
  private async schedule(lead: Lead): Promise<'continue'> {
    const tasks = new Map<string, Promise<void>>();
    let listFailing = false;
    while (!lead.signal.aborted) {
      try {
        const all = (await this.migrations.list()).map((m) => m.task);
        listFailing = false;
        const claimed = new Set<number>();
        for (const t of all) {
          if (!ACTIVE_MIGRATION_STATES.has(t.state)) continue;
          const groups = [...t.from, t.to];
          const blocked = groups.some((g) => claimed.has(g));
          for (const g of groups) claimed.add(g);
          if (tasks.has(t.id) || blocked) continue;
          const p = this.drive(t.id, lead)
            .catch((err: unknown) => this.log.warn({ migration: t.id, err: errText(err) }, 'migration task stopped'))
            .then(() => {
              tasks.delete(t.id);
            });
          tasks.set(t.id, p);
        }
      } catch (err) {
        if (!listFailing) this.log.warn({ err: errText(err) }, 'cannot list migrations; retrying');
        listFailing = true;
      }
      await nap(this.opts.pollIntervalMs, lead.signal);
    }
    await Promise.allSettled(tasks.values());
    return 'continue';
  }

  /** Runs one task until it is terminal (returned) or this runner must stop acting (null). */
  private async drive(id: string, lead: Lead): Promise<MigrationTask | null> {
    if (this.running.has(id)) return null;
    this.running.add(id);
    try {
      return await new TaskRun(this.ctx, id, lead).execute();
    } finally {
      this.running.delete(id);
    }
  }

  /** What every TaskRun of this runner shares. */
  private get ctx(): RunnerContext {
    return { store: this.store, log: this.log, migrations: this.migrations, barrier: this.barrier, opts: this.opts, redis: this.redis };
  }
}

/** The runner's election log lines (the runner logs its own "won/lost/released" too). */
const RUNNER_ELECTION_MESSAGES = {
  elected: 'runner leadership won',
  lost: 'runner election: leadership lost (lease lost or not confirmed in time)',
  campaignFailed: 'runner election: campaign failed (lease lost)',
  unconfirmed: 'runner election: elected but cannot confirm the lease; campaigning again',
};
