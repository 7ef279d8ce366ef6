/**
 * The cluster model stored in etcd (docs/architecture.md §2 "etcd layout"): slots, groups, proxies. Values
 * are JSON; everything read from etcd goes through a parse function here, so the rest of the
 * code only ever sees values that satisfy these invariants:
 *
 *   offline                    group = NO_GROUP, no from/to
 *   online                     group = owner (1..9999), no from/to
 *   pre_migrate / migrating    from = group = current owner, to = target, from ≠ to
 *
 * Every encode function validates first, so nothing that would not parse is ever written.
 */
import { randomUUID } from 'node:crypto';
import { SLOT_COUNT } from '@reborn/protocol';
import { ValidationError } from './errors.js';

/** The keyspace is split into SLOT_COUNT (1024) slots; protocol owns the number. */
export { SLOT_COUNT };
/** `group` of a slot that no group owns (an offline slot). */
export const NO_GROUP = 0;
export const MAX_GROUP_ID = 9999;

export const SlotState = {
  Offline: 'offline',
  Online: 'online',
  PreMigrate: 'pre_migrate',
  Migrating: 'migrating',
} as const;
export type SlotState = (typeof SlotState)[keyof typeof SlotState];
const SLOT_STATES: ReadonlySet<string> = new Set(Object.values(SlotState));

export interface SlotInfo {
  readonly id: number;
  readonly state: SlotState;
  /**
   * Owner group, NO_GROUP when offline. In pre_migrate the source (= from) still owns it; once
   * migrating, the target (= to) does: requests go there after their keys were moved.
   */
  readonly group: number;
  readonly from?: number;
  readonly to?: number;
}

export const ServerRole = { Master: 'master', Replica: 'replica' } as const;
export type ServerRole = (typeof ServerRole)[keyof typeof ServerRole];

export interface GroupServer {
  /** `host:port`; IPv6 hosts in brackets (`[::1]:6379`). */
  readonly addr: string;
  readonly role: ServerRole;
}

export interface GroupInfo {
  readonly id: number;
  readonly servers: readonly GroupServer[];
  /**
   * The in-sync replica set (docs/architecture.md §5, "The in-sync set"): the replicas that
   * hold every write a durable proxy acknowledged, and the only ones HA may promote. Each is a
   * replica of this group. Absent: nobody has managed the set yet (no HA leader), and every
   * replica of the group counts as a member.
   */
  readonly inSync?: readonly string[];
  /** Durable writes are refused while the in-sync set has fewer members than this. */
  readonly minInSync?: number;
  /** How many replicas the group should have; agents with capacity make up the difference. */
  readonly wantReplicas?: number;
}

/** Bounds of minInSync / wantReplicas: more replicas than this is a typo, not a plan. */
export const MAX_GROUP_REPLICAS = 16;

/** The members of `g`'s in-sync set: its explicit list, or every replica when it has none. */
export function inSyncMembers(g: GroupInfo): readonly string[] {
  return g.inSync ?? g.servers.filter((s) => s.role === ServerRole.Replica).map((s) => s.addr);
}

/**
 * `g` with a new server list, its settings kept and its in-sync set cut down to servers that
 * are still replicas: a removed or promoted server leaves the set with its old role.
 */
export function withServers(g: GroupInfo, servers: readonly GroupServer[]): GroupInfo {
  const replicas = new Set(servers.filter((s) => s.role === ServerRole.Replica).map((s) => s.addr));
  return {
    ...g,
    servers,
    ...(g.inSync === undefined ? {} : { inSync: g.inSync.filter((a) => replicas.has(a)) }),
  };
}

export const ProxyState = {
  Starting: 'starting',
  Online: 'online',
  Offline: 'offline',
  Fenced: 'fenced',
} as const;
export type ProxyState = (typeof ProxyState)[keyof typeof ProxyState];
const PROXY_STATES: ReadonlySet<string> = new Set(Object.values(ProxyState));

export interface ProxyInfo {
  readonly id: string;
  /** Redis-protocol listen address, `host:port`. */
  readonly addr: string;
  /** HTTP admin address (healthz, metrics), `host:port`. */
  readonly adminAddr: string;
  readonly pid: number;
  readonly host: string;
  /** ISO-8601 time the process started. */
  readonly startedAt: string;
  readonly state: ProxyState;
  /**
   * Where Redis Cluster clients reach this proxy's cluster face (`--cluster-addr`, or its
   * `--cluster-announce`): the address every proxy puts in its CLUSTER SLOTS map. Absent
   * when the proxy has no cluster face.
   */
  readonly clusterAddr?: string;
  /** While the proxy is fenced: what its recovery waits for. Absent when not fenced. */
  readonly fencedReason?: string;
}

// ---------------------------------------------------------------------------------------------
// Constructors and small helpers

export function isValidSlotId(id: number): boolean {
  return Number.isInteger(id) && id >= 0 && id < SLOT_COUNT;
}

export function isValidGroupId(id: number): boolean {
  return Number.isInteger(id) && id >= 1 && id <= MAX_GROUP_ID;
}

export function assertSlotId(id: number): number {
  if (!isValidSlotId(id)) throw new ValidationError(`invalid slot id ${id}: want 0..${SLOT_COUNT - 1}`);
  return id;
}

export function assertGroupId(id: number): number {
  if (!isValidGroupId(id)) throw new ValidationError(`invalid group id ${id}: want 1..${MAX_GROUP_ID}`);
  return id;
}

export function offlineSlot(id: number): SlotInfo {
  return { id: assertSlotId(id), state: SlotState.Offline, group: NO_GROUP };
}

export function onlineSlot(id: number, group: number): SlotInfo {
  return { id: assertSlotId(id), state: SlotState.Online, group: assertGroupId(group) };
}

/** The group's master, or undefined while it has none (e.g. mid-failover, or a new group). */
export function groupMaster(g: GroupInfo): GroupServer | undefined {
  return g.servers.find((s) => s.role === ServerRole.Master);
}

/** Names used as one key segment (proxy ids, migration ids): no `/`, printable, bounded. */
const NAME_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

export function isValidName(name: string): boolean {
  return NAME_RE.test(name);
}

/** `host:port`: a name, an IPv4 address or a bracketed IPv6 one; the port is checked by the caller. */
export const HOST_PORT_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

export function isValidAddr(addr: string): boolean {
  const m = HOST_PORT_RE.exec(addr);
  if (!m) return false;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535;
}

/** `host:port` → parts; IPv6 hosts come in brackets (`[::1]:6379`) and leave without them. */
export function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i);
  return { host: host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host, port: Number(addr.slice(i + 1)) };
}

/** The inverse of splitAddr: brackets around an IPv6 host. */
export function joinAddr(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

// ---------------------------------------------------------------------------------------------
// Parsing: unknown JSON → typed value, or ValidationError naming the place and the problem.

/** Decodes an etcd value as JSON; `where` (usually the key) goes into the error message. */
export function decodeJson(raw: Buffer | string, where: string): unknown {
  try {
    return JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    throw new ValidationError(`${where}: value is not JSON (${(err as Error).message})`);
  }
}

function fail(where: string, problem: string): never {
  throw new ValidationError(`${where}: ${problem}`);
}

function asObject(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'want a JSON object');
  return v as Record<string, unknown>;
}

function intField(o: Record<string, unknown>, name: string, where: string): number {
  const v = o[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(where, `${name} must be an integer`);
  return v;
}

function strField(o: Record<string, unknown>, name: string, where: string): string {
  const v = o[name];
  if (typeof v !== 'string' || v.length === 0) fail(where, `${name} must be a non-empty string`);
  return v;
}

/** `null` and a missing field both mean absent (writers in other languages emit null). */
function optGroupField(o: Record<string, unknown>, name: string, where: string): number | undefined {
  if (o[name] === undefined || o[name] === null) return undefined;
  const v = intField(o, name, where);
  if (!isValidGroupId(v)) fail(where, `${name} must be a group id 1..${MAX_GROUP_ID}, got ${v}`);
  return v;
}

export function parseSlot(value: unknown, expectedId?: number, where = 'slot'): SlotInfo {
  const o = asObject(value, where);
  const id = intField(o, 'id', where);
  if (!isValidSlotId(id)) fail(where, `id must be 0..${SLOT_COUNT - 1}, got ${id}`);
  if (expectedId !== undefined && id !== expectedId) fail(where, `id ${id} does not match the key (${expectedId})`);
  const state = o['state'];
  if (typeof state !== 'string' || !SLOT_STATES.has(state)) {
    fail(where, `state must be one of ${[...SLOT_STATES].join(', ')}, got ${JSON.stringify(state)}`);
  }
  const group = intField(o, 'group', where);
  const from = optGroupField(o, 'from', where);
  const to = optGroupField(o, 'to', where);
  switch (state as SlotState) {
    case SlotState.Offline:
      if (group !== NO_GROUP) fail(where, `an offline slot has group ${NO_GROUP}, got ${group}`);
      if (from !== undefined || to !== undefined) fail(where, 'an offline slot has no from/to');
      return { id, state: SlotState.Offline, group };
    case SlotState.Online:
      if (!isValidGroupId(group)) fail(where, `an online slot needs a group 1..${MAX_GROUP_ID}, got ${group}`);
      if (from !== undefined || to !== undefined) fail(where, 'an online slot has no from/to');
      return { id, state: SlotState.Online, group };
    case SlotState.PreMigrate:
    case SlotState.Migrating:
      if (from === undefined || to === undefined) fail(where, `a ${state} slot needs from and to`);
      if (from === to) fail(where, `a ${state} slot needs from ≠ to, got ${from} twice`);
      // pre_migrate: the source still owns the slot (requests are held, nothing moved yet);
      // migrating: the target owns it (requests go there after their keys were moved).
      if (state === SlotState.PreMigrate && group !== from) fail(where, `a pre_migrate slot is still owned by from (${from}), got group ${group}`);
      if (state === SlotState.Migrating && group !== to) fail(where, `a migrating slot is owned by to (${to}), got group ${group}`);
      return { id, state: state as SlotState, group, from, to };
  }
}

export function parseGroup(value: unknown, expectedId?: number, where = 'group'): GroupInfo {
  const o = asObject(value, where);
  const id = intField(o, 'id', where);
  if (!isValidGroupId(id)) fail(where, `id must be 1..${MAX_GROUP_ID}, got ${id}`);
  if (expectedId !== undefined && id !== expectedId) fail(where, `id ${id} does not match the key (${expectedId})`);
  const list = o['servers'];
  if (!Array.isArray(list)) fail(where, 'servers must be an array');
  const seen = new Set<string>();
  let masters = 0;
  const servers = list.map((item: unknown, i): GroupServer => {
    const at = `${where}: servers[${i}]`;
    const s = asObject(item, at);
    const addr = strField(s, 'addr', at);
    if (!isValidAddr(addr)) fail(at, `addr must be host:port, got ${JSON.stringify(addr)}`);
    if (seen.has(addr)) fail(at, `duplicate server ${addr}`);
    seen.add(addr);
    const role = s['role'];
    if (role !== ServerRole.Master && role !== ServerRole.Replica) {
      fail(at, `role must be master or replica, got ${JSON.stringify(role)}`);
    }
    if (role === ServerRole.Master) masters++;
    return { addr, role };
  });
  if (masters > 1) fail(where, `a group has at most one master, got ${masters}`);
  const group: { -readonly [K in keyof GroupInfo]: GroupInfo[K] } = { id, servers };
  if (o['inSync'] !== undefined && o['inSync'] !== null) {
    const list = o['inSync'];
    if (!Array.isArray(list)) fail(where, 'inSync must be an array of replica addresses');
    const replicas = new Set(servers.filter((s) => s.role === ServerRole.Replica).map((s) => s.addr));
    const members = new Set<string>();
    for (const a of list as unknown[]) {
      if (typeof a !== 'string' || !replicas.has(a)) fail(where, `inSync names ${JSON.stringify(a)}, which is not a replica of the group`);
      if (members.has(a)) fail(where, `inSync names ${a} twice`);
      members.add(a);
    }
    group.inSync = [...members];
  }
  for (const name of ['minInSync', 'wantReplicas'] as const) {
    if (o[name] === undefined || o[name] === null) continue;
    const v = intField(o, name, where);
    if (v < 0 || v > MAX_GROUP_REPLICAS) fail(where, `${name} must be 0..${MAX_GROUP_REPLICAS}, got ${v}`);
    group[name] = v;
  }
  return group;
}

export function parseProxy(value: unknown, expectedId?: string, where = 'proxy'): ProxyInfo {
  const o = asObject(value, where);
  const id = strField(o, 'id', where);
  if (!isValidName(id)) fail(where, `id must match [A-Za-z0-9_.:-]{1,128}, got ${JSON.stringify(id)}`);
  if (expectedId !== undefined && id !== expectedId) fail(where, `id ${id} does not match the key (${expectedId})`);
  const addr = strField(o, 'addr', where);
  const adminAddr = strField(o, 'adminAddr', where);
  if (!isValidAddr(addr)) fail(where, `addr must be host:port, got ${JSON.stringify(addr)}`);
  if (!isValidAddr(adminAddr)) fail(where, `adminAddr must be host:port, got ${JSON.stringify(adminAddr)}`);
  const pid = intField(o, 'pid', where);
  if (pid <= 0) fail(where, `pid must be positive, got ${pid}`);
  const host = strField(o, 'host', where);
  const startedAt = strField(o, 'startedAt', where);
  const state = o['state'];
  if (typeof state !== 'string' || !PROXY_STATES.has(state)) {
    fail(where, `state must be one of ${[...PROXY_STATES].join(', ')}, got ${JSON.stringify(state)}`);
  }
  // Optional (older proxies and proxies without a cluster face write none); null means absent.
  const clusterAddr = o['clusterAddr'] ?? undefined;
  if (clusterAddr !== undefined && (typeof clusterAddr !== 'string' || !isValidAddr(clusterAddr))) {
    fail(where, `clusterAddr must be host:port, got ${JSON.stringify(clusterAddr)}`);
  }
  const fencedReason = o['fencedReason'] ?? undefined;
  if (fencedReason !== undefined && typeof fencedReason !== 'string') fail(where, `fencedReason must be a string, got ${JSON.stringify(fencedReason)}`);
  const info: ProxyInfo = { id, addr, adminAddr, pid, host, startedAt, state: state as ProxyState };
  return { ...info, ...(clusterAddr === undefined ? {} : { clusterAddr }), ...(fencedReason === undefined ? {} : { fencedReason }) };
}

/** A barrier action (barrier.ts writes them, every proxy acks them). */
export interface ActionInfo {
  readonly seq: number;
  /**
   * `slots`: a slot changed state. `keys`: a key move (`move`) began whose keys every proxy
   * must hold; proxies drain what they sent for `slots` but leave blocked clients and WATCHes
   * alone (only the move's keys are held, the slot keeps flowing).
   */
  readonly kind: 'slots' | 'keys';
  /** Slots whose change this action makes every proxy apply. */
  readonly slots: readonly number[];
  /** The key move (moves.ts) a `keys` action is about. */
  readonly move?: string;
  /** etcd revision of the slot writes; a proxy acks after applying everything up to it. */
  readonly revision: string;
  /** Proxy ids that must ack: those registered when the action was written. */
  readonly proxies: readonly string[];
  readonly createdAt: string;
  readonly note: string;
}

export function parseAction(value: unknown, where: string): ActionInfo {
  const v = value as Partial<ActionInfo> | null;
  if (
    v === null || typeof v !== 'object' || !Number.isSafeInteger(v.seq) || (v.kind !== 'slots' && v.kind !== 'keys') ||
    !Array.isArray(v.slots) || !v.slots.every((s) => isValidSlotId(s)) || typeof v.revision !== 'string' ||
    !/^\d+$/.test(v.revision) || !Array.isArray(v.proxies) || !v.proxies.every((p) => typeof p === 'string')
  ) {
    throw new ValidationError(`${where}: not a valid action: ${JSON.stringify(value)}`);
  }
  return {
    seq: v.seq!,
    kind: v.kind,
    slots: v.slots,
    ...(typeof v.move === 'string' ? { move: v.move } : {}),
    revision: v.revision,
    proxies: v.proxies,
    createdAt: String(v.createdAt ?? ''),
    note: String(v.note ?? ''),
  };
}

// ---------------------------------------------------------------------------------------------
// Encoding: validated, with a fixed field order so values diff cleanly in etcdctl.

export function encodeSlot(s: SlotInfo): string {
  const v = parseSlot(s, undefined, `slot ${s.id}`);
  return JSON.stringify({ id: v.id, state: v.state, group: v.group, from: v.from, to: v.to });
}

export function encodeGroup(g: GroupInfo): string {
  const v = parseGroup(g, undefined, `group ${g.id}`);
  return JSON.stringify({
    id: v.id,
    servers: v.servers.map((s) => ({ addr: s.addr, role: s.role })),
    inSync: v.inSync,
    minInSync: v.minInSync,
    wantReplicas: v.wantReplicas,
  });
}

export function encodeProxy(p: ProxyInfo): string {
  const v = parseProxy(p, undefined, `proxy ${p.id}`);
  return JSON.stringify({
    id: v.id,
    addr: v.addr,
    adminAddr: v.adminAddr,
    pid: v.pid,
    host: v.host,
    startedAt: v.startedAt,
    state: v.state,
    clusterAddr: v.clusterAddr,
    fencedReason: v.fencedReason,
  });
}

// ---------------------------------------------------------------------------------------------
// Product identity: which incarnation of the product a topology belongs to.

/**
 * Written once when a product is created (create-if-absent) and never changed afterwards,
 * except by a topology restore writing back the identity it saved. A process that has seen
 * one identity and then finds none, or another, knows etcd no longer holds the topology it
 * was following (etcd lost its data, or the product was re-created) — see topology-guard.ts.
 */
export interface ProductIdentity {
  /** Random (a UUID); names one incarnation of the product. */
  readonly generation: string;
  /** ISO-8601 time the identity was written. */
  readonly createdAt: string;
  /** True when the identity was adopted by a product that existed before identities did. */
  readonly adopted?: boolean;
}

/** A fresh identity: a new random generation, created now. */
export function newIdentity(opts: { adopted?: boolean } = {}): ProductIdentity {
  return { generation: randomUUID(), createdAt: new Date().toISOString(), ...(opts.adopted ? { adopted: true } : {}) };
}

export function parseIdentity(value: unknown, where = 'identity'): ProductIdentity {
  const o = asObject(value, where);
  const generation = strField(o, 'generation', where);
  if (!isValidName(generation)) fail(where, `generation must match [A-Za-z0-9_.:-]{1,128}, got ${JSON.stringify(generation)}`);
  const createdAt = strField(o, 'createdAt', where);
  const adopted = o['adopted'];
  if (adopted !== undefined && adopted !== null && typeof adopted !== 'boolean') fail(where, 'adopted must be a boolean');
  return { generation, createdAt, ...(adopted === true ? { adopted: true } : {}) };
}

export function encodeIdentity(i: ProductIdentity): string {
  const v = parseIdentity(i);
  return JSON.stringify({ generation: v.generation, createdAt: v.createdAt, ...(v.adopted ? { adopted: true } : {}) });
}

/**
 * Present while a saved topology is written back (config's restoreTopology). The identity is
 * absent meanwhile and written last, so a reader never takes a half-written topology for a
 * complete one; nobody adopts a new identity while the marker exists.
 */
export interface RestoreMarker {
  /** The generation being restored. */
  readonly generation: string;
  readonly startedAt: string;
  /** Who restores: `host pid`, for the operator. */
  readonly by: string;
}

export function parseRestoreMarker(value: unknown, where = 'restore marker'): RestoreMarker {
  const o = asObject(value, where);
  const generation = strField(o, 'generation', where);
  if (!isValidName(generation)) fail(where, `generation must match [A-Za-z0-9_.:-]{1,128}, got ${JSON.stringify(generation)}`);
  return { generation, startedAt: strField(o, 'startedAt', where), by: strField(o, 'by', where) };
}

export function encodeRestoreMarker(m: RestoreMarker): string {
  const v = parseRestoreMarker(m);
  return JSON.stringify({ generation: v.generation, startedAt: v.startedAt, by: v.by });
}

/** Slots and groups as read at one etcd revision, with the identity they belong to. */
export interface Topology {
  readonly groups: Map<number, GroupInfo>;
  /** Exactly SLOT_COUNT entries, index = slot id; missing keys read as offline. */
  readonly slots: SlotInfo[];
  /** The etcd revision this snapshot was read at; watch from here to stay current. */
  readonly revision: string;
  /** The product's identity at that revision; null before one was written (or after a loss). */
  readonly identity: ProductIdentity | null;
  /** A restore in progress at that revision, or null. */
  readonly restoring: RestoreMarker | null;
  /**
   * Slots without a key (they read as offline). No writer deletes slot keys, so a slot that
   * was served and has no key any more was wiped, not set offline.
   */
  readonly missingSlotKeys: readonly number[];
  /** In-flight key moves at that revision (moves.ts), by id. */
  readonly moves: ReadonlyMap<string, KeyMove>;
}

/** Slots that some group serves (any state but offline). */
export function assignedSlotCount(slots: readonly SlotInfo[]): number {
  let n = 0;
  for (const s of slots) if (s.state !== SlotState.Offline) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------
// In-flight key moves (the Moves store is moves.ts)

export const MoveState = {
  Holding: 'holding',
  Copying: 'copying',
  Swapping: 'swapping',
} as const;
export type MoveState = (typeof MoveState)[keyof typeof MoveState];
const MOVE_STATES: ReadonlySet<string> = new Set(Object.values(MoveState));

export type MoveKind = 'batch' | 'big-key';

export interface KeyMove {
  /** `<task>.<n>`: unique per task, a valid etcd name. */
  id: string;
  /** The migration (or later import/restore) that owns the move. */
  task: string;
  kind: MoveKind;
  /** The distinct slots of `keys`. */
  slots: number[];
  /** Source and target groups. */
  from: number;
  to: number;
  /** The keys, hex. */
  keys: string[];
  /** Proxies hold every request naming one of `keys` while this record exists. */
  hold: boolean;
  state: MoveState;
  /** The temporary key on the target (hex), for a big-key move; null otherwise. */
  tmp: string | null;
  /** The masters the move started against (for the operator; the runner re-reads etcd). */
  src: string;
  dst: string;
  /** A big key's redis type and size (elements, or bytes for a string), for progress. */
  type?: string;
  size?: number;
  createdAt: string;
  updatedAt: string;
}

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

function failMove(where: string, what: string): never {
  throw new ValidationError(`${where}: not a valid key move: ${what}`);
}

export function parseMove(value: unknown, where: string): KeyMove {
  const v = value as Partial<KeyMove> | null;
  if (v === null || typeof v !== 'object') failMove(where, 'not an object');
  if (typeof v.id !== 'string' || !isValidName(v.id)) failMove(where, 'bad id');
  if (typeof v.task !== 'string' || !isValidName(v.task)) failMove(where, 'bad task');
  if (v.kind !== 'batch' && v.kind !== 'big-key') failMove(where, 'bad kind');
  if (!Array.isArray(v.slots) || !v.slots.every((s) => isValidSlotId(s))) failMove(where, 'bad slots');
  if (typeof v.from !== 'number' || typeof v.to !== 'number' || !isValidGroupId(v.from) || !isValidGroupId(v.to)) failMove(where, 'bad groups');
  if (!Array.isArray(v.keys) || !v.keys.every((k) => typeof k === 'string' && HEX_RE.test(k))) failMove(where, 'bad keys');
  if (typeof v.state !== 'string' || !MOVE_STATES.has(v.state)) failMove(where, 'bad state');
  if (v.tmp !== null && v.tmp !== undefined && !(typeof v.tmp === 'string' && HEX_RE.test(v.tmp))) failMove(where, 'bad tmp');
  return {
    id: v.id,
    task: v.task,
    kind: v.kind,
    slots: v.slots,
    from: v.from,
    to: v.to,
    keys: v.keys,
    hold: v.hold === true,
    state: v.state as MoveState,
    tmp: v.tmp ?? null,
    src: String(v.src ?? ''),
    dst: String(v.dst ?? ''),
    ...(typeof v.type === 'string' ? { type: v.type } : {}),
    ...(typeof v.size === 'number' && Number.isFinite(v.size) ? { size: v.size } : {}),
    createdAt: String(v.createdAt ?? ''),
    updatedAt: String(v.updatedAt ?? ''),
  };
}
