/**
 * The transient/operator line of a migration step (task-faults.ts) for the errors that need no
 * server to classify, and the wait clock. The server-dependent cases (an unreachable master,
 * a group that failed over) run end to end in test/migration-target-failover.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ConflictError, UnavailableError, type Store } from '@reborn/coordinator';
import { MigrationError, MigrationWait } from './migration-common.js';
import { WaitClock, transientFault } from './task-faults.js';

/** Never consulted by the cases below (only a RedisAdminError reads the topology). */
const noStore = null as unknown as Store;

function replyError(message: string): Error {
  const e = new Error(message);
  e.name = 'ReplyError';
  return e;
}

describe('transientFault', () => {
  it('waits out what passes by itself', async () => {
    const w = new MigrationWait('waiting for group 2 to have a master', 'etcd names none');
    expect(await transientFault(w, noStore, null)).toBe(w);
    expect((await transientFault(replyError('LOADING Redis is loading the dataset in memory'), noStore, null))?.waitingFor).toBe('waiting for redis to take commands');
    expect((await transientFault(replyError("ERR Target instance replied with error: OOM command not allowed when used memory > 'maxmemory'."), noStore, null))?.waitingFor).toBe(
      'waiting for redis to take commands',
    );
    expect((await transientFault(new UnavailableError('etcd: no quorum'), noStore, null))?.waitingFor).toBe('waiting for etcd');
    expect((await transientFault(new ConflictError('slots kept changing', { retryable: true }), noStore, null))?.waitingFor).toBe('waiting for etcd');
  });

  it('hands the rest to an operator', async () => {
    expect(await transientFault(new MigrationError('EBUSYKEY', 'BUSYKEY: key "k" in both groups'), noStore, null)).toBeNull();
    expect(await transientFault(replyError('NOPERM this user has no permissions to run the migrate command'), noStore, null)).toBeNull();
    expect(await transientFault(new ConflictError('group 3 is in use'), noStore, null)).toBeNull();
    expect(await transientFault(new TypeError('x is not a function'), noStore, null)).toBeNull();
  });
});

describe('WaitClock', () => {
  it('one wait across retries: since when, a growing pause, ended once', () => {
    const clock = new WaitClock();
    const w = new MigrationWait('waiting for group 2 to have a reachable master', 'h:1: connect ECONNREFUSED');
    const first = clock.tick(w, 1000);
    expect(first).toMatchObject({ began: true, retries: 1, reason: 'waiting for group 2 to have a reachable master (h:1: connect ECONNREFUSED)' });
    const later = clock.tick(new MigrationWait(w.waitingFor, 'h:1: connect ETIMEDOUT'), 13_400);
    expect(later).toMatchObject({ began: false, retries: 2, reason: 'waiting for group 2 to have a reachable master (h:1: connect ETIMEDOUT; since 12 s)' });
    expect(later.pauseMs).toBeGreaterThan(first.pauseMs);
    for (let i = 0; i < 10; i++) expect(clock.tick(w, 20_000).pauseMs).toBeLessThanOrEqual(2000);
    expect(clock.tick(new MigrationWait('x', 'y', { retryInMs: 7000 }), 21_000)).toMatchObject({ began: true, pauseMs: 7000 });
    expect(clock.end(22_000)).toEqual({ waitedFor: 'x', waitedMs: 1000 });
    expect(clock.end(23_000)).toBeNull();
  });
});
