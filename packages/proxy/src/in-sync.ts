/**
 * The in-sync replica set as the proxy applies it: from each group's etcd record (its
 * `inSync` list, or every replica when the list is absent, and its `minInSync`) to the write
 * policy its master's connections share (backend-types.ts, WritePolicy):
 *
 *   members < minInSync   → "refusing": every write to the group is refused before it is
 *                           sent (-NOREPLICAS, as redis' min-replicas-to-write), with or
 *                           without --durable: it is the group's own promise. Reads go on.
 *   --durable, members 0  → "degraded": writes are acknowledged on the master alone (no WAIT).
 *   --durable             → each write batch waits for WAIT <members> (durable-writes.ts).
 *
 * Invariant: after `update(groups)` the policy object of every group master's address says
 * what that group's current record asks, and the objects are the very ones the connections
 * hold (updated in place, never replaced), so the next write on any connection follows the
 * new set. A change of state is logged once, when it happens, never per request.
 */
import type { Logger } from 'pino';
import { encodeError } from '@reborn/protocol';
import { groupMaster, inSyncMembers, ServerRole, type GroupInfo } from '@reborn/coordinator';
import type { WritePolicy } from './backend-types.js';

export type GroupWriteState = 'ok' | 'degraded' | 'refusing';

/** What the proxy makes of one group's in-sync settings. */
export interface GroupWriteJudgement {
  readonly members: readonly string[];
  readonly minInSync: number;
  readonly state: GroupWriteState;
  /** The count a durable write batch's WAIT asks for; 0 = no WAIT. Always 0 without --durable. */
  readonly waitFor: number;
}

/** One group as /api/proxy, /healthz and the metrics show it. */
export interface GroupWriteView extends GroupWriteJudgement {
  readonly group: number;
  readonly master: string;
}

/** A group's view as /api/proxy and /healthz show it (JSON). */
export function groupWriteBody(v: GroupWriteView): Record<string, unknown> {
  return { group: v.group, master: v.master, state: v.state, inSync: v.members, minInSync: v.minInSync, durableWaitFor: v.waitFor };
}

export function judgeGroup(g: GroupInfo, durable: boolean): GroupWriteJudgement {
  const members = inSyncMembers(g);
  const minInSync = g.minInSync ?? 0;
  const state: GroupWriteState = members.length < minInSync ? 'refusing' : durable && members.length === 0 ? 'degraded' : 'ok';
  return { members, minInSync, state, waitFor: durable ? members.length : 0 };
}

/** The refusal a write gets while `group` has `members` in-sync replicas and wants `minInSync`. */
export function noReplicasError(group: number, members: number, minInSync: number): string {
  // The first sentence is redis' own (clients classify the error by its first word).
  return `NOREPLICAS Not enough good replicas to write. Group ${group} has ${members} in-sync replica${members === 1 ? '' : 's'}, its minInSync is ${minInSync}.`;
}

export class WritePolicies {
  private readonly byMaster = new Map<string, WritePolicy>();
  private views: GroupWriteView[] = [];
  private readonly states = new Map<number, GroupWriteState>();

  constructor(
    /** `--durable`'s WAIT timeout; null = not durable. */
    private readonly durableTimeoutMs: number | null,
    private readonly logger: Logger,
  ) {}

  /** The policy object of master `addr`: the one its pool's connections are to share. */
  of(addr: string): WritePolicy {
    let p = this.byMaster.get(addr);
    if (p === undefined) {
      p = { group: -1, replicas: 0, members: '', timeoutMs: this.durableTimeoutMs ?? 0, refusal: null, execRefusal: null };
      this.byMaster.set(addr, p);
    }
    return p;
  }

  /** Applies the group table: every master's policy, and a log line per change of state. */
  update(groups: Iterable<GroupInfo>): void {
    const views: GroupWriteView[] = [];
    const masters = new Set<string>();
    for (const g of groups) {
      const master = groupMaster(g)?.addr;
      // A group without a master serves nothing: there is no write to judge.
      if (master === undefined) continue;
      masters.add(master);
      const judged = judgeGroup(g, this.durableTimeoutMs !== null);
      views.push({ group: g.id, master, ...judged });
      this.apply(this.of(master), g.id, judged);
      this.noteState(g, judged);
    }
    for (const addr of this.byMaster.keys()) if (!masters.has(addr)) this.byMaster.delete(addr);
    for (const id of this.states.keys()) if (!views.some((v) => v.group === id)) this.states.delete(id);
    this.views = views.sort((a, b) => a.group - b.group);
  }

  /** Every group with a master, by id. */
  view(): readonly GroupWriteView[] {
    return this.views;
  }

  private apply(p: WritePolicy, group: number, j: GroupWriteJudgement): void {
    p.group = group;
    p.replicas = j.waitFor;
    p.members = j.members.join(', ');
    if (j.state === 'refusing') {
      const text = noReplicasError(group, j.members.length, j.minInSync);
      p.refusal = encodeError(text);
      p.execRefusal = encodeError(`EXECABORT Transaction discarded because of: ${text}`);
    } else {
      p.refusal = null;
      p.execRefusal = null;
    }
  }

  private noteState(g: GroupInfo, j: GroupWriteJudgement): void {
    // A group seen for the first time counts as coming from "ok": only trouble is reported.
    const before = this.states.get(g.id) ?? 'ok';
    this.states.set(g.id, j.state);
    if (before === j.state) return;
    const fields = {
      group: g.id,
      inSync: j.members,
      minInSync: j.minInSync,
      replicas: g.servers.filter((s) => s.role === ServerRole.Replica).length,
    };
    if (j.state === 'refusing') {
      this.logger.warn(fields, 'group refuses writes: its in-sync set is smaller than its minInSync (NOREPLICAS)');
    } else if (j.state === 'degraded') {
      this.logger.warn(fields, 'group degraded: its in-sync set is empty, so durable writes are acknowledged on its master alone');
    } else {
      this.logger.info(fields, `group no longer ${before === 'refusing' ? 'refuses writes' : 'degraded'}: writes are back to normal`);
    }
  }
}
