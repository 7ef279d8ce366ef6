/**
 * The registry of everything the testkit started in this process: child processes, temp dirs,
 * and the handles that own them.
 *
 * - stopAll() stops every live handle gracefully (for afterAll hooks).
 * - If the test process exits anyway — a crash, process.exit, a failed hook, a signal — the
 *   exit hook SIGKILLs every child still alive and removes the temp dirs, so nothing outlives
 *   the run. It only ever signals pids of children spawned here (never a name match), and
 *   only while Node still considers them running.
 * Hooks are installed on first use, so importing the testkit has no side effects.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Stoppable {
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
const handles = new Set<Stoppable>();
const tempDirs = new Set<string>();
let hooked = false;

function killChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function installHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killChildren);
  // A signal's default action ends the process without 'exit': clean up, then re-raise the
  // signal with our listener gone so the process still dies the way it was asked to.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killChildren();
      process.kill(process.pid, sig);
    });
  }
}

/** Registers a spawned child; it leaves the registry when it exits. */
export function trackChild(child: ChildProcess): void {
  installHooks();
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Registers a handle for stopAll(); returns the function that unregisters it. */
export function trackHandle(h: Stoppable): () => void {
  installHooks();
  handles.add(h);
  return () => handles.delete(h);
}

/** A fresh dir under os.tmpdir(), removed by `remove()` or, failing that, at process exit. */
export async function tempDir(prefix: string): Promise<{ dir: string; remove(): Promise<void> }> {
  installHooks();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return {
    dir,
    remove: async () => {
      tempDirs.delete(dir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Gracefully stops everything still running; rejects with the first failure, if any. */
export async function stopAll(): Promise<void> {
  const results = await Promise.allSettled([...handles].map((h) => h.stop()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Pids of tracked children still running (for tests of the testkit itself). */
export function liveChildPids(): number[] {
  return [...children].flatMap((c) => (c.pid !== undefined && c.exitCode === null && c.signalCode === null ? [c.pid] : []));
}
