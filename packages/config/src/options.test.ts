import { describe, expect, it } from 'vitest';
import { parseCommandLine, tokenize, usage, VERBS } from './options.js';
import { exitCodeOf } from './errors.js';

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseCommandLine(argv, env);

/** The error a command line fails with: [code, message, exit status]. */
function failure(argv: string[], env: NodeJS.ProcessEnv = {}): [string, string, number] {
  try {
    parse(argv, env);
  } catch (err) {
    return [(err as { code: string }).code, (err as Error).message, exitCodeOf(err)];
  }
  throw new Error(`parsed: ${argv.join(' ')}`);
}

describe('global options', () => {
  it('defaults, env, flags (flags > env > defaults)', () => {
    expect(parse(['group', 'list']).global).toEqual({ etcd: ['http://127.0.0.1:2379'], product: 'default', json: false, logLevel: '', redisPassword: null, etcdWaitMs: 30_000 });
    const env = { REBORN_ETCD: 'http://a:1,http://b:2', REBORN_PRODUCT: 'envp', REBORN_REDIS_PASSWORD: 'envpw' };
    expect(parse(['group', 'list'], env).global).toMatchObject({ etcd: ['http://a:1', 'http://b:2'], product: 'envp', redisPassword: 'envpw' });
    expect(parse(['--etcd', 'http://c:3', 'group', 'list', '--product=flagp', '--json', '--redis-password', 'flagpw'], env).global).toMatchObject({
      etcd: ['http://c:3'],
      product: 'flagp',
      json: true,
      redisPassword: 'flagpw',
    });
  });

  it('--etcd-wait (or REBORN_ETCD_WAIT) bounds following a migration through a silent etcd', () => {
    expect(parse(['slot', 'migrate', '0', '9', '2', '--etcd-wait', '5']).global.etcdWaitMs).toBe(5000);
    expect(parse(['slot', 'rebalance', '--confirm', '--etcd-wait=120']).global.etcdWaitMs).toBe(120_000);
    expect(parseCommandLine(['slot', 'migrate', '0', '9', '2'], { REBORN_ETCD_WAIT: '7' }).global.etcdWaitMs).toBe(7000);
  });

  it('rejects bad globals with one message', () => {
    expect(failure(['--etcd', 'c:3', 'group', 'list'])).toEqual(['EINVALID', 'invalid etcd endpoint "c:3": want http://host:port', 1]);
    expect(failure(['--product', 'a/b', 'group', 'list'])).toEqual(['EINVALID', 'invalid product name "a/b": want [A-Za-z0-9_-]{1,64}', 1]);
    expect(failure(['--log-level', 'loud', 'group', 'list'])[1]).toBe(
      'invalid log level "loud": want one of fatal, error, warn, info, debug, trace, silent',
    );
  });
});

describe('verbs', () => {
  it('parses every verb of the CLI', () => {
    expect(parse(['group', 'add', '1']).command).toEqual({ verb: 'group add', gid: 1 });
    expect(parse(['group', 'remove', '9999']).command).toEqual({ verb: 'group remove', gid: 9999 });
    expect(parse(['group', 'list']).command).toEqual({ verb: 'group list' });
    expect(parse(['group', 'set', '2', '--min-in-sync', '1']).command).toEqual({ verb: 'group set', gid: 2, minInSync: 1, force: false });
    expect(parse(['group', 'set', '2', '--want-replicas=none', '--min-in-sync', '16', '--force']).command).toEqual({
      verb: 'group set',
      gid: 2,
      minInSync: 16,
      wantReplicas: null,
      force: true,
    });
    expect(parse(['server', 'add', '2', '127.0.0.1:6379']).command).toEqual({ verb: 'server add', gid: 2, addr: '127.0.0.1:6379' });
    expect(parse(['server', 'remove', '2', '[::1]:6379']).command).toEqual({ verb: 'server remove', gid: 2, addr: '[::1]:6379' });
    expect(parse(['server', 'promote', '2', 'redis-b:6380']).command).toEqual({ verb: 'server promote', gid: 2, addr: 'redis-b:6380' });
    expect(parse(['slot', 'init']).command).toEqual({ verb: 'slot init', force: false });
    expect(parse(['slot', 'init', '--force']).command).toEqual({ verb: 'slot init', force: true });
    expect(parse(['slot', 'set', '0', '1023', '3']).command).toEqual({ verb: 'slot set', first: 0, last: 1023, gid: 3 });
    expect(parse(['slot', 'list', '--json']).command).toEqual({ verb: 'slot list' });
    expect(parse(['slot', 'info', '7']).command).toEqual({ verb: 'slot info', id: 7 });
    expect(parse(['slot', 'migrate', '5', '5', '2']).command).toEqual({ verb: 'slot migrate', first: 5, last: 5, gid: 2, detach: false });
    expect(parse(['slot', 'migrate', '0', '9', '2', '--detach', '--throttle', '500', '--batch-slots=4']).command).toEqual({
      verb: 'slot migrate',
      first: 0,
      last: 9,
      gid: 2,
      detach: true,
      throttle: 500,
      batchSlots: 4,
    });
    expect(parse(['slot', 'rebalance']).command).toEqual({ verb: 'slot rebalance', confirm: false });
    expect(parse(['slot', 'rebalance', '--confirm']).command).toEqual({ verb: 'slot rebalance', confirm: true });
    expect(parse(['migration', 'list']).command).toEqual({ verb: 'migration list' });
    for (const op of ['pause', 'resume', 'cancel']) {
      expect(parse(['migration', op, 'm-1']).command).toEqual({ verb: `migration ${op}`, id: 'm-1' });
    }
    expect(parse(['proxy', 'list']).command).toEqual({ verb: 'proxy list' });
    expect(parse(['proxy', 'offline', 'host-19000']).command).toEqual({ verb: 'proxy offline', id: 'host-19000' });
    expect(parse(['dashboard']).command).toEqual({ verb: 'dashboard', httpAddr: '127.0.0.1:18087', token: null, allowHosts: [] });
    expect(parse(['dashboard', '--http-addr', '0.0.0.0:80', '--token', 'sekrit-token']).command).toEqual({
      verb: 'dashboard',
      httpAddr: '0.0.0.0:80',
      token: 'sekrit-token',
      allowHosts: [],
    });
    expect(parse(['dashboard'], { REBORN_DASHBOARD_TOKEN: 'from-env-token' }).command).toMatchObject({ token: 'from-env-token' });
    // --allow-host: repeatable and comma lists add up; the flag wins over the env.
    expect(parse(['dashboard', '--allow-host', 'a.example', '--allow-host=b.example,c', '--allow-host', ' d ']).command).toMatchObject({
      allowHosts: ['a.example', 'b.example', 'c', 'd'],
    });
    expect(parse(['dashboard'], { REBORN_DASHBOARD_ALLOW_HOST: 'env.example, two' }).command).toMatchObject({ allowHosts: ['env.example', 'two'] });
    expect(parse(['dashboard', '--allow-host', 'flag.example'], { REBORN_DASHBOARD_ALLOW_HOST: 'env.example' }).command).toMatchObject({
      allowHosts: ['flag.example'],
    });
  });

  it('--help anywhere asks for help, with the noun as topic', () => {
    expect(parse(['--help']).command).toEqual({ verb: 'help', topic: null });
    expect(parse(['slot', '--help']).command).toEqual({ verb: 'help', topic: 'slot' });
    expect(parse(['-h', 'slot', 'set']).command).toEqual({ verb: 'help', topic: 'slot set' });
    expect(usage('slot')).toContain('slot migrate <from> <to> <gid> [--detach]');
    expect(usage('slot')).not.toContain('group add');
    for (const v of VERBS) expect(usage()).toContain(v.verb);
    // Every variable parseCommandLine reads is listed, with the dashboard's two.
    for (const name of ['REBORN_ETCD', 'REBORN_PRODUCT', 'REBORN_LOG_LEVEL', 'REBORN_DASHBOARD_ADDR', 'REBORN_DASHBOARD_TOKEN', 'REBORN_DASHBOARD_ALLOW_HOST']) {
      expect(usage()).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
    }
  });
});

describe('refusals, word for word', () => {
  it.each([
    [['slot', 'set', '10', '5', '1'], 'EINVALID', 'invalid slot range 10-5: from must not be greater than to'],
    [['slot', 'set', '0', '1024', '1'], 'EINVALID', 'slot 1024 is out of range 0..1023'],
    [['slot', 'info', '-1'], 'EINVALID', 'slot -1 is out of range 0..1023'],
    [['slot', 'info', 'abc'], 'EINVALID', 'invalid slot "abc": want 0..1023'],
    [['group', 'add', '0'], 'EINVALID', 'invalid group id 0: want 1..9999'],
    [['group', 'add', 'x'], 'EINVALID', 'invalid group id "x": want 1..9999'],
    [['server', 'add', '1', 'nohost'], 'EINVALID', 'invalid server address "nohost": want host:port'],
    [['server', 'add', '1', 'h:70000'], 'EINVALID', 'invalid server address "h:70000": want host:port'],
    [['slot', 'migrate', '0', '1', '2', '--throttle', 'fast'], 'EINVALID', 'invalid throttle "fast": want keys per second ≥ 0 (0 = unlimited)'],
    [['slot', 'migrate', '0', '1', '2', '--batch-slots', '0'], 'EINVALID', 'invalid batch size 0: want 1..1024 slots'],
    [['slot', 'migrate', '0', '1', '2', '--etcd-wait', '0'], 'EINVALID', 'invalid etcd wait "0": want whole seconds ≥ 1'],
    [['slot', 'rebalance', '--etcd-wait', 'soon'], 'EINVALID', 'invalid etcd wait "soon": want whole seconds ≥ 1'],
    [['migration', 'pause', 'a/b'], 'EINVALID', 'invalid migration id "a/b"'],
    [['dashboard', '--http-addr', 'nowhere'], 'EINVALID', 'invalid --http-addr "nowhere": want host:port'],
    [['dashboard', '--token', 'short'], 'EINVALID', 'the dashboard token must be at least 8 characters'],
    [
      ['dashboard', '--http-addr', '0.0.0.0:18087'],
      'EINVALID',
      'refusing to serve the API on non-loopback address 0.0.0.0:18087 without a token: set --token (or REBORN_DASHBOARD_TOKEN), or listen on 127.0.0.1',
    ],
    [['dashboard', '--allow-host', 'http://x.example'], 'EINVALID', '--allow-host wants host names without port or scheme (like dash.example.com), got "http://x.example"'],
    [['dashboard', '--token', 'long-enough', '--token', 'again-long'], 'EUSAGE', 'option --token is given twice'],
    [['group', 'set', '1'], 'EUSAGE', 'group set: give --min-in-sync and/or --want-replicas (a count 0..16, or none to clear it)'],
    [['group', 'set', '1', '--force'], 'EUSAGE', 'group set: give --min-in-sync and/or --want-replicas (a count 0..16, or none to clear it)'],
    [['group', 'set', '1', '--min-in-sync', '17'], 'EINVALID', 'invalid --min-in-sync "17": want 0..16, or none to clear it'],
    [['group', 'set', '1', '--min-in-sync', '-1'], 'EINVALID', 'invalid --min-in-sync "-1": want 0..16, or none to clear it'],
    [['group', 'set', '1', '--want-replicas', 'two'], 'EINVALID', 'invalid --want-replicas "two": want 0..16, or none to clear it'],
    [['group', 'set', '0', '--want-replicas', '1'], 'EINVALID', 'invalid group id 0: want 1..9999'],
    [['frobnicate'], 'EUSAGE', 'unknown verb "frobnicate"; run reborn-config --help'],
    [['slot', 'frob'], 'EUSAGE', 'unknown verb "slot frob"; run reborn-config --help'],
    [['slot'], 'EUSAGE', 'unknown verb "slot"; run reborn-config --help'],
    [[], 'EUSAGE', 'missing verb; run reborn-config --help'],
    [['slot', 'set', '1', '2'], 'EUSAGE', 'slot set: missing <gid> (usage: reborn-config slot set <from> <to> <gid>)'],
    [['group', 'add'], 'EUSAGE', 'group add: missing <gid> (usage: reborn-config group add <gid>)'],
    [['group', 'list', 'extra'], 'EUSAGE', 'group list: unexpected argument "extra" (usage: reborn-config group list)'],
    [['group', 'add', '1', '--json'], 'EUSAGE', 'group add: option --json does not apply'],
    [['slot', 'list', '--force'], 'EUSAGE', 'slot list: option --force does not apply'],
    [['slot', 'list', '--etcd-wait', '5'], 'EUSAGE', 'slot list: option --etcd-wait does not apply'],
    [['group', 'list', '--frob'], 'EUSAGE', 'unknown option --frob; run reborn-config --help'],
    [['group', 'list', '-x'], 'EUSAGE', 'unknown option -x; run reborn-config --help'],
    [['slot', 'migrate', '0', '1', '2', '--throttle'], 'EUSAGE', 'option --throttle needs a value <keys/s>'],
    [['slot', 'init', '--force=yes'], 'EUSAGE', 'option --force takes no value'],
    [['slot', 'init', '--force', '--force'], 'EUSAGE', 'option --force is given twice'],
  ])('%j → %s %s', (argv, code, message) => {
    const [c, m, exit] = failure(argv);
    expect([c, m]).toEqual([code, message]);
    expect(exit).toBe(code === 'EUSAGE' ? 2 : 1);
  });
});

describe('tokenize', () => {
  it('splits flags and positionals; -- ends options; negative numbers are values', () => {
    const t = tokenize(['a', '--json', '--etcd=http://x:1', '-5', '--', '--not-a-flag']);
    expect(t.positionals).toEqual(['a', '-5', '--not-a-flag']);
    expect([...t.flags]).toEqual([
      ['json', true],
      ['etcd', 'http://x:1'],
    ]);
  });
});
