/**
 * The views reborn-config returns to its front ends (the JSON of the API and of `--json`) and
 * the pure functions that build them: slot runs, even ranges, migration state transitions,
 * proxies merged with their fences, groups with their in-sync set and durability.
 *
 * Invariant: pure — no etcd or redis; the same inputs give the same view.
 */
import {
  ConflictError,
  MigrationState,
  SLOT_COUNT,
  SlotState,
  inSyncMembers,
  op,
  type FenceInfo,
  type GroupInfo,
  type GroupServer,
  type MigrationTask,
  type ProxyInfo,
  type SlotInfo,
} from '@reborn/coordinator';
import { durabilityOf, type Durability } from './group-settings.js';

// ---------------------------------------------------------------------------------------------
// Views returned to the front ends (the JSON of the API and of `--json`).

export interface GroupView {
  id: number;
  servers: GroupServer[];
  /** Slots the group owns (online, or the source of a migration). */
  slots: number;
  /** The in-sync set's members (replica addresses); see inSyncManaged for where it comes from. */
  inSync: string[];
  /** False while no HA leader has recorded a set: then every replica counts as a member. */
  inSyncManaged: boolean;
  /** Durable writes are refused while fewer replicas are in sync; null: no floor. */
  minInSync: number | null;
  /** Replicas agents should keep the group at; null: not set. */
  wantReplicas: number | null;
  /** What a durable proxy does with a write to this group now (group-settings.ts). */
  durability: Durability;
}

/** The view of one group that owns `slots` slots. */
export function groupView(g: GroupInfo, slots: number): GroupView {
  return {
    id: g.id,
    servers: g.servers.map((s) => ({ ...s })),
    slots,
    inSync: [...inSyncMembers(g)],
    inSyncManaged: g.inSync !== undefined,
    minInSync: g.minInSync ?? null,
    wantReplicas: g.wantReplicas ?? null,
    durability: durabilityOf(g),
  };
}

/** Consecutive slots in the same state: `first..last` inclusive. */
export interface SlotRange {
  first: number;
  last: number;
  state: SlotState;
  group: number;
  from?: number;
  to?: number;
}

export interface SlotView extends SlotInfo {
  /** The owner group's master, or null. */
  master: string | null;
  /** The active migration task that includes this slot, or null. */
  migration: string | null;
}

export interface ProxyView {
  id: string;
  state: string;
  addr: string | null;
  adminAddr: string | null;
  /** Where Redis Cluster clients reach it (its --cluster-addr / --cluster-announce), or null. */
  clusterAddr: string | null;
  pid: number | null;
  host: string | null;
  startedAt: string | null;
  /** Registered in etcd now (lease-bound; a fenced proxy that has not come back is not). */
  registered: boolean;
  /**
   * Has a member key: it may be serving, so barriers wait for it. A member that is not
   * registered (state `lost`) lost etcd and may still serve with an old table.
   */
  member: boolean;
  fence: FenceInfo | null;
  /** A fenced proxy's own account of what its recovery waits for (from its registration), or null. */
  fencedReason: string | null;
}

export interface BarrierView {
  seq: number;
  slots: number[];
  createdAt: string;
  note: string;
  waitingFor: string[];
}

export interface Overview {
  product: string;
  groups: GroupView[];
  slots: { byState: Record<string, number>; byGroup: Record<string, number> };
  proxies: ProxyView[];
  fences: FenceInfo[];
  barriers: BarrierView[];
  migrations: MigrationTask[];
  runnerAlive: boolean;
  /** Every product with a slot table in this etcd (this one included). */
  products: string[];
}

export interface RebalancePlanView {
  moves: Array<{ first: number; last: number; from: number; to: number; kind: 'migrate' | 'assign' }>;
  summary: string[];
}

/** Groups the slots into runs of equal state/group/from/to. */
export function compactSlots(slots: readonly SlotInfo[]): SlotRange[] {
  const out: SlotRange[] = [];
  for (const s of slots) {
    const cur = out[out.length - 1];
    if (cur && cur.last === s.id - 1 && cur.state === s.state && cur.group === s.group && cur.from === s.from && cur.to === s.to) {
      cur.last = s.id;
    } else {
      out.push({ first: s.id, last: s.id, state: s.state, group: s.group, ...(s.from === undefined ? {} : { from: s.from, to: s.to }) });
    }
  }
  return out;
}

/** Contiguous, as even as integer division allows: group i of n gets [i·1024/n, (i+1)·1024/n). */
export function evenRanges(groupIds: readonly number[]): Array<{ first: number; last: number; group: number }> {
  const n = groupIds.length;
  return groupIds.map((group, i) => ({
    first: Math.floor((i * SLOT_COUNT) / n),
    last: Math.floor(((i + 1) * SLOT_COUNT) / n) - 1,
    group,
  }));
}

export type MigrationOp = 'pause' | 'resume' | 'cancel';

/**
 * The state an operator's pause/resume/cancel moves a task to; `null` when it is already
 * there (a no-op, not an error); ConflictError for a transition the state machine forbids.
 */
export function migrationTransition(task: Pick<MigrationTask, 'id' | 'state'>, op: MigrationOp): MigrationState | null {
  const { id, state } = task;
  const refuse = (why: string): never => {
    throw new ConflictError(`cannot ${op} migration ${id}: it is ${why}`);
  };
  const finished = (): never => refuse(state === MigrationState.Failed ? 'failed' : state);
  switch (op) {
    case 'pause':
      if (state === MigrationState.Pending || state === MigrationState.Running) return MigrationState.Paused;
      if (state === MigrationState.Paused) return null;
      if (state === MigrationState.Cancelling) return refuse('being cancelled');
      return finished();
    case 'resume':
      // A failed task keeps its migrating batch split between groups: resuming (once the
      // cause is fixed) is the way to finish it.
      if (state === MigrationState.Paused || state === MigrationState.Failed) return MigrationState.Running;
      if (state === MigrationState.Pending || state === MigrationState.Running) return null;
      if (state === MigrationState.Cancelling) return refuse('being cancelled');
      return finished();
    case 'cancel':
      if (state === MigrationState.Pending || state === MigrationState.Running || state === MigrationState.Paused) {
        return MigrationState.Cancelling;
      }
      if (state === MigrationState.Cancelling) return null;
      return finished();
  }
}

/** Slot ids of a task as compact text: `0-63,100`. */
export function formatSlotList(ids: readonly number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < ids.length) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
    parts.push(i === j ? String(ids[i]) : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}


export function mergeProxies(proxies: readonly ProxyInfo[], fences: readonly FenceInfo[], members: readonly string[] = []): ProxyView[] {
  const fenceOf = new Map(fences.map((f) => [f.proxyId, f]));
  const memberSet = new Set(members);
  const out: ProxyView[] = proxies.map((p) => ({
    id: p.id,
    state: fenceOf.has(p.id) ? 'fenced' : p.state,
    addr: p.addr,
    adminAddr: p.adminAddr,
    clusterAddr: p.clusterAddr ?? null,
    pid: p.pid,
    host: p.host,
    startedAt: p.startedAt,
    registered: true,
    member: memberSet.has(p.id),
    fence: fenceOf.get(p.id) ?? null,
    fencedReason: p.fencedReason ?? null,
  }));
  const known = new Set(proxies.map((p) => p.id));
  for (const id of new Set([...fences.map((f) => f.proxyId), ...members])) {
    if (known.has(id)) continue;
    const fence = fenceOf.get(id) ?? null;
    out.push({
      id,
      state: fence ? 'fenced' : 'lost',
      addr: null,
      adminAddr: null,
      clusterAddr: null,
      pid: null,
      host: null,
      startedAt: null,
      registered: false,
      member: memberSet.has(id),
      fence,
      fencedReason: null,
    });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** A slot of a migration that involves group `gid` (pre_migrate or migrating), if any. */
export function movingSlotOf(slots: readonly SlotInfo[], gid: number): SlotInfo | undefined {
  return slots.find((s) => (s.state === SlotState.Migrating || s.state === SlotState.PreMigrate) && (s.from === gid || s.to === gid));
}
