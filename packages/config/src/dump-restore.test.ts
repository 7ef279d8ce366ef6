/**
 * The copy lease against real redis-servers: the runner's dump/restore/settle scripts and the
 * proxies' on-touch script (coordinator's copy-lease.ts) keep out of each other's way.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { BIG_KEY_BYTES, COPYING_HASH, COPY_LEASE_MS, ON_TOUCH_MOVE_SCRIPT, WANTED_HASH, isInternalKey } from '@reborn/coordinator';
import { startRedis, type RedisServer } from '@reborn/testkit';
import { dumpKeys, expiredMarks, restoreKeys, settleKeys } from './dump-restore.js';

let a: RedisServer;
let b: RedisServer;
let src: Redis;
let dst: Redis;

beforeAll(async () => {
  [a, b] = await Promise.all([startRedis(), startRedis()]);
  src = a.client();
  dst = b.client();
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

beforeEach(async () => {
  await Promise.all([src.flushall(), dst.flushall()]);
});

/** A proxy's on-touch move of `keys` from a to b (`whole`: big keys too, the proxy's last resort). */
function touch(...keys: string[]): Promise<unknown> {
  return touchAs('0', keys);
}

function touchAs(whole: '0' | '1', keys: string[]): Promise<unknown> {
  return src.call('EVAL', ON_TOUCH_MOVE_SCRIPT, String(keys.length), ...keys, whole, '127.0.0.1', String(b.port), '', '0', '5000').catch((err: Error) => err.message);
}

const buf = (...keys: string[]): Buffer[] => keys.map((k) => Buffer.from(k));

describe('copy lease', () => {
  it('copies keys with their TTL, then deletes exactly the source copies it marked', async () => {
    await src.set('k1', 'v1');
    await src.set('k2', 'v2', 'PX', 60_000);
    await src.rpush('k3', 'x', 'y');
    const chunk = await dumpKeys(src, buf('k1', 'k2', 'k3', 'missing'), 1 << 20, 't1');
    expect(chunk.taken).toBe(4);
    expect(chunk.found.map((f) => f.key.toString())).toEqual(['k1', 'k2', 'k3']);
    expect(await src.hlen(COPYING_HASH)).toBe(3);
    const res = await restoreKeys(dst, chunk);
    expect(res.ok.map(String)).toEqual(['k1', 'k2', 'k3']);
    expect(await dst.get('k1')).toBe('v1');
    expect(await dst.pttl('k2')).toBeGreaterThan(50_000);
    expect(await dst.pttl('k1')).toBe(-1);
    expect(await dst.lrange('k3', 0, -1)).toEqual(['x', 'y']);
    expect(await settleKeys(src, res.ok, chunk.mark, true)).toBe(3);
    expect(await src.dbsize()).toBe(0); // keys and the marks hash gone
  });

  it('a proxy cannot move a key while the runner copies it, and moves it as before otherwise', async () => {
    await src.set('busy', '1');
    await src.set('free', '2');
    const chunk = await dumpKeys(src, buf('busy'), 1 << 20, 't2');
    expect(await touch('busy')).toMatch(/^TRYAGAIN/);
    expect(await touch('free')).toBe('OK');
    expect(await dst.get('free')).toBe('2');
    expect(await touch('gone')).toBe('NOKEY');
    await restoreKeys(dst, chunk);
    await settleKeys(src, buf('busy'), chunk.mark, true);
    expect(await touch('busy')).toBe('NOKEY');
    expect(await dst.get('busy')).toBe('1');
  });

  it('never overwrites a key on the target; dropping marks leaves the source copy', async () => {
    await src.set('dup', 'source');
    await dst.set('dup', 'target');
    const first = await dumpKeys(src, buf('dup'), 1 << 20, 't3');
    const res = await restoreKeys(dst, first);
    expect(res.busy.map(String)).toEqual(['dup']);
    expect(await dst.get('dup')).toBe('target');
    expect(await settleKeys(src, buf('dup'), first.mark, false)).toBe(0);
    expect(await src.get('dup')).toBe('source');
    expect(await src.exists(COPYING_HASH)).toBe(0);
  });

  it('after its lease, a chunk settles only the keys still carrying its own mark', async () => {
    await src.mset('mine', '1', 'theirs', '2');
    const lapsed = `${Date.now() - 1}:old`;
    await src.hset(COPYING_HASH, 'mine', lapsed, 'theirs', `${Date.now() - 1}:other`);
    expect(await settleKeys(src, buf('mine', 'theirs'), lapsed, true)).toBe(1);
    expect(await src.exists('mine')).toBe(0);
    expect(await src.get('theirs')).toBe('2');
    expect(await src.hkeys(COPYING_HASH)).toEqual(['theirs']);
  });

  it('refuses a restore once the lease is nearly over, and lists lapsed marks', async () => {
    await src.set('late', 'v');
    const chunk = await dumpKeys(src, buf('late'), 1 << 20, 't6');
    const err = await restoreKeys(dst, { ...chunk, restoreBy: Date.now() - 1 }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^LEASE/);
    expect(await dst.exists('late')).toBe(0);
    expect(await expiredMarks(src, 10)).toEqual([]);
    // A mark whose deadline passed, as a dead runner leaves it.
    await src.hset(COPYING_HASH, 'late', `${Date.now() - COPY_LEASE_MS}:dead`);
    const lapsed = await expiredMarks(src, 10);
    expect(lapsed.map(([k, m]) => [k.toString(), m.endsWith(':dead')])).toEqual([['late', true]]);
    // Lapsed: proxies move the key again.
    expect(await touch('late')).toBe('OK');
  });

  it('stops a chunk at the byte cap, always taking one key', async () => {
    await src.set('big1', 'x'.repeat(10_000));
    await src.set('big2', 'x'.repeat(10_000));
    const chunk = await dumpKeys(src, buf('big1', 'big2'), 100, 't7');
    expect(chunk.taken).toBe(1);
    expect(chunk.found.map(String)).toHaveLength(1);
    expect(await src.hexists(COPYING_HASH, 'big2')).toBe(0);
  });

  it('a proxy leaves a big key to the runner (asking for it), unless as its last resort', async () => {
    await src.set('big', 'x'.repeat(BIG_KEY_BYTES + 1024));
    await src.set('small', 'y');
    expect(await touch('small', 'big')).toMatch(/^BIGKEY/);
    expect(await src.hkeys(WANTED_HASH)).toEqual(['big']);
    expect(await src.exists('small', 'big')).toBe(2); // nothing moved
    expect(await touchAs('1', ['small', 'big'])).toBe('OK');
    expect(await dst.strlen('big')).toBe(BIG_KEY_BYTES + 1024);
  });

  it('recognises the product\'s own keys', () => {
    expect(isInternalKey(Buffer.from(COPYING_HASH))).toBe(true);
    expect(isInternalKey(Buffer.from(WANTED_HASH))).toBe(true);
    expect(isInternalKey(Buffer.from('__reborn'))).toBe(false);
    expect(isInternalKey(Buffer.from('user:1'))).toBe(false);
  });
});
