/**
 * What the supervisor knows about a pid. A pid alone proves little after a restart of the
 * agent: the process may have died and the number been reused, or it may be a zombie nobody
 * reaped (its pid still "exists"). So a process counts as alive only if /proc says it is
 * not a zombie and its command line is the program we expect.
 */
import { readFileSync } from 'node:fs';

/** The process's argv (as /proc shows it, after any proctitle rewrite), or null if it is gone. */
export function readCmdline(pid: number): string[] | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    // No /proc (not Linux): fall back to a signal-0 probe, without a command line.
    return signalProbe(pid) ? [] : null;
  }
  // The state letter follows the parenthesised command name, which may itself hold ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  if (state === 'Z' || state === 'X' || state === 'x') return null;
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    // Programs that rewrite their title (redis-server) may use spaces instead of NULs.
    return raw.split('\0').filter((s) => s.length > 0);
  } catch {
    return null;
  }
}

function signalProbe(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `pid` is alive and its command line satisfies `matches` (joined with spaces). */
export function isAliveAs(pid: number | null, matches: (cmdline: string) => boolean): boolean {
  if (pid === null) return false;
  const argv = readCmdline(pid);
  if (argv === null) return false;
  if (argv.length === 0) return true; // no /proc: cannot check the program, trust the pid
  return matches(argv.join(' '));
}

/** Sends `sig` to `pid`; false if it does not exist. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}
