/**
 * Stall versus death (the HA algorithm in ha.ts, step 3). A health check that gets no answer
 * is followed by a bare TCP connect to the same port:
 *
 *  - accepted: the process is alive — the kernel completes the handshake for a listening
 *    socket even when the process is busy (a MIGRATE of a big key, a long script) or
 *    frozen (SIGSTOP). That outage is a STALL, judged against --stall-down-after-ms.
 *  - refused: nothing listens: the process is gone. A DEATH, judged against the shorter of
 *    --down-after-ms and --dead-down-after-ms (1.5 s), even if the outage looked like a stall
 *    before (a frozen process that was then killed). Waiting longer for a process that is not
 *    there buys nothing: the window exists to ride out a slow answer or a network blip, and a
 *    refusal is neither. (Its checks must still have failed twice in a row: isDown.)
 *  - unanswered (connect timeout, unreachable): a death too — unless the outage already was
 *    a stall (a frozen process stops accepting once its listen backlog is full, so only a
 *    refusal ends a stall) or a slot migration involves the group (below).
 *
 * Migrations. While a migration task is running (or cancelling: keys move back) with the
 * group as source or target, or a slot is marked as moving between it and another group, the
 * master's MIGRATE of a big key blocks it for as long as the key takes to send. Failing it
 * over then would leave keys in two groups (the copy on the target, the original on the
 * promoted replica). So during a migration a master that does not answer is judged a stall
 * unless its port refuses connections, against its own, longer window:
 * --migration-stall-down-after-ms (60 s; measured: MIGRATE of a 2M-field hash blocked its
 * master for 13.4 s on a loaded 2-core machine, bench/big-key-ha.mjs). Waiting is safe: in durable mode nothing written to
 * the stalled master is acknowledged until a replica confirmed it, so nothing acknowledged
 * waits on the stall; and a key move the runner saw acknowledged is on the target already,
 * so it is not lost if the master is failed over after the stall window after all.
 *
 * Invariant: a stall never shortens a window: a server is failed over no sooner than a dead
 * one would be.
 */
import { connect } from 'node:net';
import { MigrationState, splitAddr, type MigrationTask, type SlotInfo } from '@reborn/coordinator';
import type { ConnectResult, Probe } from './ha-probe.js';
export type { ConnectResult } from './ha-probe.js';

/** One TCP connect to `addr`, closed at once; never throws. */
export function probeConnect(addr: string, timeoutMs: number): Promise<ConnectResult> {
  const { host, port } = splitAddr(addr);
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (r: ConnectResult): void => {
      sock.destroy();
      resolve(r);
    };
    sock.setTimeout(timeoutMs, () => done('unanswered'));
    sock.once('connect', () => done('accepted'));
    sock.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : 'unanswered'));
  });
}

/** Books a failed check's connect result on the probe; true when a stall just began. */
export function noteFailedCheck(p: Pick<Probe, 'stalledSince' | 'lastConnect'>, connectResult: ConnectResult, now: number): boolean {
  p.lastConnect = connectResult;
  if (connectResult === 'refused') {
    p.stalledSince = null;
    return false;
  }
  if (connectResult === 'accepted' && p.stalledSince === null) {
    p.stalledSince = now;
    return true;
  }
  return false;
}

export interface DownWindows {
  downAfterMs: number;
  stallDownAfterMs: number;
  migrationStallDownAfterMs: number;
  deadDownAfterMs: number;
}

/** The window a master's outage is judged against (see the file header). */
export function masterDownAfterMs(p: Pick<Probe, 'stalledSince' | 'lastConnect'>, migrating: boolean, w: DownWindows): number {
  if (p.lastConnect === 'refused') return Math.min(w.downAfterMs, w.deadDownAfterMs);
  if (migrating) return w.migrationStallDownAfterMs;
  if (p.stalledSince !== null) return w.stallDownAfterMs;
  return w.downAfterMs;
}

/** Migration states in which keys move (MIGRATE runs on a source master). */
const MOVING: ReadonlySet<string> = new Set([MigrationState.Running, MigrationState.Cancelling]);

/** The groups a key move involves now: sources and targets of moving tasks and of slots in migration. */
export function groupsInMigration(tasks: readonly MigrationTask[], slots: readonly SlotInfo[]): Set<number> {
  const out = new Set<number>();
  for (const t of tasks) {
    if (!MOVING.has(t.state)) continue;
    for (const g of t.from) out.add(g);
    out.add(t.to);
  }
  for (const s of slots) {
    if (s.from !== undefined) out.add(s.from);
    if (s.to !== undefined) out.add(s.to);
  }
  return out;
}
