/**
 * One child process under test: spawned and tracked (cleanup.ts), its output kept as lines,
 * readiness waited for by polling a check (never by sleeping a fixed time), and stopped by
 * signal with a deadline. Errors carry the tail of the output, which is usually the reason.
 * A launcher's daemon (daemons.ts) instead appends its output to a log file and is untracked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { trackChild } from './cleanup.js';

export interface SpawnSpec {
  /** Short label for messages, e.g. `redis-server 127.0.0.1:6379`. */
  name: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Lines of output kept (oldest dropped first). Default: all. */
  maxLines?: number;
  /**
   * Append stdout and stderr to this file instead of keeping them as lines: the output then
   * outlives this process and its pipes (daemons of a launcher, see daemons.ts).
   */
  logFile?: string;
  /** Not in the cleanup registry: the caller stops it (DaemonSet has its own exit hook and no signal hooks). */
  untracked?: boolean;
  /**
   * In a process group of its own: a terminal's Ctrl-C (sent to the whole foreground group)
   * then reaches only the launcher, which stops its daemons in the order it chooses.
   */
  ownProcessGroup?: boolean;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Thrown by waitReady when the process exits before it is ready (e.g. its port was taken). */
export class ExitedEarlyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExitedEarlyError';
  }
}

export class ManagedProcess extends EventEmitter<{ line: [line: string] }> {
  readonly name: string;
  readonly lines: string[] = [];
  readonly exited: Promise<Exit>;
  private readonly child: ChildProcess;
  private readonly maxLines: number;
  private exitInfo: Exit | null = null;
  private readonly logFile: string | undefined;
  /** Why the spawn itself failed (no such command, say), if it did. */
  spawnError: Error | null = null;

  constructor(spec: SpawnSpec) {
    super();
    this.name = spec.name;
    this.maxLines = spec.maxLines ?? Infinity;
    this.logFile = spec.logFile;
    const out = spec.logFile === undefined ? null : openSync(spec.logFile, 'a');
    try {
      this.child = spawn(spec.command, [...spec.args], {
        cwd: spec.cwd,
        env: spec.env ?? process.env,
        stdio: out === null ? ['ignore', 'pipe', 'pipe'] : ['ignore', out, out],
        detached: spec.ownProcessGroup === true,
      });
    } finally {
      if (out !== null) closeSync(out); // the child has its own copy
    }
    if (!spec.untracked) trackChild(this.child);
    this.exited = new Promise((resolve) => {
      // 'close' (not 'exit'): all output has been read by then, so the tail is complete.
      this.child.once('close', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      this.child.once('error', (err) => {
        this.spawnError = err;
        this.push(`[testkit] failed to spawn ${spec.command}: ${err.message}`);
        this.exitInfo ??= { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream) createInterface({ input: stream, crlfDelay: Infinity }).on('line', (l) => this.push(l));
    }
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === null && this.child.exitCode === null && this.child.signalCode === null;
  }

  tail(n = 40): string {
    if (this.logFile !== undefined) return tailOfFile(this.logFile, n);
    return this.lines.slice(-n).join('\n');
  }

  /**
   * A flag that turns true once the process prints a line containing `text` (lines already
   * kept count too). Readiness checks use it to know the port they probe is this process's.
   */
  printed(text: string): () => boolean {
    let seen = this.lines.some((l) => l.includes(text));
    if (!seen) {
      const onLine = (line: string): void => {
        if (!line.includes(text)) return;
        seen = true;
        this.off('line', onLine);
      };
      this.on('line', onLine);
    }
    return () => seen;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /**
   * SIGSTOP, resolved once every thread of the process is stopped. kill() returns before the
   * kernel has stopped them all, and on a loaded machine a thread can still serve a request
   * in between (seen: an etcd answered a read sent right after its SIGSTOP).
   */
  async freeze(timeoutMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGSTOP');
    const deadline = Date.now() + timeoutMs;
    while (this.running && !(await allThreadsStopped(this.pid))) {
      if (Date.now() > deadline) throw new Error(`${this.name}: not stopped ${timeoutMs} ms after SIGSTOP`);
      await sleep(1);
    }
  }

  /** Polls `check` every `intervalMs` until it returns true; fails fast if the process exits. */
  async waitReady(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs = 25): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) {
        const e = await this.exited;
        throw new ExitedEarlyError(
          `${this.name} exited (code ${e.code}, signal ${e.signal}) before ${what}; last output:\n${this.tail()}`,
        );
      }
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) {
        throw new Error(`${this.name}: no ${what} after ${timeoutMs} ms; last output:\n${this.tail()}`);
      }
      await sleep(intervalMs);
    }
  }

  /**
   * Sends `sig` and waits for the exit; escalates to SIGKILL after `timeoutMs`. A stopped
   * (SIGSTOPped) process gets SIGCONT first, or it could not act on a catchable signal.
   */
  async terminate(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<Exit> {
    if (this.running) {
      if (sig !== 'SIGKILL') this.child.kill('SIGCONT');
      this.child.kill(sig);
      const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
      try {
        return await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.exited;
  }

  private push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.maxLines) this.lines.splice(0, this.lines.length - this.maxLines);
    this.emit('line', line);
  }
}

/** The last `n` lines of a log file ('' when there is none). */
export function tailOfFile(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** Whether every thread of `pid` is in the stopped state (`T`), per the stat file of each of its tasks in /proc. */
async function allThreadsStopped(pid: number): Promise<boolean> {
  try {
    const tids = await readdir(`/proc/${pid}/task`);
    for (const tid of tids) {
      const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      // The state follows the command name, which is in parentheses and may contain anything.
      if (stat[stat.lastIndexOf(')') + 2] !== 'T') return false;
    }
    return true;
  } catch {
    return false; // a thread ended while we read: look again
  }
}

/**
 * Whether GET `url` answers 200 from the process `pid`: the body names it as `pid` (or as
 * `ppid`, for a --workers primary). A free port picked for a daemon can be taken by another
 * test's daemon before ours binds it; then a bare 200 would come from the wrong process.
 */
export async function healthzFrom(url: string, pid: number): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  if (res.status !== 200) {
    await res.body?.cancel();
    return false;
  }
  const body = (await res.json()) as { pid?: unknown; ppid?: unknown };
  return body.pid === pid || body.ppid === pid;
}
