/**
 * The pure decisions of a failover (step 4c and 4f of the algorithm in failover.ts): which
 * replica to promote, which replicas hold the choice back, and the group after the switch.
 * Invariant: no I/O here; a candidate is only ever a replica that answered INFO; while the
 * group's in-sync set has members, it is on the group's replication history and it is the member
 * with the highest offset — or a non-member strictly ahead of it on the same history, which
 * holds everything that member holds (ha-insync.ts has the argument) — and when no member
 * answers nothing is chosen: a stale replica is never promoted. The group's history is the
 * failed master's replication id — or, for a master that restarted (a new process has a new
 * id), the one its in-sync replicas share (replicasHistory): never the restarted master's.
 */
import { ServerRole, groupMaster, type GroupInfo, type GroupServer } from '@reborn/coordinator';
import { isDown, onHistory, sameHistory, type Probe, type ReplicationDetails } from './ha-probe.js';
import { replicationOffset, type ReplicationInfo } from '@reborn/coordinator/admin';

export interface Candidate {
  addr: string;
  info: ReplicationInfo | null;
  /** Replication ids of that INFO (absent: unknown, never on a known history). */
  details?: ReplicationDetails | null;
  error?: string;
}

/** A candidate that answered. */
export type AnsweringCandidate = Candidate & { info: ReplicationInfo };

/** What the choice came to. */
export type CandidatePick =
  | { kind: 'promote'; candidate: AnsweringCandidate; why: string }
  /** The in-sync set has members and none answers on the group's history. */
  | { kind: 'blocked'; members: readonly string[] }
  /** No replica answers at all. */
  | { kind: 'none' };

/** Highest offset among `cands`; ties go to the first. */
function highest(cands: readonly AnsweringCandidate[]): AnsweringCandidate | null {
  let best: AnsweringCandidate | null = null;
  let bestOffset = -1;
  for (const c of cands) {
    const off = replicationOffset(c.info) ?? 0;
    if (best === null || off > bestOffset) {
      best = c;
      bestOffset = off;
    }
  }
  return best;
}

/**
 * The replica to promote (see the file header). `inSync`: the group's in-sync members (an
 * empty list: degraded, any replica may be chosen). `history`: the failed master's
 * master_replid at its last good check, when known; a replica on another history (one
 * restarted empty, say) holds none of the group's writes whatever its offset says.
 */
export function pickCandidate(cands: readonly Candidate[], inSync: readonly string[] = [], history: string | null = null): CandidatePick {
  const answering = cands.filter((c): c is AnsweringCandidate => c.info !== null);
  if (answering.length === 0) return inSync.length > 0 ? { kind: 'blocked', members: inSync } : { kind: 'none' };
  const onGroupHistory = history === null ? answering : answering.filter((c) => c.details != null && onHistory(c.details, history));
  if (inSync.length === 0) {
    // Degraded: nobody promised anything; prefer the group's history if anyone is on it.
    const best = highest(onGroupHistory.length > 0 ? onGroupHistory : answering)!;
    return { kind: 'promote', candidate: best, why: 'the in-sync set is empty: highest offset' };
  }
  const members = new Set(inSync);
  const bestMember = highest(onGroupHistory.filter((c) => members.has(c.addr)));
  if (bestMember === null) return { kind: 'blocked', members: inSync };
  const memberOffset = replicationOffset(bestMember.info) ?? 0;
  const ahead = highest(
    onGroupHistory.filter(
      (c) =>
        !members.has(c.addr) &&
        (replicationOffset(c.info) ?? 0) > memberOffset &&
        c.details != null &&
        bestMember.details != null &&
        sameHistory(c.details, bestMember.details),
    ),
  );
  if (ahead !== null) return { kind: 'promote', candidate: ahead, why: `not in the in-sync set, but ahead of its best member ${bestMember.addr} on the same history` };
  return { kind: 'promote', candidate: bestMember, why: 'the in-sync member with the highest offset' };
}

/** What the in-sync members that answered say the group's replication history is. */
export type ReplicasHistory =
  /** Every member that answered is on this one (master_replid). */
  | { kind: 'shared'; replid: string }
  /** No member answered with a replication id (or the set is empty). */
  | { kind: 'unknown' }
  /** Members answered on different histories: which one holds the acknowledged writes is unclear. */
  | { kind: 'split'; replids: string[] };

/**
 * The history of a group whose master restarted (a fail-over verdict of repl-guard.ts): the
 * restarted process has a NEW master_replid, while the replicas that were in sync with the
 * process before it keep the old one — that one is the group's. Pure.
 */
export function replicasHistory(cands: readonly Candidate[], inSync: readonly string[]): ReplicasHistory {
  const members = new Set(inSync);
  const ids = new Set<string>();
  for (const c of cands) if (members.has(c.addr) && c.info !== null && c.details?.replid) ids.add(c.details.replid);
  if (ids.size === 0) return { kind: 'unknown' };
  if (ids.size > 1) return { kind: 'split', replids: [...ids].sort() };
  return { kind: 'shared', replid: [...ids][0]! };
}

/**
 * Replicas that did not answer this time and are not known down either. A `WAIT n` (the
 * proxy's --durable) is satisfied by any n replicas, so the one that confirmed the newest
 * writes may be exactly the one that is briefly slow: promoting another would drop them.
 * A replica whose port refused the connect after its last failed check is accounted for:
 * its process is gone, so it could never be promoted, and waiting out its down window would
 * only lengthen the outage (a process that comes back there is a restart, not the slow one).
 */
export function unaccountedReplicas(
  cands: readonly Candidate[],
  probeOf: (addr: string) => Pick<Probe, 'failures' | 'lastOkAt' | 'lastConnect'> | undefined,
  now: number,
  downAfterMs: number,
): string[] {
  return cands
    .filter((c) => {
      if (c.info !== null) return false;
      const p = probeOf(c.addr);
      return p === undefined || (p.lastConnect !== 'refused' && !isDown(p, now, downAfterMs));
    })
    .map((c) => c.addr);
}

/** The group after promoting `newMaster`: it first as master, then the old master, then the rest. */
export function promotedGroup(g: GroupInfo, newMaster: string): GroupInfo {
  const old = groupMaster(g);
  const rest = g.servers.filter((s) => s.addr !== newMaster && s.addr !== old?.addr);
  const servers: GroupServer[] = [{ addr: newMaster, role: ServerRole.Master }];
  if (old) servers.push({ addr: old.addr, role: ServerRole.Replica });
  for (const s of rest) servers.push({ addr: s.addr, role: ServerRole.Replica });
  // Nobody is in sync with the new master yet: its replicas rejoin as they catch up.
  return { ...g, servers, inSync: [] };
}

/** How the candidates looked when the choice was made (logged and recorded with the event). */
export interface CandidateSummary {
  addr: string;
  offset: number | null;
  linkUp: boolean | null;
  error?: string;
}

export function summarizeCandidates(cands: readonly Candidate[]): CandidateSummary[] {
  return cands.map((c) => ({
    addr: c.addr,
    offset: c.info ? replicationOffset(c.info) : null,
    linkUp: c.info?.linkUp ?? null,
    ...(c.error ? { error: c.error } : {}),
  }));
}
