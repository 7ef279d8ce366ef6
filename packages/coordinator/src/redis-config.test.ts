/**
 * The product-wide parameter whitelist and record (redis-config.ts) without etcd or redis:
 * canonical names, CONFIG GET's glob as redis matches it, the record's parse and encoding,
 * and the notify-keyspace-events rule that keeps the stray watch's flags.
 */
import { describe, expect, it } from 'vitest';
import {
  PRODUCT_CONFIG_NAMES,
  canonicalConfigParam,
  configGetArgs,
  encodeProductConfig,
  enforceConfig,
  globMatch,
  keyspaceEventsToSet,
  parseProductConfig,
  RedisConfigRefusedError,
  type ServerConfigAccess,
} from './redis-config.js';

describe('the whitelist', () => {
  it('maps names and aliases in any case to the Redis 7 name, and nothing else', () => {
    expect(canonicalConfigParam('hash-max-ziplist-entries')).toBe('hash-max-listpack-entries');
    expect(canonicalConfigParam('LUA-TIME-LIMIT')).toBe('busy-reply-threshold');
    expect(canonicalConfigParam('notify-keyspace-events')).toBe('notify-keyspace-events');
    for (const name of ['requirepass', 'masterauth', 'dir', 'maxmemory', 'save', 'appendonly', 'bind', '']) expect(canonicalConfigParam(name)).toBeNull();
    expect(new Set(PRODUCT_CONFIG_NAMES).size).toBe(PRODUCT_CONFIG_NAMES.length);
  });
});

describe('CONFIG GET patterns', () => {
  it('match like redis (case-insensitive glob with classes and escapes)', () => {
    expect(globMatch('hash-max-*', 'hash-max-listpack-entries')).toBe(true);
    expect(globMatch('HASH-MAX-*', 'hash-max-listpack-entries')).toBe(true);
    expect(globMatch('*-max-?iplist-*', 'zset-max-ziplist-value')).toBe(true);
    expect(globMatch('[hz]set-*', 'zset-max-listpack-value')).toBe(true);
    expect(globMatch('[ab]set-*', 'zset-max-listpack-value')).toBe(false);
    expect(globMatch('[a-z]set-*', 'zset-max-listpack-value')).toBe(true);
    expect(globMatch('[^z]set-*', 'zset-max-listpack-value')).toBe(false);
    expect(globMatch('lfu\\-*', 'lfu-log-factor')).toBe(true);
    expect(globMatch('lfu', 'lfu-log-factor')).toBe(false);
    expect(globMatch('*', '')).toBe(true);
  });

  it('a pattern built to backtrack (many stars) is answered, not exponentially retried', () => {
    // Without memoising failed positions this takes longer than the universe has left (about
    // 2^40 tries); a hang here is the bug.
    const evil = '*?'.repeat(40) + '*#';
    expect(globMatch(evil, 'hash-max-listpack-entries-and-a-bit-more-text')).toBe(false);
    expect(globMatch('*?'.repeat(10) + '*s', 'hash-max-listpack-entries')).toBe(true);
    expect(configGetArgs([evil, evil, evil])).toEqual([]);
  });

  it('ask redis only for whitelisted names: plain names as given, patterns expanded', () => {
    expect(configGetArgs(['requirepass', 'dir', 'maxmemory'])).toEqual([]);
    expect(configGetArgs(['MAXMEMORY-POLICY', 'maxmemory-policy', 'maxmemory'])).toEqual(['MAXMEMORY-POLICY']);
    expect(configGetArgs(['maxmemory*'])).toEqual(['maxmemory-policy', 'maxmemory-samples']);
    expect(configGetArgs(['hash-*'])).toEqual(['hash-max-listpack-entries', 'hash-max-ziplist-entries', 'hash-max-listpack-value', 'hash-max-ziplist-value']);
    const all = configGetArgs(['*']);
    expect(all).toContain('lua-time-limit');
    expect(all.every((n) => canonicalConfigParam(n) !== null)).toBe(true);
  });
});

describe('the stored record', () => {
  it('round-trips in whitelist order and refuses what the whitelist does not hold', () => {
    const text = encodeProductConfig({ params: { 'maxmemory-policy': 'allkeys-lru', 'notify-keyspace-events': 'KEA' }, updatedAt: '2024-01-01T00:00:00Z' });
    expect(text).toBe('{"params":{"notify-keyspace-events":"KEA","maxmemory-policy":"allkeys-lru"},"updatedAt":"2024-01-01T00:00:00Z"}');
    expect(parseProductConfig(JSON.parse(text))).toEqual({ params: { 'notify-keyspace-events': 'KEA', 'maxmemory-policy': 'allkeys-lru' }, updatedAt: '2024-01-01T00:00:00Z' });
    const bad = (v: unknown): string => {
      try {
        parseProductConfig(v, 'k');
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('parsed');
    };
    expect(bad([])).toBe('k: want a JSON object');
    expect(bad({ params: { requirepass: 'x' }, updatedAt: 'now' })).toBe('k: "requirepass" is not a canonical product-wide parameter');
    expect(bad({ params: { 'hash-max-ziplist-entries': '1' }, updatedAt: 'now' })).toBe('k: "hash-max-ziplist-entries" is not a canonical product-wide parameter');
    expect(bad({ params: { 'maxmemory-samples': 5 }, updatedAt: 'now' })).toBe('k: the value of maxmemory-samples must be a string, got 5');
    expect(bad({ params: {} })).toBe('k: updatedAt must be a non-empty string');
  });
});

describe('applying to one server', () => {
  it('keeps E and n of notify-keyspace-events where the stray watch needs them', () => {
    expect(keyspaceEventsToSet('KEA', 'AKE')).toBe('KEA');
    expect(keyspaceEventsToSet('KEA', 'En')).toBe('KEAn');
    expect(keyspaceEventsToSet('', 'gEn')).toBe('En');
    expect(keyspaceEventsToSet('Kg', undefined, { keepNewKeyEvents: true })).toBe('KgEn');
  });

  it('sets all at once, and one by one when the server refuses one of them', async () => {
    const calls: string[][] = [];
    const access: ServerConfigAccess = {
      get: async () => new Map([['notify-keyspace-events', '']]),
      set: async (addr, pairs) => {
        calls.push(pairs.flat());
        if (pairs.some(([name]) => name === 'set-max-listpack-entries')) throw new RedisConfigRefusedError(addr, "ERR Unknown option or number of arguments for CONFIG SET - 'set-max-listpack-entries'");
      },
    };
    expect(await enforceConfig(access, 'h:1', { 'maxmemory-samples': '7' })).toEqual([]);
    expect(calls).toEqual([['maxmemory-samples', '7']]);
    calls.length = 0;
    const refused = await enforceConfig(access, 'h:1', { 'notify-keyspace-events': 'KEA', 'set-max-listpack-entries': '9' });
    expect(refused).toEqual([{ param: 'set-max-listpack-entries', message: "ERR Unknown option or number of arguments for CONFIG SET - 'set-max-listpack-entries'" }]);
    expect(calls).toEqual([
      ['notify-keyspace-events', 'KEA', 'set-max-listpack-entries', '9'],
      ['notify-keyspace-events', 'KEA'],
      ['set-max-listpack-entries', '9'],
    ]);
  });
});
