/**
 * The lock file of a launcher that keeps its data across starts (`npm start`): which launcher
 * runs on a home dir, and which processes it started, each as pid + start time.
 *
 * Invariant: a pid is only ever signalled when its start time still matches the one recorded,
 * so a recycled pid (another program now) is never touched.
 */
import fs from 'node:fs';

export interface LockedProcess {
  name: string;
  pid: number | undefined;
  start: string | null;
}

/** A launcher is alive on this home dir (pid and start time match): start no second one. */
export class LauncherBusyError extends Error {
  readonly code = 'LAUNCHER_BUSY';
  constructor(readonly pid: number) {
    super(`another launcher (pid ${pid}) is running`);
    this.name = 'LauncherBusyError';
  }
}

/** A process's start time (field 22 of /proc/<pid>/stat): with the pid, its identity. */
export function startTimeOf(pid: number | undefined): string | null {
  if (pid === undefined) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

export class LauncherLock {
  constructor(readonly file: string) {}

  /** Records this process and `procs` (pid and start time of each). */
  write(procs: readonly { name: string; pid: number | undefined }[]): void {
    const locked: LockedProcess[] = procs.map(({ name, pid }) => ({ name, pid, start: startTimeOf(pid) }));
    fs.writeFileSync(this.file, JSON.stringify({ pid: process.pid, start: startTimeOf(process.pid), procs: locked }));
  }

  /**
   * Throws LauncherBusyError when the recorded launcher is alive (its etcd holds the data dir's
   * lock; a second one would wait on it forever). When it was killed instead, SIGKILLs what it
   * left running, each process checked by pid and start time; `onStale` hears of each first.
   */
  take(onStale: (p: LockedProcess) => void): void {
    let prev: { pid?: number; start?: string | null; procs?: LockedProcess[] };
    try {
      prev = JSON.parse(fs.readFileSync(this.file, 'utf8'));
    } catch {
      return;
    }
    if (prev.pid && startTimeOf(prev.pid) !== null && startTimeOf(prev.pid) === prev.start) throw new LauncherBusyError(prev.pid);
    const left = (prev.procs ?? []).filter((p) => p.pid && p.start !== null && startTimeOf(p.pid) === p.start);
    for (const p of left) {
      onStale(p);
      try {
        process.kill(p.pid!, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
  }

  remove(): void {
    try {
      fs.rmSync(this.file, { force: true });
    } catch {
      /* nothing to clean */
    }
  }
}
