/**
 * reborn-config as an operator runs it: the binary as a child process against a real etcd and
 * real redis servers. Asserts outputs, exit codes and every refusal word for word (scripts
 * depend on them), and what really happened on the servers (INFO replication). Migrations
 * through the CLI are in config-migrate.test.ts.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startEtcd, startRedis, stopAll, waitFor, type EtcdServer, type RedisServer } from '@reborn/testkit';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const BIN = `${REPO}packages/config/bin/reborn-config.js`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let etcd: EtcdServer;
let r: RedisServer[];
const product = `cli${process.pid}`;

/** Runs `reborn-config --etcd <etcd> --product <p> ...args`; never rejects. */
function cli(args: readonly string[], opts: { product?: string; etcd?: string } = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REBORN_')) delete env[k];
  const argv = [BIN, '--etcd', opts.etcd ?? etcd.clientUrl, '--product', opts.product ?? product, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { env, cwd: REPO, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Succeeds, or fails the test with what the tool said. */
async function ok(args: readonly string[], opts?: { product?: string }): Promise<string> {
  const res = await cli(args, opts);
  if (res.code !== 0) throw new Error(`reborn-config ${args.join(' ')} → ${res.code}\n${res.stdout}${res.stderr}`);
  return res.stdout;
}

/** Fails with exactly one stderr line `reborn-config: <message>` and exit status `code`. */
async function refused(args: readonly string[], message: string, code = 1, opts?: { product?: string }): Promise<void> {
  const res = await cli(args, opts);
  expect({ args, code: res.code, stderr: res.stderr, stdout: res.stdout }).toEqual({
    args,
    code,
    stderr: `reborn-config: ${message}\n`,
    stdout: '',
  });
}

async function replication(s: RedisServer): Promise<Record<string, string>> {
  const c = s.client({ maxRetriesPerRequest: 1 });
  try {
    const text = await c.info('replication');
    return Object.fromEntries(text.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
  } finally {
    c.disconnect();
  }
}

beforeAll(async () => {
  // No 5 s delay before a diskless full sync: replicas come up at once.
  const redisOpts = { args: ['--repl-diskless-sync-delay', '0'] };
  [etcd, ...r] = await Promise.all([startEtcd(), ...Array.from({ length: 5 }, () => startRedis(redisOpts))]);
});

afterAll(stopAll);

describe('refusals on an empty product', () => {
  it('say what is wrong, in one line, with the right exit status', async () => {
    const closed = await freePort();
    await Promise.all([
      refused(['group', 'remove', '7'], 'group 7 does not exist'),
      refused(['server', 'add', '7', r[0]!.addr], 'group 7 does not exist'),
      refused(['slot', 'set', '0', '1024', '1'], 'slot 1024 is out of range 0..1023'),
      refused(['slot', 'info', '1024'], 'slot 1024 is out of range 0..1023'),
      refused(['slot', 'set', '10', '5', '1'], 'invalid slot range 10-5: from must not be greater than to'),
      refused(['slot', 'migrate', '10', '5', '1'], 'invalid slot range 10-5: from must not be greater than to'),
      refused(['server', 'add', '1', 'nohost'], 'invalid server address "nohost": want host:port'),
      refused(['group', 'add', '0'], 'invalid group id 0: want 1..9999'),
      refused(['frobnicate'], 'unknown verb "frobnicate"; run reborn-config --help', 2),
      refused(['slot', 'frob'], 'unknown verb "slot frob"; run reborn-config --help', 2),
      refused(['slot', 'set', '0', '1'], 'slot set: missing <gid> (usage: reborn-config slot set <from> <to> <gid>)', 2),
      refused(['group', 'add', '1', '--json'], 'group add: option --json does not apply', 2),
      refused(['migration', 'pause', 'm-nope'], 'migration m-nope does not exist'),
      refused(['proxy', 'offline', 'ghost'], 'proxy ghost is not registered'),
      refused(['slot', 'init'], 'no group has a master: add groups and servers first'),
      refused(['slot', 'rebalance'], 'no group has a master: add groups and servers first'),
    ]);
    // etcd down: the reason names etcd, still one line.
    const down = await cli(['group', 'list'], { etcd: `http://127.0.0.1:${closed}` });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(new RegExp(`^reborn-config: connect to etcd http://127.0.0.1:${closed}: .*\n$`));
  });

  it('--help prints the verbs and exits 0', async () => {
    const out = await ok(['--help']);
    for (const v of ['group add <gid>', 'server promote <gid> <host:port>', 'slot migrate <from> <to> <gid> [--detach]', 'dashboard']) {
      expect(out).toContain(v);
    }
  });
});

describe('groups, servers, slots', () => {
  it('group add / list / remove', async () => {
    expect(await ok(['group', 'add', '1'])).toBe('group 1 added\n');
    expect(await ok(['group', 'add', '2'])).toBe('group 2 added\n');
    expect(await ok(['group', 'add', '3'])).toBe('group 3 added\n');
    await refused(['group', 'add', '1'], 'group 1 already exists');
    expect(JSON.parse(await ok(['group', 'list', '--json']))).toEqual([
      { id: 1, servers: [], slots: 0 },
      { id: 2, servers: [], slots: 0 },
      { id: 3, servers: [], slots: 0 },
    ]);
    expect(await ok(['group', 'remove', '3'])).toBe('group 3 removed\n');
    expect(await ok(['group', 'list'])).toBe('GROUP  SLOTS  MASTER  REPLICAS\n1      0      -       -\n2      0      -       -\n');
  });

  it('server add: first is the master, the next a replica with replication really up', async () => {
    const [r0, r1, r2] = [r[0]!, r[1]!, r[2]!];
    expect(await ok(['server', 'add', '1', r0.addr])).toBe(`server ${r0.addr} added to group 1 as master\n`);
    await r0.client().set('before-replica', 'v1');
    expect(await ok(['server', 'add', '1', r1.addr])).toBe(
      `server ${r1.addr} added to group 1 as replica (replication link up, initial sync done)\n`,
    );
    const info = await replication(r1);
    expect(info).toMatchObject({ role: 'slave', master_host: r0.host, master_port: String(r0.port), master_link_status: 'up', master_sync_in_progress: '0' });
    expect(await r1.client().get('before-replica')).toBe('v1');
    expect(await ok(['server', 'add', '2', r2.addr])).toBe(`server ${r2.addr} added to group 2 as master\n`);

    const closed = await freePort();
    await Promise.all([
      refused(['server', 'add', '2', r1.addr], `server ${r1.addr} is already in group 1`),
      refused(['server', 'add', '1', r1.addr], `server ${r1.addr} is already in group 1`),
      refused(['server', 'add', '2', `127.0.0.1:${closed}`], `server 127.0.0.1:${closed} is unreachable: connect ECONNREFUSED 127.0.0.1:${closed}`),
      refused(['server', 'remove', '1', '127.0.0.1:1'], 'server 127.0.0.1:1 is not in group 1'),
      refused(['server', 'promote', '1', r0.addr], `server ${r0.addr} is already the master of group 1`),
    ]);
    expect(JSON.parse(await ok(['group', 'list', '--json']))).toEqual([
      { id: 1, servers: [{ addr: r0.addr, role: 'master' }, { addr: r1.addr, role: 'replica' }], slots: 0 },
      { id: 2, servers: [{ addr: r2.addr, role: 'master' }], slots: 0 },
    ]);
  });

  it('slot init / list / info / set', async () => {
    expect(await ok(['slot', 'init'])).toBe('slots assigned: 0-511 → group 1, 512-1023 → group 2\n');
    await refused(['slot', 'init'], '1024 slot(s) are already assigned (e.g. slot 0 online in group 1); use --force to reassign all of them');
    expect(await ok(['slot', 'list'])).toBe('0-511 online group 1\n512-1023 online group 2\n');
    expect(await ok(['slot', 'info', '600'])).toBe(`slot 600: online in group 2, master ${r[2]!.addr}\n`);
    expect(JSON.parse(await ok(['slot', 'info', '5', '--json']))).toEqual({ id: 5, state: 'online', group: 1, master: r[0]!.addr, migration: null });

    const set = await cli(['slot', 'set', '0', '9', '2']);
    expect(set).toEqual({ code: 0, stdout: 'slots 0-9 online in group 2 (no data was moved)\n', stderr: 'warning: 10 slot(s) changed owner without moving their data\n' });
    expect(JSON.parse(await ok(['slot', 'list', '--json']))).toEqual([
      { first: 0, last: 9, state: 'online', group: 2 },
      { first: 10, last: 511, state: 'online', group: 1 },
      { first: 512, last: 1023, state: 'online', group: 2 },
    ]);
    expect(await ok(['slot', 'set', '0', '9', '1'])).toBe('slots 0-9 online in group 1 (no data was moved)\n');
    await refused(['slot', 'set', '0', '9', '5'], 'group 5 does not exist');
    expect(await ok(['slot', 'rebalance'])).toBe('slots are balanced: nothing to move\n');
  });

  it('refuses to remove what is in use', async () => {
    await Promise.all([
      refused(['group', 'remove', '1'], 'group 1 still owns 512 slot(s) (0-511); move them to another group first'),
      refused(['server', 'remove', '2', r[2]!.addr], `server ${r[2]!.addr} is the master of group 2, which still owns 512 slot(s); move them away first`),
    ]);
    // A group without slots but with a replica: its master stays until the replica is gone.
    const [m, rep] = [r[3]!, r[4]!];
    await ok(['group', 'add', '3']);
    await ok(['server', 'add', '3', m.addr]);
    await ok(['server', 'add', '3', rep.addr]);
    await refused(['server', 'remove', '3', m.addr], `server ${m.addr} is the master of group 3, which still has 1 replica(s); remove them or promote one first`);
    expect(await ok(['server', 'remove', '3', rep.addr])).toBe(`server ${rep.addr} (replica) removed from group 3\n`);
    expect(await ok(['server', 'remove', '3', m.addr])).toBe(`server ${m.addr} (master) removed from group 3\n`);
    expect(await ok(['group', 'remove', '3'])).toBe('group 3 removed\n');
  });

  it('server promote switches master and replica over, in redis and in etcd', async () => {
    const [r0, r1] = [r[0]!, r[1]!];
    await r0.client().set('before-promote', 'v2');
    expect(await ok(['server', 'promote', '1', r1.addr])).toMatch(
      new RegExp(`^server ${r1.addr} is now the master of group 1; old master ${r0.addr} is its replica \\(caught up at offset \\d+\\)\n$`),
    );
    expect((await replication(r1))['role']).toBe('master');
    await waitFor(async () => {
      const i = await replication(r0);
      return i['role'] === 'slave' && i['master_port'] === String(r1.port) && i['master_link_status'] === 'up';
    }, { what: 'old master replicating from the new one' });
    expect(await r1.client().get('before-promote')).toBe('v2');
    expect(JSON.parse(await ok(['group', 'list', '--json']))[0]).toEqual({
      id: 1,
      servers: [{ addr: r0.addr, role: 'replica' }, { addr: r1.addr, role: 'master' }],
      slots: 512,
    });
    expect(await ok(['slot', 'info', '0'])).toBe(`slot 0: online in group 1, master ${r1.addr}\n`);
  });
});

describe('proxies', () => {
  it('proxy list with nothing registered', async () => {
    expect(await ok(['proxy', 'list'])).toBe('no proxies\n');
    expect(JSON.parse(await ok(['proxy', 'list', '--json']))).toEqual([]);
  });
});
