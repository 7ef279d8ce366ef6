/**
 * The slot table: a fixed array of 1024 entries, each naming the state of the slot and the
 * backend pool of its group's master. A topology change builds new entries and swaps them in;
 * nothing on the hot path ever searches a map to route a request.
 *
 * Backend pools are shared by address and reference-counted by the groups that use them, so a
 * failover that changes a group's master opens the new pool and closes the old one once no
 * group points at it (its in-flight requests still complete or fail definitely).
 */
import type { Logger } from 'pino';
import { SLOT_COUNT } from '@reborn/protocol';
import type { GroupInfo, SlotInfo } from '@reborn/coordinator';
import { groupMaster, NO_GROUP } from '@reborn/coordinator';
import { BackendPool, type BackendOptions } from './backend.js';

export interface SlotEntry {
  readonly id: number;
  readonly state: SlotInfo['state'];
  readonly groupId: number;
  /** The owning group's master pool; null when the slot cannot be served. */
  readonly master: BackendPool | null;
  /** Why the slot cannot be served, for the client's error reply. */
  readonly unavailable: string | null;
}

export class Router {
  readonly slots: SlotEntry[];
  private groups = new Map<number, GroupInfo>();
  private slotInfos: SlotInfo[];
  private readonly pools = new Map<string, BackendPool>();
  private ready = false;

  constructor(
    private readonly poolSize: number,
    private readonly backendOptions: BackendOptions,
    private readonly logger: Logger,
  ) {
    this.slotInfos = Array.from({ length: SLOT_COUNT }, (_, id) => ({ id, state: 'offline' as const, group: NO_GROUP }));
    this.slots = this.slotInfos.map((s) => this.buildEntry(s));
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Replaces the whole table (first load, or a resync after a lost watch). */
  load(groups: Map<number, GroupInfo>, slots: readonly SlotInfo[]): void {
    this.groups = new Map(groups);
    this.slotInfos = [...slots];
    this.rebuildAll();
    this.ready = true;
    this.logger.info({ groups: groups.size, online: this.slots.filter((s) => s.master !== null).length }, 'slot table loaded');
  }

  updateSlot(slot: SlotInfo): void {
    const before = this.slots[slot.id];
    this.slotInfos[slot.id] = slot;
    this.slots[slot.id] = this.buildEntry(slot);
    const after = this.slots[slot.id]!;
    if (before?.groupId !== after.groupId || before?.state !== after.state) {
      this.logger.info({ slot: slot.id, state: after.state, group: after.groupId, from: slot.from, to: slot.to }, 'slot switched');
    }
    this.closeUnusedPools();
  }

  updateGroup(id: number, group: GroupInfo | null): void {
    const oldMaster = this.groups.get(id) ? groupMaster(this.groups.get(id)!)?.addr : undefined;
    if (group === null) this.groups.delete(id);
    else this.groups.set(id, group);
    const newMaster = group ? groupMaster(group)?.addr : undefined;
    if (oldMaster !== newMaster) this.logger.info({ group: id, from: oldMaster ?? null, to: newMaster ?? null }, 'group master changed');
    this.rebuildAll();
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

  /** The master of the lowest-numbered slot that is served: where keyless scripts run. */
  firstServed(): SlotEntry | undefined {
    return this.slots.find((s) => s.master !== null);
  }

  backends(): Array<{ addr: string; up: boolean; pending: number }> {
    return [...this.pools.values()].map((p) => ({ addr: p.addr, up: p.isUp, pending: p.pending }));
  }

  groupList(): GroupInfo[] {
    return [...this.groups.values()];
  }

  close(): void {
    for (const pool of this.pools.values()) pool.close();
    this.pools.clear();
  }

  private rebuildAll(): void {
    for (let i = 0; i < SLOT_COUNT; i++) this.slots[i] = this.buildEntry(this.slotInfos[i]!);
    this.closeUnusedPools();
  }

  private buildEntry(info: SlotInfo): SlotEntry {
    const base = { id: info.id, state: info.state, groupId: info.group };
    if (info.state === 'offline' || info.group === NO_GROUP) {
      return { ...base, master: null, unavailable: `slot ${info.id} is offline` };
    }
    const group = this.groups.get(info.group);
    if (group === undefined) return { ...base, master: null, unavailable: `slot ${info.id} belongs to unknown group ${info.group}` };
    const master = groupMaster(group);
    if (master === undefined) return { ...base, master: null, unavailable: `group ${info.group} has no master` };
    return { ...base, master: this.pool(master.addr), unavailable: null };
  }

  private pool(addr: string): BackendPool {
    let pool = this.pools.get(addr);
    if (pool === undefined) {
      pool = new BackendPool(addr, this.poolSize, this.backendOptions);
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
        pool.close();
        this.logger.info({ backend: addr }, 'backend pool closed');
      }
    }
  }
}
