/**
 * What the proxy does when the MIGRATE that moves a request's keys to the target (the on-touch
 * move of a migrating slot, forward.ts) is refused by the target.
 *
 * BUSYKEY — the key is in both groups. The migration runner copies some keys to the target
 * first and deletes the source copy only after the target's replicas confirmed the copy
 * (copy-then-delete); in that window our MIGRATE answers BUSYKEY. So it is retried, the
 * session still gated (the client's later commands stay behind it), with a short backoff for
 * about 1.5 s in all. Still BUSYKEY after that: a real duplicate, surfaced as an error.
 *
 * OOM — the target is at maxmemory with noeviction. MIGRATE deletes a source key only after
 * the target answered its RESTORE with OK, so a refused RESTORE leaves the key whole on the
 * source; and nothing writes a migrating slot's keys on the source (every proxy moves a key
 * before it writes it). So a request that only reads may be answered by the source: it sees
 * the key's one current value. Writes keep failing, with an error saying why, since a write
 * must land in the target. With several keys, MIGRATE may have moved some before the target
 * refused another, so the source answers only when EXISTS finds every one of them still there.
 *
 * The one narrow race: another proxy's MIGRATE of the same key may succeed between our
 * refusal and our read (the target freed memory meanwhile). The key is then already gone from
 * the source, and our read answers as if it did not exist (or the EXISTS check fails and the
 * client gets the error). It never returns a value that was overwritten: writes only happen
 * in the target, after the key left the source.
 *
 * TRYAGAIN — the migration runner is copying the key (its copy lease, coordinator's
 * copy-lease.ts): retried like BUSYKEY, for up to a little more than one lease.
 *
 * BIGKEY — the key is too big for one MIGRATE without stalling the source; the script asked
 * the runner to move it in pieces (WANTED_HASH). Retried the same way: the runner's move puts
 * a hold on the key, and the request then waits for the move (key-holds.ts). A runner that
 * never takes it (the task paused, no runner alive) costs one MIGRATE of the whole key after
 * the retries: a stall of the source, but the request is served.
 *
 * Invariant: pure decisions; forward.ts does the sending and keeps the session gated.
 */
import { COPY_LEASE_MS } from '@reborn/coordinator';
import type { BackendRequest } from './backend.js';

/** Waits between BUSYKEY retries: about 1.5 s in all, short first (the usual window is short). */
export const BUSYKEY_RETRY_DELAYS_MS: readonly number[] = [20, 40, 80, 160, 300, 300, 300, 300];

/**
 * Waits between retries of a key the migration runner is copying (TRYAGAIN from the on-touch
 * script, coordinator's copy-lease.ts): short first, since a chunk is usually settled within
 * milliseconds; in all a little longer than a copy lease, so a runner that died mid-chunk
 * costs a client a wait, not an error.
 */
export const COPYING_RETRY_DELAYS_MS: readonly number[] = [2, 5, 10, 20, 40, 80, ...Array<number>(Math.ceil((COPY_LEASE_MS + 1000) / 250)).fill(250)];

export type MigrateRefusal = 'copying' | 'bigkey' | 'busykey' | 'oom' | 'other';

/**
 * Redis wraps the target's refusal: "ERR Target instance replied with error: BUSYKEY …" and
 * "… error: OOM command not allowed when used memory > 'maxmemory'.".
 */
export function classifyMigrateError(message: string): MigrateRefusal {
  if (/^TRYAGAIN\b/.test(message)) return 'copying';
  if (/^BIGKEY\b/.test(message)) return 'bigkey';
  if (/\bBUSYKEY\b/.test(message)) return 'busykey';
  if (/\bOOM\b/.test(message)) return 'oom';
  return 'other';
}

/**
 * A request the source may answer after an OOM refusal: it only reads (the command table's
 * write flag, scripts counted as writes), does not block (a blocked read would wait in a
 * group that is not the slot's), and is not tied to a WATCH's connection to the target.
 */
export function mayReadFromSource(breq: BackendRequest, blocking: boolean): boolean {
  return breq.write !== true && !blocking && breq.pinned === undefined && breq.pinnedOnly !== true;
}

/** The error a request gets when the target refuses its keys for memory and the source may not answer it. */
export function targetFullMessage(slot: number, message: string): string {
  return `OOM the keys of migrating slot ${slot} must move to the target group first, and its master refuses them (out of memory): ${message}`;
}
