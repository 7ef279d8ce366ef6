/**
 * What a refused ACL user means: a fence, or a stale server.
 *
 * reborn-config writes `fences/<id>` BEFORE it disables a proxy's user anywhere
 * (config/fence.ts), and only the proxy's own recovery (after reloading its table) or a
 * failed fence (the barrier is then rolled back) deletes it. So when a server refuses our
 * user and a linearizable read, made after the refusal, finds no fence record for us, the
 * disabled user is left over from an earlier fence that we have since recovered from — the
 * server was down (or frozen) during that recovery. Our table is as new as that of any
 * unfenced proxy, so re-enabling the user there is what the recovery would have done.
 *
 * The race: a fence may start between our read and our `ACL SETUSER on`, and our SETUSER
 * may undo its disable on that server. So the record is read again after the SETUSER, before
 * the connection authenticates again: a record found then fences us (we serve nothing
 * until recovered, whatever that server says). A read that fails fences us too: without
 * etcd we cannot tell, and a fence is the safe answer (the recovery waits for etcd anyway).
 *
 * Bounded: one check per server at a time (every refused connection to it shares it), and a
 * server that keeps refusing after MAX_REPAIRS repairs within REPAIR_WINDOW_MS gets a fence
 * (the full recovery, with its backoff) instead of another repair, so nothing spins.
 */
import type { Logger } from 'pino';

/** `fail`: the connection fails (we are fenced, or the repair did not work yet); `retry`: AUTH again. */
export type Verdict = 'fail' | 'retry';

export interface RefusalCheckOptions {
  /** True while etcd holds a fence record for this proxy (a linearizable read). */
  fenceRecorded(): Promise<boolean>;
  /** Re-enables our user on `addr` (throws when the server does not take it). */
  enableUser(addr: string): Promise<void>;
  /** Already fenced: nothing to decide. */
  isFenced(): boolean;
  /** Fence this proxy (stops data traffic, starts the recovery). */
  fence(addr: string, why: string): void;
  /** A stale server was repaired. */
  repaired(addr: string): void;
  logger: Logger;
}

const MAX_REPAIRS = 5;
const REPAIR_WINDOW_MS = 60_000;

export class RefusalCheck {
  private readonly inProgress = new Map<string, Promise<Verdict>>();
  /** Times of the recent repairs, per server. */
  private readonly repairs = new Map<string, number[]>();

  constructor(private readonly opts: RefusalCheckOptions) {}

  /** Decides what the refusal of our user by `addr` means; every caller meanwhile shares the answer. */
  check(addr: string): Promise<Verdict> {
    if (this.opts.isFenced()) return Promise.resolve('fail');
    let running = this.inProgress.get(addr);
    if (running === undefined) {
      running = this.decide(addr).finally(() => this.inProgress.delete(addr));
      this.inProgress.set(addr, running);
    }
    return running;
  }

  private async decide(addr: string): Promise<Verdict> {
    const fence = (why: string): Verdict => {
      this.opts.fence(addr, why);
      return 'fail';
    };
    const recorded = async (): Promise<boolean | Error> => this.opts.fenceRecorded().catch((err: Error) => err);
    const before = await recorded();
    if (before instanceof Error) return fence(`cannot read our fence record: ${before.message}`);
    if (before) return fence('etcd holds a fence record for this proxy');
    const now = Date.now();
    const recent = (this.repairs.get(addr) ?? []).filter((t) => now - t < REPAIR_WINDOW_MS);
    if (recent.length >= MAX_REPAIRS) {
      return fence(`${addr} refused our user again after ${recent.length} repairs in ${REPAIR_WINDOW_MS / 1000} s`);
    }
    try {
      await this.opts.enableUser(addr);
    } catch (err) {
      // Not a fence (etcd says so); the connection fails and a later one asks again.
      this.opts.logger.warn({ backend: addr, err: (err as Error).message }, 'cannot re-enable our user on a stale server yet');
      return 'fail';
    }
    recent.push(now);
    this.repairs.set(addr, recent);
    const after = await recorded();
    if (after instanceof Error) return fence(`cannot read our fence record: ${after.message}`);
    if (after) return fence('a fence landed while our user was being re-enabled');
    this.opts.logger.warn({ backend: addr, repairs: recent.length }, 'a server refused our user but etcd has no fence for us: re-enabled it there');
    this.opts.repaired(addr);
    return 'retry';
  }
}
