/**
 * The decisions taken on an on-touch MIGRATE the target refused: which refusal it is (as redis
 * words it), and which requests the source may answer.
 */
import { describe, expect, it } from 'vitest';
import { BUSYKEY_RETRY_DELAYS_MS, classifyMigrateError, mayReadFromSource } from './migrate-refusals.js';

describe('classifyMigrateError', () => {
  it('tells BUSYKEY, OOM and anything else apart, as redis wraps the target\'s error', () => {
    expect(classifyMigrateError('ERR Target instance replied with error: BUSYKEY Target key name already exists.')).toBe('busykey');
    expect(classifyMigrateError("ERR Target instance replied with error: OOM command not allowed when used memory > 'maxmemory'.")).toBe('oom');
    expect(classifyMigrateError('IOERR error or timeout reading to target instance')).toBe('other');
    expect(classifyMigrateError('ERR Target instance replied with error: NOAUTH Authentication required.')).toBe('other');
  });

  it('retries BUSYKEY for about 1.5 s in all', () => {
    const total = BUSYKEY_RETRY_DELAYS_MS.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(1000);
    expect(total).toBeLessThanOrEqual(2000);
  });
});

describe('mayReadFromSource', () => {
  const req = (over: object): Parameters<typeof mayReadFromSource>[0] => ({ payload: Buffer.alloc(0), resolve: () => undefined, ...over });
  it('lets only plain reads go to the source', () => {
    expect(mayReadFromSource(req({}), false)).toBe(true);
    expect(mayReadFromSource(req({ write: false }), false)).toBe(true);
    expect(mayReadFromSource(req({ write: true }), false)).toBe(false);
    expect(mayReadFromSource(req({}), true)).toBe(false);
    expect(mayReadFromSource(req({ pinnedOnly: true }), false)).toBe(false);
    expect(mayReadFromSource(req({ pinned: { send: () => undefined } }), false)).toBe(false);
  });
});
