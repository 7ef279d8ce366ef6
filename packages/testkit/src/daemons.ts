/**
 * The daemons a script starts (bench, `npm start`): each one named, its output appended to its
 * own log file (it outlives the script, and tells why a start failed), readiness waited for by
 * polling a check, and a teardown that stops exactly these processes, newest first.
 *
 * Invariant: only pids spawned through this set are ever signalled — never a name match — and a
 * daemon that ends before stopAll() began is reported to `onUnexpectedExit` (or, when started
 * with `quietStartup` and still starting, by the error of its waitReady()). Unlike the test
 * registry (cleanup.ts) it installs no signal handlers: the script owns Ctrl-C and stops
 * gracefully; only an 'exit' hook SIGKILLs what is still alive when the script ends anyway.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ManagedProcess } from './process.js';

export interface Daemon {
  readonly name: string;
  readonly logFile: string;
  readonly proc: ManagedProcess;
}

export interface DaemonSetOptions {
  /**
   * A daemon exited, or failed to spawn, while the set was not stopping. `why` is its signal
   * or exit code; `spawnError` is set when the command could not be started at all.
   */
  onUnexpectedExit?: (d: Daemon, why: string | number | null, spawnError: Error | null) => void;
  /** The list of daemons changed (a launcher records their pids). */
  onChange?: () => void;
}

export interface DaemonSpec {
  name: string;
  command: string;
  args: readonly string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** See SpawnSpec.ownProcessGroup. */
  ownProcessGroup?: boolean;
  /**
   * An exit before waitReady({ daemon }) succeeded is reported only by that waitReady's error
   * (DaemonStartupExit), not to `onUnexpectedExit`: the caller may start it again, e.g. on
   * another port when the one it probed was taken before the daemon bound it.
   */
  quietStartup?: boolean;
}

/** A daemon exited before it became ready; `output` is the end of its output (usually the reason). */
export class DaemonStartupExit extends Error {
  readonly code = 'DAEMON_STARTUP_EXIT';
  constructor(
    message: string,
    readonly daemon: Daemon,
    readonly output: string,
  ) {
    super(message);
    this.name = 'DaemonStartupExit';
  }
}

export interface WaitReadyOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Fail at once, with the end of its log, when this daemon dies: waiting out the timeout would only hide why. */
  daemon?: Daemon;
  /** The error message on timeout. Default: `<what> did not become ready within <s> s`. */
  timeoutMessage?: (what: string, timeoutMs: number) => string;
}

export interface StopOptions {
  /** One at a time, newest first (a proxy then says goodbye to a still-running etcd), or all at once. */
  oneAtATime: boolean;
  /** SIGTERM, then SIGKILL after this long. */
  graceMs?: number;
  /** Called before a daemon that ignored SIGTERM is SIGKILLed. */
  onForceKill?: (d: Daemon) => void;
}

export class DaemonSet {
  readonly daemons: Daemon[] = [];
  private stopping = false;
  /** Daemons started with quietStartup whose waitReady() has not succeeded yet. */
  private readonly starting = new Set<Daemon>();

  constructor(private readonly opts: DaemonSetOptions = {}) {
    // The last resort, for an exit that skipped stopAll() (process.exit elsewhere, a crash).
    // Synchronous, as 'exit' handlers must be.
    process.on('exit', () => this.killNow());
  }

  /** True once stopAll() began. */
  get isStopping(): boolean {
    return this.stopping;
  }

  start(spec: DaemonSpec): Daemon {
    const proc = new ManagedProcess({ ...spec, untracked: true });
    const d: Daemon = { name: spec.name, logFile: spec.logFile, proc };
    this.daemons.push(d);
    if (spec.quietStartup === true) this.starting.add(d);
    this.opts.onChange?.();
    void proc.exited.then((e) => {
      if (!this.stopping && !this.starting.has(d)) this.opts.onUnexpectedExit?.(d, e.signal ?? e.code, proc.spawnError);
    });
    return d;
  }

  /** Drops a daemon that has exited (a failed start the caller retries) from the set. */
  forget(d: Daemon): void {
    if (d.proc.running) throw new Error(`${d.name} still runs: stop it before forgetting it`);
    const i = this.daemons.indexOf(d);
    if (i < 0) return;
    this.daemons.splice(i, 1);
    this.starting.delete(d);
    this.opts.onChange?.();
  }

  alive(d: Daemon): boolean {
    return d.proc.running;
  }

  /**
   * Polls `check` until it returns true. A check that never settles counts as "not yet" once
   * the deadline passes, so it cannot hang the wait.
   */
  async waitReady(what: string, check: () => boolean | Promise<boolean>, o: WaitReadyOptions = {}): Promise<void> {
    const { timeoutMs = 20_000, intervalMs = 100, daemon } = o;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (daemon !== undefined && !daemon.proc.running) {
        const e = await daemon.proc.exited;
        const why = daemon.proc.spawnError?.message ?? e.signal ?? e.code;
        const output = daemon.proc.tail(15);
        throw new DaemonStartupExit(`${what} exited (${why}) before becoming ready; see ${daemon.logFile}\n${output}`, daemon, output);
      }
      if (await settlesTrue(check, Math.max(0, deadline - Date.now()) + intervalMs)) {
        if (daemon === undefined) return;
        // Exited while the check ran: a failed start after all (the loop's top reports it).
        if (!daemon.proc.running) continue;
        // From now on an exit is the daemon dying, not a failed start: onUnexpectedExit hears of it.
        this.starting.delete(daemon);
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(o.timeoutMessage?.(what, timeoutMs) ?? `${what} did not become ready within ${timeoutMs / 1000} s`);
      }
      await sleep(intervalMs);
    }
  }

  /** SIGTERM every live daemon (newest first), SIGKILL after `graceMs`; resolves once all have exited. */
  async stopAll({ oneAtATime, graceMs = 5000, onForceKill }: StopOptions): Promise<void> {
    this.stopping = true;
    const stopOne = async (d: Daemon): Promise<void> => {
      if (!d.proc.running) return;
      d.proc.signal('SIGTERM');
      const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), graceMs).unref());
      if ((await Promise.race([d.proc.exited, timer])) !== 'late') return;
      onForceKill?.(d);
      d.proc.signal('SIGKILL');
      await d.proc.exited;
    };
    const live = this.daemons.filter((d) => d.proc.running).reverse();
    if (oneAtATime) for (const d of live) await stopOne(d);
    else await Promise.all(live.map(stopOne));
  }

  /** SIGKILL every daemon still alive, at once (for 'exit' hooks). */
  killNow(): void {
    for (const d of this.daemons) d.proc.signal('SIGKILL');
  }
}

/** Whether `check` resolves true within `ms`; a throw or a hang count as false. */
async function settlesTrue(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return (await Promise.race([Promise.resolve().then(check), expired])) === true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
