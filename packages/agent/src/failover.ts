/**
 * Step 4 of the HA algorithm (the loop and steps 1–3, 5, 6 are in ha.ts): a master confirmed
 * down — or one the replication guard found restarted behind its group (repl-guard.ts, a
 * `fail-over` verdict: trigger `restarted`) — is failed over, step by step:
 *
 *  a. Re-read the group with its etcd revision; it must still name that master.
 *  b. Veto: if a replica still has its link to the master up with I/O in the last second,
 *     or another registered agent can PING the master (GET /api/check_redis), the master
 *     is alive and only our path to it is broken: do nothing this round (logged).
 *     Not for a restarted master: it is alive by definition, and alive is the problem.
 *  c. Candidates: the group's replicas that answer INFO now. A replica that does not
 *     answer but is not confirmed down either puts the failover off to the next round: it
 *     may be the one that confirmed the newest writes (a `WAIT n` is satisfied by any n
 *     replicas). The choice (ha-choice.ts pickCandidate): the in-sync member with the
 *     highest replication offset (slave_repl_offset; ties: the first in the group's list),
 *     or a non-member strictly ahead of it on the same replication history; with an empty
 *     set, the highest offset of all. Only replicas on the failed master's history (its
 *     master_replid at its last good check) count as members; for a restarted master, whose
 *     new process has a new replid, the history its in-sync replicas share (replicas on
 *     different histories: blocked, nothing is promoted). The set has members but none
 *     answers: BLOCKED — nothing is promoted (a stale replica would lose acknowledged
 *     writes), logged as an error and recorded as failover_blocked once per outage; the
 *     leader keeps checking every round. No replica at all: failover_failed, once per
 *     outage; tried again every round.
 *  d. Re-point the other replicas that answer to the candidate, while it is still a
 *     replica (leadership checked just before): none keeps replicating from the old master
 *     once the candidate is master. The others are re-pointed by step 6 when they return.
 *  e. Promote: REPLICAOF NO ONE on the candidate (leadership checked just before).
 *  f. Switch: write the group — the candidate first with role master, then the old master
 *     with role replica, then the other replicas — in one transaction that requires the
 *     group unchanged since (a) and our election key alive. Proxies switch on this write.
 *     If the transaction fails, stop: the next round re-reads and re-decides (a candidate
 *     promoted for nothing is then an inconsistent replica, which step 6 re-points).
 *  g. Record: the old master offline (health record), an event in etcd with the offsets —
 *     the old master's master_repl_offset at its last good check and the new master's
 *     offset at promotion; their difference is how many bytes of writes may be lost — a
 *     log line, metrics.
 *
 * Invariant: each step that changes redis or etcd checks the leadership's signal and the
 * election key just before it acts; any step that cannot go on returns, and the next round
 * re-reads and re-decides from scratch.
 */
import type { Logger } from 'pino';
import {
  AgentEventKind,
  ServerRole,
  groupMaster,
  type AgentStore,
  inSyncMembers,
  type FailoverDetails,
  type GroupInfo,
  type GroupServer,
  type VersionedGroup,
} from '@reborn/coordinator';
import { pickCandidate, promotedGroup, replicasHistory, summarizeCandidates, unaccountedReplicas, type AnsweringCandidate, type Candidate, type CandidateSummary } from './ha-choice.js';
import { readReplication, type Probe } from './ha-probe.js';
import type { HaRecords } from './ha-records.js';
import type { Leadership } from '@reborn/coordinator';
import type { AgentMetrics } from './metrics.js';
import { replicatesFrom, replicationOffset, type RedisAdmin } from '@reborn/coordinator/admin';

export interface FailoverOptions {
  /** This agent's id (the veto asks the other agents). */
  id: string;
  downAfterMs: number;
  checkTimeoutMs: number;
  commandTimeoutMs: number;
  /** The agents' shared API token, sent when asking another agent (null: none). */
  token?: string | null;
}

export interface FailoverDeps {
  opts: FailoverOptions;
  agents: AgentStore;
  leadership: Leadership;
  admin: RedisAdmin;
  metrics: AgentMetrics;
  records: HaRecords;
  log: Logger;
  /** The leader's probe of a server (the unaccounted-replica rule reads it). */
  probeOf(addr: string): Probe | undefined;
  /** Called the moment the switch (f) landed in etcd, before the records. */
  switched(newMaster: string, oldMaster: string): void;
}

/**
 * Why a master is failed over: confirmed down (ha.ts step 3), or restarted behind its group —
 * alive, answering, but holding less than its in-sync replicas (repl-guard.ts judgeMaster).
 */
export type FailoverTrigger = { kind: 'down' } | { kind: 'restarted'; reason: string };

/** The candidate chosen in (c) with how every candidate looked. */
interface Choice {
  best: AnsweringCandidate;
  /** Why it was chosen (ha-choice.ts), recorded with the event. */
  why: string;
  cands: Candidate[];
  candidates: CandidateSummary[];
}

/** The once-per-outage reports of a failover attempt. */
type ReportKind = 'wait' | 'blocked' | 'failed';

export class Failover {
  private done = 0;
  /**
   * Reports made for restarted masters, by address. A down master's probe flags serve for a
   * down one, but a restarted master answers every check, which re-arms those flags: this
   * keeps its reports once per outage, until it is failed over.
   */
  private readonly restartReports = new Map<string, Set<ReportKind>>();

  constructor(private readonly deps: FailoverDeps) {}

  /** Failovers carried out by this process. */
  get count(): number {
    return this.done;
  }

  /** Fails over group `gid`, whose master `mp` is confirmed down or restarted behind it (steps a–g). */
  async run(gid: number, mp: Probe, signal: AbortSignal, trigger: FailoverTrigger = { kind: 'down' }): Promise<void> {
    const t0 = Date.now();
    const cur = await this.currentGroup(gid, mp, signal);
    if (cur === null) return;
    const replicas = cur.group.servers.filter((s) => s.role === ServerRole.Replica);
    const cands = await this.askReplicas(replicas, signal);
    if (trigger.kind === 'down' && (await this.vetoed(gid, mp, cands, signal))) return;
    const choice = await this.chooseCandidate(cur.group, mp, replicas, cands, trigger, signal);
    if (choice === null) return;
    const repointed = await this.repointReplicas(gid, choice, signal);
    const newOffset = replicationOffset(choice.best.info) ?? 0;
    if (!(await this.promote(gid, mp, choice, trigger, signal))) return;
    const revision = await this.switchGroup(gid, mp, cur, choice.best.addr);
    if (revision === null) return;
    const tookMs = Date.now() - t0;
    this.deps.switched(choice.best.addr, mp.addr);
    this.restartReports.delete(mp.addr);
    await this.record(signal, mp, { gid, trigger, newMaster: choice.best.addr, why: choice.why, newOffset, candidates: choice.candidates, repointed, tookMs, revision });
  }

  /** (a) The group as it is now, with the revision the switch compares against; null when it changed. */
  private async currentGroup(gid: number, mp: Probe, signal: AbortSignal): Promise<VersionedGroup | null> {
    const cur = await this.deps.agents.getGroup(gid);
    signal.throwIfAborted();
    if (!cur || groupMaster(cur.group)?.addr !== mp.addr) return null; // changed meanwhile: next round
    return cur;
  }

  /** (b+c) Fresh replication info from every replica. */
  private async askReplicas(replicas: readonly GroupServer[], signal: AbortSignal): Promise<Candidate[]> {
    const { admin, opts } = this.deps;
    const cands = await Promise.all(
      replicas.map(async (r): Promise<Candidate> => {
        try {
          return { addr: r.addr, ...(await readReplication(admin, r.addr, opts.checkTimeoutMs)) };
        } catch (err) {
          return { addr: r.addr, info: null, error: (err as Error).message };
        }
      }),
    );
    signal.throwIfAborted();
    return cands;
  }

  /** (b) Whether the master is alive for a replica or another agent (logged once per outage). */
  private async vetoed(gid: number, mp: Probe, cands: readonly Candidate[], signal: AbortSignal): Promise<boolean> {
    const hears = cands.find(
      (c) => c.info && replicatesFrom(c.info, mp.addr) && c.info.linkUp === true && (c.info.masterLastIoSecondsAgo ?? 99) <= 1,
    );
    const vetoAgent = hears ? null : await this.agentThatReaches(mp.addr, signal);
    if (!hears && !vetoAgent) return false;
    if (!mp.vetoReported) {
      mp.vetoReported = true;
      this.deps.log.warn(
        { group: gid, master: mp.addr, replica: hears?.addr, agent: vetoAgent },
        'master unreachable from this agent but alive for others; not failing over',
      );
    }
    return true;
  }

  /** Another registered agent that can PING `addr` right now (step b), or null. */
  private async agentThatReaches(addr: string, signal: AbortSignal): Promise<string | null> {
    const { opts } = this.deps;
    let others;
    try {
      others = (await this.deps.agents.listAgents()).filter((a) => a.id !== opts.id);
    } catch {
      return null; // etcd just answered listGroups; if it fails now, do not block on it
    }
    const answers = await Promise.all(
      others.map(async (a) => {
        try {
          const res = await fetch(`http://${a.httpAddr}/api/check_redis?addr=${encodeURIComponent(addr)}`, {
            ...(opts.token ? { headers: { authorization: `Bearer ${opts.token}` } } : {}),
            signal: AbortSignal.any([signal, AbortSignal.timeout(Math.max(500, opts.checkTimeoutMs * 2))]),
          });
          const body = (await res.json()) as { ok?: unknown };
          return res.status === 200 && body.ok === true ? a.id : null;
        } catch {
          return null; // an agent that does not answer cannot vouch for the master
        }
      }),
    );
    return answers.find((a) => a !== null) ?? null;
  }

  /**
   * (c) The replica to promote, or null: put off while a replica is unaccounted for (logged
   * once), blocked while no in-sync member answers, or none answers (each recorded once).
   */
  private async chooseCandidate(
    g: GroupInfo,
    mp: Probe,
    replicas: readonly GroupServer[],
    cands: Candidate[],
    trigger: FailoverTrigger,
    signal: AbortSignal,
  ): Promise<Choice | null> {
    const { log, opts } = this.deps;
    const gid = g.id;
    const unaccounted = unaccountedReplicas(cands, (addr) => this.deps.probeOf(addr), Date.now(), opts.downAfterMs);
    if (unaccounted.length > 0 && cands.some((c) => c.info !== null)) {
      // Next round: it answers, or it is confirmed down too and the others are all there is.
      if (this.firstReport(mp, trigger, 'wait')) {
        log.warn({ group: gid, master: mp.addr, unaccounted }, 'master down, but a replica neither answers nor is known down: waiting for it before promoting');
      }
      return null;
    }
    const members = inSyncMembers(g);
    const candidates = summarizeCandidates(cands);
    let history = mp.details?.replid ?? null;
    if (trigger.kind === 'restarted') {
      // The probe now holds the restarted process's NEW replid, which no replica is on; the
      // group's history is the one its in-sync replicas kept.
      const h = replicasHistory(cands, members);
      if (h.kind === 'split') {
        await this.blocked(gid, mp, trigger, signal, members, candidates, `its in-sync replicas are on different replication histories (${h.replids.join(', ')})`);
        return null;
      }
      history = h.kind === 'shared' ? h.replid : null;
    }
    const pick = pickCandidate(cands, members, history);
    if (pick.kind === 'blocked') {
      await this.blocked(gid, mp, trigger, signal, members, candidates);
      return null;
    }
    if (pick.kind === 'none') {
      await this.failed(gid, mp, trigger, signal, replicas.length === 0 ? 'the group has no replica' : 'no replica answers', { candidates });
      return null;
    }
    return { best: pick.candidate, why: pick.why, cands, candidates };
  }

  /** (c) No in-sync member answers: counted every round, logged and recorded once per outage. */
  private async blocked(
    gid: number,
    mp: Probe,
    trigger: FailoverTrigger,
    signal: AbortSignal,
    members: readonly string[],
    candidates: CandidateSummary[],
    why = `no member of the in-sync set [${members.join(', ')}] answers on its replication history`,
  ): Promise<void> {
    const { metrics, log, records } = this.deps;
    metrics.failovers.inc({ group: String(gid), result: 'blocked' });
    if (!this.firstReport(mp, trigger, 'blocked')) return;
    const message = `group ${gid}: master ${mp.addr} must be failed over and ${why}: not promoting a replica that may lack acknowledged writes`;
    log.error({ group: gid, master: mp.addr, inSync: members, candidates }, message);
    await records.event(signal, { kind: AgentEventKind.FailoverBlocked, group: gid, message, data: { master: mp.addr, inSync: [...members], candidates } });
    if (!mp.offline) await records.markOffline(mp, signal, 'master down, failover blocked: no in-sync replica answers');
  }

  /**
   * (d) Re-points the other replicas that answer to the candidate first, while it is still a
   * replica: none of them goes on replicating from the old master (should it come back for a
   * moment) once the candidate is master, so a write acknowledged through one of them is
   * never one the new master lacks. Returns the ones re-pointed.
   */
  private async repointReplicas(gid: number, { best, cands }: Choice, signal: AbortSignal): Promise<string[]> {
    const { admin, opts, metrics, log } = this.deps;
    this.deps.leadership.guardKey();
    signal.throwIfAborted();
    const others = cands.filter((c) => c.addr !== best.addr && c.info !== null);
    const repointed: string[] = [];
    await Promise.all(
      others.map(async (c) => {
        try {
          if (signal.aborted) return;
          await admin.replicaOf(c.addr, best.addr, opts.commandTimeoutMs);
          metrics.repoints.inc({ reason: 'failover' });
          repointed.push(c.addr);
        } catch (err) {
          log.warn({ group: gid, replica: c.addr, err: (err as Error).message }, 'cannot re-point replica; will retry when it answers');
        }
      }),
    );
    return repointed;
  }

  /** (e) REPLICAOF NO ONE on the candidate; false (recorded as failed) when it fails. */
  private async promote(gid: number, mp: Probe, { best, candidates }: Choice, trigger: FailoverTrigger, signal: AbortSignal): Promise<boolean> {
    this.deps.leadership.guardKey();
    signal.throwIfAborted();
    try {
      await this.deps.admin.replicaOf(best.addr, null, this.deps.opts.commandTimeoutMs);
      return true;
    } catch (err) {
      await this.failed(gid, mp, trigger, signal, `REPLICAOF NO ONE on ${best.addr} failed: ${(err as Error).message}`, { candidates });
      return false;
    }
  }

  /** (f) Writes the promoted group, guarded by the group's revision and our election key; null when refused. */
  private async switchGroup(gid: number, mp: Probe, cur: VersionedGroup, newMaster: string): Promise<string | null> {
    const next = promotedGroup(cur.group, newMaster);
    const revision = await this.deps.agents.swapGroup(next, cur.modRevision, this.deps.leadership.guardKey());
    if (revision === null) {
      this.deps.log.warn({ group: gid, master: mp.addr, candidate: newMaster }, 'group changed or leadership lost during failover; deciding again next round');
    }
    return revision;
  }

  /** (g) The event with the offsets, a log line, metrics, and the old master recorded offline. */
  private async record(
    signal: AbortSignal,
    mp: Probe,
    r: {
      gid: number;
      trigger: FailoverTrigger;
      newMaster: string;
      why: string;
      newOffset: number;
      candidates: CandidateSummary[];
      repointed: string[];
      tookMs: number;
      revision: string;
    },
  ): Promise<void> {
    const { metrics, log, records } = this.deps;
    const oldOffset = mp.info ? replicationOffset(mp.info) : null;
    const details: FailoverDetails = {
      group: r.gid,
      oldMaster: mp.addr,
      newMaster: r.newMaster,
      oldMasterOffset: oldOffset,
      newMasterOffset: r.newOffset,
      lostBytesEstimate: oldOffset === null ? null : Math.max(0, oldOffset - r.newOffset),
      candidates: r.candidates,
      repointed: r.repointed,
      downForMs: Date.now() - mp.lastOkAt,
      tookMs: r.tookMs,
      revision: r.revision,
    };
    this.done++;
    metrics.failovers.inc({ group: String(r.gid), result: 'done' });
    metrics.failoverSeconds.observe(details.downForMs / 1000);
    const trigger = r.trigger.kind === 'restarted' ? { trigger: 'restarted', restartedBecause: r.trigger.reason } : { trigger: 'down' };
    log.warn({ ...details, ...trigger, why: r.why }, `failover: group ${r.gid} master ${mp.addr} → ${r.newMaster}`);
    mp.failoverFailedReported = true;
    const what = r.trigger.kind === 'restarted' ? `restarted behind its group (${r.trigger.reason})` : `down for ${details.downForMs} ms`;
    await records.event(signal, {
      kind: AgentEventKind.Failover,
      group: r.gid,
      message: `group ${r.gid}: master ${mp.addr} ${what}; promoted ${r.newMaster} (${r.why})`,
      data: { ...details, ...trigger, why: r.why },
    });
    // Offline: step 6 re-points it (REPLICAOF the new master) the first round it answers.
    await records.markOffline(mp, signal, `failed over to ${r.newMaster}`);
  }

  /** The failover cannot happen: counted every round, logged and recorded once per outage. */
  private async failed(gid: number, mp: Probe, trigger: FailoverTrigger, signal: AbortSignal, why: string, data: Record<string, unknown> = {}): Promise<void> {
    const { metrics, log, records } = this.deps;
    metrics.failovers.inc({ group: String(gid), result: 'failed' });
    if (!this.firstReport(mp, trigger, 'failed')) return;
    log.error({ group: gid, master: mp.addr, why, ...data }, 'master down and cannot be failed over');
    await records.event(signal, { kind: AgentEventKind.FailoverFailed, group: gid, message: `group ${gid}: master ${mp.addr} is down: ${why}`, data: { master: mp.addr, ...data } });
    if (!mp.offline) await records.markOffline(mp, signal, 'master down, not failed over');
  }

  /** Whether a `kind` report is the first of this outage (and marks it made). */
  private firstReport(mp: Probe, trigger: FailoverTrigger, kind: ReportKind): boolean {
    if (trigger.kind === 'restarted') {
      const made = this.restartReports.get(mp.addr) ?? new Set<ReportKind>();
      this.restartReports.set(mp.addr, made);
      if (made.has(kind)) return false;
      made.add(kind);
      return true;
    }
    const flag = kind === 'wait' ? 'waitReported' : kind === 'blocked' ? 'blockedReported' : 'failoverFailedReported';
    if (mp[flag]) return false;
    mp[flag] = true;
    return true;
  }
}
