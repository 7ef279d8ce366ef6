/**
 * Migration tasks, stored at `/reborn/<p>/migrations/<id>` so that any runner can resume them.
 *
 * Task states (the runner's state machine is written out in config/src/task-run.ts):
 *
 *   pending ──▶ running ──▶ done
 *      │           │ ▲
 *      │     pause │ │ resume
 *      │           ▼ │
 *      │         paused
 *      └───────────┴──── cancel ──▶ cancelling ──▶ cancelled
 *   any ──(a cause that needs an operator)──▶ failed
 *
 * A transient fault (a group without a reachable master, etcd unavailable, the target out of
 * memory) never fails a task: it stays `running` with `progress.waiting` saying what it waits
 * for, and goes on by itself once the cause clears.
 * Operators change `state` to paused / running / cancelling through the CLI or API; the
 * runner reacts. Writes are compare-and-swap on the key's mod revision, so an operator's
 * pause and the runner's progress update never overwrite each other.
 */
import { CompareResult, CompareTarget } from 'etcd3';
import { ConflictError, NotFoundError, ValidationError } from './errors.js';
import { decodeJson, isValidGroupId, isValidSlotId } from './models.js';
import type { Store } from './store.js';
import { guard, guardedWrite, op, type WriteGuard } from './guarded-writes.js';

export const MigrationState = {
  Pending: 'pending',
  Running: 'running',
  Paused: 'paused',
  Cancelling: 'cancelling',
  Cancelled: 'cancelled',
  Done: 'done',
  Failed: 'failed',
} as const;
export type MigrationState = (typeof MigrationState)[keyof typeof MigrationState];
const STATES: ReadonlySet<string> = new Set(Object.values(MigrationState));

/** States in which a task still needs a runner. */
export const ACTIVE_MIGRATION_STATES: ReadonlySet<MigrationState> = new Set(['pending', 'running', 'paused', 'cancelling']);

export interface MigrationProgress {
  slotsTotal: number;
  slotsDone: number;
  keysMoved: number;
  /** Keys of the remaining slots still in their source groups (estimated from scans). */
  keysLeft: number;
  /** Keys moved per second over the last few seconds. */
  rate: number;
  /** Seconds left at the current rate, or null when unknown. */
  etaSeconds: number | null;
  /** The slots of the batch being moved now. */
  currentSlots: number[];
  phase: string;
  /**
   * Keys the runner moved whose removal from the source no in-sync replica confirmed in time
   * (WAIT): they may come back if the source fails over. Absent until the first one.
   */
  unconfirmedKeys?: number;
  /**
   * Pre-move copies deleted from the source after a source failover brought them back (the
   * target's copy is authoritative). Absent until the first one.
   */
  resurrectedDeleted?: number;
  /**
   * Keys the runner moved whose copy on the target fewer of the target's in-sync replicas
   * confirmed in time (WAIT on the target): a failover of the target now could lose them.
   * Absent until the first one.
   */
  targetUnconfirmedKeys?: number;
  /**
   * Set while the task waits out a transient fault instead of moving (a group with no
   * reachable master, etcd unavailable, the target out of memory …): what it waits for, in
   * words. Absent while the task makes progress. The task stays `running` meanwhile.
   */
  waiting?: string;
  /** Bytes moved so far (MEMORY USAGE estimates of the keys moved). Absent until measured. */
  bytesMoved?: number;
  /** Keys per MIGRATE now (the adaptive batch size). Absent before the first batch. */
  batchKeys?: number;
  /** The source master's latency as a steady probe sees it while keys move, ms (recent p99-ish). */
  sourceLatencyMs?: number;
  /** The big key being copied in chunks now, if any. */
  bigKey?: BigKeyProgress;
}

/** A big key being copied in chunks (progress.bigKey). */
export interface BigKeyProgress {
  /** The key as shown to operators (printable, escaped). */
  key: string;
  /** Its redis type. */
  type: string;
  /** Elements (or bytes for a string) copied, and in all. */
  done: number;
  total: number;
}

export interface MigrationTask {
  id: string;
  /** Slot ids to move, ascending. */
  slots: number[];
  /** The groups that owned those slots when the task was created. */
  from: number[];
  /** The target group. */
  to: number;
  state: MigrationState;
  /** Keys per second at most; 0 = as fast as possible. */
  throttle: number;
  /** Slots moved together under one barrier. */
  batchSlots: number;
  /**
   * How long a client of the source group may wait behind the runner's work there, ms: the
   * adaptive batches keep the source's latency near this (config/src/source-pace.ts).
   */
  maxSourceLatencyMs: number;
  progress: MigrationProgress;
  createdAt: string;
  updatedAt: string;
  error: string | null;
}

/** The default of MigrationTask.maxSourceLatencyMs. */
export const DEFAULT_MAX_SOURCE_LATENCY_MS = 5;
/** The range an operator may set it to, ms. */
export const SOURCE_LATENCY_RANGE = { min: 1, max: 10_000 } as const;

export function isValidSourceLatency(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= SOURCE_LATENCY_RANGE.min && ms <= SOURCE_LATENCY_RANGE.max;
}

/** What is wrong with a --max-source-latency value. */
export function sourceLatencyError(ms: unknown): string {
  return `invalid max source latency ${String(ms)}: want whole milliseconds ${SOURCE_LATENCY_RANGE.min}..${SOURCE_LATENCY_RANGE.max}`;
}

export function newProgress(slotsTotal: number): MigrationProgress {
  return { slotsTotal, slotsDone: 0, keysMoved: 0, keysLeft: 0, rate: 0, etaSeconds: null, currentSlots: [], phase: 'waiting for a runner' };
}

/**
 * Progress as stored, field by field: numbers stay numbers, anything else falls back to the
 * default. (Its fields end up in the dashboard's HTML: a string there must never pass.)
 */
function parseProgress(raw: Record<string, unknown>, slotsTotal: number): MigrationProgress {
  const d = newProgress(slotsTotal);
  const num = (k: keyof MigrationProgress, fallback: number): number => {
    const x = raw[k];
    return typeof x === 'number' && Number.isFinite(x) ? x : fallback;
  };
  const eta = raw['etaSeconds'];
  const current = raw['currentSlots'];
  return {
    slotsTotal: num('slotsTotal', d.slotsTotal),
    slotsDone: num('slotsDone', d.slotsDone),
    keysMoved: num('keysMoved', d.keysMoved),
    keysLeft: num('keysLeft', d.keysLeft),
    rate: num('rate', d.rate),
    etaSeconds: typeof eta === 'number' && Number.isFinite(eta) ? eta : null,
    currentSlots: Array.isArray(current) && current.every((s) => isValidSlotId(s)) ? (current as number[]) : [],
    phase: typeof raw['phase'] === 'string' ? raw['phase'] : d.phase,
    ...optionalCount(raw, 'unconfirmedKeys'),
    ...optionalCount(raw, 'resurrectedDeleted'),
    ...optionalCount(raw, 'targetUnconfirmedKeys'),
    ...(typeof raw['waiting'] === 'string' && raw['waiting'] !== '' ? { waiting: raw['waiting'] } : {}),
    ...optionalCount(raw, 'bytesMoved'),
    ...optionalCount(raw, 'batchKeys'),
    ...optionalMs(raw, 'sourceLatencyMs'),
    ...optionalBigKey(raw['bigKey']),
  };
}

function optionalMs(raw: Record<string, unknown>, k: 'sourceLatencyMs'): Partial<MigrationProgress> {
  const x = raw[k];
  return typeof x === 'number' && Number.isFinite(x) && x >= 0 ? { [k]: x } : {};
}

function optionalBigKey(x: unknown): Partial<MigrationProgress> {
  if (x === null || typeof x !== 'object') return {};
  const b = x as Record<string, unknown>;
  const n = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (typeof b['key'] !== 'string' || typeof b['type'] !== 'string' || !n(b['done']) || !n(b['total'])) return {};
  return { bigKey: { key: b['key'], type: b['type'], done: b['done'], total: b['total'] } };
}

/** `{[k]: n}` when the stored value is a count, else nothing (an optional progress counter). */
function optionalCount(
  raw: Record<string, unknown>,
  k: 'unconfirmedKeys' | 'resurrectedDeleted' | 'targetUnconfirmedKeys' | 'bytesMoved' | 'batchKeys',
): Partial<MigrationProgress> {
  const x = raw[k];
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? { [k]: x } : {};
}

export function parseMigration(value: unknown, where: string): MigrationTask {
  const v = value as Partial<MigrationTask> | null;
  const ok =
    v !== null && typeof v === 'object' && typeof v.id === 'string' && Array.isArray(v.slots) &&
    v.slots.every((s) => isValidSlotId(s)) && Array.isArray(v.from) && v.from.every((g) => isValidGroupId(g)) &&
    typeof v.to === 'number' && isValidGroupId(v.to) && typeof v.state === 'string' && STATES.has(v.state) &&
    typeof v.progress === 'object' && v.progress !== null;
  if (!ok) throw new ValidationError(`${where}: not a valid migration task: ${JSON.stringify(value)}`);
  return {
    id: v.id!,
    slots: v.slots!,
    from: v.from!,
    to: v.to!,
    state: v.state!,
    throttle: Number(v.throttle ?? 0),
    batchSlots: Number(v.batchSlots ?? 128),
    maxSourceLatencyMs: typeof v.maxSourceLatencyMs === 'number' && isValidSourceLatency(v.maxSourceLatencyMs) ? v.maxSourceLatencyMs : DEFAULT_MAX_SOURCE_LATENCY_MS,
    progress: parseProgress(v.progress as unknown as Record<string, unknown>, v.slots!.length),
    createdAt: String(v.createdAt ?? ''),
    updatedAt: String(v.updatedAt ?? ''),
    error: v.error ?? null,
  };
}

/** A task read from etcd with the revision a compare-and-swap update needs. */
export interface StoredMigration {
  task: MigrationTask;
  modRevision: string;
}

/** Extra conditions of a task update (Migrations.update). */
export interface TaskUpdateOptions {
  /** Guards besides "the task is unchanged since read" (e.g. the runner's election key exists). */
  guards?: readonly WriteGuard[];
  /** Runs after each refused write, before re-reading; may throw to stop retrying. */
  afterConflict?: () => Promise<void>;
}

export class Migrations {
  constructor(private readonly store: Store) {}

  /** Creates the task; ConflictError when the id exists. */
  async create(task: MigrationTask): Promise<void> {
    const key = Buffer.from(this.store.paths.migration(task.id));
    const res = await this.store.call(`create migration ${task.id}`, () =>
      this.store.etcd.kv.txn({
        compare: [{ key, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: '0' }],
        success: [{ request_put: { key, value: Buffer.from(JSON.stringify(task)) } }],
      }),
    );
    if (!res.succeeded) throw new ConflictError(`migration ${task.id} already exists`);
  }

  async get(id: string): Promise<StoredMigration | null> {
    const key = this.store.paths.migration(id);
    const res = await this.store.call(`get migration ${id}`, () => this.store.etcd.get(key).exec());
    const kv = res.kvs[0];
    return kv ? { task: parseMigration(decodeJson(kv.value, key), key), modRevision: kv.mod_revision } : null;
  }

  /** All tasks, oldest first. */
  async list(): Promise<StoredMigration[]> {
    const { etcd, paths } = this.store;
    const res = await this.store.call('list migrations', () => etcd.getAll().prefix(paths.migrations).exec());
    const out: StoredMigration[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      if (paths.migrationIdOf(key) !== null) out.push({ task: parseMigration(decodeJson(kv.value, key), key), modRevision: kv.mod_revision });
    }
    return out.sort((a, b) => (a.task.createdAt < b.task.createdAt ? -1 : a.task.createdAt > b.task.createdAt ? 1 : 0));
  }

  /**
   * Applies `change` to the stored task with compare-and-swap, retrying on a concurrent write.
   * `change` may throw to refuse (e.g. resuming a finished task). Returns the written task.
   */
  async update(id: string, change: (t: MigrationTask) => MigrationTask, opts: TaskUpdateOptions = {}): Promise<MigrationTask> {
    const key = this.store.paths.migration(id);
    for (let attempt = 0; attempt < 50; attempt++) {
      const cur = await this.get(id);
      if (cur === null) throw new NotFoundError(`migration ${id} does not exist`);
      const next = { ...change(structuredClone(cur.task)), updatedAt: new Date().toISOString() };
      const res = await guardedWrite(this.store, `update migration ${id}`, [...(opts.guards ?? []), guard.modRevision(key, cur.modRevision)], [
        op.put(key, JSON.stringify(next)),
      ]);
      if (res.succeeded) return next;
      await opts.afterConflict?.();
    }
    throw new ConflictError(`migration ${id} keeps changing; try again`, { retryable: true });
  }

  async delete(id: string): Promise<void> {
    const key = this.store.paths.migration(id);
    await this.store.call(`delete migration ${id}`, () => this.store.etcd.delete().key(key).exec());
  }
}
