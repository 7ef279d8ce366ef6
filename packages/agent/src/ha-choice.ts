/**
 * The pure decisions of a failover (step 4c and 4f of the algorithm in failover.ts): which
 * replica to promote, which replicas hold the choice back, and the group after the switch.
 * Invariant: no I/O here; a candidate is only ever a replica that answered INFO, the one with
 * the highest replication offset (ties: the first in the group's list).
 */
import { ServerRole, groupMaster, type GroupInfo, type GroupServer } from '@reborn/coordinator';
import { isDown, type Probe } from './ha-probe.js';
import { replicationOffset, type ReplicationInfo } from '@reborn/coordinator/admin';

export interface Candidate {
  addr: string;
  info: ReplicationInfo | null;
  error?: string;
}

/** The replica to promote: highest offset among those that answered; ties go to the first. */
export function pickCandidate(cands: readonly Candidate[]): Candidate | null {
  let best: Candidate | null = null;
  let bestOffset = -1;
  for (const c of cands) {
    if (c.info === null) continue;
    const off = replicationOffset(c.info) ?? 0;
    if (best === null || off > bestOffset) {
      best = c;
      bestOffset = off;
    }
  }
  return best;
}

/**
 * Replicas that did not answer this time and are not known down either. A `WAIT 1` (the
 * proxy's --durable) is satisfied by any one replica, so the one that confirmed the newest
 * writes may be exactly the one that is briefly slow: promoting another would drop them.
 */
export function unaccountedReplicas(
  cands: readonly Candidate[],
  probeOf: (addr: string) => Pick<Probe, 'failures' | 'lastOkAt'> | undefined,
  now: number,
  downAfterMs: number,
): string[] {
  return cands
    .filter((c) => {
      if (c.info !== null) return false;
      const p = probeOf(c.addr);
      return p === undefined || !isDown(p, now, downAfterMs);
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
