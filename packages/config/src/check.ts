/**
 * `reborn-config check`: finds keys that live where the slot table says they must not, and
 * slots whose state disagrees with the servers or with the migration tasks.
 *
 * How: every group's master is walked with SCAN (COUNT-bounded pages, never KEYS; optionally
 * throttled), one group after the other. A key is at home when its group is a home of its
 * slot (check-model.ts homesOf). A key that is not is confirmed before it is reported:
 *   1. the slot table is read again (a migration may just have made this group its home);
 *   2. the key must still be on this group (a migration may just have moved it away), and
 *      each home master is asked whether it holds a key of that name:
 *        none holds it → a STRAY (clients cannot reach it: the proxy asks the owner);
 *        one holds it  → a DUPLICATE (two copies; the proxy serves the owner's).
 * With `fix`, the strays of each page are moved home as check-fix.ts says. At the end the
 * slots are compared with the tasks and the runner (slot problems), from one etcd read.
 *
 * Invariants:
 * - memory is bounded whatever the keyspace: one SCAN page at a time, `maxExamples` examples
 *   per category, per-slot counters, and a capped set of the problem keys already reported
 *   (SCAN may return a key twice);
 * - a server that cannot be read is reported (errors, its group `complete: false`) and the
 *   check goes on with the next group; the result then says `complete: false`. Only a failure
 *   to read etcd at the very start (nothing could be judged) is thrown.
 * - read-only unless `fix`; with `fix`, nothing is ever overwritten (MIGRATE without REPLACE).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pino, { type Logger } from 'pino';
import type { Redis } from 'ioredis';
import { keySlot } from '@reborn/protocol';
import { CoordinatorError, SLOT_COUNT, SlotState, isInternalKey, type Store } from '@reborn/coordinator';
import { KeyMover } from './check-fix.js';
import { describeProblem } from './check-report.js';
import {
  addToTally,
  emptyTally,
  isAtHome,
  homesOf,
  resolveCheckOptions,
  type CheckError,
  type CheckOptions,
  type CheckResult,
  type DuplicateKey,
  type FixSummary,
  type GroupCheck,
  type KeyRef,
  type ResolvedCheckOptions,
  type SlotProblem,
  type StrayKey,
} from './check-model.js';
import { activeTaskOf, lastTaskOf, masterAddr, needsRunner, readControlState, type ControlState } from './check-state.js';
import { connectAdmin, existsAll, isTransportError, replyCode, showKey } from '@reborn/coordinator/admin';
import { isRunnerAlive } from './runner-api.js';
import { formatSlotList } from './servers.js';

export { describeProblem, formatCheckReport } from './check-report.js';
export { checkExitCode, CHECK_EXIT, type CheckOptions, type CheckResult } from './check-model.js';

export interface CheckProgress {
  group: number;
  keysScanned: number;
}

export interface CheckRunOptions extends CheckOptions {
  logger?: Logger;
  /** Aborting stops the check at the next page; the result says `complete: false`. */
  signal?: AbortSignal;
  /** Called after each SCAN page (for a progress line). */
  onProgress?: (p: CheckProgress) => void;
}

/** How old the slot table may get while pages look clean before it is read again. */
const STATE_MAX_AGE_MS = 1000;
/** Problem keys remembered per group to drop SCAN's repeats; past this, a repeat may count twice. */
const MAX_REMEMBERED_KEYS = 100_000;

/**
 * Checks every group of the product (see the top of the file). Throws only when etcd cannot
 * be read at the start, or an option is invalid (ValidationError).
 */
export async function checkProduct(store: Store, options: CheckRunOptions = {}): Promise<CheckResult> {
  const opts = resolveCheckOptions(options);
  const run = new CheckRun(store, opts, options);
  return run.execute();
}

class Interrupted extends Error {}

class CheckRun {
  private readonly log: Logger;
  private readonly startedAt = new Date().toISOString();
  private state!: ControlState;
  private readonly groups: GroupCheck[] = [];
  private readonly errors: CheckError[] = [];
  private readonly strays = emptyTally<StrayKey>();
  private readonly duplicates = emptyTally<DuplicateKey>();
  private readonly straySlots = new Uint8Array(SLOT_COUNT);
  /** slot → group → keys of that (offline) slot found there. */
  private readonly offlineKeys = new Map<number, Map<number, number>>();
  private readonly fixed: FixSummary | null;
  private readonly mover: KeyMover | null;
  /** Connections to home masters (EXISTS), by address; null once the server failed. */
  private readonly homeConns = new Map<string, Promise<Redis | null>>();
  private stateReadAt = 0;
  private nextScanAt = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: ResolvedCheckOptions,
    private readonly hooks: Pick<CheckRunOptions, 'signal' | 'onProgress' | 'logger'>,
  ) {
    this.log = (hooks.logger ?? pino({ enabled: false })).child({ component: 'check' });
    this.fixed = opts.fix ? { moved: emptyTally(), left: emptyTally(), gone: 0 } : null;
    this.mover = opts.fix ? new KeyMover(store, opts.migrateTimeoutMs, opts.redisPassword, this.log) : null;
  }

  async execute(): Promise<CheckResult> {
    await this.refreshState();
    const revision = this.state.revision;
    const groupIds = [...this.state.groups.keys()];
    this.log.info({ groups: groupIds, fix: this.opts.fix }, 'check started');
    try {
      for (const gid of groupIds) {
        if (this.hooks.signal?.aborted) {
          this.groups.push(this.groupEntry(gid, 'not scanned: the check was interrupted'));
          continue;
        }
        await this.scanGroup(gid);
      }
      if (this.hooks.signal?.aborted && this.groups.some((g) => !g.complete)) {
        this.errors.push({ group: null, addr: null, code: 'EINTERRUPTED', message: 'the check was interrupted before it scanned every group' });
      }
    } finally {
      await this.closeHomeConns();
    }
    const slotProblems = await this.findSlotProblems();
    const result: CheckResult = {
      product: this.store.product,
      revision,
      startedAt: this.startedAt,
      finishedAt: new Date().toISOString(),
      fix: this.opts.fix,
      complete: this.errors.length === 0 && this.groups.every((g) => g.complete),
      groups: this.groups,
      strays: this.strays,
      straySlots: this.straySlots.reduce((n, b) => n + b, 0),
      duplicates: this.duplicates,
      slotProblems,
      fixed: this.fixed,
      errors: this.errors,
    };
    this.log.info(
      { complete: result.complete, strays: result.strays.count, duplicates: result.duplicates.count, slotProblems: slotProblems.length, moved: this.fixed?.moved.count },
      'check finished',
    );
    return result;
  }

  private async refreshState(): Promise<true> {
    this.state = await readControlState(this.store);
    this.stateReadAt = Date.now();
    return true;
  }

  private groupEntry(gid: number, error: string | null = null): GroupCheck {
    return { group: gid, master: masterAddr(this.state, gid), complete: false, keysScanned: 0, strays: 0, duplicates: 0, moved: 0, left: 0, error };
  }

  private fail(group: number | null, addr: string | null, err: unknown): CheckError {
    // ioredis' own errors ("Command timed out") do not say which server.
    const message = addr !== null && !(err instanceof CoordinatorError) ? `redis ${addr}: ${errText(err)}` : errText(err);
    const e = { group, addr, code: codeOf(err), message };
    this.errors.push(e);
    this.log.warn(e, 'check: could not read everything');
    return e;
  }

  // --- one group -------------------------------------------------------------------------------

  private async scanGroup(gid: number): Promise<void> {
    const stats = this.groupEntry(gid);
    this.groups.push(stats);
    const addr = stats.master;
    if (addr === null) {
      stats.error = this.fail(gid, null, new CoordinatorError('ENOMASTER', `group ${gid} has no master: its keys were not checked`)).message;
      return;
    }
    // A MIGRATE (fix) holds the connection for up to its own timeout.
    const commandTimeoutMs = this.opts.fix ? Math.max(this.opts.commandTimeoutMs, this.opts.migrateTimeoutMs + 2000) : this.opts.commandTimeoutMs;
    const seen = new Set<string>();
    let conn: Redis | null = null;
    try {
      conn = await connectAdmin(addr, { connectTimeoutMs: this.opts.connectTimeoutMs, commandTimeoutMs, password: this.opts.redisPassword });
      let cursor = '0';
      do {
        if (this.hooks.signal?.aborted) throw new Interrupted('the check was interrupted');
        const [next, keys] = await conn.scanBuffer(cursor, 'COUNT', this.opts.scanCount);
        cursor = next.toString('latin1');
        stats.keysScanned += keys.length;
        // The product's own keys (a migration's copy marks and temporary keys) are not data.
        await this.examine(stats, conn, keys.filter((k) => !isInternalKey(k)), seen);
        this.hooks.onProgress?.({ group: gid, keysScanned: stats.keysScanned });
        await this.throttle(keys.length);
      } while (cursor !== '0');
      stats.complete = true;
    } catch (err) {
      if (err instanceof Interrupted) stats.error = 'interrupted: scanned in part';
      else stats.error = this.fail(gid, addr, err).message;
    } finally {
      conn?.disconnect();
    }
  }

  /** Classifies one SCAN page of group `stats.group` (see the top of the file), then fixes. */
  private async examine(stats: GroupCheck, conn: Redis, keys: readonly Buffer[], seen: Set<string>): Promise<void> {
    const gid = stats.group;
    const away = (k: Buffer) => !isAtHome(this.state.slots[keySlot(k)]!, gid);
    // A slot table read after this page was scanned: a migration may just have made this
    // group a key's home. Read at least every STATE_MAX_AGE_MS even when all looks at home,
    // so that a slot that moved away is not judged by its old owner for long.
    let fresh = false;
    if (Date.now() - this.stateReadAt > STATE_MAX_AGE_MS) fresh = await this.refreshState();
    if (!keys.some(away)) return;
    if (!fresh) await this.refreshState();
    const candidates = keys.filter((k) => away(k) && !seen.has(k.toString('hex')));
    if (candidates.length === 0) return;
    const [present, holders] = await Promise.all([existsAll(conn, candidates), this.homesHolding(candidates)]);

    const strays: StrayKey[] = [];
    for (const [i, k] of candidates.entries()) {
      if (!present[i]) continue; // moved home or deleted since the scan saw it
      if (seen.size < MAX_REMEMBERED_KEYS) seen.add(k.toString('hex'));
      const slot = this.state.slots[keySlot(k)]!;
      const ref = keyRef(k, slot.id);
      const alsoIn = holders[i]!;
      if (alsoIn.length > 0) {
        addToTally(this.duplicates, { ...ref, group: gid, slotState: slot.state, alsoIn }, this.opts.maxExamples);
        stats.duplicates++;
        if (this.fixed) {
          const detail = `group ${alsoIn.join(' and ')} (home of slot ${slot.id}) has a key of that name too: never overwritten; keep one copy by hand`;
          addToTally(this.fixed.left, { ...ref, group: gid, reason: 'conflict', detail }, this.opts.maxExamples);
          stats.left++;
        }
        continue;
      }
      const stray: StrayKey = { ...ref, group: gid, slotState: slot.state, homes: homesOf(slot) };
      addToTally(this.strays, stray, this.opts.maxExamples);
      stats.strays++;
      this.straySlots[slot.id] = 1;
      if (slot.state === SlotState.Offline) {
        const byGroup = this.offlineKeys.get(slot.id) ?? new Map<number, number>();
        byGroup.set(gid, (byGroup.get(gid) ?? 0) + 1);
        this.offlineKeys.set(slot.id, byGroup);
      }
      strays.push(stray);
    }
    if (this.mover && strays.length > 0) await this.moveHome(stats, conn, strays);
  }

  private async moveHome(stats: GroupCheck, conn: Redis, strays: StrayKey[]): Promise<void> {
    const fixed = this.fixed!;
    const max = this.opts.maxExamples;
    let outcome;
    try {
      outcome = await this.mover!.moveHome(stats.group, conn, strays);
    } catch (err) {
      // The source failed mid-way: nothing more is known about these keys; none is resolved.
      for (const k of strays) {
        addToTally(fixed.left, { key: k.key, keyBase64: k.keyBase64, slot: k.slot, group: stats.group, reason: 'error', detail: `not moved: ${errText(err)}` }, max);
        stats.left++;
      }
      throw err;
    }
    for (const m of outcome.moved) addToTally(fixed.moved, m, max);
    for (const l of outcome.left) addToTally(fixed.left, l, max);
    fixed.gone += outcome.gone.length;
    stats.moved += outcome.moved.length;
    stats.left += outcome.left.length;
    if (outcome.changedSlots.length > 0) {
      const slots = formatSlotList([...outcome.changedSlots].sort((a, b) => a - b));
      this.fail(stats.group, stats.master, new CoordinatorError('ESLOTCHANGED', `slot(s) ${slots} changed while stray keys of them were moved from group ${stats.group}: run check again`));
    }
  }

  /** For each key, the home groups whose master holds a key of that name. */
  private async homesHolding(keys: readonly Buffer[]): Promise<number[][]> {
    const out = keys.map((): number[] => []);
    const byHome = new Map<number, number[]>(); // home group → indexes into keys
    for (const [i, k] of keys.entries()) {
      for (const h of homesOf(this.state.slots[keySlot(k)]!)) {
        const idx = byHome.get(h);
        if (idx) idx.push(i);
        else byHome.set(h, [i]);
      }
    }
    await Promise.all(
      [...byHome].map(async ([home, idx]) => {
        const addr = masterAddr(this.state, home);
        if (addr === null) return; // reported when that group is scanned
        const c = await this.homeConn(home, addr);
        if (c === null) return;
        try {
          const found = await existsAll(c, idx.map((i) => keys[i]!));
          for (const [j, i] of idx.entries()) if (found[j]) out[i]!.push(home);
        } catch (err) {
          // Reported once: later pages treat this home as unknown (their keys count as strays;
          // the fix's MIGRATE without REPLACE still never overwrites a copy there).
          this.fail(home, addr, new CoordinatorError(codeOf(err), `cannot tell strays from duplicates of group ${home} (${addr}): ${errText(err)}`));
          this.dropHomeConn(addr);
        }
      }),
    );
    return out;
  }

  private homeConn(gid: number, addr: string): Promise<Redis | null> {
    let p = this.homeConns.get(addr);
    if (!p) {
      const opts = { connectTimeoutMs: this.opts.connectTimeoutMs, commandTimeoutMs: this.opts.commandTimeoutMs, password: this.opts.redisPassword };
      p = connectAdmin(addr, opts).catch((err: unknown) => {
        this.fail(gid, addr, new CoordinatorError(codeOf(err), `cannot tell strays from duplicates of group ${gid}: ${errText(err)}`));
        return null;
      });
      this.homeConns.set(addr, p);
    }
    return p;
  }

  /** A failed home connection is not retried within this check (its error is reported once). */
  private dropHomeConn(addr: string): void {
    const p = this.homeConns.get(addr);
    this.homeConns.set(addr, Promise.resolve(null));
    void p?.then((c) => c?.disconnect());
  }

  private async closeHomeConns(): Promise<void> {
    for (const c of await Promise.all(this.homeConns.values())) c?.disconnect();
    this.homeConns.clear();
  }

  private async throttle(keys: number): Promise<void> {
    const rate = this.opts.throttle;
    if (rate === 0) return;
    const now = Date.now();
    this.nextScanAt = Math.max(this.nextScanAt, now) + (keys * 1000) / rate;
    const wait = this.nextScanAt - now;
    if (wait > 0) await sleep(wait, undefined, this.hooks.signal ? { signal: this.hooks.signal } : undefined).catch(() => {});
  }

  // --- slots -----------------------------------------------------------------------------------

  /** Slot problems from one fresh etcd read (see SlotProblemKind). */
  private async findSlotProblems(): Promise<SlotProblem[]> {
    let state: ControlState;
    let runnerAlive: boolean | null;
    try {
      state = await readControlState(this.store);
    } catch (err) {
      this.fail(null, null, new CoordinatorError(codeOf(err), `slot states not checked: ${errText(err)}`));
      return [];
    }
    try {
      runnerAlive = await isRunnerAlive(this.store);
    } catch (err) {
      this.fail(null, null, new CoordinatorError(codeOf(err), `migration runner not checked: ${errText(err)}`));
      runnerAlive = null;
    }

    const merged = new Map<string, SlotProblem>();
    const add = (group: string, make: () => SlotProblem, slot: number): SlotProblem => {
      let p = merged.get(group);
      if (!p) merged.set(group, (p = make()));
      p.slots.push(slot);
      return p;
    };
    for (const s of state.slots) {
      if (s.state === SlotState.Offline) {
        const byGroup = this.offlineKeys.get(s.id);
        if (!byGroup) continue;
        const p = add('offline', () => problem('offline-with-keys', s), s.id);
        for (const [group, count] of byGroup) {
          const entry = p.keys.find((e) => e.group === group);
          if (entry) entry.count += count;
          else p.keys.push({ group, count });
        }
        continue;
      }
      if (s.state === SlotState.Online) continue;
      const active = activeTaskOf(state, s.id);
      if (active === null) {
        const last = lastTaskOf(state, s.id);
        add(`no-task|${s.state}|${s.from}|${s.to}|${last?.id}`, () => ({ ...problem('transition-without-task', s), migration: last && taskRef(last) }), s.id);
      } else if (needsRunner(active) && runnerAlive === false) {
        add(`no-runner|${s.state}|${s.from}|${s.to}|${active.id}`, () => ({ ...problem('transition-without-runner', s), migration: taskRef(active) }), s.id);
      }
    }
    const problems = [...merged.values()];
    for (const p of problems) {
      p.keys.sort((a, b) => a.group - b.group);
      p.detail = describeProblem(p);
    }
    return problems;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function problem(kind: SlotProblem['kind'], s: { state: SlotState; from?: number; to?: number }): SlotProblem {
  return { kind, slots: [], state: s.state, from: s.from ?? null, to: s.to ?? null, keys: [], migration: null, detail: '' };
}

function taskRef(t: { id: string; state: string; error: string | null }): SlotProblem['migration'] {
  return { id: t.id, state: t.state, error: t.error };
}

function keyRef(k: Buffer, slot: number): KeyRef {
  return { key: showKey(k), keyBase64: k.toString('base64'), slot };
}

/** A stable code for an error of this run: its own, EUNREACHABLE for the connection, EREDIS for a reply. */
function codeOf(err: unknown): string {
  if (err instanceof CoordinatorError) return err.code;
  if (replyCode(err) !== null) return 'EREDIS';
  if (isTransportError(err)) return 'EUNREACHABLE';
  return 'EINTERNAL';
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
