/**
 * The in-sync replica set of each group, kept by the HA leader (step 7 of the algorithm in
 * ha.ts): the replicas that hold every write a durable proxy acknowledged, and the only ones
 * a failover may promote (ha-choice.ts). Pure rules first, then the round step that writes
 * the set to etcd.
 *
 * The rules, each round, for a group whose master answered its check:
 *  - REMOVE a member that is down (its probe), that the master does not list as attached
 *    with `state=online`, or whose lag is above --in-sync-max-lag-ms. redis reports lag in
 *    whole seconds since the replica's last REPLCONF ACK (sent every second), so a reported
 *    lag L means a real lag somewhere in (L−1, L+1) s; a member is removed as soon as L
 *    cannot rule out a real lag above the bound: (L+1) s > bound. With the default 2000 ms
 *    that is L ≥ 2; a healthy replica reports 0 or 1, which is why the bound is at least 2 s.
 *  - ADD a replica of the group that the master lists online with lag ≤ 1 s, that replicates
 *    from that master by its own INFO (link up, same master_replid), and whose offset has
 *    reached the master's master_repl_offset: it held everything the master held at some
 *    moment of the round — caught up, not merely moving. The round's checks read every server
 *    at once, so under steady writes a replica answered a moment before its master always
 *    looks a few bytes behind; such a replica is confirmed by an ordered read — the master
 *    first, then the replica (InSyncKeeper.confirmNearJoiners) — or it would never join.
 *  - A group that never had a set (written before any HA leader managed it: every replica
 *    counts) gets the set these rules compute, in the first round that can judge it.
 *  - One guarded write per group per round (AgentStore.swapGroup: the group unchanged since
 *    it was re-read, our election key alive). Nothing is written while the topology alarm
 *    suspends failover (the round stops before this step) or by an agent that does not lead.
 *
 * Why this is safe although `WAIT n` counts ANY n replicas. A durable proxy acknowledges a
 * write once WAIT n answered n, n = the size of the set as that proxy last read it.
 *  - Removal happens in etcd BEFORE any proxy waits for fewer: a proxy that has not learnt
 *    it still waits for the larger n, so it fails writes rather than acknowledging them.
 *  - Offsets on one replication history are positions in one stream: a replica at a higher
 *    offset holds everything one at a lower offset holds. Offsets are only compared between
 *    servers whose master_replid (or, for a promoted one, master_replid2) matches.
 *  - So the candidate rule (ha-choice.ts) — the highest offset among the members that
 *    answer, or a non-member on the same history with a strictly higher one — holds every
 *    write any answering replica acknowledged.
 *
 * The residual window. WAIT counts any replica, so a non-member (or one added this round)
 * that has caught up can acknowledge in place of a member that is behind but not yet
 * removed. The write is then on that replica, not on the slow member. If that replica
 * answers at the failover, the candidate rule takes it (or a member at least as far).
 * What remains: that replica lost together with the master before the slow member caught
 * up or was removed for lag — within one round and the lag bound. Replicas attached to a
 * master but not named in its group are never candidates: do not attach any in durable mode.
 *
 * Invariant: the set only ever names replicas of the group; a member leaves it in etcd
 * before any proxy stops counting it.
 */
import type { Logger } from 'pino';
import { AgentEventKind, ServerRole, groupMaster, inSyncMembers, type AgentStore, type GroupInfo, type Leadership } from '@reborn/coordinator';
import { replicatesFrom, replicationOffset, type ReplicationInfo } from '@reborn/coordinator/admin';
import { isDown, type Probe, type ReplicationDetails } from './ha-probe.js';
import type { HaRecords } from './ha-records.js';
import type { AgentMetrics } from './metrics.js';

/** A replica of the group as this round saw it. */
export interface ReplicaView {
  addr: string;
  /** Confirmed down by its probe. */
  down: boolean;
  /** Its own INFO replication this round (null: it did not answer). */
  info: ReplicationInfo | null;
  details: ReplicationDetails | null;
}

/** The group's master as this round saw it. */
export interface MasterView {
  addr: string;
  /** master_repl_offset at this round's check. */
  offset: number;
  details: ReplicationDetails;
}

export interface InSyncChange {
  addr: string;
  change: 'added' | 'removed';
  reason: string;
}

/** Whether a reported lag (whole seconds) cannot rule out a real lag above `maxLagMs`. */
export function lagAboveBound(lagSeconds: number, maxLagMs: number): boolean {
  return (lagSeconds + 1) * 1000 > maxLagMs;
}

/** Why member `r` must leave the set, or null when it stays. */
export function removalReason(r: ReplicaView, master: MasterView, maxLagMs: number): string | null {
  if (r.down) return 'down';
  const line = master.details.attached.find((a) => a.addr === r.addr);
  if (!line) return `not attached to the master ${master.addr}`;
  if (line.state !== 'online') return `not online on the master (state=${line.state})`;
  if (lagAboveBound(line.lagSeconds, maxLagMs)) return `lag ${line.lagSeconds} s since its last ack (bound ${maxLagMs} ms)`;
  return null;
}

/** Why replica `r` may join the set, or null when it may not (yet). */
export function joinReason(r: ReplicaView, master: MasterView): string | null {
  if (r.down || r.info === null || r.details === null) return null;
  const line = master.details.attached.find((a) => a.addr === r.addr);
  if (!line || line.state !== 'online' || line.lagSeconds > 1) return null;
  if (!replicatesFrom(r.info, master.addr) || r.info.linkUp !== true) return null;
  if (master.details.replid === null || r.details.replid !== master.details.replid) return null;
  const offset = replicationOffset(r.info);
  if (offset === null || offset < master.offset) return null;
  return `caught up with the master ${master.addr} (offset ${offset} ≥ ${master.offset}, lag ${line.lagSeconds} s)`;
}

/**
 * Whether `r` is a join candidate by everything but its offset: attached online with a fresh
 * ack, replicating from the master on its history. The round's checks read every server at
 * once, so under steady writes a replica read a moment before its master always looks a few
 * bytes behind; such a candidate is confirmed by an ordered read instead (InSyncKeeper).
 */
export function nearlyJoins(r: ReplicaView, master: MasterView): boolean {
  if (r.down || r.info === null || r.details === null) return false;
  const line = master.details.attached.find((a) => a.addr === r.addr);
  if (!line || line.state !== 'online' || line.lagSeconds > 1) return false;
  if (!replicatesFrom(r.info, master.addr) || r.info.linkUp !== true) return false;
  return master.details.replid !== null && r.details.replid === master.details.replid;
}

/**
 * The set after this round's rules: members that stay, plus replicas that may join, in the
 * group's server order. `current` is the set as etcd has it (absent: every replica).
 */
export function nextInSyncSet(
  g: GroupInfo,
  replicas: readonly ReplicaView[],
  master: MasterView,
  maxLagMs: number,
): { set: string[]; changes: InSyncChange[] } {
  const current = new Set(inSyncMembers(g));
  const byAddr = new Map(replicas.map((r) => [r.addr, r]));
  const set: string[] = [];
  const changes: InSyncChange[] = [];
  for (const s of g.servers) {
    if (s.role !== ServerRole.Replica) continue;
    const r = byAddr.get(s.addr) ?? { addr: s.addr, down: false, info: null, details: null };
    if (current.has(s.addr)) {
      const why = removalReason(r, master, maxLagMs);
      if (why === null) set.push(s.addr);
      else changes.push({ addr: s.addr, change: 'removed', reason: why });
    } else {
      const why = joinReason(r, master);
      if (why !== null) {
        set.push(s.addr);
        changes.push({ addr: s.addr, change: 'added', reason: why });
      }
    }
  }
  return { set, changes };
}

/** Whether `set` is what etcd must hold for `g` (a group never managed always needs a write). */
function needsWrite(g: GroupInfo, set: readonly string[]): boolean {
  return g.inSync === undefined || g.inSync.length !== set.length || g.inSync.some((a, i) => a !== set[i]);
}

export interface InSyncDeps {
  agents: AgentStore;
  leadership: Leadership;
  records: HaRecords;
  metrics: AgentMetrics;
  log: Logger;
  maxLagMs: number;
  downAfterMs: number;
  probeOf(addr: string): Probe | undefined;
  /** A fresh `INFO replication` of one server (bounded by the check timeout). */
  readReplication(addr: string): Promise<{ info: ReplicationInfo; details: ReplicationDetails }>;
}

/** Replicas confirmed caught up by an ordered read (master first) this step: their fresh views. */
type Confirmed = Map<string, { info: ReplicationInfo; details: ReplicationDetails }>;

/** The round step: judges and writes one group's set. */
export class InSyncKeeper {
  constructor(private readonly deps: InSyncDeps) {}

  /** The views of `g`'s replicas from the leader's probes. */
  private views(g: GroupInfo, now: number, confirmed: Confirmed): ReplicaView[] {
    return g.servers
      .filter((s) => s.role === ServerRole.Replica)
      .map((s) => {
        const p = this.deps.probeOf(s.addr);
        const fresh = p !== undefined && p.failures === 0;
        const ordered = confirmed.get(s.addr);
        return {
          addr: s.addr,
          down: p !== undefined && isDown(p, now, this.deps.downAfterMs),
          info: ordered?.info ?? (fresh ? p.info : null),
          details: ordered?.details ?? (fresh ? p.details : null),
        };
      });
  }

  /**
   * Keeps the set of `g`, whose master `mp` answered this round's check as a master. Re-reads
   * the group before writing and judges that version: a change meanwhile (a failover, an
   * operator) is never overwritten by a stale decision.
   */
  async step(g: GroupInfo, mp: Probe, signal: AbortSignal): Promise<void> {
    const { agents, leadership, log, maxLagMs } = this.deps;
    if (!mp.info || !mp.details || mp.info.role !== 'master' || mp.failures !== 0) return;
    const master: MasterView = { addr: mp.addr, offset: mp.info.masterReplOffset ?? 0, details: mp.details };
    const now = Date.now();
    const confirmed = await this.confirmNearJoiners(g, master, now, signal);
    const first = nextInSyncSet(g, this.views(g, now, confirmed), master, maxLagMs);
    this.deps.metrics.inSyncReplicas.set({ group: String(g.id) }, inSyncMembers(g).length);
    if (!needsWrite(g, first.set)) return;
    signal.throwIfAborted();
    const cur = await agents.getGroup(g.id);
    if (!cur || groupMaster(cur.group)?.addr !== mp.addr) return; // changed meanwhile: next round
    const { set, changes } = nextInSyncSet(cur.group, this.views(cur.group, now, confirmed), master, maxLagMs);
    if (!needsWrite(cur.group, set)) return;
    signal.throwIfAborted();
    const revision = await agents.swapGroup({ ...cur.group, inSync: set }, cur.modRevision, leadership.guardKey());
    if (revision === null) {
      log.info({ group: g.id }, 'group changed or leadership lost while updating its in-sync set; judging again next round');
      return;
    }
    await this.recorded(cur.group, set, changes, revision, signal);
  }

  /**
   * For non-members that nearly join (all but the offset, read in parallel with the master):
   * read the master FIRST, then the replica. A replica offset at or past the master's, read in
   * that order, holds every write the master had when it was read — the join rule, without the
   * race that keeps a replica out forever under steady writes. The fresh views replace the
   * round's for this step only.
   */
  private async confirmNearJoiners(g: GroupInfo, master: MasterView, now: number, signal: AbortSignal): Promise<Confirmed> {
    const confirmed: Confirmed = new Map();
    const members = new Set(inSyncMembers(g));
    const near = this.views(g, now, confirmed).filter((r) => !members.has(r.addr) && nearlyJoins(r, master) && joinReason(r, master) === null);
    if (near.length === 0) return confirmed;
    signal.throwIfAborted();
    try {
      const m = await this.deps.readReplication(master.addr);
      if (m.info.role !== 'master' || m.details.replid !== master.details.replid) return confirmed;
      const target = m.info.masterReplOffset ?? 0;
      for (const r of near) {
        const fresh = await this.deps.readReplication(r.addr);
        const offset = replicationOffset(fresh.info);
        if (offset !== null && offset >= target) confirmed.set(r.addr, { info: fresh.info, details: fresh.details });
      }
    } catch {
      // A read failed: no more confirmations this round; the next round tries again.
    }
    return confirmed;
  }

  /** Log lines, metrics and events of a set that landed in etcd. */
  private async recorded(before: GroupInfo, set: string[], changes: InSyncChange[], revision: string, signal: AbortSignal): Promise<void> {
    const { metrics, log, records } = this.deps;
    const gid = before.id;
    metrics.inSyncReplicas.set({ group: String(gid) }, set.length);
    if (before.inSync === undefined) {
      log.info({ group: gid, inSync: set, revision }, `group ${gid}: in-sync set first written: [${set.join(', ')}]`);
    }
    for (const c of changes) {
      metrics.inSyncChanges.inc({ group: String(gid), change: c.change });
      const removed = c.change === 'removed';
      const message = `group ${gid}: ${c.addr} ${removed ? 'left' : 'joined'} the in-sync set: ${c.reason}`;
      if (removed) log.warn({ group: gid, replica: c.addr, reason: c.reason, inSync: set, revision }, message);
      else log.info({ group: gid, replica: c.addr, reason: c.reason, inSync: set, revision }, message);
      await records.event(signal, {
        kind: removed ? AgentEventKind.InSyncRemoved : AgentEventKind.InSyncAdded,
        group: gid,
        message,
        data: { server: c.addr, reason: c.reason, inSync: set },
      });
    }
    const wasEmpty = inSyncMembers(before).length === 0;
    if (set.length === 0 && !wasEmpty) {
      log.warn({ group: gid }, `group ${gid}: in-sync set empty: durable writes are acknowledged on the master alone until a replica catches up`);
    } else if (set.length > 0 && wasEmpty) {
      log.info({ group: gid, inSync: set }, `group ${gid}: in-sync set has a member again`);
    }
  }
}
