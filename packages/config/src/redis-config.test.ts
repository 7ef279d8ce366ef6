/**
 * The `redis-config` verbs and the /api/redis-config body as reborn-config parses them, with no
 * etcd or redis: what is accepted (under the canonical name), what is refused and in which
 * words (the CLI and the API share them), and the listing's text.
 */
import { describe, expect, it } from 'vitest';
import { PRODUCT_CONFIG_NAMES } from '@reborn/coordinator';
import { exitCodeOf } from './errors.js';
import { parseCommandLine } from './options.js';
import { SCHEMAS, validateBody } from './api/schema.js';
import { formatRedisConfig } from './cli-redis-config.js';

function failure(argv: string[]): [string, string, number] {
  try {
    parseCommandLine(argv, {});
  } catch (err) {
    return [(err as { code: string }).code, (err as Error).message, exitCodeOf(err)];
  }
  throw new Error(`parsed: ${argv.join(' ')}`);
}

const NOT_WHITELISTED = (name: string): string =>
  `redis parameter "${name}" is not product-wide: only ${PRODUCT_CONFIG_NAMES.join(', ')} (and their older ziplist/lua-time-limit names) are set through reborn; set others on each server`;

describe('redis-config verbs', () => {
  it('parse, with aliases and any case turned into the canonical name', () => {
    expect(parseCommandLine(['redis-config', 'list'], {}).command).toEqual({ verb: 'redis-config list' });
    expect(parseCommandLine(['redis-config', 'list', '--json'], {}).global.json).toBe(true);
    expect(parseCommandLine(['redis-config', 'set', 'notify-keyspace-events', 'KEA'], {}).command).toEqual({
      verb: 'redis-config set',
      param: 'notify-keyspace-events',
      value: 'KEA',
    });
    expect(parseCommandLine(['redis-config', 'set', 'HASH-MAX-ZIPLIST-ENTRIES', '128'], {}).command).toEqual({
      verb: 'redis-config set',
      param: 'hash-max-listpack-entries',
      value: '128',
    });
    // A negative number is a value, not an option; an empty value is a value too.
    expect(parseCommandLine(['redis-config', 'set', 'list-max-ziplist-size', '-2'], {}).command).toMatchObject({ param: 'list-max-listpack-size', value: '-2' });
    expect(parseCommandLine(['redis-config', 'set', 'notify-keyspace-events', ''], {}).command).toMatchObject({ value: '' });
    expect(parseCommandLine(['redis-config', 'unset', 'lua-time-limit'], {}).command).toEqual({ verb: 'redis-config unset', param: 'busy-reply-threshold' });
  });

  it('refuse bad input before any connection, naming the whitelist', () => {
    expect(failure(['redis-config', 'set', 'maxmemory', '1gb'])).toEqual(['EINVALID', NOT_WHITELISTED('maxmemory'), 1]);
    expect(failure(['redis-config', 'unset', 'requirepass'])).toEqual(['EINVALID', NOT_WHITELISTED('requirepass'), 1]);
    expect(failure(['redis-config', 'set', 'maxmemory-policy', 'x'.repeat(257)])).toEqual([
      'EINVALID',
      'the value of maxmemory-policy is 257 characters long: at most 256',
      1,
    ]);
    expect(failure(['redis-config', 'set', 'maxmemory-policy', 'a\nb'])).toEqual(['EINVALID', 'the value of maxmemory-policy contains a control character', 1]);
    expect(failure(['redis-config', 'set', 'maxmemory-policy'])).toEqual([
      'EUSAGE',
      'redis-config set: missing <value> (usage: reborn-config redis-config set <param> <value>)',
      2,
    ]);
    expect(failure(['redis-config', 'unset', 'a', 'b'])).toEqual(['EUSAGE', 'redis-config unset: unexpected argument "b" (usage: reborn-config redis-config unset <param>)', 2]);
    expect(failure(['redis-config', 'set', 'maxmemory-policy', 'noeviction', '--json'])).toEqual(['EUSAGE', 'redis-config set: option --json does not apply', 2]);
    expect(failure(['redis-config', 'get'])).toEqual(['EUSAGE', 'unknown verb "redis-config get"; run reborn-config --help', 2]);
  });
});

describe('PUT /api/redis-config/:param body', () => {
  it('takes {value: string} and names the bad field otherwise', () => {
    expect(validateBody({ value: 'allkeys-lru' }, SCHEMAS.redisConfig)).toEqual({ value: 'allkeys-lru' });
    expect(validateBody({ value: '' }, SCHEMAS.redisConfig)).toEqual({ value: '' });
    const bad = (body: unknown): string => {
      try {
        validateBody(body, SCHEMAS.redisConfig);
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad({})).toBe('invalid request body: field "value" is required');
    expect(bad({ value: 5 })).toBe('invalid request body: field "value" must be a string, got 5');
    expect(bad({ value: 'x', param: 'y' })).toBe('invalid request body: unknown field "param"');
    expect(bad({ value: 'x'.repeat(257) })).toMatch(/^invalid request body: field "value" must be a string of at most 256 characters/);
  });
});

describe('redis-config list output', () => {
  it('shows every allowed parameter, "-" where none is stored', () => {
    const text = formatRedisConfig({ params: { 'notify-keyspace-events': 'KEA' }, updatedAt: 'now', allowed: ['notify-keyspace-events', 'maxmemory-policy'] });
    expect(text).toBe('PARAMETER               VALUE\nnotify-keyspace-events  "KEA"\nmaxmemory-policy        -\n');
  });
});
