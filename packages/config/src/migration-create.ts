/**
 * Creating a migration task (`slot migrate`, rebalance): checks the request against the
 * slots, groups and active tasks read at one revision, and writes the task guarded by "none
 * of those changed since" — so two operators can never put one slot into two tasks.
 *
 * Invariant: a task is created only if no active task already holds one of its slots and
 * every source group has a master. See docs/architecture.md (migration protocol).
 */
import { randomBytes } from 'node:crypto';
import {
  ACTIVE_MIGRATION_STATES,
  ConflictError,
  DEFAULT_MAX_SOURCE_LATENCY_MS,
  isValidSourceLatency,
  sourceLatencyError,
  MigrationState,
  guard,
  guardedWrite,
  op,
  readPrefixes,
  SLOT_COUNT,
  SlotState,
  ValidationError,
  decodeJson,
  groupMaster,
  isValidGroupId,
  newProgress,
  parseMigration,
  type MigrationTask,
  type Store,
} from '@reborn/coordinator';
import { slotRangeEnd } from './migration-common.js';

// ---------------------------------------------------------------------------------------------
// Creating a task

export interface CreateMigrationOptions {
  first: number;
  last: number;
  to: number;
  /** Keys per second at most; 0 = unlimited. */
  throttle?: number;
  /** Slots per barrier (default 512): fewer, larger batches mean fewer full SCANs of the source. */
  batchSlots?: number;
  /** The source latency the runner keeps near, ms (default DEFAULT_MAX_SOURCE_LATENCY_MS). */
  maxSourceLatencyMs?: number;
}

let lastCreatedAt = 0;

/** Strictly increasing creation times within this process: tasks run in creation order. */
function creationTime(): string {
  lastCreatedAt = Math.max(Date.now(), lastCreatedAt + 1);
  return new Date(lastCreatedAt).toISOString();
}

function newTaskId(at: string): string {
  const stamp = at.slice(0, 19).replace(/[-:T]/g, '');
  return `m-${stamp}-${randomBytes(2).toString('hex')}`;
}

/**
 * Validates and stores a task moving slots first..last to group `to`. Slots already in `to`
 * are skipped; when none is left the task is stored already done. The write is guarded by
 * "neither those slots nor any task changed since they were checked", so two concurrent
 * calls can never create overlapping active tasks.
 */
export async function createMigration(store: Store, opts: CreateMigrationOptions): Promise<MigrationTask> {
  const { first, last, to, throttle = 0, batchSlots = 512, maxSourceLatencyMs = DEFAULT_MAX_SOURCE_LATENCY_MS } = opts;
  if (!(Number.isInteger(first) && Number.isInteger(last) && first >= 0 && first <= last && last < SLOT_COUNT)) {
    throw new ValidationError(`invalid slot range ${first}..${last}: want 0 ≤ first ≤ last ≤ ${SLOT_COUNT - 1}`);
  }
  if (!isValidGroupId(to)) throw new ValidationError(`invalid group id ${to}`);
  if (!(Number.isSafeInteger(throttle) && throttle >= 0)) {
    throw new ValidationError(`invalid throttle ${throttle}: want keys per second ≥ 0 (0 = unlimited)`);
  }
  if (!isValidSourceLatency(maxSourceLatencyMs)) throw new ValidationError(sourceLatencyError(maxSourceLatencyMs));
  if (!(Number.isSafeInteger(batchSlots) && batchSlots >= 1 && batchSlots <= SLOT_COUNT)) {
    throw new ValidationError(`invalid batch size ${batchSlots}: want 1..${SLOT_COUNT} slots`);
  }
  for (let attempt = 0; attempt < 10; attempt++) {
    const topo = await store.loadTopology();
    const target = topo.groups.get(to);
    if (!target) throw new ValidationError(`group ${to} does not exist`);
    if (!groupMaster(target)) throw new ValidationError(`group ${to} has no master: add a server to it first`);
    const range = topo.slots.slice(first, last + 1);
    const remaining = range.filter((s) => !(s.state === SlotState.Online && s.group === to));

    // Read raw (not Migrations.list) to know the revision the "no task changed" guard needs.
    const listRes = await readPrefixes(store, 'list migrations', [store.paths.migrations]);
    const active = (listRes.ranges[0] ?? [])
      .map((kv) => ({ key: kv.key, kv }))
      .filter(({ key }) => store.paths.migrationIdOf(key) !== null)
      .map(({ key, kv }) => parseMigration(decodeJson(kv.value, key), key))
      .filter((t) => ACTIVE_MIGRATION_STATES.has(t.state));
    for (const s of remaining) {
      const owner = active.find((t) => t.slots.includes(s.id));
      if (owner) {
        throw new ValidationError(`slot ${s.id} already belongs to active migration ${owner.id} (${owner.state}, to group ${owner.to})`);
      }
    }
    for (const s of remaining) {
      if (s.state === SlotState.Offline) throw new ValidationError(`slot ${s.id} is offline: use slot set`);
      if (s.state !== SlotState.Online) {
        throw new ValidationError(`slot ${s.id} is already ${s.state} from group ${s.from} to group ${s.to}`);
      }
      const src = topo.groups.get(s.group);
      if (!src || !groupMaster(src)) throw new ValidationError(`group ${s.group} (owner of slot ${s.id}) has no master`);
    }

    const createdAt = creationTime();
    const slots = remaining.map((s) => s.id);
    const task: MigrationTask = {
      id: newTaskId(createdAt),
      slots,
      from: [...new Set(remaining.map((s) => s.group))].sort((a, b) => a - b),
      to,
      state: slots.length === 0 ? MigrationState.Done : MigrationState.Pending,
      throttle,
      batchSlots,
      maxSourceLatencyMs,
      progress: newProgress(slots.length),
      createdAt,
      updatedAt: createdAt,
      error: null,
    };
    if (slots.length === 0) {
      task.progress.phase = `nothing to move: slots ${first}-${last} are already online in group ${to}`;
      task.progress.etaSeconds = 0;
    }

    const key = store.paths.migration(task.id);
    const res = await guardedWrite(
      store,
      `create migration ${task.id}`,
      [
        guard.absent(key),
        guard.rangeUnchangedSince(store.paths.slot(first), slotRangeEnd(store, last), topo.revision),
        guard.prefixUnchangedSince(store.paths.migrations, listRes.revision),
      ],
      [op.put(key, JSON.stringify(task))],
    );
    if (res.succeeded) return task;
  }
  throw new ConflictError('slots or migrations kept changing while creating the migration; try again', { retryable: true });
}
