/**
 * What the HA leader knows about each server (a Probe), how a new one starts, and the rule
 * that confirms a server down (step 3 of the algorithm in ha.ts). Invariant: a server is down
 * only after 2 failed checks in a row AND a whole --down-after-ms window since its last
 * success; a new probe counts as seen at the leader's election, so a new leader always waits
 * a full window before it acts.
 */
import type { ReplicationInfo } from '@reborn/coordinator/admin';

/** What the leader knows about one server. */
export interface Probe {
  addr: string;
  group: number;
  /** Last successful check (ms epoch). */
  lastOkAt: number;
  lastCheckAt: number;
  /** Consecutive failed checks. */
  failures: number;
  lastError: string | null;
  /** INFO replication of the last successful check. */
  info: ReplicationInfo | null;
  /** Recorded offline in etcd (by this leader or a previous one). */
  offline: boolean;
  /** Since when this replica has replicated from the wrong place (not having been down). */
  inconsistentSince: number | null;
  /** A failover_failed event was recorded for the current outage. */
  failoverFailedReported: boolean;
  vetoReported: boolean;
  /** A failover was put off for an unaccounted replica (logged once). */
  waitReported: boolean;
  /** A down master was not failed over because of the topology alarm (logged once). */
  suspendReported: boolean;
}

export interface ServerStatus {
  group: number;
  addr: string;
  role: string;
  up: boolean;
  down: boolean;
  offline: boolean;
  failures: number;
  lastOkAt: string;
  lastError: string | null;
  redisRole: string | null;
  offset: number | null;
}

/** Whether the probe's failures confirm the server down (algorithm step 3). */
export function isDown(p: Pick<Probe, 'failures' | 'lastOkAt'>, now: number, downAfterMs: number): boolean {
  return p.failures >= 2 && now - p.lastOkAt >= downAfterMs;
}

/**
 * The probe of a server first seen in this leadership term: seen at the election (or just
 * now, whichever is later), offline when a health record says so.
 */
export function newProbe(addr: string, group: number, electedAt: number, offline: boolean): Probe {
  return {
    addr,
    group,
    lastOkAt: Math.max(electedAt, Date.now() - 1),
    lastCheckAt: 0,
    failures: 0,
    lastError: null,
    info: null,
    offline,
    inconsistentSince: null,
    failoverFailedReported: false,
    vetoReported: false,
    waitReported: false,
    suspendReported: false,
  };
}

/** A check answered: the server is up and every once-per-outage report is re-armed. */
export function recordCheckSuccess(p: Probe, info: ReplicationInfo): void {
  p.info = info;
  p.failures = 0;
  p.lastError = null;
  p.lastOkAt = Date.now();
  p.failoverFailedReported = false;
  p.vetoReported = false;
  p.waitReported = false;
  p.suspendReported = false;
}
