/**
 * Telling a lost or foreign topology from a real change, for every process that follows a
 * product's topology (the proxy's slot table, the HA leader's groups).
 *
 * Invariant: a process that holds a topology never replaces it with one that is empty or
 * belongs to another incarnation of the product. It keeps what it has, raises an alarm, and
 * adopts again only a topology of the identity it held (or, for a product without identity,
 * a non-empty one). What counts as lost, relative to what the process holds:
 *
 *   identity_vanished     it held identity G; etcd has none (etcd lost its data)
 *   identity_changed      it held G; etcd has H (product re-created, or another one restored)
 *   restore_in_progress   a topology restore is writing the product back (identity absent)
 *   topology_vanished     slots it served have no key any more, or a group its slots belong
 *                         to is gone — things no writer does (writers set slots offline and
 *                         delete only unused groups)
 *   topology_missing      it holds nothing yet; etcd holds no topology and no identity while
 *                         other proxies are registered and serving (a new process after etcd
 *                         lost its data)
 *
 * A process holding no topology and finding an empty product with an identity, or with no
 * identity and no serving proxies, takes it as it is: a product being created.
 */
import { SLOT_COUNT, assignedSlotCount, type GroupInfo, type ProductIdentity, type RestoreMarker, type SlotInfo, type Topology } from './models.js';
import type { TopologyHead } from './store.js';

export const TopologyAlarmReason = {
  IdentityVanished: 'identity_vanished',
  IdentityChanged: 'identity_changed',
  RestoreInProgress: 'restore_in_progress',
  TopologyVanished: 'topology_vanished',
  TopologyMissing: 'topology_missing',
} as const;
export type TopologyAlarmReason = (typeof TopologyAlarmReason)[keyof typeof TopologyAlarmReason];
export const TOPOLOGY_ALARM_REASONS: readonly TopologyAlarmReason[] = Object.values(TopologyAlarmReason);

/** Why a topology read from etcd is not taken. */
export interface TopologyProblem {
  readonly reason: TopologyAlarmReason;
  /** One sentence for the operator: what is wrong and what was found. */
  readonly message: string;
}

/** What a process holds: the identity it follows and the table it serves. */
export interface HeldTopology {
  readonly identity: ProductIdentity | null;
  readonly groups: ReadonlyMap<number, GroupInfo>;
  readonly slots: readonly SlotInfo[];
}

/** No slot is served by any group. */
export function isEmptyTopology(t: { slots: readonly SlotInfo[] }): boolean {
  return assignedSlotCount(t.slots) === 0;
}

function describeIdentity(i: ProductIdentity): string {
  return `${i.generation} (created ${i.createdAt})`;
}

/** A restore is writing the product back: nothing read now is complete. */
export function restoreProblem(marker: RestoreMarker): TopologyProblem {
  return {
    reason: TopologyAlarmReason.RestoreInProgress,
    message: `a topology restore of generation ${marker.generation} is in progress (started ${marker.startedAt} by ${marker.by}); waiting for it to finish`,
  };
}

export function identityVanishedProblem(held: ProductIdentity): TopologyProblem {
  return {
    reason: TopologyAlarmReason.IdentityVanished,
    message: `the product identity ${describeIdentity(held)} is gone from etcd: etcd lost its data or was replaced`,
  };
}

export function identityChangedProblem(held: ProductIdentity, found: ProductIdentity): TopologyProblem {
  return {
    reason: TopologyAlarmReason.IdentityChanged,
    message: `etcd holds product identity ${describeIdentity(found)}, not ${describeIdentity(held)} that this process follows: the product was re-created or another topology was written over it`,
  };
}

/** The identity checks shared by the full and the cheap read. */
function identityProblem(held: ProductIdentity | null, found: ProductIdentity | null, restoring: RestoreMarker | null): TopologyProblem | null {
  if (restoring) return restoreProblem(restoring);
  if (held === null) return null;
  if (found === null) return identityVanishedProblem(held);
  if (found.generation !== held.generation) return identityChangedProblem(held, found);
  return null;
}

/**
 * Whether `candidate`, a complete read of etcd, may replace what the process holds. Null
 * when it may; else the problem. With nothing held only a restore in progress is a problem
 * here; the registered-proxies rule needs a read of its own (needsServingCheck).
 */
export function judgeTopology(held: HeldTopology | null, candidate: Topology): TopologyProblem | null {
  const identity = identityProblem(held?.identity ?? null, candidate.identity, candidate.restoring);
  if (identity || held === null) return identity;
  const wiped = candidate.missingSlotKeys.filter((id) => held.slots[id] !== undefined && held.slots[id]!.state !== 'offline');
  if (wiped.length > 0) {
    const all = candidate.missingSlotKeys.length === SLOT_COUNT;
    return {
      reason: TopologyAlarmReason.TopologyVanished,
      message: all
        ? `every slot key is gone from etcd while ${wiped.length} slots were served: etcd lost its data`
        : `the keys of ${wiped.length} served slot(s) are gone from etcd (slot ${wiped[0]}${wiped.length > 1 ? ', …' : ''}): something deleted part of the slot table`,
    };
  }
  for (const s of candidate.slots) {
    for (const gid of [s.group, s.to]) {
      if (gid === undefined || gid === 0 || s.state === 'offline' || candidate.groups.has(gid) || !held.groups.has(gid)) continue;
      return {
        reason: TopologyAlarmReason.TopologyVanished,
        message: `group ${gid} is gone from etcd while slot ${s.id} still belongs to it`,
      };
    }
  }
  return null;
}

/** The cheap periodic check: identity, restore marker and whether any slot key is left. */
export function judgeTopologyHead(held: HeldTopology, head: TopologyHead): TopologyProblem | null {
  const identity = identityProblem(held.identity, head.identity, head.restoring);
  if (identity) return identity;
  if (!isEmptyTopology(held) && head.slotKeys === 0) {
    return {
      reason: TopologyAlarmReason.TopologyVanished,
      message: `every slot key is gone from etcd while ${assignedSlotCount(held.slots)} slots were served: etcd lost its data`,
    };
  }
  return null;
}

/**
 * A process holding nothing, reading an empty product without identity: the only case where
 * the registrations decide between "a brand-new product" and "etcd lost the topology".
 */
export function needsServingCheck(held: HeldTopology | null, candidate: Topology): boolean {
  return held === null && candidate.identity === null && candidate.restoring === null && isEmptyTopology(candidate) && candidate.groups.size === 0;
}

/** The topology_missing problem, naming the registered proxies that still serve. */
export function missingTopologyProblem(product: string, servingProxies: readonly string[]): TopologyProblem {
  const shown = servingProxies.slice(0, 5).join(', ') + (servingProxies.length > 5 ? `, … (${servingProxies.length} in all)` : '');
  return {
    reason: TopologyAlarmReason.TopologyMissing,
    message: `etcd holds no slots, no groups and no identity for product ${product} while other proxies are registered and serving (${shown}): etcd probably lost its data; restore the topology`,
  };
}

/** The two log levels the alarm writes at (a pino logger fits; coordinator does not depend on pino). */
export interface AlarmLogger {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** The alarm as shown on /healthz, the APIs and the dashboard. */
export interface TopologyAlarmView {
  readonly reason: TopologyAlarmReason;
  readonly message: string;
  /** ISO-8601 time the alarm went up (or changed reason). */
  readonly since: string;
  /** What the process does meanwhile, e.g. "serving the last slot table". */
  readonly effect: string;
}

/**
 * The alarm of one process. Logs one error line when the alarm goes up or changes reason and
 * one line when it clears — never one per check — so a log alert fires once per transition.
 */
export class TopologyAlarm {
  private current: TopologyAlarmView | null = null;

  constructor(
    private readonly logger: AlarmLogger,
    /** What the process does while the alarm is up, for the log line and the views. */
    private readonly effect: string,
  ) {}

  get view(): TopologyAlarmView | null {
    return this.current;
  }

  get active(): boolean {
    return this.current !== null;
  }

  get reason(): TopologyAlarmReason | null {
    return this.current?.reason ?? null;
  }

  /** Raises (or updates) the alarm. Returns true when this was a transition. */
  raise(problem: TopologyProblem, effect = this.effect): boolean {
    const prev = this.current;
    if (prev && prev.reason === problem.reason) {
      this.current = { ...prev, message: problem.message, effect };
      return false;
    }
    this.current = { reason: problem.reason, message: problem.message, since: new Date().toISOString(), effect };
    this.logger.error({ reason: problem.reason, previous: prev?.reason ?? null, effect }, `topology alarm: ${problem.message}`);
    return true;
  }

  /** Clears the alarm; `how` says why it is over. Returns true when one was up. */
  clear(how: string): boolean {
    const prev = this.current;
    if (prev === null) return false;
    this.current = null;
    this.logger.warn({ reason: prev.reason, since: prev.since }, `topology alarm cleared: ${how}`);
    return true;
  }
}
