/**
 * What the HA leader knows about each server (a Probe), how a new one starts, the rule that
 * confirms a server down (step 3 of the algorithm in ha.ts), and the leader's one read of INFO
 * replication with the parts the in-sync set needs (replication ids, a master's replica lines).
 * Invariant: a server is down only after 2 failed checks in a row AND a whole window since
 * its last success — --down-after-ms for a death, the longer --stall-down-after-ms for a
 * stall (ha-stall.ts tells them apart); a new probe counts as seen at the leader's election,
 * so a new leader always waits a full window before it acts.
 */
import { joinAddr } from '@reborn/coordinator';
import { parseInfo, replicationInfo, type InfoFields, type RedisAdmin, type ReplicationInfo } from '@reborn/coordinator/admin';

/** What a TCP connect to a server's port showed after a check failed (ha-stall.ts). */
export type ConnectResult = 'accepted' | 'refused' | 'unanswered';

/** One `slaveN:` line of a master's INFO replication: a replica attached to it. */
export interface AttachedReplica {
  /** `ip:port` as the master sees it (the replica's announced ip and listening port). */
  addr: string;
  /** `online` once the initial sync is done (`wait_bgsave`, `send_bulk` before). */
  state: string;
  /** The offset the replica last acknowledged (REPLCONF ACK). */
  offset: number;
  /** Whole seconds since the replica's last REPLCONF ACK (replicas send one every second). */
  lagSeconds: number;
}

/** What INFO replication says beyond ReplicationInfo: the replication history and the attached replicas. */
export interface ReplicationDetails {
  /** master_replid: the replication history this server is on (a replica shares its master's). */
  replid: string | null;
  /** master_replid2: the history it was on before it was promoted (null when none). */
  replid2: string | null;
  /** A master's attached replicas (empty on a replica). */
  attached: AttachedReplica[];
}

/** The null replication id redis reports for "no previous history". */
const NO_REPLID = /^0+$/;

/** Reads replication ids and `slaveN:` lines from parsed INFO replication fields. */
export function replicationDetails(fields: InfoFields): ReplicationDetails {
  const id = (k: string): string | null => {
    const v = fields[k]?.trim();
    return v === undefined || v === '' || NO_REPLID.test(v) ? null : v;
  };
  const attached: AttachedReplica[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (!/^slave\d+$/.test(k)) continue;
    const kv = new Map(v.trim().split(',').map((part) => [part.slice(0, part.indexOf('=')), part.slice(part.indexOf('=') + 1)] as [string, string]));
    const ip = kv.get('ip');
    const port = Number(kv.get('port'));
    const offset = Number(kv.get('offset'));
    const lag = Number(kv.get('lag'));
    // A line we cannot read is skipped: that replica is then simply not seen as attached.
    if (ip === undefined || !Number.isInteger(port) || !Number.isSafeInteger(offset) || !Number.isInteger(lag)) continue;
    attached.push({ addr: joinAddr(ip, port), state: kv.get('state') ?? 'unknown', offset, lagSeconds: lag });
  }
  return { replid: id('master_replid'), replid2: id('master_replid2'), attached };
}

/** One INFO replication of `addr`, bounded by `timeoutMs`: the typed section and its details. */
export async function readReplication(admin: RedisAdmin, addr: string, timeoutMs: number): Promise<{ info: ReplicationInfo; details: ReplicationDetails }> {
  const fields = parseInfo(String(await admin.call(addr, ['INFO', 'replication'], timeoutMs)));
  return { info: replicationInfo(fields), details: replicationDetails(fields) };
}

/** Whether two servers' offsets are comparable: they share a replication history. */
export function sameHistory(a: ReplicationDetails, b: ReplicationDetails): boolean {
  const ids = new Set([a.replid, a.replid2].filter((x): x is string => x !== null));
  return (b.replid !== null && ids.has(b.replid)) || (b.replid2 !== null && ids.has(b.replid2));
}

/** Whether `d` is on history `replid` (its current one, or the one before its promotion). */
export function onHistory(d: ReplicationDetails, replid: string): boolean {
  return d.replid === replid || d.replid2 === replid;
}

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
  /** The rest of that INFO: replication ids and attached replicas. */
  details: ReplicationDetails | null;
  /**
   * Since when the current outage is a stall (the port accepts connections but INFO gets no
   * answer: a busy or frozen process), null while it answers or when it looks dead.
   */
  stalledSince: number | null;
  /** The current stall was logged. */
  stallReported: boolean;
  /** What a TCP connect showed after the last failed check (null: none failed since the last success). */
  lastConnect: ConnectResult | null;
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
  /** A down master was not failed over because no in-sync member answers (recorded once). */
  blockedReported: boolean;
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
  /** The outage is a stall (alive but not answering), judged against --stall-down-after-ms. */
  stalled: boolean;
  stalledSince: string | null;
}

/** Whether the probe's failures confirm the server down (algorithm step 3) for a window of `downAfterMs`. */
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
    details: null,
    stalledSince: null,
    stallReported: false,
    lastConnect: null,
    offline,
    inconsistentSince: null,
    failoverFailedReported: false,
    vetoReported: false,
    waitReported: false,
    suspendReported: false,
    blockedReported: false,
  };
}

/** A check answered: the server is up and every once-per-outage report is re-armed. */
export function recordCheckSuccess(p: Probe, info: ReplicationInfo, details: ReplicationDetails): void {
  p.info = info;
  p.details = details;
  p.stalledSince = null;
  p.stallReported = false;
  p.lastConnect = null;
  p.failures = 0;
  p.lastError = null;
  p.lastOkAt = Date.now();
  p.failoverFailedReported = false;
  p.vetoReported = false;
  p.waitReported = false;
  p.suspendReported = false;
  p.blockedReported = false;
}
