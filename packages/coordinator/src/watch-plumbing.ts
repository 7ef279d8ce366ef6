/**
 * What every etcd watch in this package does the same way (the topology watch, the proxy list
 * watch, the redis-config watch): hand errors to the caller's onError without letting them
 * escape, retry a read with doubling backoff until etcd answers or the watch is closed, and
 * cancel a watcher without waiting on etcd forever.
 *
 * Invariant: none of these throws, and none keeps running (or keeps the process alive) once
 * the watch's AbortSignal fired.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Watcher } from 'etcd3';

/** How long closing a watch waits for etcd to confirm the cancel. */
export const CANCEL_TIMEOUT_MS = 2000;

/**
 * Passes `err` to `handlers.onError` (called as a method, so a class instance keeps its `this`).
 * Never throws: these run inside etcd3's stream callbacks, which rethrow what escapes them.
 */
export function reportTo(handlers: { onError?(err: Error): void }, err: unknown): void {
  try {
    handlers.onError?.(err instanceof Error ? err : new Error(String(err)));
  } catch {
    // The error sink itself failed: nothing sensible left to tell.
  }
}

/**
 * Cancels `w`. Never throws; gives up waiting after CANCEL_TIMEOUT_MS, because etcd3 waits for
 * the server to confirm a cancel and a stalled etcd never does. The timer is unref'd: a cancel
 * that finished early must not hold the process open.
 */
export async function cancelWatcher(w: Watcher | null): Promise<void> {
  if (w) await Promise.race([w.cancel().catch(() => undefined), sleep(CANCEL_TIMEOUT_MS, undefined, { ref: false })]);
}

export interface RetryOptions {
  /** The watch's close: no attempt starts, and no backoff sleep lasts, after it fires. */
  signal: AbortSignal;
  /** First pause after a failure; it doubles up to maxMs. */
  minMs: number;
  maxMs: number;
  /** Each failed attempt's error. */
  onError(err: unknown): void;
}

/**
 * Runs `attempt` until it resolves and returns its result; each failure goes to onError and is
 * followed by a pause (doubling from minMs to maxMs). Resolves `undefined` once `signal` fired.
 */
export async function retryUntilDone<T extends object>(attempt: () => Promise<T>, o: RetryOptions): Promise<T | undefined> {
  for (let delay = o.minMs; !o.signal.aborted; delay = Math.min(delay * 2, o.maxMs)) {
    try {
      return await attempt();
    } catch (err) {
      o.onError(err);
    }
    try {
      await sleep(delay, undefined, { signal: o.signal });
    } catch {
      return undefined; // closed
    }
  }
  return undefined;
}
