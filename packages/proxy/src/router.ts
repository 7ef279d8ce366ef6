/**
 * The slot table: a fixed array of 1024 entries, each naming the state of the slot and the
 * backend pool of its group's master. A topology change builds new entries and swaps them in;
 * nothing on the hot path ever searches a map to route a request.
 *
 * Backend pools are shared by address and reference-counted by the groups that use them, so a
 * failover that changes a group's master opens the new pool and closes the old one once no
 * group points at it.
 *
 * Zombie fence: closing the old master's pool answers every request still waiting there with
 * an error saying the outcome is unknown, at once, in the same turn that installs the new
 * master, and drops the sockets: a reply the old master sends later (it was frozen, or slow)
 * is never read, so no client is told "OK" by a server that is no longer its group's master.
 * Its other connections (blocked commands, WATCH pins) go through onMasterReplaced.
 *
 * Each master's write policy (in-sync set, minInSync, durable WAIT count) is computed by
 * in-sync.ts whenever the group table changes, before any entry is rebuilt.
 */
import type { Logger } from 'pino';
import { SLOT_COUNT } from '@reborn/protocol';
import type { GroupInfo, SlotInfo } from '@reborn/coordinator';
import { groupMaster, migrateAuthArgs, NO_GROUP, splitAddr } from '@reborn/coordinator';
import { encodeError } from '@reborn/protocol';
import { WritePolicies, type GroupWriteView } from './in-sync.js';
import type { BackendConnection, BackendOptions } from './backend.js';
import { BackendPool } from './backend-pool.js';
import { Fifo } from './fifo.js';

/** How many downward moves SCAN can look back on. */
const DOWN_MOVE_LOG = 10_000;

export interface HoldLimits {
  /** How long a request may wait for its slot's barrier before it fails. */
  holdTimeoutMs: number;
  /** Most requests held at once, over all slots. */
  maxHeld: number;
}

export interface SlotEntry {
  readonly id: number;
  readonly state: SlotInfo['state'];
  readonly groupId: number;
  /**
   * Where requests go: the owner's master when online, the target's master when migrating
   * (after the touched keys were moved there), null when the slot cannot be served.
   */
  readonly master: BackendPool | null;
  /** While migrating: the source master, where touched keys are MIGRATEd from. */
  readonly source: BackendPool | null;
  /** While migrating: the target master's host and port, as MIGRATE arguments. */
  readonly targetHost: string;
  readonly targetPort: string;
  /** Why the slot cannot be served, for the client's error reply. */
  readonly unavailable: string | null;
}

/** A request waiting for its slot to leave pre_migrate. */
interface Held {
  readonly since: number;
  resume(): void;
  fail(reply: Buffer): void;
}

export class Router {
  readonly slots: SlotEntry[];
  private groups = new Map<number, GroupInfo>();
  private slotInfos: SlotInfo[];
  private readonly pools = new Map<string, BackendPool>();
  private ready = false;
  private moveCounter = 0;
  private readonly writePolicies: WritePolicies;
  private readonly downMoves: Array<{ seq: number; to: number }> = [];
  private readonly held: (Fifo<Held> | undefined)[] = new Array(SLOT_COUNT);
  private heldCount = 0;
  private readonly holdSweeper: NodeJS.Timeout;
  /** What a MIGRATE between two of our servers passes to log in to the target. */
  readonly migrateAuth: readonly string[];

  constructor(
    private readonly poolSize: number,
    private readonly backendOptions: BackendOptions,
    private readonly logger: Logger,
    private readonly holdLimits: HoldLimits = { holdTimeoutMs: 15_000, maxHeld: 100_000 },
    /** `--durable`: how long a write may wait for a replica's confirmation; null = off. */
    durableTimeoutMs: number | null = null,
  ) {
    this.migrateAuth = migrateAuthArgs(backendOptions.auth?.adminPassword ?? null);
    this.writePolicies = new WritePolicies(durableTimeoutMs, logger);
    this.slotInfos = Array.from({ length: SLOT_COUNT }, (_, id) => ({ id, state: 'offline' as const, group: NO_GROUP }));
    this.slots = this.slotInfos.map((s) => this.buildEntry(s));
    this.holdSweeper = setInterval(() => this.expireHolds(), 100);
    this.holdSweeper.unref();
  }

  /**
   * Parks a request of a slot in pre_migrate until the slot changes state (it is then
   * resumed and routed again) or the hold times out (it fails).
   */
  hold(slot: number, resume: () => void, fail: (reply: Buffer) => void): void {
    if (this.heldCount >= this.holdLimits.maxHeld) {
      fail(encodeError(`ERR slot ${slot} is being prepared for migration and too many requests wait; try again`));
      return;
    }
    let q = this.held[slot];
    if (q === undefined) {
      q = new Fifo<Held>();
      this.held[slot] = q;
    }
    q.push({ since: Date.now(), resume, fail });
    this.heldCount++;
  }

  get heldRequests(): number {
    return this.heldCount;
  }

  /**
   * A snapshot of how many requests each connection that can carry requests for `slots` has
   * been sent so far: those of the servers the slots are routed to (their master; the source
   * too while migrating). Only those: a frozen server of another group must not hold up a
   * barrier it has nothing to do with.
   */
  drainMarker(slots: readonly number[]): Array<[BackendConnection, number]> {
    const pools = new Set<BackendPool>();
    for (const s of slots) {
      const entry = this.slots[s];
      if (entry?.master) pools.add(entry.master);
      if (entry?.source) pools.add(entry.source);
    }
    const marker: Array<[BackendConnection, number]> = [];
    for (const pool of pools) for (const c of pool.all) marker.push([c, c.sent]);
    return marker;
  }

  /** Resolves once every request counted in `marker` has its reply, or will never run. */
  static async whenDrained(marker: Array<[BackendConnection, number]>): Promise<void> {
    await Promise.all(marker.map(([c, sent]) => c.whenSettled(sent)));
  }

  /** Drops every backend connection; used when this proxy finds it has been fenced. */
  resetBackends(reason: string): void {
    for (const pool of this.pools.values()) pool.reset(reason);
  }

  /**
   * Forgets every reconnect backoff. After an unfence: a connection that was refused while
   * fenced would otherwise keep answering `is down` until its backoff ran out.
   */
  clearBackoffs(): void {
    for (const pool of this.pools.values()) pool.clearBackoffs();
  }

  private releaseHeld(slot: number): void {
    const q = this.held[slot];
    if (q === undefined || this.slots[slot]!.state === 'pre_migrate') return;
    this.held[slot] = undefined;
    this.heldCount -= q.length;
    for (let h = q.shift(); h !== undefined; h = q.shift()) h.resume();
  }

  private expireHolds(): void {
    if (this.heldCount === 0) return;
    const limit = Date.now() - this.holdLimits.holdTimeoutMs;
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      const q = this.held[slot];
      if (q === undefined) continue;
      while (q.length > 0 && q.peek()!.since < limit) {
        this.heldCount--;
        q.shift()!.fail(encodeError(`ERR slot ${slot} is being prepared for migration; timed out after ${this.holdLimits.holdTimeoutMs} ms, try again`));
      }
      if (q.length === 0) this.held[slot] = undefined;
    }
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Replaces the whole table (first load, or a resync after a lost watch). */
  load(groups: Map<number, GroupInfo>, slots: readonly SlotInfo[]): void {
    const mastersBefore = this.masterAddrs();
    const entriesBefore = this.slots.slice();
    this.groups = new Map(groups);
    // A reload may hide any number of moves: make running SCANs go over everything again.
    const lowest = [...groups.keys()].sort((a, b) => a - b)[0];
    if (this.ready && lowest !== undefined) this.downMoves.push({ seq: ++this.moveCounter, to: lowest });
    this.slotInfos = [...slots];
    this.rebuildAll();
    this.ready = true;
    this.onGroupsChanged?.();
    this.reportMasterChanges(mastersBefore);
    for (const before of entriesBefore) this.reportSlotMove(before, this.slots[before.id]!);
    for (let i = 0; i < SLOT_COUNT; i++) this.releaseHeld(i);
    this.logger.info({ groups: groups.size, online: this.slots.filter((s) => s.master !== null).length }, 'slot table loaded');
  }

  /** Called after the group table changed (pub/sub feeds follow masters and replicas). */
  onGroupsChanged: (() => void) | null = null;

  /**
   * Called with a server that stopped being group `group`'s master (failover, switchover,
   * group removed): connections of its own to it (blocked commands, WATCH pins) must not
   * linger, and what is in flight on them fails with `reply` (masterGoneReply).
   */
  onMasterReplaced: ((oldMaster: string, group: number, reply: Buffer) => void) | null = null;

  /**
   * Client-side caching: called with a slot whose serving group changed, or whose migration ended: what
   * a client read of it came from another group than what it would read now (tracking.ts).
   */
  onSlotMoved: ((slot: number) => void) | null = null;

  /** Client-side caching: see onSlotMoved. */
  private reportSlotMove(before: SlotEntry, after: SlotEntry): void {
    if (before.groupId !== after.groupId || (before.state === 'migrating' && after.state !== 'migrating')) this.onSlotMoved?.(after.id);
  }

  private masterAddrs(): Map<number, string | undefined> {
    const out = new Map<number, string | undefined>();
    for (const [id, g] of this.groups) out.set(id, groupMaster(g)?.addr);
    return out;
  }

  private reportMasterChanges(before: Map<number, string | undefined>): void {
    const after = this.masterAddrs();
    for (const [id, addr] of before) if (addr !== undefined && after.get(id) !== addr) this.onMasterReplaced?.(addr, id, masterGoneReply(addr, id));
  }

  updateSlot(slot: SlotInfo): void {
    this.noteMove(this.slotInfos[slot.id], slot);
    const before = this.slots[slot.id];
    this.slotInfos[slot.id] = slot;
    this.slots[slot.id] = this.buildEntry(slot);
    const after = this.slots[slot.id]!;
    if (before !== undefined) this.reportSlotMove(before, after);
    if (before?.groupId !== after.groupId || before?.state !== after.state) {
      this.logger.info({ slot: slot.id, state: after.state, group: after.groupId, from: slot.from, to: slot.to }, 'slot switched');
    }
    this.closeUnusedPools();
    this.releaseHeld(slot.id);
  }

  updateGroup(id: number, group: GroupInfo | null): void {
    const oldMaster = this.groups.get(id) ? groupMaster(this.groups.get(id)!)?.addr : undefined;
    if (group === null) this.groups.delete(id);
    else this.groups.set(id, group);
    const newMaster = group ? groupMaster(group)?.addr : undefined;
    if (oldMaster !== newMaster) this.logger.info({ group: id, from: oldMaster ?? null, to: newMaster ?? null }, 'group master changed');
    this.rebuildAll();
    this.onGroupsChanged?.();
    if (oldMaster !== undefined && oldMaster !== newMaster) this.onMasterReplaced?.(oldMaster, id, masterGoneReply(oldMaster, id));
  }

  /** Every distinct master pool currently serving at least one slot, or of any group. */
  masters(): BackendPool[] {
    const out: BackendPool[] = [];
    for (const g of [...this.groups.values()].sort((a, b) => a.id - b.id)) {
      const m = groupMaster(g);
      if (m) out.push(this.pool(m.addr));
    }
    return out;
  }

  /** The slot's state as etcd last said (from/to while it moves). */
  slotInfoOf(slot: number): SlotInfo {
    return this.slotInfos[slot]!;
  }

  /** Every group's id. */
  groupIds(): IterableIterator<number> {
    return this.groups.keys();
  }

  /** The master pool of group `gid`, if the group exists and has a master. */
  masterOf(gid: number): BackendPool | undefined {
    const g = this.groups.get(gid);
    const m = g ? groupMaster(g) : undefined;
    return m ? this.pool(m.addr) : undefined;
  }

  /** Group ids that have a master, ascending: the order SCAN visits them in. */
  scanGroups(): number[] {
    return [...this.groups.keys()].filter((id) => this.masterOf(id) !== undefined).sort((a, b) => a - b);
  }

  /** A counter of slot ownership changes, and the ones toward a lower group id (see keyspace.ts). */
  get moveSeq(): number {
    return this.moveCounter;
  }

  /**
   * The lowest group id that some slot moved down to (pre_migrate/migrating toward, or went
   * online in) after move `since`; undefined when none did. `since` older than the log
   * answers the lowest group id: a caller that cannot tell must assume the worst.
   */
  lowestDownMoveSince(since: number): number | undefined {
    // `since` comes from a cursor (31 bits): another proxy's, or older than the log → worst case.
    if (since > this.moveCounter || since < this.moveCounter - DOWN_MOVE_LOG) return this.scanGroups()[0];
    let lowest: number | undefined;
    for (const m of this.downMoves) if (m.seq > since && (lowest === undefined || m.to < lowest)) lowest = m.to;
    return lowest;
  }

  /** The lowest target of a slot migrating (or about to) toward a lower group id, if any. */
  lowestActiveDownTarget(): number | undefined {
    let lowest: number | undefined;
    for (const s of this.slotInfos) {
      if ((s.state === 'pre_migrate' || s.state === 'migrating') && s.from !== undefined && s.to !== undefined && s.to < s.from) {
        if (lowest === undefined || s.to < lowest) lowest = s.to;
      }
    }
    return lowest;
  }

  /**
   * Logs ownership changes toward a lower group id: a downward migration starting, a
   * downward migration finishing, or a direct reassignment to a lower group.
   */
  private noteMove(before: SlotInfo | undefined, after: SlotInfo): void {
    this.moveCounter++;
    let down: number | undefined;
    const movingDown = (s: SlotInfo | undefined): boolean =>
      s !== undefined && (s.state === 'pre_migrate' || s.state === 'migrating') && s.from !== undefined && s.to !== undefined && s.to < s.from;
    if (movingDown(after)) down = after.to;
    else if (movingDown(before) && after.state === 'online') down = after.group;
    else if (before !== undefined && before.state === 'online' && after.state === 'online' && after.group < before.group) down = after.group;
    if (down !== undefined && down !== NO_GROUP) {
      this.downMoves.push({ seq: this.moveCounter, to: down });
      if (this.downMoves.length > DOWN_MOVE_LOG) this.downMoves.splice(0, this.downMoves.length - DOWN_MOVE_LOG);
    }
  }

  /** The master of the lowest-numbered slot that is served: where keyless scripts run. */
  firstServed(): SlotEntry | undefined {
    return this.slots.find((s) => s.master !== null);
  }

  /**
   * The lowest redis_version among the servers this proxy has connected to (their HELLO in
   * the handshake said it), or null before any answered: what HELLO and INFO report, since
   * a client may use only what every backend has.
   */
  lowestServerVersion(): string | null {
    let lowest: number[] | null = null;
    let text: string | null = null;
    for (const pool of this.pools.values()) {
      for (const c of pool.all) {
        if (c.serverVersion === null) continue;
        const parts = c.serverVersion.split('.').map((p) => Number.parseInt(p, 10) || 0);
        if (lowest === null || compareVersions(parts, lowest) < 0) {
          lowest = parts;
          text = c.serverVersion;
        }
      }
    }
    return text;
  }

  backends(): Array<{ addr: string; up: boolean; pending: number }> {
    return [...this.pools.values()].map((p) => ({ addr: p.addr, up: p.isUp, pending: p.pending }));
  }

  groupList(): GroupInfo[] {
    return [...this.groups.values()];
  }

  /** Every group with a master: its in-sync set and what that means for writes (in-sync.ts). */
  groupWrites(): readonly GroupWriteView[] {
    return this.writePolicies.view();
  }

  close(): void {
    clearInterval(this.holdSweeper);
    for (const pool of this.pools.values()) pool.close();
    this.pools.clear();
  }

  private rebuildAll(): void {
    // Policies first: a pool opened by buildEntry must start with its group's.
    this.writePolicies.update(this.groups.values());
    for (let i = 0; i < SLOT_COUNT; i++) this.slots[i] = this.buildEntry(this.slotInfos[i]!);
    this.closeUnusedPools();
  }

  private buildEntry(info: SlotInfo): SlotEntry {
    const base = { id: info.id, state: info.state, groupId: info.group, source: null, targetHost: '', targetPort: '' };
    const unavailable = (why: string): SlotEntry => ({ ...base, master: null, unavailable: why });
    if (info.state === 'offline' || info.group === NO_GROUP) return unavailable(`slot ${info.id} is offline`);
    const masterOf = (gid: number): string | null => {
      const group = this.groups.get(gid);
      return group === undefined ? null : groupMaster(group)?.addr ?? null;
    };
    if (info.state === 'migrating') {
      // `group` is the target; keys still in `from` are moved on first touch.
      const from = info.from === undefined ? null : masterOf(info.from);
      const to = masterOf(info.to ?? info.group);
      if (from === null || to === null) return unavailable(`slot ${info.id} is migrating between groups without a master`);
      // MIGRATE takes the bare host: an IPv6 one without its brackets.
      const target = splitAddr(to);
      return { ...base, master: this.pool(to), source: this.pool(from), targetHost: target.host, targetPort: String(target.port), unavailable: null };
    }
    const owner = masterOf(info.group);
    if (owner === null) {
      return unavailable(this.groups.has(info.group) ? `group ${info.group} has no master` : `slot ${info.id} belongs to unknown group ${info.group}`);
    }
    return { ...base, master: this.pool(owner), unavailable: null };
  }

  private pool(addr: string): BackendPool {
    let pool = this.pools.get(addr);
    if (pool === undefined) {
      pool = new BackendPool(addr, this.poolSize, this.backendOptions, this.writePolicies.of(addr));
      this.pools.set(addr, pool);
    }
    return pool;
  }

  private closeUnusedPools(): void {
    if (this.pools.size === 0) return;
    const used = new Set<string>();
    for (const g of this.groups.values()) {
      const m = groupMaster(g);
      if (m) used.add(m.addr);
    }
    for (const [addr, pool] of this.pools) {
      if (!used.has(addr)) {
        this.pools.delete(addr);
        // The zombie fence (see the header): what is still in flight there may or may not
        // have run, and must not be answered by the old master any more.
        const group = pool.writePolicy?.group ?? -1;
        pool.close('its server stopped being a group master', masterGoneReply(addr, group));
        this.logger.info({ backend: addr, group }, 'backend pool closed');
      }
    }
  }
}

/**
 * The error of a request left in flight on a master that its group replaced (or dropped).
 * Not -TRYAGAIN: that tells a client the command did not run (cluster clients resend it at
 * once), while this one may have run on the old master; the client must decide.
 */
export function masterGoneReply(addr: string, group: number): Buffer {
  const which = group >= 0 ? `group ${group}` : 'its group';
  return encodeError(`ERR ${which} failed over to another master while the request was in flight on ${addr}; its outcome is unknown`);
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
