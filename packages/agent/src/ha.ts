/**
 * HA: the leader's health checks and failover (docs/architecture.md §5 "HA"). RebornDB's
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
 *     Stall versus death (ha-stall.ts): after a failed check the leader tries a bare TCP
 *     connect. Accepted: the process is alive but not answering (a MIGRATE of a big key, a
 *     long script, SIGSTOP) — a STALL, logged once, shown in /api/ha, and a stalled master
 *     is down only after --stall-down-after-ms (15 s). Refused: a death, down after the
 *     shorter --dead-down-after-ms (1.5 s): the process is gone, there is nothing to wait for.
 *     While a migration involves the group (a running task in etcd, a slot moving), a master
 *     that does not answer is judged a stall unless its port refuses connections, against
 *     --migration-stall-down-after-ms (60 s).
 *  3b. The replication guard (repl-guard.ts), for each group, after the servers' checks and
 *     before anything acts on them (skipped while the topology alarm is up): a master whose
 *     run_id changed (it restarted), or that this leader meets without the `reborn-repl`
 *     user (a new leader's first round, a first rollout), is judged (judgeMaster). Trusted,
 *     it gets the user, the login replicas use — so it runs before step 6, whose REPLICAOF
 *     logs in as that user. `fail-over` (behind the best in-sync replica, or empty while
 *     replicas have keys): failed over NOW by step 4, without waiting for a down window —
 *     its replicas' login fails meanwhile, so they keep their data. `wait` (an in-sync
 *     replica did not answer): the group is held — no in-sync set change, no REPLICAOF —
 *     until it can be judged. The guard is opened (secret from etcd) at the start of a
 *     term; if etcd fails then, the next round tries again, and no round runs without it.
 *  4. A down master is failed over (failover.ts holds the steps, a–g): re-read the group;
 *     a veto when the master is alive for a replica or another agent; choose the candidate;
 *     re-point the other replicas to it; promote it; switch the group in etcd (guarded);
 *     record the event with the offsets.
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
 *  7. The in-sync set (ha-insync.ts), for each group whose master answers: members that are
 *     down, detached or lagging leave it, replicas caught up with the master join it; one
 *     guarded write per group per round, an event per change. The failover of step 4
 *     promotes only from it (ha-choice.ts), and blocks rather than promote a stale replica.
 *
 * Topology guard (coordinator topology-guard.ts). Each round reads the whole topology with
 * the product identity, not just the groups, and judges it against the last one it took.
 * When etcd lost it (identity gone or different, slot keys gone, groups gone under their
 * slots, a restore in progress) — or when this agent knows nothing yet and etcd is empty
 * while proxies are registered and serving — "zero groups" is NOT "nothing to watch": the
 * alarm goes up (one error log line, reborn_topology_alarm, /healthz, /api/ha), the leader
 * keeps checking the servers of the last groups it took, and failover is SUSPENDED: no
 * promotion, no REPLICAOF, no health records, no change to an in-sync set, since proxies would not learn of a switch
 * (they keep their own last table) and etcd no longer says what the groups are. A master
 * that goes down meanwhile is logged as an error, once. It all resumes in the first round
 * that finds the product's identity (and a topology) again. Followers read and judge the
 * topology too (every FOLLOW_MS), so whichever agent wins the election after etcd lost its
 * data knows the groups; only agents started after the loss know none (failover off).
 *
 * Known limits: a master reachable
 * from no agent but alive for clients (a partition that isolates only the agents) is failed
 * over — the veto in 4b only sees what replicas and other agents see.
 *
 * This file is the loop (steps 1–3, 5, 6 and the topology guard); the parts it uses: the
 * probes (ha-probe.ts), stall versus death (ha-stall.ts), the replication guard
 * (repl-guard.ts), the failover (failover.ts) and its pure choices (ha-choice.ts), the
 * in-sync set (ha-insync.ts), the health records and events (ha-records.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Failover } from './failover.js';
import { InSyncKeeper } from './ha-insync.js';
import { ReplicationGuard, type MasterVerdict } from './repl-guard.js';
import { isDown, newProbe, readReplication, recordCheckSuccess, type Probe, type ServerStatus } from './ha-probe.js';
import { HaRecords } from './ha-records.js';
import { groupsInMigration, masterDownAfterMs, noteFailedCheck, probeConnect } from './ha-stall.js';
export { isDown, type Probe, type ServerStatus } from './ha-probe.js';
export { pickCandidate, promotedGroup, unaccountedReplicas, type Candidate, type CandidatePick } from './ha-choice.js';
import {
  AgentEventKind,
  ServerHealthState,
  ServerRole,
  TopologyAlarm,
  Migrations,
  groupMaster,
  isEmptyTopology,
  judgeTopology,
  missingTopologyProblem,
  needsServingCheck,
  type AgentStore,
  type GroupInfo,
  type HeldTopology,
  type Store,
  type TopologyAlarmView,
  type TopologyProblem,
} from '@reborn/coordinator';
import type { Leadership } from '@reborn/coordinator';
import type { AgentMetrics } from './metrics.js';
import { replicatesFrom, replicationOffset, type RedisAdmin } from '@reborn/coordinator/admin';

/** How often an agent that does not lead reads the topology, to know the groups if it must lead. */
const FOLLOW_MS = 5000;

export interface HaOptions {
  id: string;
  product: string;
  downAfterMs: number;
  /** The window of a stalled master, and of one a migration involves (ha-stall.ts). */
  stallDownAfterMs: number;
  /** The stall window of a master a migration involves (ha-stall.ts). */
  migrationStallDownAfterMs: number;
  /** The window of a master whose port refuses connections: its process is gone (ha-stall.ts). */
  deadDownAfterMs: number;
  /** The lag bound of the in-sync set (ha-insync.ts). */
  inSyncMaxLagMs: number;
  checkIntervalMs: number;
  checkTimeoutMs: number;
  commandTimeoutMs: number;
  /** The agents' shared API token, sent when asking another agent (null: none). */
  token?: string | null;
}

/**
 * The HA loop of one agent: follows the topology while it does not lead, runs rounds while
 * it does. Over 350 lines because it is the one owner of the probes and the held topology
 * that every step reads; the steps themselves live in the modules named in the file header.
 */
export class HaLoop {
  private readonly probes = new Map<string, Probe>();
  /** Each server's role in etcd, as of the last round (for status()). */
  private readonly roleOf = new Map<string, string>();
  private readonly log: Logger;
  private readonly records: HaRecords;
  private readonly failover: Failover;
  private readonly inSync: InSyncKeeper;
  private readonly migrations: Migrations;
  /** Opened at the start of the first term (it needs etcd); kept across terms of this process. */
  private guard: ReplicationGuard | null = null;
  private running: Promise<void> | null = null;
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
    this.records = new HaRecords(opts.id, agents, leadership, this.log);
    this.failover = new Failover({
      opts,
      agents,
      leadership,
      admin,
      metrics,
      records: this.records,
      log: this.log,
      probeOf: (addr) => this.probes.get(addr),
      switched: (newMaster, oldMaster) => {
        this.roleOf.set(newMaster, ServerRole.Master);
        this.roleOf.set(oldMaster, ServerRole.Replica);
      },
    });
    this.inSync = new InSyncKeeper({
      agents,
      leadership,
      records: this.records,
      metrics,
      log: this.log,
      maxLagMs: opts.inSyncMaxLagMs,
      downAfterMs: opts.downAfterMs,
      probeOf: (addr) => this.probes.get(addr),
      readReplication: (addr) => readReplication(this.admin, addr, opts.checkTimeoutMs),
    });
    this.migrations = new Migrations(store);
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
      down: isDown(p, now, p.stalledSince === null ? this.opts.downAfterMs : this.opts.stallDownAfterMs),
      offline: p.offline,
      failures: p.failures,
      lastOkAt: new Date(p.lastOkAt).toISOString(),
      lastError: p.lastError,
      redisRole: p.info?.role ?? null,
      offset: p.info ? replicationOffset(p.info) : null,
      stalled: p.stalledSince !== null,
      stalledSince: p.stalledSince === null ? null : new Date(p.stalledSince).toISOString(),
    }));
  }

  get failoverCount(): number {
    return this.failover.count;
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
    void this.records.event(signal, { kind: AgentEventKind.LeaderElected, message: `agent ${this.opts.id} is the HA leader`, data: {} });
    await this.openGuard().catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message }, 'cannot open the replication guard (etcd); trying again next round');
    });
    let { offline, recorded } = await this.readHealthRecords();
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
    this.metrics.inSyncReplicas.reset(); // only the leader knows the sets
    this.log.info('HA checks stopped');
  }

  /**
   * Step 3: what previous leaders recorded offline stays offline until it answers again.
   * Returns those servers (with their group) and every address that has a record.
   */
  private async readHealthRecords(): Promise<{ offline: Map<string, number>; recorded: string[] }> {
    try {
      const records = await this.agents.listServerHealth();
      return {
        recorded: records.map((h) => h.addr),
        offline: new Map(records.filter((h) => h.state === ServerHealthState.Offline).map((h) => [h.addr, h.group])),
      };
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot read server health records; starting without them');
      return { offline: new Map(), recorded: [] };
    }
  }

  /**
   * The replication guard, opened once: the secret from etcd (created if absent), and the
   * admin pool's REPLICAOF logging in as the replication user from then on. Throws when etcd
   * does not answer.
   */
  private async openGuard(): Promise<ReplicationGuard> {
    this.guard ??= await ReplicationGuard.open(this.store, {
      admin: this.admin,
      logger: this.log,
      metrics: this.metrics,
      timeoutMs: this.opts.checkTimeoutMs,
    });
    return this.guard;
  }

  /** One round (steps 2–7); returns the addresses of every server of every group. */
  private async round(signal: AbortSignal, startedAt: number, offline: Map<string, number>): Promise<Set<string>> {
    // Step 2: the topology first, bounded; a failure throws and skips the round.
    const groups = await this.groupsToWatch();
    signal.throwIfAborted();
    const seen = this.trackServers(groups, startedAt, offline);
    this.admin.retain(seen);

    await Promise.all([...this.probes.values()].map((p) => this.check(p)));
    signal.throwIfAborted();
    if (this.alarm.active) {
      this.reportSuspended(groups);
      return seen;
    }
    // Step 3b, before anything sends REPLICAOF (it logs in as the user the guard gives).
    const verdicts = await this.guardGroups(groups, seen);
    signal.throwIfAborted();
    const migrating = await this.groupsInMigration();
    await Promise.all(groups.map((g) => this.handleGroup(g, migrating.has(g.id), verdicts.get(g.id) ?? null, signal).catch((err: unknown) => {
      if (!signal.aborted) this.log.warn({ group: g.id, err: (err as Error).message }, 'group handling failed this round');
    })));
    return seen;
  }

  /**
   * Step 3b for every group: the master's verdict of each group whose master answered the
   * guard. Throws (the round is skipped) only when the guard cannot be opened.
   */
  private async guardGroups(groups: readonly GroupInfo[], seen: ReadonlySet<string>): Promise<Map<number, MasterVerdict>> {
    const guard = await this.openGuard();
    const verdicts = new Map<number, MasterVerdict>();
    await Promise.all(groups.map(async (g) => {
      const r = await guard.checkGroup(g);
      if (r.verdict) verdicts.set(g.id, r.verdict);
      for (const e of r.errors) {
        // A server down is the probes' business; this is for what only the guard sees.
        if (this.probes.get(e.addr)?.failures === 0) this.log.debug({ group: g.id, server: e.addr, err: e.error }, 'replication guard could not read or set up a server');
      }
    }));
    guard.retain(seen);
    return verdicts;
  }

  /**
   * The groups a key move involves now (ha-stall.ts). The tasks are read only while some
   * master does not answer (they matter only then); if etcd does not answer that read, the
   * slots of the topology this round took still show the moves under way.
   */
  private async groupsInMigration(): Promise<Set<number>> {
    const slots = this.held?.slots ?? [];
    if (![...this.probes.values()].some((p) => p.failures > 0 && this.roleOf.get(p.addr) === ServerRole.Master)) return new Set();
    try {
      return groupsInMigration((await this.migrations.list()).map((m) => m.task), slots);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot read migration tasks; judging stalls by the slots alone');
      return groupsInMigration([], slots);
    }
  }

  /** A probe for every server of the groups, none for the others; returns their addresses. */
  private trackServers(groups: readonly GroupInfo[], startedAt: number, offline: Map<string, number>): Set<string> {
    const seen = new Set<string>();
    for (const g of groups) {
      for (const s of g.servers) {
        seen.add(s.addr);
        this.roleOf.set(s.addr, s.role);
        let p = this.probes.get(s.addr);
        if (!p) {
          p = newProbe(s.addr, g.id, startedAt, offline.get(s.addr) !== undefined);
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
      const { info, details } = await readReplication(this.admin, p.addr, this.opts.checkTimeoutMs);
      if (p.failures > 0) {
        const stalledForMs = p.stalledSince === null ? null : Date.now() - p.stalledSince;
        this.log.info({ server: p.addr, group: p.group, failures: p.failures, stalledForMs }, 'server answers again');
      }
      recordCheckSuccess(p, info, details);
    } catch (err) {
      p.failures++;
      p.lastError = (err as Error).message;
      this.metrics.checkFailures.inc();
      if (p.failures === 1) this.log.info({ server: p.addr, group: p.group, err: p.lastError }, 'health check failed; server suspect');
      // Alive but not answering, or gone? (ha-stall.ts)
      const began = noteFailedCheck(p, await probeConnect(p.addr, this.opts.checkTimeoutMs), Date.now());
      if (began && !p.stallReported) {
        p.stallReported = true;
        const role = this.roleOf.get(p.addr) ?? 'unknown';
        this.metrics.stalls.inc({ group: String(p.group), role });
        this.log.warn(
          { server: p.addr, group: p.group, role, err: p.lastError, stallDownAfterMs: this.opts.stallDownAfterMs },
          'server stalled: its port accepts connections but it does not answer (busy or frozen); a stalled master is failed over only after the stall window',
        );
      }
    }
  }

  private async handleGroup(g: GroupInfo, migrating: boolean, verdict: MasterVerdict | null, signal: AbortSignal): Promise<void> {
    const now = Date.now();
    const master = groupMaster(g);
    const mp = master ? this.probes.get(master.addr) : undefined;
    if (master && mp) {
      if (isDown(mp, now, masterDownAfterMs(mp, migrating, this.opts))) {
        // Step 4: the one time-critical path; the bookkeeping comes after it.
        await this.failover.run(g.id, mp, signal);
        return;
      }
      if (verdict?.action === 'fail-over') {
        // Step 3b: restarted behind its group. Alive, so no down window to wait for; its
        // in-sync set must not change either (it would judge replicas against the restarted
        // process's new history), so nothing else happens to the group this round.
        await this.failover.run(g.id, mp, signal, { kind: 'restarted', reason: verdict.reason });
        return;
      }
      if (verdict?.action === 'wait') return; // held until the guard can judge the master
      if (mp.failures === 0 && mp.offline) await this.records.markOnline(mp, signal, 'master answers again');
      if (mp.failures === 0 && mp.info && mp.info.role !== 'master') {
        this.log.warn({ group: g.id, master: mp.addr, redisRole: mp.info.role }, 'the group master in etcd is not a master in redis');
      }
      // Step 7 before step 6: a REPLICAOF that fails must not keep a lagging member in the set.
      // Only for a master the guard judged and trusts this round: a restarted master the guard
      // could not read would otherwise see its members detached (their login fails) and empty
      // the set, and an empty set is what the guard's verdict then trusts.
      if (mp.failures === 0 && verdict?.action === 'trust') {
        await this.inSync.step(g, mp, signal).catch((err: unknown) => {
          if (!signal.aborted) this.log.warn({ group: g.id, err: (err as Error).message }, 'cannot update the in-sync set this round');
        });
      }
    }
    for (const s of g.servers) {
      if (s.role !== ServerRole.Replica) continue;
      const p = this.probes.get(s.addr);
      if (!p) continue;
      if (isDown(p, now, this.opts.downAfterMs)) {
        if (!p.offline) await this.records.markOffline(p, signal, 'replica down');
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
      if (p.offline) await this.records.markOnline(p, signal, 'replica back and replicating');
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
    await this.records.event(signal, { kind, group: p.group, message, data: { server: p.addr, master: masterAddr, was: from, offsetBefore: replicationOffset(info) } });
    if (returning) await this.records.markOnline(p, signal, 'back and re-pointed');
  }
}
