/**
 * The shape of a `check` result and the pure rules behind it: where a key of a slot may live
 * (its home groups), what the fix may do with a stray, which options are valid, and the exit
 * status a result maps to. No I/O here — the engine (check.ts) and the report (check-report.ts)
 * build on it, and its unit tests need no servers.
 *
 * Invariants kept:
 * - a result is plain JSON (numbers, strings, arrays, objects): `--json` prints it as is;
 * - every category counts everything it saw but keeps at most `maxExamples` examples, so a
 *   product with millions of stray keys still yields a bounded result;
 * - a key is either at home, a stray, or a duplicate — never two of those.
 */
import { SlotState, ValidationError, type SlotInfo } from '@reborn/coordinator';

// ---------------------------------------------------------------------------------------------
// Options

export interface CheckOptions {
  /** Move strays home (see check-fix.ts for exactly when). Default false: only report. */
  fix?: boolean;
  /** SCAN … COUNT per call. Default 1000; 1..100000. */
  scanCount?: number;
  /** Keys scanned per second at most, over all groups; 0 = as fast as the servers answer. Default 0. */
  throttle?: number;
  /** Examples kept per category (strays, duplicates, moved, left); counts are always complete. Default 20; 0..10000. */
  maxExamples?: number;
  /** Connect timeout of every redis connection. Default 2000. */
  connectTimeoutMs?: number;
  /** Upper bound of every redis command (SCAN, EXISTS). Default 5000. */
  commandTimeoutMs?: number;
  /** MIGRATE's own timeout (source → owner) when fixing. Default 5000. */
  migrateTimeoutMs?: number;
  /** The servers' default-user password (requirepass), or none. */
  redisPassword?: string | null;
}

export type ResolvedCheckOptions = Required<Omit<CheckOptions, 'redisPassword'>> & { redisPassword: string | null };

const OPTION_LIMITS: Record<keyof Omit<CheckOptions, 'fix' | 'redisPassword'>, { min: number; max: number; default: number; what: string }> = {
  scanCount: { min: 1, max: 100_000, default: 1000, what: 'keys per SCAN call' },
  throttle: { min: 0, max: 100_000_000, default: 0, what: 'keys per second (0 = unlimited)' },
  maxExamples: { min: 0, max: 10_000, default: 20, what: 'examples per category' },
  connectTimeoutMs: { min: 1, max: 600_000, default: 2000, what: 'milliseconds' },
  commandTimeoutMs: { min: 1, max: 600_000, default: 5000, what: 'milliseconds' },
  migrateTimeoutMs: { min: 1, max: 600_000, default: 5000, what: 'milliseconds' },
};

/** Defaults filled in; ValidationError (EINVALID) naming the option for anything out of range. */
export function resolveCheckOptions(o: CheckOptions = {}): ResolvedCheckOptions {
  if (o.fix !== undefined && typeof o.fix !== 'boolean') throw new ValidationError(`check: fix must be true or false, got ${JSON.stringify(o.fix)}`);
  const out = { fix: o.fix ?? false, redisPassword: o.redisPassword ?? null } as ResolvedCheckOptions;
  for (const [name, lim] of Object.entries(OPTION_LIMITS) as [keyof typeof OPTION_LIMITS, (typeof OPTION_LIMITS)[keyof typeof OPTION_LIMITS]][]) {
    const v = o[name] ?? lim.default;
    if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= lim.min && v <= lim.max)) {
      throw new ValidationError(`check: ${name} must be an integer ${lim.min}..${lim.max} (${lim.what}), got ${JSON.stringify(v)}`);
    }
    out[name] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Where keys belong

/**
 * The groups where a key of this slot is at home: the owner of an online slot; both ends of
 * a slot in pre_migrate or migrating (its keys move from one to the other); none for an
 * offline slot (every key of it is a stray).
 */
export function homesOf(slot: SlotInfo): number[] {
  switch (slot.state) {
    case SlotState.Online:
      return [slot.group];
    case SlotState.PreMigrate:
    case SlotState.Migrating:
      return [slot.from!, slot.to!];
    case SlotState.Offline:
      return [];
  }
}

export function isAtHome(slot: SlotInfo, group: number): boolean {
  return homesOf(slot).includes(group);
}

/** `online in group 2`, `migrating 1→2`, `offline`. */
export function describeSlotState(s: SlotInfo): string {
  if (s.state === SlotState.Offline) return 'offline';
  if (s.state === SlotState.Online) return `online in group ${s.group}`;
  return `${s.state} ${s.from}→${s.to}`;
}

/** Why the fix leaves a key where it is. */
export type LeftReason =
  /** the owner has a key of that name too: never overwritten, a human decides */
  | 'conflict'
  /** the slot is offline: no group to move it to */
  | 'slot-offline'
  /** a migration or a barrier is under way on the slot */
  | 'slot-moving'
  /** the slot changed between the scan and the move */
  | 'slot-changed'
  /** the owner group has no master */
  | 'no-master'
  /** MIGRATE failed (timeout, an error reply) */
  | 'error';

export type MoveVerdict = { ok: true; to: number } | { ok: false; reason: LeftReason; detail: string };

/**
 * Whether a stray found in `group` may be moved now, judged on a fresh read of its slot and
 * of what is running on it (`busy`: the active migration or open barrier naming the slot).
 * Only a slot that is plainly `online` in another group qualifies: while a migration or a
 * barrier runs, keys of the slot are moving and the owner is about to change.
 */
export function moveVerdict(slot: SlotInfo, group: number, busy: string | null): MoveVerdict {
  if (slot.state === SlotState.Offline) return { ok: false, reason: 'slot-offline', detail: `slot ${slot.id} is offline: no group owns it` };
  if (slot.state !== SlotState.Online) return { ok: false, reason: 'slot-moving', detail: `slot ${slot.id} is ${describeSlotState(slot)}` };
  if (busy !== null) return { ok: false, reason: 'slot-moving', detail: `slot ${slot.id} is part of ${busy}` };
  if (slot.group === group) return { ok: false, reason: 'slot-changed', detail: `slot ${slot.id} is now owned by group ${group}, where the key is` };
  return { ok: true, to: slot.group };
}

// ---------------------------------------------------------------------------------------------
// The result

/** A count of everything seen, with the first few as examples. */
export interface Tally<T> {
  count: number;
  examples: T[];
}

export function emptyTally<T>(): Tally<T> {
  return { count: 0, examples: [] };
}

export function addToTally<T>(t: Tally<T>, item: T, maxExamples: number): void {
  t.count++;
  if (t.examples.length < maxExamples) t.examples.push(item);
}

/** A key as bytes (base64, exact) and as text for people (printable ASCII, other bytes \xNN). */
export interface KeyRef {
  key: string;
  keyBase64: string;
  slot: number;
}

/** A key in a group that is not at home (see homesOf), and not present at any home either. */
export interface StrayKey extends KeyRef {
  /** Where it was found. */
  group: number;
  /** The slot's state when the key was classified; `homes` follow from it. */
  slotState: SlotState;
  homes: number[];
}

/** A key in a group that is not at home, that also exists at home: two copies. */
export interface DuplicateKey extends KeyRef {
  group: number;
  slotState: SlotState;
  /** The home groups holding a key of the same name. */
  alsoIn: number[];
}

export interface MovedKey extends KeyRef {
  from: number;
  to: number;
}

export interface LeftKey extends KeyRef {
  group: number;
  reason: LeftReason;
  detail: string;
}

export type SlotProblemKind =
  /** an offline slot whose keys exist on some group (clients cannot reach them) */
  | 'offline-with-keys'
  /** pre_migrate/migrating, but no active migration task has the slot */
  | 'transition-without-task'
  /** pre_migrate/migrating with an active, unpaused task, but no migration runner is running */
  | 'transition-without-runner';

/** Slots with one problem in common (same kind, same state, same migration). */
export interface SlotProblem {
  kind: SlotProblemKind;
  slots: number[];
  state: SlotState;
  from: number | null;
  to: number | null;
  /** offline-with-keys: how many keys of these slots each group holds. */
  keys: { group: number; count: number }[];
  /** The task concerned: the active one, or the last one that had the slot. */
  migration: { id: string; state: string; error: string | null } | null;
  detail: string;
}

export interface GroupCheck {
  group: number;
  master: string | null;
  /** Whether the whole keyspace of the master was scanned. */
  complete: boolean;
  keysScanned: number;
  strays: number;
  duplicates: number;
  moved: number;
  left: number;
  error: string | null;
}

export interface CheckError {
  /** The group concerned, or null (etcd, the run as a whole). */
  group: number | null;
  addr: string | null;
  code: string;
  message: string;
}

export interface FixSummary {
  moved: Tally<MovedKey>;
  /** Everything the fix did not resolve: strays it could not move, and every duplicate. */
  left: Tally<LeftKey>;
  /** Strays that vanished before they could be moved (expired, deleted). */
  gone: number;
}

export interface CheckResult {
  product: string;
  /** etcd revision of the slot table the check started from. */
  revision: string;
  startedAt: string;
  finishedAt: string;
  fix: boolean;
  /** False when some server, group or etcd read failed, or the check was interrupted: see errors. */
  complete: boolean;
  groups: GroupCheck[];
  strays: Tally<StrayKey>;
  /** How many distinct slots the strays belong to. */
  straySlots: number;
  duplicates: Tally<DuplicateKey>;
  slotProblems: SlotProblem[];
  fixed: FixSummary | null;
  errors: CheckError[];
}

// ---------------------------------------------------------------------------------------------
// Exit status

/** Exit status of `reborn-config check` (a check that cannot start at all exits 1, like every verb). */
export const CHECK_EXIT = {
  /** Everything was scanned and nothing is wrong (after --fix: nothing is left). */
  clean: 0,
  /** Strays, duplicates or slot problems remain (whether or not the check completed). */
  problems: 3,
  /** Nothing wrong in what could be read, but not everything could be read. */
  incomplete: 4,
} as const;

/** What still needs attention: unmoved strays, duplicates, and problem slots. */
export function unresolvedCount(r: CheckResult): number {
  const keys = r.fixed ? r.fixed.left.count : r.strays.count + r.duplicates.count;
  return keys + r.slotProblems.reduce((n, p) => n + p.slots.length, 0);
}

export function checkExitCode(r: CheckResult): number {
  if (unresolvedCount(r) > 0) return CHECK_EXIT.problems;
  if (!r.complete) return CHECK_EXIT.incomplete;
  return CHECK_EXIT.clean;
}
