/**
 * reborn-config as an operator runs it: the binary as a child process against a real etcd and
 * real redis servers (group settings with an in-sync set written as the HA leader would). Asserts outputs, exit codes and every refusal word for word (scripts
 * depend on them), and what really happened on the servers (INFO replication). Migrations
 * through the CLI are in config-migrate.test.ts.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '@reborn/coordinator';
import { freePort, startEtcd, startRedis, stopAll, waitFor, type EtcdServer, type RedisServer } from '@reborn/testkit';
import { groupView } from './helpers.js';

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

const view = groupView;

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
  // One test per refusal: each starts the binary (seconds of CPU on a loaded two-core
  // machine), and all of them at once in one test could outlast its timeout.
  it.each<[string[], string, number?]>([
    [['group', 'remove', '7'], 'group 7 does not exist'],
    [['server', 'add', '7', '127.0.0.1:1'], 'group 7 does not exist'],
    [['slot', 'set', '0', '1024', '1'], 'slot 1024 is out of range 0..1023'],
    [['slot', 'info', '1024'], 'slot 1024 is out of range 0..1023'],
    [['slot', 'set', '10', '5', '1'], 'invalid slot range 10-5: from must not be greater than to'],
    [['slot', 'migrate', '10', '5', '1'], 'invalid slot range 10-5: from must not be greater than to'],
    [['server', 'add', '1', 'nohost'], 'invalid server address "nohost": want host:port'],
    [['group', 'add', '0'], 'invalid group id 0: want 1..9999'],
    [['frobnicate'], 'unknown verb "frobnicate"; run reborn-config --help', 2],
    [['slot', 'frob'], 'unknown verb "slot frob"; run reborn-config --help', 2],
    [['slot', 'set', '0', '1'], 'slot set: missing <gid> (usage: reborn-config slot set <from> <to> <gid>)', 2],
    [['group', 'add', '1', '--json'], 'group add: option --json does not apply', 2],
    [['migration', 'pause', 'm-nope'], 'migration m-nope does not exist'],
    [['proxy', 'offline', 'ghost'], 'proxy ghost is not registered'],
    [['slot', 'init'], 'no group has a master: add groups and servers first'],
    [['slot', 'rebalance'], 'no group has a master: add groups and servers first'],
    [['group', 'set', '7', '--min-in-sync', '0'], 'group 7 does not exist'],
  ])('%j says what is wrong, in one line, with the right exit status', async (args, message, code = 1) => {
    await refused(args, message, code);
  });

  it('etcd down: the reason names etcd, still one line', async () => {
    const closed = await freePort();
    const down = await cli(['group', 'list'], { etcd: `http://127.0.0.1:${closed}` });
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(
      `reborn-config: etcd at http://127.0.0.1:${closed} did not answer within 5 s (its endpoint is not reachable: is etcd running?): nothing was changed\n`,
    );
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
    expect(JSON.parse(await ok(['group', 'list', '--json']))).toEqual([view(1, [], 0), view(2, [], 0), view(3, [], 0)]);
    expect(await ok(['group', 'remove', '3'])).toBe('group 3 removed\n');
    expect(await ok(['group', 'list'])).toBe(
      'GROUP  SLOTS  MASTER  REPLICAS  IN-SYNC  MIN-IN-SYNC  WANT-REPLICAS  DURABLE-WRITES\n' +
        '1      0      -       -         -        -            -\n' +
        '2      0      -       -         -        -            -\n',
    );
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
      view(1, [{ addr: r0.addr, role: 'master' }, { addr: r1.addr, role: 'replica' }], 0),
      view(2, [{ addr: r2.addr, role: 'master' }], 0),
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
    expect(JSON.parse(await ok(['group', 'list', '--json']))[0]).toEqual(
      view(1, [{ addr: r0.addr, role: 'replica' }, { addr: r1.addr, role: 'master' }], 512),
    );
    expect(await ok(['slot', 'info', '0'])).toBe(`slot 0: online in group 1, master ${r1.addr}\n`);
  });
});

describe('group settings', () => {
  // After the promote above group 1 is r1 (master) + r0 (its replica) and owns 512 slots.
  it('group set sets, shows and clears; the in-sync set the HA leader wrote is kept', async () => {
    const [r0, r1] = [r[0]!, r[1]!];
    const store = await Store.open({ endpoints: [etcd.clientUrl], product });
    try {
      expect(await ok(['group', 'set', '1', '--min-in-sync', '1', '--want-replicas', '2'])).toBe('group 1: min-in-sync 1, want-replicas 2, in-sync 1/1\n');
      const servers: { addr: string; role: 'master' | 'replica' }[] = [{ addr: r0.addr, role: 'replica' }, { addr: r1.addr, role: 'master' }];
      expect(await store.getGroup(1)).toEqual({ id: 1, servers, minInSync: 1, wantReplicas: 2 });
      expect(await ok(['group', 'list'])).toMatch(new RegExp(`^1  +512  +${r1.addr}  +${r0.addr}  +1/1  +1  +2$`, 'm'));

      // The HA leader took r0 out of the in-sync set: below the floor, durable writes are refused.
      await store.putGroup({ id: 1, servers, inSync: [], minInSync: 1, wantReplicas: 2 });
      expect(await ok(['group', 'list'])).toMatch(new RegExp(`^1  +512  +${r1.addr}  +${r0.addr}\\(not in sync\\)  +0/1  +1  +2  +REFUSING$`, 'm'));
      expect(JSON.parse(await ok(['group', 'list', '--json']))[0]).toEqual(
        view(1, servers, 512, { inSync: [], inSyncManaged: true, minInSync: 1, wantReplicas: 2, durability: 'refusing' }),
      );
      // No floor: the master alone acknowledges them.
      expect(await cli(['group', 'set', '1', '--min-in-sync', 'none'])).toEqual({
        code: 0,
        stdout: 'group 1: min-in-sync none, want-replicas 2, in-sync 0/1 (DEGRADED: the master alone acknowledges durable writes)\n',
        stderr: '',
      });
      expect(await ok(['group', 'list'])).toMatch(new RegExp(`^1  +512  +${r1.addr}  +${r0.addr}\\(not in sync\\)  +0/1  +-  +2  +DEGRADED$`, 'm'));
      expect(await store.getGroup(1)).toEqual({ id: 1, servers, inSync: [], wantReplicas: 2 });

      // Back in sync; a floor above the replica count only with --force, and with a warning.
      await store.putGroup({ id: 1, servers, inSync: [r0.addr], wantReplicas: 2 });
      const why = 'min-in-sync 2 is more than the 1 replica(s) of group 1: durable writes to it would be refused until it has 2';
      await refused(['group', 'set', '1', '--min-in-sync', '2'], `${why}; add replicas first, or use --force`);
      expect(await cli(['group', 'set', '1', '--min-in-sync', '2', '--force'])).toEqual({
        code: 0,
        stdout: 'group 1: min-in-sync 2, want-replicas 2, in-sync 1/1 (REFUSING durable writes: 1 in sync, min-in-sync 2)\n',
        stderr: `warning: ${why}\n`,
      });
      expect(JSON.parse(await ok(['group', 'set', '1', '--min-in-sync', 'none', '--want-replicas', 'none', '--json']))).toEqual(
        view(1, servers, 512, { inSync: [r0.addr], inSyncManaged: true }),
      );
      expect(await store.getGroup(1)).toEqual({ id: 1, servers, inSync: [r0.addr] });
    } finally {
      await store.close();
    }
  });

  it.each<[string[], string, number?]>([
    [['group', 'set', '1'], 'group set: give --min-in-sync and/or --want-replicas (a count 0..16, or none to clear it)', 2],
    [['group', 'set', '1', '--min-in-sync', '17'], 'invalid --min-in-sync "17": want 0..16, or none to clear it'],
    [['group', 'set', '1', '--want-replicas', 'all'], 'invalid --want-replicas "all": want 0..16, or none to clear it'],
    [['group', 'set', '1', '--want-replicas'], 'option --want-replicas needs a value <n|none>', 2],
    [
      ['group', 'set', '1', '--min-in-sync', '1', '--want-replicas', '0'],
      'min-in-sync 1 is more than want-replicas 0 of group 1: durable writes would be refused once it has the replicas it wants; lower one of them, or use --force',
    ],
  ])('group set refuses %j in one line', async (args, message, code = 1) => {
    await refused(args, message, code);
  });
});

describe('proxies', () => {
  it('proxy list with nothing registered', async () => {
    expect(await ok(['proxy', 'list'])).toBe('no proxies\n');
    expect(JSON.parse(await ok(['proxy', 'list', '--json']))).toEqual([]);
  });
});
