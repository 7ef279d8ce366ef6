/**
 * What the migration runner's modules share: the errors a task can fail with, the leader
 * handle a task run acts under, the runner's tunables and context, and small helpers (a
 * bounded job pool, slot-range text, naps that end on abort).
 *
 * Invariant: nothing here acts — no etcd or redis call; the modules that do import from here,
 * never the other way round (no import cycle). See docs/architecture.md (migration protocol).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Barrier, CoordinatorError, MigrationState, Migrations, SlotState, type MigrationTask, type SlotInfo, type Store } from '@reborn/coordinator';
import { isTransportError, type RedisAdminOptions } from '@reborn/coordinator/admin';

export interface MigrationRunnerOptions {
  store: Store;
  logger: Logger;
  /** This runner's name in the election. Default `<hostname>:<pid>:<random>`. */
  id?: string;
  /** How long the barrier waits for acks before fencing the silent proxies. Default 5000. */
  barrierTimeoutMs?: number;
  /** SCAN … COUNT. Default 5000: fewer round trips queued behind MIGRATEs. */
  scanCount?: number;
  /**
   * The most keys one chunk may hold. Default 5000. The chunk size itself adapts below that
   * (source-pace.ts): a chunk's DUMP script takes about half the task's maxSourceLatencyMs.
   */
  migrateKeys?: number;
  /** How long a chunk's restore on the target may take (the target connection's timeout). Default 5000. */
  migrateTimeoutMs?: number;
  /**
   * How long each MIGRATE's deletes wait for the source's in-sync replicas (WAIT). Default 1000,
   * as the proxy's --durable-timeout. Longer protects more moves while a replica lags; a replica
   * that is down but still in the set costs this per MIGRATE until HA drops it from the set.
   */
  waitTimeoutMs?: number;
  /**
   * Chunks in flight per batch. Default 2: while the target restores one chunk, the source
   * dumps the next (the two servers work at once). More adds little: every chunk is also
   * work for the source, and a client request queued behind several waits for all of them.
   */
  parallel?: number;
  /**
   * A key whose size estimate (MEMORY USAGE … SAMPLES 5) is at least this many bytes is moved in
   * chunks instead of by one MIGRATE (big-key-move.ts). Default 1 MiB: measured on a 2-core
   * machine, one MIGRATE of a 1 MB hash (13k fields) held the source 7–18 ms; a 1 MB list
   * or string 2–5 ms.
   */
  bigKeyBytes?: number;
  /** TTL of the election lease: how soon another runner takes over a dead one. Default 10. */
  leaseTtlSeconds?: number;
  /** How often the leader looks for new tasks. Default 500. */
  pollIntervalMs?: number;
  /** The servers' default-user password (requirepass): for the runner's connections and MIGRATE's to the target. */
  redisPassword?: string | null;
}

/** Slots of one task that move together: one source group, the task's target. */
export interface Batch {
  from: number;
  to: number;
  slots: number[];
}

/** The runner's tunables, defaults applied (MigrationRunner.opts). */
export type RunnerTunables = Required<Omit<MigrationRunnerOptions, 'store' | 'logger' | 'id' | 'redisPassword'>>;

/** What every TaskRun of a runner shares. */
export interface RunnerContext {
  store: Store;
  log: Logger;
  migrations: Migrations;
  barrier: Barrier;
  opts: RunnerTunables;
  /** How the runner's own connections log in (timeouts are set per use). */
  redis: RedisAdminOptions;
}

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * A migration cannot go on without an operator: the task is marked failed with this message,
 * which says what to do. Only causes an operator must fix end a task this way; transient
 * faults are MigrationWait.
 *
 * | code      | meaning                                                               |
 * |-----------|-----------------------------------------------------------------------|
 * | EBUSYKEY  | a key exists in both groups; never overwritten                        |
 * | EMIGRATE  | redis refused MIGRATE for a reason that does not pass by itself        |
 * |           | (authentication, permissions, a bug) — not IOERR, timeouts, OOM …     |
 * | EBARRIER  | the barrier failed for a reason that is not an unreachable server      |
 * | ESLOTS    | the task's slots were changed outside the migration                   |
 */
export class MigrationError extends CoordinatorError {
  constructor(code: 'EBUSYKEY' | 'EMIGRATE' | 'EBARRIER' | 'ESLOTS', message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = 'MigrationError';
  }
}

/**
 * A transient fault the task waits out: it stays `running`, `progress.waiting` says
 * `${waitingFor} (${detail}, since N s)`, and the step is retried from a fresh read of etcd
 * (so a group that failed over meanwhile is addressed at its new master). `waitingFor` names
 * the condition and keys the "since": e.g. "waiting for group 2 to have a reachable master".
 * `retryInMs`: the earliest retry (0: at once, e.g. etcd already names a new master).
 */
export class MigrationWait extends CoordinatorError {
  readonly waitingFor: string;
  readonly detail: string;
  readonly retryInMs: number | null;
  constructor(waitingFor: string, detail: string, opts: { retryInMs?: number; cause?: unknown } = {}) {
    super('EWAIT', `${waitingFor} (${detail})`, { cause: opts.cause, retryable: true });
    this.name = 'MigrationWait';
    this.waitingFor = waitingFor;
    this.detail = detail;
    this.retryInMs = opts.retryInMs ?? null;
  }
}

/** What an operator does about ESLOTS, appended to its message. */
export function slotsFixHint(taskId: string): string {
  return `decide what the slot should be and set it ("reborn-config slot set …"), then run "reborn-config migration resume ${taskId}" (or "migration cancel ${taskId}")`;
}

/** Internal: stop acting now (leadership lost, stop(), task gone). Not a task failure. */
export class Halt extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'Halt';
  }
}

/** A group's master changed under a scan pass: move on to the new one at once, or wait for one. */
export function masterMoved(group: number, was: string, now: string | undefined): MigrationWait {
  return now === undefined
    ? new MigrationWait(`waiting for group ${group} to have a master`, `${was} is no longer the master of group ${group} in etcd, and no server is yet: failover in progress`)
    : new MigrationWait(`following the failover of group ${group}`, `${was} is no longer the master of group ${group} in etcd, ${now} is: moving on to it`, { retryInMs: 0 });
}

export const TERMINAL: ReadonlySet<string> = new Set([MigrationState.Done, MigrationState.Cancelled, MigrationState.Failed]);

export function isTerminal(task: MigrationTask): boolean {
  return TERMINAL.has(task.state);
}

export interface Lead {
  /** Aborted when leadership is lost or the runner stops. */
  signal: AbortSignal;
  /** Our campaign key: slot writes are guarded by its existence. */
  guardKey: string;
  /** Give up leadership now (a guarded write failed: someone else leads). */
  lose(): void;
}

export const CHECK_INTERVAL_MS = 200;
export const PROGRESS_INTERVAL_MS = 500;
export const RATE_WINDOW_MS = 5000;
/** Barrier failures in a row before the task says it waits (it keeps retrying). */
export const BARRIER_ATTEMPTS = 3;
/** BUSYKEY resolutions of one chunk before the task fails (each resolves the keys it can). */
export const BUSYKEY_RESOLUTIONS = 3;
/** The longest pause between two attempts while a task waits out a transient fault. */
export const MAX_WAIT_RETRY_MS = 2000;

/** The end of the key range [slot(first), …, slot(last)]: the key right after slot(last). */
export function slotRangeEnd(store: Store, last: number): string {
  return `${store.paths.slot(last)}\0`;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** ≤ `size` concurrent jobs; the first failure is rethrown by the next run()/drain(). */
export class Pool {
  private readonly inFlight = new Set<Promise<void>>();
  private error: unknown = null;
  constructor(private readonly size: number) {}

  async run(job: () => Promise<void>): Promise<void> {
    this.rethrow();
    while (this.inFlight.size >= this.size) {
      await Promise.race(this.inFlight);
      this.rethrow();
    }
    const p: Promise<void> = job()
      .catch((err: unknown) => {
        this.error ??= err;
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  async drain(): Promise<void> {
    await this.settle();
    this.rethrow();
  }

  /** Waits for every job, without rethrowing. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private rethrow(): void {
    if (this.error !== null) {
      const e = this.error;
      this.error = null;
      throw e;
    }
  }
}

export function pickBatch(list: readonly { id: number; from: number }[], to: number, max: number): Batch {
  const from = list[0]!.from;
  return { from, to, slots: list.filter((s) => s.from === from).slice(0, max).map((s) => s.id) };
}

/** `0-9,12,20-21` */
export function ranges(ids: readonly number[]): string {
  const sorted = [...ids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

export function describeSlot(s: SlotInfo): string {
  if (s.state === SlotState.Offline) return 'offline';
  if (s.state === SlotState.Online) return `online in group ${s.group}`;
  return `${s.state} from group ${s.from} to group ${s.to}`;
}

/** ioredis' own failures (closed, reset, timed out) — not reply errors, not our bugs. */
export function isConnectionError(err: unknown): boolean {
  if (!isTransportError(err) || err instanceof CoordinatorError) return false;
  return !(err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || err instanceof SyntaxError);
}

export function isRetryable(err: unknown): boolean {
  return err instanceof CoordinatorError && err.retryable;
}

export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Sleeps `ms`, or less when `signal` aborts; never throws. */
export async function nap(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return;
  await sleep(ms, undefined, signal ? { signal } : undefined).catch(() => {});
}
