/**
 * The consistency core of reborn-config's operations: snapshots of slots, groups and
 * migrations read at one etcd revision, and writes guarded by "none of the ranges the
 * decision read has changed since" (coordinator's guarded-writes), re-decided on a fresh
 * snapshot after a concurrent change.
 *
 * Invariant: no operation writes on a stale decision; a chunked slot write that a concurrent
 * change interrupts part way says how many slots were written.
 */
import {
  ACTIVE_MIGRATION_STATES,
  ConflictError,
  NotFoundError,
  SLOT_COUNT,
  SlotState,
  decodeJson,
  guard,
  guardedWrite,
  op,
  readPrefixes,
  writeChunksGuarded,
  type WriteGuard,
  type StoredValue,
  type WriteOp,
  encodeSlot,
  offlineSlot,
  parseGroup,
  parseMigration,
  parseSlot,
  type GroupInfo,
  type MigrationTask,
  type SlotInfo,
  type Store,
} from '@reborn/coordinator';
import { groupView, type GroupView } from './admin-views.js';

// ---------------------------------------------------------------------------------------------
// Snapshots and guarded writes

/** Slots, groups and migrations as read at one etcd revision. */
export interface Snapshot {
  revision: string;
  slots: SlotInfo[];
  groups: Map<number, GroupInfo>;
  migrations: MigrationTask[];
}

export type Guard = 'slots' | 'groups' | 'migrations';


export class AdminState {
  constructor(private readonly store: Store) {}

  groupView(g: GroupInfo, snap: Snapshot): GroupView {
    return groupView(g, snap.slots.filter((s) => s.group === g.id).length);
  }

  requireGroup(snap: Snapshot, gid: number): GroupInfo {
    const g = snap.groups.get(gid);
    if (!g) throw new NotFoundError(`group ${gid} does not exist`);
    return g;
  }

  refuseDuringMigration(snap: Snapshot, what: string): void {
    const task = snap.migrations.find((t) => ACTIVE_MIGRATION_STATES.has(t.state));
    if (task) throw new ConflictError(`cannot ${what} while migration ${task.id} is ${task.state}; wait for it or cancel it`);
    const moving = snap.slots.find((s) => s.state === SlotState.Migrating || s.state === SlotState.PreMigrate);
    if (moving) throw new ConflictError(`cannot ${what} while slot ${moving.id} is ${moving.state} (${moving.from}→${moving.to})`);
  }

  /** Slots, groups and migrations at one revision. */
  async snapshot(): Promise<Snapshot> {
    const { paths } = this.store;
    const res = await readPrefixes(this.store, 'read topology', [paths.slots, paths.groups, paths.migrations]);
    const kvs = (i: number): StoredValue[] => res.ranges[i] ?? [];
    const slots = Array.from({ length: SLOT_COUNT }, (_, id) => offlineSlot(id));
    for (const kv of kvs(0)) {
      const key = kv.key;
      const id = paths.slotIdOf(key);
      if (id !== null) slots[id] = parseSlot(decodeJson(kv.value, key), id, key);
    }
    const groups = new Map<number, GroupInfo>();
    for (const kv of kvs(1)) {
      const key = kv.key;
      const id = paths.groupIdOf(key);
      if (id !== null) groups.set(id, parseGroup(decodeJson(kv.value, key), id, key));
    }
    const migrations: MigrationTask[] = [];
    for (const kv of kvs(2)) {
      const key = kv.key;
      if (paths.migrationIdOf(key) !== null) migrations.push(parseMigration(decodeJson(kv.value, key), key));
    }
    migrations.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
    return { revision: res.revision, slots, groups: new Map([...groups].sort(([a], [b]) => a - b)), migrations };
  }

  guards(kinds: readonly Guard[], revision: string): WriteGuard[] {
    const prefix = { slots: this.store.paths.slots, groups: this.store.paths.groups, migrations: this.store.paths.migrations };
    return kinds.map((k) => guard.prefixUnchangedSince(prefix[k], revision));
  }

  /**
   * Decides on a fresh snapshot and writes the ops `decide` returns, guarded by `kinds` not
   * having changed since; re-decides after a concurrent change. Returns the snapshot after.
   */
  async retry(
    what: string,
    decide: (snap: Snapshot) => Promise<WriteOp[]>,
    kinds: readonly Guard[],
    /** More guards at the snapshot's revision (e.g. one key instead of a whole prefix). */
    moreGuards: (revision: string) => WriteGuard[] = () => [],
  ): Promise<Snapshot> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const snap = await this.snapshot();
      const ops = await decide(snap);
      const res = await guardedWrite(this.store, what, [...this.guards(kinds, snap.revision), ...moreGuards(snap.revision)], ops);
      if (res.succeeded) return this.snapshot();
    }
    throw new ConflictError(`${what}: the cluster kept changing meanwhile; try again`, { retryable: true });
  }

  /**
   * Writes the slots `decide` returns in transactions of at most MAX_TXN_OPS puts. The first
   * is guarded by "nothing read changed since the snapshot", each next one by "nothing
   * changed since our previous write", so no concurrent change slips in between chunks.
   */
  async writeSlots(what: string, decide: (snap: Snapshot) => SlotInfo[]): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const snap = await this.snapshot();
      const slots = decide(snap);
      const ops = slots.map((s) => op.put(this.store.paths.slot(s.id), encodeSlot(s)));
      const { written } = await writeChunksGuarded(this.store, what, ops, snap.revision, (rev) => this.guards(['slots', 'groups', 'migrations'], rev));
      if (written === ops.length) return;
      if (written > 0) {
        throw new ConflictError(`${what}: the cluster changed part way; ${written} of ${slots.length} slots were written — check "slot list" and run it again`, {
          retryable: true,
        });
      }
    }
    throw new ConflictError(`${what}: the cluster kept changing meanwhile; try again`, { retryable: true });
  }
}
