/**
 * The start-up hold: data commands that arrive while the proxy cannot serve yet (table not
 * loaded, not registered or not a member in etcd) wait instead of being refused, as redis
 * makes clients wait while it loads — but for at most `holdMs` per request, counted from its
 * arrival; after that they get the refusal they would have had. A fence is not held: it
 * may last long, and its error says so at once (the `holdable` test excludes it).
 *
 * Order: the held request gates its session (session.ts), so every later request of that
 * client parks behind it and runs after it, in order. Memory: a session stops reading at
 * --max-pipeline waiting requests, so a held client costs at most that; one timer per held
 * session (the first held request), none per parked one.
 */
import type { Session } from './session.js';

interface Waiter {
  session: Session;
  run: () => void;
  timer: NodeJS.Timeout;
  onClose: () => void;
}

export class StartupHold {
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly holdMs: number,
    /** True while a refusal now would be a start-up one (not ready, not a member), not a fence. */
    private readonly holdable: () => boolean,
  ) {}

  /** Sessions waiting now. */
  get waiting(): number {
    return this.waiters.size;
  }

  /**
   * Holds a request that arrived at `arrivedAt` (performance.now()): `run` is called again
   * once the proxy may serve, or when the request's bound has passed. False: do not hold,
   * answer now (holding is off, not a start-up refusal, or the bound has passed).
   */
  hold(session: Session, arrivedAt: number, run: () => void): boolean {
    if (this.holdMs <= 0 || session.isEnding || !this.holdable()) return false;
    const left = arrivedAt + this.holdMs - performance.now();
    if (left <= 0) return false;
    session.gate();
    const waiter: Waiter = {
      session,
      run,
      // +1: the rerun must find the bound passed, not hold again for a few microseconds.
      timer: setTimeout(() => this.release(waiter), Math.ceil(left) + 1),
      onClose: () => this.release(waiter),
    };
    this.waiters.add(waiter);
    session.whenClosed(waiter.onClose);
    return true;
  }

  /** The proxy's state changed: every held request runs again (and may be held again). */
  wake(): void {
    for (const w of [...this.waiters]) this.release(w);
  }

  private release(w: Waiter): void {
    if (!this.waiters.delete(w)) return;
    clearTimeout(w.timer);
    w.session.forgetWhenClosed(w.onClose);
    try {
      w.run();
    } finally {
      // After run, which may have gated again: parked requests go on only once nothing holds.
      w.session.ungate();
    }
  }
}
