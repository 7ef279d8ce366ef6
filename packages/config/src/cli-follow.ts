/**
 * `slot migrate` and `slot rebalance --confirm` without --detach: follow a migration task
 * until every slot of it is online in the target group. When a runner (a dashboard) is alive
 * for the product it only watches; otherwise it runs the task itself. Ctrl-C then stops the
 * local run at a safe point and the task stays in etcd, resumable: the same `slot migrate`
 * (or a dashboard) continues it. While etcd does not answer it says so, and after
 * `--etcd-wait` of silence it gives up: the task stays in etcd, and a runner (a dashboard, or
 * the same command run again) continues it once etcd answers. Invariant: follow() returns
 * only for a task that is done with every slot online in its target group; anything else
 * throws (MigrationEndedError, InterruptedError, EtcdSilentError) with the words the operator
 * acts on — and it never waits for a silent etcd longer than its bound.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SlotState, type MigrationTask, type Store } from '@reborn/coordinator';
import { InterruptedError, MigrationEndedError } from './errors.js';
import { ETCD_CALL_TIMEOUT_MS, EtcdSilentError, describeEtcdSilence, etcdTrouble } from './etcd-trouble.js';
import { NL, cliLogger, type CliIo } from './cli-io.js';
import type { GlobalOptions } from './options.js';
import { formatMigrationSummary, formatProgress } from './output.js';
import type { Admin } from './servers.js';

/**
 * Follows migration `id` to its end (see the top of this file); returns the summary line, or
 * throws when it ends other than done, or when interrupted.
 */
export async function follow(admin: Admin, global: GlobalOptions, id: string, io: CliIo): Promise<string> {
  const started = Date.now();
  const progress = progressReporter(io);
  io.graceful?.();
  const { isRunnerAlive } = await import('./runner-api.js');
  const silence = new EtcdWait(global.etcdWaitMs);
  let final: MigrationTask | null = null;
  try {
    const report = silence.reporter(io, 'Ctrl-C stops');
    while (final === null) {
      let alive: boolean;
      try {
        alive = await isRunnerAlive(admin.store);
        report(null);
      } catch (err) {
        if (!(err instanceof Error && errIsEtcd(err))) throw err;
        report(err);
        if (silence.gaveUp) throw err;
        await sleep(500, undefined, io.signal ? { signal: io.signal } : undefined).catch(() => undefined);
        if (io.signal?.aborted) throw new InterruptedError(`stopped following migration ${id}; it stays in etcd (see "migration list")`);
        continue;
      }
      final = alive ? await watchRunner(admin, global, id, io, progress, silence) : await runHere(admin, global, id, io, progress, silence);
    }
  } catch (err) {
    if (silence.gaveUp || (err instanceof Error && errIsEtcd(err))) {
      throw new EtcdSilentError(
        `${await describeEtcdSilence(global.etcd, silence.silentMs ?? ETCD_CALL_TIMEOUT_MS)}: gave up following migration ${id}; ` +
          `it stays in etcd and goes on by itself once etcd answers again, in a running "reborn-config dashboard" (or run the same command again)`,
        err,
      );
    }
    throw err;
  }
  progress(final);
  await checkDone(admin.store, id, final);
  return formatMigrationSummary(final, Date.now() - started);
}

/**
 * The --etcd-wait bound of one follow(): `signal` aborts once etcd has been silent that long
 * (every wait of follow() listens to it); each wait reports every etcd failure or answer
 * through a `reporter()`.
 */
class EtcdWait {
  private readonly ctl = new AbortController();
  silentMs: number | null = null;

  constructor(private readonly afterMs: number) {}

  get signal(): AbortSignal {
    return this.ctl.signal;
  }

  get gaveUp(): boolean {
    return this.ctl.signal.aborted;
  }

  /** etcdTrouble's reporter, with this bound as its give-up. */
  reporter(io: CliIo, hint: string): (err: Error | null) => void {
    return etcdTrouble((line) => io.stderr(line + NL), hint, {
      afterMs: this.afterMs,
      onGiveUp: (silentMs, err) => {
        this.silentMs = silentMs;
        this.ctl.abort(err);
      },
    });
  }
}

/** An error of etcd itself (the coordinator's UnavailableError), not of redis. */
function errIsEtcd(err: Error): boolean {
  return (err as { code?: unknown }).code === 'EUNAVAILABLE';
}

/** Prints a task's progress line on stderr when it changed, at most once a second while running. */
function progressReporter(io: CliIo): (t: MigrationTask) => void {
  let lastLine = '';
  let lastAt = 0;
  return (t) => {
    const line = formatProgress(t);
    const now = Date.now();
    if (line !== lastLine && (now - lastAt >= 1000 || t.state !== 'running')) {
      io.stderr(line + NL);
      lastLine = line;
      lastAt = now;
    }
  };
}

/**
 * Follows the task while the product's runner lives; returns the finished task, or null when
 * the runner went away (the caller then runs the task here). Ctrl-C detaches.
 */
async function watchRunner(
  admin: Admin,
  global: GlobalOptions,
  id: string,
  io: CliIo,
  progress: (t: MigrationTask) => void,
  silence: EtcdWait,
): Promise<MigrationTask | null> {
  const store = admin.store;
  const signal = io.signal;
  const { isRunnerAlive, waitForMigration } = await import('./runner-api.js');
  io.stderr(`a runner is alive for product ${global.product}: following migration ${id} (Ctrl-C detaches; the task goes on)${NL}`);
  // Follow while the runner lives; if it goes away (its lease expired), run the task here.
  const ctl = new AbortController();
  const onAbort = (): void => ctl.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const onSilence = (): void => ctl.abort(silence.signal.reason);
  silence.signal.addEventListener('abort', onSilence, { once: true });
  let runnerGone = false;
  const watch = setInterval(() => {
    isRunnerAlive(store).then(
      (alive) => {
        if (!alive && !ctl.signal.aborted) {
          runnerGone = true;
          ctl.abort(new Error('runner gone'));
        }
      },
      () => undefined,
    );
  }, 2000);
  let final: MigrationTask | null = null;
  try {
    final = await waitForMigration(store, id, progress, ctl.signal, silence.reporter(io, 'Ctrl-C detaches; the task goes on'));
  } catch (err) {
    if (!ctl.signal.aborted) throw err;
  } finally {
    clearInterval(watch);
    signal?.removeEventListener('abort', onAbort);
    silence.signal.removeEventListener('abort', onSilence);
  }
  if (silence.gaveUp) throw silence.signal.reason;
  if (final === null && signal?.aborted) {
    const now = await admin.getMigration(id);
    if (isFinished(now)) final = now;
    else throw new InterruptedError(`detached from migration ${id}; it goes on in the runner (see "migration list")`);
  }
  if (final === null && runnerGone) io.stderr(`the runner of product ${global.product} went away${NL}`);
  return final;
}

/** Runs the task in this process until it finishes, or stops it at a safe point on Ctrl-C (then throws). */
async function runHere(
  admin: Admin,
  global: GlobalOptions,
  id: string,
  io: CliIo,
  progress: (t: MigrationTask) => void,
  silence: EtcdWait,
): Promise<MigrationTask> {
  const signal = io.signal;
  const { MigrationRunner } = await import('./runner-api.js');
  io.stderr(`no runner is alive for product ${global.product}: running migration ${id} here (Ctrl-C stops at a safe point; the task stays resumable)${NL}`);
  const runner = new MigrationRunner({ store: admin.store, logger: await cliLogger(global, 2, 'warn'), redisPassword: global.redisPassword });
  const poll = pollProgress(admin, id, progress, silence.reporter(io, 'Ctrl-C stops at a safe point'));
  let final: MigrationTask;
  try {
    // Giving up on a silent etcd stops the local run at a safe point, as Ctrl-C does.
    final = await runner.runTask(id, { signal: signal ? AbortSignal.any([signal, silence.signal]) : silence.signal });
  } catch (err) {
    if (silence.gaveUp) throw silence.signal.reason;
    if (!signal?.aborted) throw err;
    final = await admin.getMigration(id);
  } finally {
    poll.stop();
    await runner.stop().catch(() => undefined);
  }
  if (signal?.aborted && !isFinished(final)) {
    throw new InterruptedError(
      `stopped migration ${id} at a safe point; it stays ${final.state} in etcd: run the same "slot migrate" again, or start "reborn-config dashboard", to finish it`,
    );
  }
  return final;
}

/** Throws unless the task is done and every slot of it is online in its target group. */
async function checkDone(store: Store, id: string, final: MigrationTask): Promise<void> {
  if (final.state !== 'done') {
    const why = final.error ? `: ${final.error}` : '';
    if (isFinished(final)) throw new MigrationEndedError(`migration ${id} ended ${final.state}${why}`);
    throw new MigrationEndedError(`migration ${id} is ${final.state}, not done${why}; see "migration list"`);
  }
  const slots = await store.listSlots();
  const bad = final.slots.map((s) => slots[s]!).find((s) => !(s.state === SlotState.Online && s.group === final.to));
  if (bad) {
    throw new MigrationEndedError(`migration ${id} says done but slot ${bad.id} is ${bad.state} in group ${bad.group}, not online in group ${final.to}`);
  }
}

function isFinished(t: MigrationTask): boolean {
  return t.state === 'done' || t.state === 'cancelled' || t.state === 'failed';
}

/** Reads the task every 500 ms and reports it (the local runner writes progress to etcd). */
function pollProgress(admin: Admin, id: string, report: (t: MigrationTask) => void, onEtcd: (err: Error | null) => void): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    try {
      report(await admin.getMigration(id));
      onEtcd(null);
    } catch (err) {
      // etcd hiccup: the runner itself decides what that means; keep polling, and say so.
      onEtcd(err as Error);
    }
    if (!stopped) timer = setTimeout(() => void tick(), 500);
  };
  timer = setTimeout(() => void tick(), 500);
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
