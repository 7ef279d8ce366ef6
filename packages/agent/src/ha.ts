/**
 * HA: the leader's health checks and failover (DESIGN.md "Failover"). RebornDB's
 * cmd/agent/ha.go is the model; this is the algorithm, step by step:
 *
 *  1. Leadership. Every agent started with --ha campaigns in etcd (leadership.ts). Only the
 *     elected agent runs this loop. It runs under an AbortSignal that fires the moment
 *     leadership is lost (lease lost or not confirmed in time), and each step checks that
 *     signal before it acts. Every etcd write of the leader is a transaction guarded by its
 *     election key, so a deposed leader's late write fails instead of landing.
 *  2. Each round (every --check-interval-ms, 1 s; every quarter of that while any server is
 *     suspect, so a failure is confirmed or cleared quickly): read all groups from etcd,
 *     bounded — if etcd does not answer, skip the round, never decide on a stale topology —
 *     then check every server of every group in parallel with INFO replication, each check
 *     bounded by --check-timeout-ms (500 ms).
 *  3. A server is down when its checks have failed for --down-after-ms (3 s) since its last
 *     success AND at least 2 checks in a row failed: one lost ping never counts. The window
 *     runs from the last success this leader saw; a new leader counts every server as seen
 *     at its election, so it always waits a full window before it acts.
 *  4. A down master is failed over:
 *     a. Re-read the group with its etcd revision; it must still name that master.
 *     b. Veto: if a replica still has its link to the master up with I/O in the last second,
 *        or another registered agent can PING the master (GET /api/check_redis), the master
 *        is alive and only our path to it is broken: do nothing this round (logged).
 *     c. Candidates: the group's replicas that answer INFO now. A replica that does not
 *        answer but is not confirmed down either puts the failover off to the next round: it
 *        may be the one that confirmed the newest writes (a `WAIT 1` is satisfied by any
 *        replica). Pick the highest replication offset (slave_repl_offset; ties: the first in
 *        the group's list). No candidate: log and record a failover_failed event once per
 *        outage; try again every round.
 *     d. Re-point the other replicas that answer to the candidate, while it is still a
 *        replica (leadership checked just before): none keeps replicating from the old master
 *        once the candidate is master. The others are re-pointed by step 6 when they return.
 *     e. Promote: REPLICAOF NO ONE on the candidate (leadership checked just before).
 *     f. Switch: write the group — the candidate first with role master, then the old master
 *        with role replica, then the other replicas — in one transaction that requires the
 *        group unchanged since (a) and our election key alive. Proxies switch on this write.
 *        If the transaction fails, stop: the next round re-reads and re-decides (a candidate
 *        promoted for nothing is then an inconsistent replica, which step 6 re-points).
 *     g. Record: the old master offline (health record), an event in etcd with the offsets —
 *        the old master's master_repl_offset at its last good check and the new master's
 *        offset at promotion; their difference is how many bytes of writes may be lost — a
 *        log line, metrics.
 *  5. A down replica is recorded offline (health record under agents/servers/, an event, a
 *     log line), once per outage. It stays in its group with role replica: the group model
 *     has no state field and proxies only use masters.
 *  6. Reconcile, for each group whose master answers: every replica that answers must
 *     replicate from that master.
 *     - A server back from offline — above all the old master after a failover, which
 *       restarts as a master, maybe empty — gets REPLICAOF <master> in the first round it
 *       answers, before anything else happens to it. Nothing writes to it meanwhile: proxies
 *       write only to the master named in etcd, which it no longer is.
 *     - A replica that replicates from elsewhere without having been down (an operator's
 *       switchover half done, a failed step 4f) is re-pointed only after it stayed so for the
 *       down window, so an operator's change in progress is not fought.
 *     Then it is recorded online again.
 *
 * Topology guard (coordinator topology-guard.ts). Each round reads the whole topology with
 * the product identity, not just the groups, and judges it against the last one it took.
 * When etcd lost it (identity gone or different, slot keys gone, groups gone under their
 * slots, a restore in progress) — or when this agent knows nothing yet and etcd is empty
 * while proxies are registered and serving — "zero groups" is NOT "nothing to watch": the
 * alarm goes up (one error log line, reborn_topology_alarm, /healthz, /api/ha), the leader
 * keeps checking the servers of the last groups it took, and failover is SUSPENDED: no
 * promotion, no REPLICAOF, no health records, since proxies would not learn of a switch
 * (they keep their own last table) and etcd no longer says what the groups are. A master
 * that goes down meanwhile is logged as an error, once. It all resumes in the first round
 * that finds the product's identity (and a topology) again. Followers read and judge the
 * topology too (every FOLLOW_MS), so whichever agent wins the election after etcd lost its
 * data knows the groups; only agents started after the loss know none (failover off).
 *
 * Known limits: a master that restarts empty *before* its down window ends is still the
 * master, and its replicas resync from it (run masters with persistence); a master reachable
 * from no agent but alive for clients (a partition that isolates only the agents) is failed
 * over — the veto in 4b only sees what replicas and other agents see.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  AgentEventKind,
  ServerHealthState,
  ServerRole,
  TopologyAlarm,
  groupMaster,
  isEmptyTopology,
  judgeTopology,
  missingTopologyProblem,
  needsServingCheck,
  type AgentEvent,
  type AgentStore,
  type FailoverDetails,
  type GroupInfo,
  type GroupServer,
  type HeldTopology,
  type Store,
  type TopologyAlarmView,
  type TopologyProblem,
} from '@reborn/coordinator';
import type { Leadership } from '@reborn/coordinator';
import type { AgentMetrics } from './metrics.js';
import { replicatesFrom, replicationOffset, type RedisAdmin, type ReplicationInfo } from '@reborn/coordinator/admin';

/** How often an agent that does not lead reads the topology, to know the groups if it must lead. */
const FOLLOW_MS = 5000;

export interface HaOptions {
  id: string;
  product: string;
  downAfterMs: number;
  checkIntervalMs: number;
  checkTimeoutMs: number;
  commandTimeoutMs: number;
  /** The agents' shared API token, sent when asking another agent (null: none). */
  token?: string | null;
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
  return { id: g.id, servers };
}

export class HaLoop {
  private readonly probes = new Map<string, Probe>();
  /** Each server's role in etcd, as of the last round (for status()). */
  private readonly roleOf = new Map<string, string>();
  private readonly log: Logger;
  private running: Promise<void> | null = null;
  private failovers = 0;
  /** The last topology taken from etcd; kept across leadership terms of this process. */
  private held: HeldTopology | null = null;
  private leading = false;
  readonly alarm: TopologyAlarm;
  private readonly closing = new AbortController();

  constructor(
    private readonly opts: HaOptions,
    private readonly store: Store,
    private readonly agents: AgentStore,
    private readonly leadership: Leadership,
    private readonly admin: RedisAdmin,
    private readonly metrics: AgentMetrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'ha' });
    this.alarm = new TopologyAlarm(this.log, 'failover suspended');
    void this.follow();
    leadership.on('elected', (signal) => {
      this.running = this.run(signal).catch((err: unknown) => {
        if (!signal.aborted) this.log.error({ err: (err as Error).message }, 'HA loop failed');
      });
    });
  }

  /** Servers as the leader sees them (empty on followers). */
  status(): ServerStatus[] {
    const now = Date.now();
    return [...this.probes.values()].map((p) => ({
      group: p.group,
      addr: p.addr,
      role: this.roleOf.get(p.addr) ?? 'unknown',
      up: p.failures === 0,
      down: isDown(p, now, this.opts.downAfterMs),
      offline: p.offline,
      failures: p.failures,
      lastOkAt: new Date(p.lastOkAt).toISOString(),
      lastError: p.lastError,
      redisRole: p.info?.role ?? null,
      offset: p.info ? replicationOffset(p.info) : null,
    }));
  }

  get failoverCount(): number {
    return this.failovers;
  }

  /** The topology alarm of this agent (leader or follower: both judge the topology). */
  get topologyAlarm(): TopologyAlarmView | null {
    return this.alarm.view;
  }

  /** How many groups this agent knows (the last topology it took). */
  get knownGroups(): number {
    return this.held?.groups.size ?? 0;
  }

  /** Stops the follower reads (the leader loop stops with leadership). */
  close(): void {
    this.closing.abort();
  }

  /** What failover does now: standby (not the leader), active, or suspended by the alarm. */
  get failoverState(): 'standby' | 'active' | 'suspended' {
    return !this.leading ? 'standby' : this.alarm.active ? 'suspended' : 'active';
  }

  /** While not leading: read and judge the topology now and then (see the file header). */
  private async follow(): Promise<void> {
    const signal = this.closing.signal;
    while (!signal.aborted) {
      try {
        await sleep(FOLLOW_MS, undefined, { signal });
      } catch {
        return;
      }
      if (this.leading) continue;
      await this.groupsToWatch().catch(() => undefined); // etcd away: try again later
    }
  }

  /** Waits for the loop of a lost leadership to finish its current step. */
  async stopped(): Promise<void> {
    await this.running;
  }

  // -------------------------------------------------------------------------------------------

  private async run(signal: AbortSignal): Promise<void> {
    this.probes.clear();
    this.roleOf.clear();
    this.leading = true;
    signal.addEventListener('abort', () => (this.leading = false), { once: true });
    const startedAt = Date.now();
    this.log.info({ downAfterMs: this.opts.downAfterMs, checkIntervalMs: this.opts.checkIntervalMs }, 'HA checks started');
    void this.event(signal, { kind: AgentEventKind.LeaderElected, message: `agent ${this.opts.id} is the HA leader`, data: {} });
    // Step 3: what previous leaders recorded offline stays offline until it answers again.
    let offline = new Map<string, number>();
    let recorded: string[] = [];
    try {
      const records = await this.agents.listServerHealth();
      recorded = records.map((h) => h.addr);
      offline = new Map(records.filter((h) => h.state === ServerHealthState.Offline).map((h) => [h.addr, h.group]));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot read server health records; starting without them');
    }
    while (!signal.aborted) {
      const roundStart = Date.now();
      try {
        const seen = await this.round(signal, startedAt, offline);
        offline = new Map();
        // Health records of servers no longer in any group are forgotten — not while the
        // alarm is up: then etcd does not say what the groups are.
        if (!this.alarm.active) {
          for (const addr of recorded.filter((a) => !seen.has(a))) {
            await this.agents.deleteServerHealth(addr, this.leadership.guardKey()).catch(() => undefined);
          }
          recorded = [];
        }
      } catch (err) {
        if (signal.aborted) break;
        this.log.warn({ err: (err as Error).message }, 'HA round skipped');
      }
      const suspect = [...this.probes.values()].some((p) => p.failures > 0);
      const interval = suspect ? Math.max(50, this.opts.checkIntervalMs / 4) : this.opts.checkIntervalMs;
      const wait = Math.max(0, interval - (Date.now() - roundStart));
      try {
        await sleep(wait, undefined, { signal });
      } catch {
        break;
      }
    }
    this.log.info('HA checks stopped');
  }

  /** One round (steps 2–6); returns the addresses of every server of every group. */
  private async round(signal: AbortSignal, startedAt: number, offline: Map<string, number>): Promise<Set<string>> {
    // Step 2: the topology first, bounded; a failure throws and skips the round.
    const groups = await this.groupsToWatch();
    signal.throwIfAborted();
    const seen = new Set<string>();
    for (const g of groups) {
      for (const s of g.servers) {
        seen.add(s.addr);
        this.roleOf.set(s.addr, s.role);
        let p = this.probes.get(s.addr);
        if (!p) {
          p = {
            addr: s.addr,
            group: g.id,
            lastOkAt: Math.max(startedAt, Date.now() - 1),
            lastCheckAt: 0,
            failures: 0,
            lastError: null,
            info: null,
            offline: offline.get(s.addr) !== undefined,
            inconsistentSince: null,
            failoverFailedReported: false,
            vetoReported: false,
            waitReported: false,
            suspendReported: false,
          };
          this.probes.set(s.addr, p);
        }
        p.group = g.id;
      }
    }
    for (const addr of [...this.probes.keys()]) {
      if (!seen.has(addr)) {
        this.probes.delete(addr);
        this.roleOf.delete(addr);
      }
    }
    this.admin.retain(seen);

    await Promise.all([...this.probes.values()].map((p) => this.check(p)));
    signal.throwIfAborted();
    if (this.alarm.active) {
      this.reportSuspended(groups);
      return seen;
    }
    await Promise.all(groups.map((g) => this.handleGroup(g, signal).catch((err: unknown) => {
      if (!signal.aborted) this.log.warn({ group: g.id, err: (err as Error).message }, 'group handling failed this round');
    })));
    return seen;
  }

  /**
   * The groups to check this round: etcd's, when the topology read is one we may take;
   * otherwise the last ones taken (alarm up, failover suspended). Throws when etcd does not
   * answer (the round is skipped).
   */
  private async groupsToWatch(): Promise<GroupInfo[]> {
    const t = await this.store.loadTopology();
    let problem: TopologyProblem | null = judgeTopology(this.held, t);
    if (problem === null && needsServingCheck(this.held, t)) {
      const serving = (await this.store.listProxies()).filter((p) => p.state === 'online').map((p) => p.id);
      if (serving.length > 0) problem = missingTopologyProblem(this.opts.product, serving);
    }
    if (problem !== null) {
      const known = this.held ? [...this.held.groups.values()] : [];
      const effect = known.length > 0
        ? `failover suspended until the topology is back: the HA leader checks the ${known.reduce((n, g) => n + g.servers.length, 0)} servers of the last known ${known.length} group(s) but promotes and re-points nothing`
        : 'failover off: this agent knows no groups (it started after etcd lost them)';
      this.alarm.raise(problem, effect);
      return known;
    }
    this.held = { identity: t.identity, groups: t.groups, slots: t.slots };
    this.alarm.clear(t.identity ? `etcd holds product identity ${t.identity.generation} again; failover resumes` : 'etcd holds a topology again; failover resumes');
    if (t.identity === null && t.restoring === null && (t.groups.size > 0 || !isEmptyTopology(t))) {
      // A product from before identities: the first writer to see it gives it one.
      const r = await this.store.ensureIdentity();
      if (r.created && r.identity) this.log.info({ generation: r.identity.generation, adopted: r.identity.adopted ?? false }, 'product had no identity: wrote one');
      if (r.identity) this.held = { ...this.held, identity: r.identity };
    }
    return [...t.groups.values()];
  }

  /** While the alarm is up: say once per outage of a master that it is not failed over. */
  private reportSuspended(groups: readonly GroupInfo[]): void {
    const now = Date.now();
    for (const g of groups) {
      const master = groupMaster(g);
      const mp = master ? this.probes.get(master.addr) : undefined;
      if (!mp || !isDown(mp, now, this.opts.downAfterMs) || mp.suspendReported) continue;
      mp.suspendReported = true;
      this.metrics.failovers.inc({ group: String(g.id), result: 'suspended' });
      this.log.error({ group: g.id, master: mp.addr, reason: this.alarm.reason }, 'master down, but failover is suspended by the topology alarm: not failing over');
    }
  }

  private async check(p: Probe): Promise<void> {
    p.lastCheckAt = Date.now();
    try {
      p.info = await this.admin.info(p.addr, this.opts.checkTimeoutMs);
      if (p.failures > 0) this.log.info({ server: p.addr, group: p.group, failures: p.failures }, 'server answers again');
      p.failures = 0;
      p.lastError = null;
      p.lastOkAt = Date.now();
      p.failoverFailedReported = false;
      p.vetoReported = false;
      p.waitReported = false;
      p.suspendReported = false;
    } catch (err) {
      p.failures++;
      p.lastError = (err as Error).message;
      this.metrics.checkFailures.inc();
      if (p.failures === 1) this.log.info({ server: p.addr, group: p.group, err: p.lastError }, 'health check failed; server suspect');
    }
  }

  private async handleGroup(g: GroupInfo, signal: AbortSignal): Promise<void> {
    const now = Date.now();
    const master = groupMaster(g);
    const mp = master ? this.probes.get(master.addr) : undefined;
    if (master && mp) {
      if (isDown(mp, now, this.opts.downAfterMs)) {
        // Step 4: the one time-critical path; the bookkeeping comes after it.
        await this.failover(g.id, mp, signal);
        return;
      }
      if (mp.failures === 0 && mp.offline) await this.markOnline(mp, signal, 'master answers again');
      if (mp.failures === 0 && mp.info && mp.info.role !== 'master') {
        this.log.warn({ group: g.id, master: mp.addr, redisRole: mp.info.role }, 'the group master in etcd is not a master in redis');
      }
    }
    for (const s of g.servers) {
      if (s.role !== ServerRole.Replica) continue;
      const p = this.probes.get(s.addr);
      if (!p) continue;
      if (isDown(p, now, this.opts.downAfterMs)) {
        if (!p.offline) await this.markOffline(p, signal, 'replica down');
        continue;
      }
      // Step 6: only while the master answers is there something to replicate from.
      if (p.failures === 0 && p.info && master && mp && mp.failures === 0) await this.reconcile(p, master.addr, signal);
    }
  }

  /** Step 6 for one replica that answers. */
  private async reconcile(p: Probe, masterAddr: string, signal: AbortSignal): Promise<void> {
    const info = p.info!;
    if (replicatesFrom(info, masterAddr)) {
      p.inconsistentSince = null;
      if (p.offline) await this.markOnline(p, signal, 'replica back and replicating');
      return;
    }
    const now = Date.now();
    const returning = p.offline;
    if (!returning) {
      p.inconsistentSince ??= now;
      if (now - p.inconsistentSince < this.opts.downAfterMs) return;
    }
    signal.throwIfAborted();
    this.leadership.guardKey(); // throws unless still the leader
    const wasMaster = info.role === 'master';
    const from = wasMaster ? 'master' : `${info.masterHost}:${info.masterPort}`;
    await this.admin.replicaOf(p.addr, masterAddr, this.opts.commandTimeoutMs);
    p.inconsistentSince = null;
    const kind = returning && wasMaster ? AgentEventKind.OldMasterDemoted : AgentEventKind.ReplicaRepointed;
    this.metrics.repoints.inc({ reason: returning ? 'returned' : 'inconsistent' });
    const message = `${p.addr} (${returning ? 'back from offline' : 'inconsistent'}, was ${from}) now replicates from ${masterAddr}`;
    this.log.warn({ group: p.group, server: p.addr, master: masterAddr, was: from, returning, offset: replicationOffset(info) }, 'REPLICAOF sent: ' + message);
    await this.event(signal, { kind, group: p.group, message, data: { server: p.addr, master: masterAddr, was: from, offsetBefore: replicationOffset(info) } });
    if (returning) await this.markOnline(p, signal, 'back and re-pointed');
  }

  /** Step 4. */
  private async failover(gid: number, mp: Probe, signal: AbortSignal): Promise<void> {
    const t0 = Date.now();
    const fail = async (why: string, data: Record<string, unknown> = {}): Promise<void> => {
      this.metrics.failovers.inc({ group: String(gid), result: 'failed' });
      if (mp.failoverFailedReported) return;
      mp.failoverFailedReported = true;
      this.log.error({ group: gid, master: mp.addr, why, ...data }, 'master down and cannot be failed over');
      await this.event(signal, { kind: AgentEventKind.FailoverFailed, group: gid, message: `group ${gid}: master ${mp.addr} is down: ${why}`, data: { master: mp.addr, ...data } });
      if (!mp.offline) await this.markOffline(mp, signal, 'master down, not failed over');
    };

    // a. The group as it is now, with the revision the switch will compare against.
    const cur = await this.agents.getGroup(gid);
    signal.throwIfAborted();
    if (!cur || groupMaster(cur.group)?.addr !== mp.addr) return; // changed meanwhile: next round
    const g = cur.group;
    const replicas = g.servers.filter((s) => s.role === ServerRole.Replica);

    // b+c. Fresh replication info from every replica.
    const cands: Candidate[] = await Promise.all(
      replicas.map(async (r): Promise<Candidate> => {
        try {
          return { addr: r.addr, info: await this.admin.info(r.addr, this.opts.checkTimeoutMs) };
        } catch (err) {
          return { addr: r.addr, info: null, error: (err as Error).message };
        }
      }),
    );
    signal.throwIfAborted();
    const hears = cands.find(
      (c) => c.info && replicatesFrom(c.info, mp.addr) && c.info.linkUp === true && (c.info.masterLastIoSecondsAgo ?? 99) <= 1,
    );
    const vetoAgent = hears ? null : await this.agentThatReaches(mp.addr, signal);
    if (hears || vetoAgent) {
      if (!mp.vetoReported) {
        mp.vetoReported = true;
        this.log.warn(
          { group: gid, master: mp.addr, replica: hears?.addr, agent: vetoAgent },
          'master unreachable from this agent but alive for others; not failing over',
        );
      }
      return;
    }
    const unaccounted = unaccountedReplicas(cands, (addr) => this.probes.get(addr), Date.now(), this.opts.downAfterMs);
    if (unaccounted.length > 0 && cands.some((c) => c.info !== null)) {
      // Next round: it answers, or it is confirmed down too and the others are all there is.
      if (!mp.waitReported) {
        mp.waitReported = true;
        this.log.warn({ group: gid, master: mp.addr, unaccounted }, 'master down, but a replica neither answers nor is known down: waiting for it before promoting');
      }
      return;
    }
    const best = pickCandidate(cands);
    const candidates = cands.map((c) => ({
      addr: c.addr,
      offset: c.info ? replicationOffset(c.info) : null,
      linkUp: c.info?.linkUp ?? null,
      ...(c.error ? { error: c.error } : {}),
    }));
    if (!best || !best.info) {
      await fail(replicas.length === 0 ? 'the group has no replica' : 'no replica answers', { candidates });
      return;
    }

    // d. Re-point the other replicas that answer to the candidate first, while it is still a
    // replica: none of them goes on replicating from the old master (should it come back for
    // a moment) once the candidate is master, so a write acknowledged through one of them is
    // never one the new master lacks.
    this.leadership.guardKey();
    signal.throwIfAborted();
    const others = cands.filter((c) => c.addr !== best.addr && c.info !== null);
    const repointed: string[] = [];
    await Promise.all(
      others.map(async (c) => {
        try {
          if (signal.aborted) return;
          await this.admin.replicaOf(c.addr, best.addr, this.opts.commandTimeoutMs);
          this.metrics.repoints.inc({ reason: 'failover' });
          repointed.push(c.addr);
        } catch (err) {
          this.log.warn({ group: gid, replica: c.addr, err: (err as Error).message }, 'cannot re-point replica; will retry when it answers');
        }
      }),
    );

    // e. Promote.
    this.leadership.guardKey();
    signal.throwIfAborted();
    const newOffset = replicationOffset(best.info) ?? 0;
    try {
      await this.admin.replicaOf(best.addr, null, this.opts.commandTimeoutMs);
    } catch (err) {
      await fail(`REPLICAOF NO ONE on ${best.addr} failed: ${(err as Error).message}`, { candidates });
      return;
    }

    // f. Switch, guarded by the group's revision and our election key.
    const next = promotedGroup(g, best.addr);
    const revision = await this.agents.swapGroup(next, cur.modRevision, this.leadership.guardKey());
    if (revision === null) {
      this.log.warn({ group: gid, master: mp.addr, candidate: best.addr }, 'group changed or leadership lost during failover; deciding again next round');
      return;
    }
    const tookMs = Date.now() - t0;
    this.roleOf.set(best.addr, ServerRole.Master);
    this.roleOf.set(mp.addr, ServerRole.Replica);

    // g. Record.
    const oldOffset = mp.info ? replicationOffset(mp.info) : null;
    const details: FailoverDetails = {
      group: gid,
      oldMaster: mp.addr,
      newMaster: best.addr,
      oldMasterOffset: oldOffset,
      newMasterOffset: newOffset,
      lostBytesEstimate: oldOffset === null ? null : Math.max(0, oldOffset - newOffset),
      candidates,
      repointed,
      downForMs: Date.now() - mp.lastOkAt,
      tookMs,
      revision,
    };
    this.failovers++;
    this.metrics.failovers.inc({ group: String(gid), result: 'done' });
    this.metrics.failoverSeconds.observe(details.downForMs / 1000);
    this.log.warn({ ...details }, `failover: group ${gid} master ${mp.addr} → ${best.addr}`);
    mp.failoverFailedReported = true;
    await this.event(signal, {
      kind: AgentEventKind.Failover,
      group: gid,
      message: `group ${gid}: master ${mp.addr} down for ${details.downForMs} ms; promoted ${best.addr}`,
      data: { ...details },
    });
    await this.markOffline(mp, signal, `failed over to ${best.addr}`);
  }

  /** Another registered agent that can PING `addr` right now (step 4b), or null. */
  private async agentThatReaches(addr: string, signal: AbortSignal): Promise<string | null> {
    let others;
    try {
      others = (await this.agents.listAgents()).filter((a) => a.id !== this.opts.id);
    } catch {
      return null; // etcd just answered listGroups; if it fails now, do not block on it
    }
    const answers = await Promise.all(
      others.map(async (a) => {
        try {
          const res = await fetch(`http://${a.httpAddr}/api/check_redis?addr=${encodeURIComponent(addr)}`, {
            ...(this.opts.token ? { headers: { authorization: `Bearer ${this.opts.token}` } } : {}),
            signal: AbortSignal.any([signal, AbortSignal.timeout(Math.max(500, this.opts.checkTimeoutMs * 2))]),
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

  private async markOffline(p: Probe, signal: AbortSignal, reason: string): Promise<void> {
    if (signal.aborted) return;
    p.offline = true;
    this.log.warn({ server: p.addr, group: p.group, reason, lastOkAt: new Date(p.lastOkAt).toISOString() }, 'server offline');
    await this.health(p, ServerHealthState.Offline, reason);
    await this.event(signal, { kind: AgentEventKind.ServerOffline, group: p.group, message: `${p.addr} offline: ${reason}`, data: { server: p.addr, reason } });
  }

  private async markOnline(p: Probe, signal: AbortSignal, reason: string): Promise<void> {
    if (signal.aborted) return;
    p.offline = false;
    this.log.info({ server: p.addr, group: p.group, reason }, 'server online');
    await this.health(p, ServerHealthState.Online, reason);
    await this.event(signal, { kind: AgentEventKind.ServerOnline, group: p.group, message: `${p.addr} online: ${reason}`, data: { server: p.addr, reason } });
  }

  private async health(p: Probe, state: ServerHealthState, reason: string): Promise<void> {
    try {
      await this.agents.putServerHealth({ addr: p.addr, group: p.group, state, since: new Date().toISOString(), reason }, this.leadership.guardKey());
    } catch (err) {
      this.log.warn({ server: p.addr, err: (err as Error).message }, 'cannot write server health record');
    }
  }

  private async event(signal: AbortSignal, ev: Omit<AgentEvent, 'seq' | 'at' | 'agent'>): Promise<void> {
    if (signal.aborted) return;
    try {
      await this.agents.appendEvent({ ...ev, at: new Date().toISOString(), agent: this.opts.id }, this.leadership.guardKey());
    } catch (err) {
      this.log.warn({ kind: ev.kind, err: (err as Error).message }, 'cannot record event in etcd');
    }
  }
}
