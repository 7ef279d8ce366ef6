/**
 * Unit tests of the pure parts of `check`: options, where keys belong, what the fix may move,
 * tallies, exit status (check-model.ts) and the human report (check-report.ts). The engine
 * itself is tested end to end in test/config-check.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError, offlineSlot, onlineSlot, type SlotInfo } from '@reborn/coordinator';
import {
  CHECK_EXIT,
  addToTally,
  checkExitCode,
  emptyTally,
  homesOf,
  isAtHome,
  moveVerdict,
  resolveCheckOptions,
  unresolvedCount,
  type CheckResult,
  type SlotProblem,
} from './check-model.js';
import { describeProblem, formatCheckReport } from './check-report.js';

const migrating = (id: number, from: number, to: number): SlotInfo => ({ id, state: 'migrating', group: to, from, to });
const preMigrate = (id: number, from: number, to: number): SlotInfo => ({ id, state: 'pre_migrate', group: from, from, to });

function emptyResult(over: Partial<CheckResult> = {}): CheckResult {
  return {
    product: 'p',
    revision: '7',
    startedAt: '2025-01-01T00:00:00.000Z',
    finishedAt: '2025-01-01T00:00:01.000Z',
    fix: false,
    complete: true,
    groups: [],
    strays: emptyTally(),
    straySlots: 0,
    duplicates: emptyTally(),
    slotProblems: [],
    fixed: null,
    errors: [],
    ...over,
  };
}

describe('options', () => {
  it('fills in defaults', () => {
    expect(resolveCheckOptions()).toEqual({
      fix: false,
      scanCount: 1000,
      throttle: 0,
      maxExamples: 20,
      connectTimeoutMs: 2000,
      commandTimeoutMs: 5000,
      migrateTimeoutMs: 5000,
      redisPassword: null,
    });
    expect(resolveCheckOptions({ fix: true, maxExamples: 0, throttle: 500 })).toMatchObject({ fix: true, maxExamples: 0, throttle: 500 });
  });

  it('refuses values out of range, naming the option', () => {
    const bad: [object, RegExp][] = [
      [{ scanCount: 0 }, /scanCount must be an integer 1\.\.100000/],
      [{ scanCount: 1.5 }, /scanCount/],
      [{ throttle: -1 }, /throttle/],
      [{ maxExamples: 10_001 }, /maxExamples/],
      [{ commandTimeoutMs: '5' }, /commandTimeoutMs .* got "5"/],
      [{ fix: 'yes' }, /fix must be true or false/],
    ];
    for (const [opts, msg] of bad) {
      expect(() => resolveCheckOptions(opts as never)).toThrow(ValidationError);
      expect(() => resolveCheckOptions(opts as never)).toThrow(msg);
    }
  });
});

describe('where keys belong', () => {
  it('online: the owner; moving: both ends; offline: nowhere', () => {
    expect(homesOf(onlineSlot(5, 2))).toEqual([2]);
    expect(homesOf(preMigrate(5, 1, 2))).toEqual([1, 2]);
    expect(homesOf(migrating(5, 1, 2))).toEqual([1, 2]);
    expect(homesOf(offlineSlot(5))).toEqual([]);
    expect(isAtHome(onlineSlot(5, 2), 1)).toBe(false);
    expect(isAtHome(migrating(5, 1, 2), 1)).toBe(true);
    expect(isAtHome(offlineSlot(5), 1)).toBe(false);
  });
});

describe('what the fix may move', () => {
  it('only a key whose slot is plainly online in another group, with nothing running on it', () => {
    expect(moveVerdict(onlineSlot(9, 2), 1, null)).toEqual({ ok: true, to: 2 });
    expect(moveVerdict(offlineSlot(9), 1, null)).toMatchObject({ ok: false, reason: 'slot-offline' });
    expect(moveVerdict(preMigrate(9, 2, 3), 1, null)).toMatchObject({ ok: false, reason: 'slot-moving', detail: 'slot 9 is pre_migrate 2→3' });
    expect(moveVerdict(migrating(9, 2, 3), 1, null)).toMatchObject({ ok: false, reason: 'slot-moving' });
    expect(moveVerdict(onlineSlot(9, 2), 1, 'migration m-1 (pending, to group 3)')).toEqual({
      ok: false,
      reason: 'slot-moving',
      detail: 'slot 9 is part of migration m-1 (pending, to group 3)',
    });
    // The slot moved to the key's group since the scan: nothing to do.
    expect(moveVerdict(onlineSlot(9, 1), 1, null)).toMatchObject({ ok: false, reason: 'slot-changed' });
  });
});

describe('tallies', () => {
  it('count everything, keep at most maxExamples', () => {
    const t = emptyTally<number>();
    for (let i = 0; i < 5; i++) addToTally(t, i, 2);
    expect(t).toEqual({ count: 5, examples: [0, 1] });
    const none = emptyTally<number>();
    addToTally(none, 1, 0);
    expect(none).toEqual({ count: 1, examples: [] });
  });
});

describe('exit status', () => {
  const key = { key: 'k', keyBase64: 'aw==', slot: 1 };
  it('0 clean, 3 when anything remains, 4 when nothing was found but not everything read', () => {
    expect(checkExitCode(emptyResult())).toBe(CHECK_EXIT.clean);
    expect(checkExitCode(emptyResult({ complete: false }))).toBe(CHECK_EXIT.incomplete);
    const strays = { count: 1, examples: [{ ...key, group: 1, slotState: 'online' as const, homes: [2] }] };
    expect(checkExitCode(emptyResult({ strays, straySlots: 1 }))).toBe(CHECK_EXIT.problems);
    expect(checkExitCode(emptyResult({ strays, complete: false }))).toBe(CHECK_EXIT.problems);
    const problem = { kind: 'transition-without-task' as const, slots: [1, 2], state: 'migrating' as const, from: 1, to: 2, keys: [], migration: null, detail: '' };
    expect(unresolvedCount(emptyResult({ slotProblems: [problem] }))).toBe(2);
  });

  it('after --fix only what was left counts: a fully fixed product is clean', () => {
    const strays = { count: 2, examples: [] };
    const fixedAll = { moved: { count: 1, examples: [] }, left: emptyTally<never>(), gone: 1 };
    expect(checkExitCode(emptyResult({ fix: true, strays, fixed: fixedAll }))).toBe(CHECK_EXIT.clean);
    const leftOne = { ...fixedAll, left: { count: 1, examples: [] } };
    expect(unresolvedCount(emptyResult({ fix: true, strays, fixed: leftOne }))).toBe(1);
    expect(checkExitCode(emptyResult({ fix: true, strays, fixed: leftOne }))).toBe(CHECK_EXIT.problems);
  });
});

const ref = (key: string, slot: number) => ({ key, keyBase64: Buffer.from(key).toString('base64'), slot });
const group = (id: number, over = {}) => ({ group: id, master: `127.0.0.1:700${id}`, complete: true, keysScanned: 10, strays: 0, duplicates: 0, moved: 0, left: 0, error: null, ...over });
const problem = (over: Partial<SlotProblem>): SlotProblem => ({
  kind: 'transition-without-task',
  slots: [4, 5, 6, 9],
  state: 'migrating',
  from: 1,
  to: 2,
  keys: [],
  migration: null,
  detail: '',
  ...over,
});

describe('formatCheckReport', () => {
  it('a clean product', () => {
    const text = formatCheckReport(emptyResult({ groups: [group(1), group(2)] }));
    expect(text).toContain('check of product p (slot table at etcd revision 7): complete\n');
    expect(text).toMatch(/^1 +127\.0\.0\.1:7001 +10 +0 +0 +- +- +scanned$/m);
    expect(text).toContain('strays: 0 ');
    expect(text.endsWith('result: clean\n')).toBe(true);
  });

  it('findings with fewer examples than counted say how many are left out', () => {
    const text = formatCheckReport(
      emptyResult({
        groups: [group(1, { strays: 3 }), group(2, { duplicates: 1 })],
        strays: { count: 3, examples: [{ ...ref('a', 10), group: 1, slotState: 'online', homes: [2] }, { ...ref('b\\x00', 11), group: 1, slotState: 'offline', homes: [] }] },
        straySlots: 3,
        duplicates: { count: 1, examples: [{ ...ref('d', 12), group: 2, slotState: 'online', alsoIn: [1] }] },
      }),
    );
    expect(text).toContain('strays: 3 in 3 slot(s)');
    expect(text).toContain('  "a" slot 10 in group 1: belongs to group 2\n');
    expect(text).toContain('  "b\\x00" slot 11 in group 1: its slot is offline\n');
    expect(text).toContain('  … and 1 more\n');
    expect(text).toContain('  "d" slot 12 in group 2, and at home in group 1\n');
    expect(text).toContain('result: 4 key(s) and 0 slot(s) need attention\n');
  });

  it('the fix section, errors and an incomplete check', () => {
    const text = formatCheckReport(
      emptyResult({
        fix: true,
        complete: false,
        groups: [group(1, { moved: 1, left: 1 }), group(2, { complete: false, keysScanned: 0, error: 'redis 127.0.0.1:7002: cannot connect' })],
        strays: { count: 2, examples: [] },
        fixed: {
          moved: { count: 1, examples: [{ ...ref('m', 3), from: 1, to: 2 }] },
          left: { count: 1, examples: [{ ...ref('x', 4), group: 1, reason: 'slot-offline', detail: 'slot 4 is offline: no group owns it' }] },
          gone: 0,
        },
        errors: [{ group: 2, addr: '127.0.0.1:7002', code: 'EUNREACHABLE', message: 'redis 127.0.0.1:7002: cannot connect' }],
      }),
    );
    expect(text).toContain(', with --fix: INCOMPLETE\n');
    expect(text).toMatch(/^2 +127\.0\.0\.1:7002 +0 +0 +0 +0 +0 +redis 127\.0\.0\.1:7002: cannot connect$/m);
    expect(text).toContain('fix: moved 1, left 1, gone before moving 0\n');
    expect(text).toContain('  moved "m" slot 3: group 1 → group 2\n');
    expect(text).toContain('  left "x" slot 4 in group 1: slot-offline: slot 4 is offline: no group owns it\n');
    expect(text).toContain('  group 2: EUNREACHABLE redis 127.0.0.1:7002: cannot connect\n');
    expect(text).toContain('result: 1 key(s) and 0 slot(s) need attention; the check is incomplete (see errors)\n');
  });

  it('nothing found but not everything read', () => {
    expect(formatCheckReport(emptyResult({ complete: false }))).toContain('result: nothing wrong found, but the check is incomplete (see errors)\n');
  });
});

describe('describeProblem', () => {
  it('says what is wrong, what it does to clients, and what to do', () => {
    expect(describeProblem(problem({ kind: 'offline-with-keys', state: 'offline', from: null, to: null, slots: [7], keys: [{ group: 1, count: 3 }] }))).toBe(
      'slot(s) 7 offline, but keys of them exist (3 in group 1): clients cannot reach them; put the slots online in the group holding them (slot set), or delete the keys',
    );
    const failed = describeProblem(problem({ migration: { id: 'm-1', state: 'failed', error: 'BUSYKEY: key "k"' } }));
    expect(failed).toContain('slot(s) 4-6,9 migrating 1→2 with no active migration: their last migration m-1 is failed (BUSYKEY: key "k")');
    expect(failed).toContain('proxies serve them from group 2');
    expect(failed).toContain('resume m-1 (migration resume)');
    const byHand = describeProblem(problem({ state: 'pre_migrate' }));
    expect(byHand).toContain('no migration task has them');
    expect(byHand).toContain('proxies hold every request of them (clients wait)');
    expect(byHand).toContain('nothing will finish the move without an operator');
    expect(describeProblem(problem({ kind: 'transition-without-runner', migration: { id: 'm-2', state: 'running', error: null } }))).toContain(
      'for migration m-2 (running), but no migration runner is running',
    );
  });
});
