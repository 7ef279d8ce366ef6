/**
 * The replica healer: while this agent is the HA leader, it keeps each group that has
 * `wantReplicas` at that many replicas that answer.
 *
 * Every pass (every --check-interval-ms, at least 1 s), for each group with `wantReplicas`
 * whose master answers (a dead master is failover's business, not ours):
 *   - fewer replicas UP than wanted, continuously for --heal-after-ms: pick an agent with
 *     capacity (registered with a --redis-ports range, answering its API; the one running the
 *     fewest redis-servers, then the lowest id), have it start a fresh redis-server on a port
 *     it picks, REPLICAOF the master (with the servers' login, as every REPLICAOF of the
 *     leader), wait until the link is up (the initial sync done), then add it to the group
 *     with `withServers`, guarded by the group's revision and the leader's election key.
 *     A step that fails undoes what it did (REPLICAOF NO ONE, the app stopped) and the group
 *     is tried again later.
 *   - enough replicas UP, and one down for --heal-after-ms: it is retired from the group
 *     (the same guarded write), so the record does not grow with every loss.
 *
 * Invariants: at most one action per group at a time; nothing while the topology alarm is
 * up; nothing after the leadership's signal aborted (every etcd write is guarded by the
 * election key anyway). The grace period is what keeps a replica that merely restarts from
 * being replaced. A new replica enters the group outside the in-sync set (withServers keeps
 * the set as it is); the in-sync keeper admits it once it has caught up.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  AgentEventKind,
  ServerRole,
  groupMaster,
  withServers,
  type AgentClient,
  type AgentInfo,
  type AgentStore,
  type GroupInfo,
  type Leadership,
  type StartedRedis,
} from '@reborn/coordinator';
import { replicatesFrom, type RedisAdmin } from '@reborn/coordinator/admin';
import type { ServerStatus } from './ha-probe.js';
import { HaRecords } from './ha-records.js';

export interface HealerOptions {
  id: string;
  healAfterMs: number;
  /** ms between passes. */
  intervalMs: number;
  /** Bound of one admin command (REPLICAOF, INFO). */
  commandTimeoutMs: number;
  /** How long a new replica's initial sync may take before the attempt is undone. */
  syncTimeoutMs: number;
}

export interface HealerDeps {
  agents: AgentStore;
  client: AgentClient;
  leadership: Leadership;
  admin: RedisAdmin;
  /** The HA loop's view of every server of every group (this leader's probes). */
  status: () => ServerStatus[];
  /** Whether the topology alarm is up (then the healer does nothing). */
  alarmed: () => boolean;
  /** The groups as etcd has them now. */
  loadGroups: () => Promise<GroupInfo[]>;
  log: Logger;
}

export type HealStep =
  | { kind: 'none' }
  | { kind: 'wait'; why: string }
  | { kind: 'create' }
  | { kind: 'retire'; addr: string };

/**
 * What to do for group `g` now (a pure decision). `shortSince` is when the group was first
 * seen short of replicas in this leadership term (null: it was not); the result says what it
 * is after this look.
 */
export function nextHealStep(
  g: GroupInfo,
  status: ReadonlyMap<string, Pick<ServerStatus, 'up' | 'lastOkAt'>>,
  now: number,
  shortSince: number | null,
  healAfterMs: number,
): { step: HealStep; shortSince: number | null } {
  const want = g.wantReplicas;
  if (want === undefined) return { step: { kind: 'none' }, shortSince: null };
  const master = groupMaster(g);
  const ms = master ? status.get(master.addr) : undefined;
  if (!master || !ms || !ms.up) return { step: { kind: 'wait', why: 'the master does not answer' }, shortSince: null };
  const replicas = g.servers.filter((s) => s.role === ServerRole.Replica);
  const unknown = replicas.filter((s) => !status.has(s.addr));
  if (unknown.length > 0) return { step: { kind: 'wait', why: `not checked yet: ${unknown.map((s) => s.addr).join(', ')}` }, shortSince };
  const up = replicas.filter((s) => status.get(s.addr)!.up).length;
  if (up < want) {
    const since = shortSince ?? now;
    if (now - since < healAfterMs) return { step: { kind: 'wait', why: `${up} of ${want} replicas up; grace period running` }, shortSince: since };
    return { step: { kind: 'create' }, shortSince: since };
  }
  const lost = replicas.find((s) => {
    const st = status.get(s.addr)!;
    return !st.up && now - Date.parse(st.lastOkAt) >= healAfterMs;
  });
  return { step: lost ? { kind: 'retire', addr: lost.addr } : { kind: 'none' }, shortSince: null };
}

/** Of the agents with capacity, the one to ask: fewest redis-servers, then lowest id. */
export function pickAgent(candidates: ReadonlyArray<{ agent: AgentInfo; redisApps: number }>): AgentInfo | null {
  const sorted = [...candidates].sort((a, b) => a.redisApps - b.redisApps || (a.agent.id < b.agent.id ? -1 : a.agent.id > b.agent.id ? 1 : 0));
  return sorted[0]?.agent ?? null;
}

/** A failed action waits this long before the group is tried again. */
const RETRY_AFTER_MS = 5000;

export class ReplicaHealer {
  private readonly log: Logger;
  private readonly records: HaRecords;

  constructor(
    private readonly opts: HealerOptions,
    private readonly deps: HealerDeps,
  ) {
    this.log = deps.log.child({ component: 'healer' });
    this.records = new HaRecords(opts.id, deps.agents, deps.leadership, this.log);
  }

  /** Runs passes until `signal` aborts (leadership lost); waits for actions under way. */
  async run(signal: AbortSignal): Promise<void> {
    const shortSince = new Map<number, number>();
    const retryAt = new Map<number, number>();
    const busy = new Map<number, Promise<void>>();
    this.log.info({ healAfterMs: this.opts.healAfterMs }, 'replica healer started');
    while (!signal.aborted) {
      try {
        await this.pass(signal, shortSince, retryAt, busy);
      } catch (err) {
        if (!signal.aborted) this.log.warn({ err: (err as Error).message }, 'replica healer pass skipped');
      }
      try {
        await sleep(this.opts.intervalMs, undefined, { signal });
      } catch {
        break;
      }
    }
    await Promise.all(busy.values());
    this.log.info('replica healer stopped');
  }

  private async pass(signal: AbortSignal, shortSince: Map<number, number>, retryAt: Map<number, number>, busy: Map<number, Promise<void>>): Promise<void> {
    if (this.deps.alarmed()) return;
    const groups = await this.deps.loadGroups();
    const status = new Map(this.deps.status().map((s) => [s.addr, s]));
    const now = Date.now();
    for (const g of groups) {
      const decided = nextHealStep(g, status, now, shortSince.get(g.id) ?? null, this.opts.healAfterMs);
      if (decided.shortSince === null) shortSince.delete(g.id);
      else shortSince.set(g.id, decided.shortSince);
      const { step } = decided;
      if (step.kind === 'none' || step.kind === 'wait') continue;
      if (busy.has(g.id) || (retryAt.get(g.id) ?? 0) > now || signal.aborted) continue;
      const action = step.kind === 'create' ? this.createReplica(g.id, signal) : this.retireReplica(g.id, step.addr, signal);
      busy.set(
        g.id,
        action
          .then((ok) => {
            if (!ok) retryAt.set(g.id, Date.now() + RETRY_AFTER_MS);
          })
          .finally(() => busy.delete(g.id)),
      );
    }
  }

  /** Agents with capacity, each with its redis-server count; unreachable ones are logged and left out. */
  private async candidates(): Promise<Array<{ agent: AgentInfo; redisApps: number }>> {
    const agents = (await this.deps.agents.listAgents()).filter((a) => a.redisPorts !== undefined);
    const out: Array<{ agent: AgentInfo; redisApps: number }> = [];
    await Promise.all(
      agents.map(async (agent) => {
        try {
          const apps = await this.deps.client.apps(agent);
          out.push({ agent, redisApps: apps.filter((a) => a.kind === 'redis' && a.state !== 'stopped').length });
        } catch (err) {
          this.log.warn({ agent: agent.id, err: (err as Error).message }, 'agent not usable for a new replica');
        }
      }),
    );
    return out;
  }

  /** Creates one replica for group `gid`; true when it joined the group. */
  private async createReplica(gid: number, signal: AbortSignal): Promise<boolean> {
    const agent = pickAgent(await this.candidates().catch(() => []));
    if (agent === null) {
      this.log.warn({ group: gid }, 'group is short of replicas, but no agent has capacity (registered with --redis-ports and answering)');
      return false;
    }
    if (signal.aborted) return false;
    let started: StartedRedis;
    try {
      started = await this.deps.client.startRedis(agent);
    } catch (err) {
      this.log.warn({ group: gid, agent: agent.id, err: (err as Error).message }, 'cannot start a redis-server for a new replica');
      return false;
    }
    this.log.info({ group: gid, agent: agent.id, server: started.addr }, 'started a redis-server for a new replica; syncing it');
    try {
      const master = await this.attach(gid, started.addr, signal);
      this.records.event(signal, {
        kind: AgentEventKind.ReplicaCreated,
        group: gid,
        message: `${started.addr} (on agent ${agent.id}) added to group ${gid} as a replica of ${master}`,
        data: { server: started.addr, agent: agent.id, app: started.id, master },
      }).catch(() => undefined);
      this.log.warn({ group: gid, server: started.addr, agent: agent.id, master }, 'replica created: group healed');
      return true;
    } catch (err) {
      if (!signal.aborted) this.log.warn({ group: gid, server: started.addr, err: (err as Error).message }, 'new replica not added; undoing');
      await this.deps.admin.replicaOf(started.addr, null, this.opts.commandTimeoutMs).catch(() => undefined);
      await this.deps.client.stop(agent, started.id).catch((e: Error) => this.log.warn({ agent: agent.id, app: started.id, err: e.message }, 'cannot stop the unused redis-server'));
      return false;
    }
  }

  /** REPLICAOF the group's master, wait for the sync, write the group; returns the master. */
  private async attach(gid: number, addr: string, signal: AbortSignal): Promise<string> {
    const before = await this.deps.agents.getGroup(gid);
    const master = before ? groupMaster(before.group) : undefined;
    if (!before || !master) throw new Error(`group ${gid} is gone or has no master`);
    signal.throwIfAborted();
    this.deps.leadership.guardKey();
    await this.deps.admin.replicaOf(addr, master.addr, this.opts.commandTimeoutMs);
    const deadline = Date.now() + this.opts.syncTimeoutMs;
    for (;;) {
      signal.throwIfAborted();
      const info = await this.deps.admin.info(addr, this.opts.commandTimeoutMs).catch(() => null);
      // master_link_status is up only once the initial sync is complete.
      if (info && replicatesFrom(info, master.addr) && info.linkUp === true) break;
      if (Date.now() > deadline) throw new Error(`initial sync from ${master.addr} not done within ${this.opts.syncTimeoutMs} ms`);
      await sleep(100, undefined, { signal });
    }
    const now = await this.deps.agents.getGroup(gid);
    if (!now || groupMaster(now.group)?.addr !== master.addr) throw new Error(`the master of group ${gid} changed while ${addr} was syncing`);
    const next = withServers(now.group, [...now.group.servers, { addr, role: ServerRole.Replica }]);
    const rev = await this.deps.agents.swapGroup(next, now.modRevision, this.deps.leadership.guardKey());
    if (rev === null) throw new Error(`group ${gid} changed meanwhile (or this agent no longer leads)`);
    return master.addr;
  }

  /** Removes replica `addr`, down past the grace period, from group `gid`; true when done. */
  private async retireReplica(gid: number, addr: string, signal: AbortSignal): Promise<boolean> {
    try {
      const cur = await this.deps.agents.getGroup(gid);
      if (!cur || !cur.group.servers.some((s) => s.addr === addr && s.role === ServerRole.Replica)) return true;
      signal.throwIfAborted();
      const next = withServers(cur.group, cur.group.servers.filter((s) => s.addr !== addr));
      const rev = await this.deps.agents.swapGroup(next, cur.modRevision, this.deps.leadership.guardKey());
      if (rev === null) return false;
      this.log.warn({ group: gid, server: addr, healAfterMs: this.opts.healAfterMs }, 'replica retired: down past the grace period');
      await this.records.event(signal, {
        kind: AgentEventKind.ReplicaRetired,
        group: gid,
        message: `${addr} removed from group ${gid}: down for more than ${this.opts.healAfterMs} ms`,
        data: { server: addr, healAfterMs: this.opts.healAfterMs },
      });
      return true;
    } catch (err) {
      if (!signal.aborted) this.log.warn({ group: gid, server: addr, err: (err as Error).message }, 'cannot retire replica');
      return false;
    }
  }
}
