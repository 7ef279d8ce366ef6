/**
 * A restarted master is never a sync source, end to end with real redis-server, etcd and
 * reborn-agent processes.
 *
 * a. The mechanism (repl-guard.ts): the guard gives master M and replica R the reborn-repl
 *    user at runtime and makes R log in as it. M is killed (-9), its dir wiped, and started
 *    again empty on the same port: R's AUTH fails, its link stays down and it keeps every key;
 *    the guard's verdict on M is "fail over". The same steps with R on the default user (the
 *    control) wipe R — so the test can fail. And a replica restarted from the agent's own
 *    config file cannot log in to an empty master at all (the file holds no masterauth);
 *    with the masterauth line the file used to have, it is wiped (control).
 * b. The supervisor: M and R started through the agent's API (its defaults: AOF on), a group
 *    M+R in etcd, the agent running HA. kill -9 of M: the supervisor holds M's restart
 *    ("waiting for failover before restart"), the HA leader promotes R, then the supervisor
 *    restarts M with --replicaof R; every key is on both. A crashed replica comes back as a
 *    replica straight away.
 */
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store, type GroupInfo } from '@reborn/coordinator';
import { RedisAdmin, parseInfo, replicaOf } from '@reborn/coordinator/admin';
import { REPL_USER, ReplicationGuard, ensureReplicationSecret, redisConfigFile, type GroupGuardResult } from '@reborn/agent';
import { ManagedProcess, freePort, startEtcd, startRedis, stopAll, tempDir, waitFor, type EtcdServer, type RedisServer } from '@reborn/testkit';
import { killApps, startAgent, type AgentProcess } from './agent-helpers.js';

const PW = 'restart-safety-pw';
const KEYS = 500;
const FAST_SYNC = ['--repl-diskless-sync-delay', '0'];

let etcd: EtcdServer;
const stores: Store[] = [];
const admins: RedisAdmin[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
});

afterAll(async () => {
  for (const a of admins) a.close();
  for (const s of stores) await s.close();
  await stopAll();
});

async function openStore(product: string): Promise<Store> {
  const s = await Store.open({ endpoints: [etcd.clientUrl], product });
  stores.push(s);
  return s;
}

function newAdmin(): RedisAdmin {
  const a = new RedisAdmin({ password: PW, errors: { timeout: (m) => new Error(m), command: (m) => new Error(m) } });
  admins.push(a);
  return a;
}

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, password: PW, maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => null, lazyConnect: true });
  c.on('error', () => undefined);
  return c;
}

/** Runs `fn` on a fresh connection to `port`. */
async function on<T>(port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = client(port);
  try {
    await c.connect();
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

async function writeKeys(port: number, prefix: string, n = KEYS): Promise<void> {
  await on(port, async (c) => {
    const p = c.pipeline();
    for (let i = 0; i < n; i++) p.set(`${prefix}${i}`, `v${i}`);
    await p.exec();
  });
}

const dbsize = (port: number): Promise<number> => on(port, (c) => c.dbsize());

/** Every key `${prefix}0..n-1` holds its value on the server at `port`. */
async function holdsAll(port: number, prefix: string, n = KEYS): Promise<boolean> {
  const values = await on(port, (c) => c.mget(...Array.from({ length: n }, (_, i) => `${prefix}${i}`)));
  return values.every((v, i) => v === `v${i}`);
}

/** INFO replication of the server at `port` (with the password), as a map. */
async function replication(port: number): Promise<Map<string, string>> {
  const text = await on(port, (c) => c.info('replication'));
  return new Map(Object.entries(parseInfo(text)).map(([k, v]) => [k, v.trim()]));
}

async function linkedTo(port: number, masterPort: number): Promise<boolean> {
  const r = await replication(port).catch(() => null);
  return r?.get('role') === 'slave' && r.get('master_port') === String(masterPort) && r.get('master_link_status') === 'up';
}

/** How many lines of `text` match `re`. */
const count = (text: string, re: RegExp): number => text.split('\n').filter((l) => re.test(l)).length;

// -------------------------------------------------------------------------------------------

describe('a. a master restarted empty cannot feed a sync', () => {
  /** M and R (replicating from M, all keys there); with the guard, R logs in as reborn-repl. */
  async function pair(guarded: boolean): Promise<{ m: RedisServer; r: RedisServer; guard: ReplicationGuard | null; group: GroupInfo }> {
    const [m, r] = await Promise.all([startRedis({ password: PW, args: FAST_SYNC }), startRedis({ password: PW, args: FAST_SYNC })]);
    await writeKeys(m.port, 'a:');
    await on(r.port, (c) => replicaOf(c, m.addr, PW)); // as reborn-config does: the default user
    await waitFor(async () => (await linkedTo(r.port, m.port)) && (await dbsize(r.port)) === KEYS, { timeoutMs: 20_000, what: 'R synced from M' });
    const group: GroupInfo = { id: 1, servers: [{ addr: m.addr, role: 'master' }, { addr: r.addr, role: 'replica' }] };
    if (!guarded) return { m, r, guard: null, group };

    const store = await openStore(`rs${Math.random().toString(36).slice(2, 8)}`);
    const admin = newAdmin();
    const guard = await ReplicationGuard.open(store, { admin, logger: pino({ level: 'silent' }), metrics: { registry: new Registry() }, timeoutMs: 2000 });
    const first = await guard.checkGroup(group);
    expect(first).toMatchObject({ verdict: { action: 'trust' }, provisioned: [m.addr, r.addr], pointed: [r.addr], errors: [] });
    // The next round has nothing to do: the verdict is kept for this process of M.
    expect(await guard.checkGroup(group)).toMatchObject({ verdict: { action: 'trust', reason: 'trusted earlier' }, provisioned: [], pointed: [] });
    // R reconnects, now as reborn-repl (a partial resync: same stream), and keeps syncing.
    await on(r.port, (c) => c.call('CLIENT', 'KILL', 'TYPE', 'master'));
    await waitFor(
      async () => (await on(m.port, (c) => c.call('CLIENT', 'LIST', 'TYPE', 'replica')) as string).includes(`user=${REPL_USER}`),
      { timeoutMs: 20_000, what: 'R connected to M as reborn-repl' },
    );
    await writeKeys(m.port, 'b:', 10);
    await waitFor(async () => (await dbsize(r.port)) === KEYS + 10, { what: 'R replicating through the reborn-repl login' });
    return { m, r, guard, group };
  }

  /** kill -9 of M, its dir wiped, started again (empty) on the same port. */
  async function restartEmpty(m: RedisServer): Promise<void> {
    await m.kill('SIGKILL');
    for (const f of readdirSync(m.dir)) rmSync(join(m.dir, f), { recursive: true, force: true });
    await m.restart();
    expect(await dbsize(m.port)).toBe(0);
  }

  it('with the replication user: R keeps every key, its link stays down on an AUTH error; the guard says fail over', async () => {
    const { m, r, guard, group } = await pair(true);
    const authErrors = count(r.logTail(500), /Unable to AUTH to MASTER/);
    await restartEmpty(m);
    // Two refused attempts after the restart: each retry meets the same user-less master.
    await waitFor(() => count(r.logTail(500), /Unable to AUTH to MASTER: -WRONGPASS/) >= authErrors + 2, { timeoutMs: 20_000, what: 'R refused twice by the restarted M' });
    const info = await replication(r.port);
    expect(info.get('master_link_status')).toBe('down');
    expect(await dbsize(r.port)).toBe(KEYS + 10);
    expect(await holdsAll(r.port, 'a:')).toBe(true);
    expect(await dbsize(m.port)).toBe(0);
    expect((await replication(m.port)).get('connected_slaves')).toBe('0');

    const verdict: GroupGuardResult = await guard!.checkGroup(group);
    expect(verdict).toMatchObject({ verdict: { action: 'fail-over', restarted: true }, provisioned: [] });
    expect(verdict.verdict!.reason).toMatch(/offset \d+ is below in-sync replica/);
    // Kept for this process: the user is not given to it on a later round either.
    expect(await guard!.checkGroup(group)).toMatchObject({ verdict: { action: 'fail-over' }, provisioned: [] });
    expect(await on(m.port, (c) => c.call('ACL', 'GETUSER', REPL_USER))).toBeNull();
  });

  it('control: on the default user, the same restart wipes R', async () => {
    const { m, r } = await pair(false);
    await restartEmpty(m);
    await waitFor(async () => (await linkedTo(r.port, m.port)) && (await dbsize(r.port)) === 0, { timeoutMs: 20_000, what: 'R resynced from the empty M' });
    expect(await dbsize(r.port)).toBe(0);
  });

  /**
   * A server started from the agent's config file (`conf` lines), first alone with its keys,
   * then restarted (as the supervisor would, AOF kept) as a replica of an empty master.
   */
  async function restartFromConfig(conf: string): Promise<{ port: number; logs: () => string; stop: () => Promise<void> }> {
    const { dir } = await tempDir('reborn-rs-conf-');
    const file = join(dir, 'reborn-redis.conf');
    writeFileSync(file, conf, { mode: 0o600 });
    const empty = await startRedis({ password: PW, args: FAST_SYNC });
    const port = await freePort();
    let proc: ManagedProcess | null = null;
    const start = async (extra: string[]): Promise<void> => {
      proc = new ManagedProcess({
        name: `redis-server ${port} (agent config)`,
        command: 'redis-server',
        args: [file, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--logfile', '', '--appendfsync', 'always', ...FAST_SYNC, ...extra],
      });
      await proc.waitReady('PING', async () => (await on(port, (c) => c.ping()).catch(() => '')) === 'PONG', 10_000);
    };
    await start([]);
    await writeKeys(port, 'c:');
    await proc!.terminate('SIGKILL');
    // Back from its AOF with every key — the safe case shows it; a replica that can log in
    // may already be resyncing by the time anyone looks.
    await start(['--replicaof', '127.0.0.1', String(empty.port)]);
    return { port, logs: () => proc!.lines.join('\n'), stop: () => proc!.terminate('SIGKILL').then(() => undefined) };
  }

  it("a replica restarted from the agent's config file cannot log in to an empty master; with a masterauth line it is wiped", async () => {
    const conf = redisConfigFile(PW);
    expect(conf).not.toMatch(/masterauth/);

    const safe = await restartFromConfig(conf);
    await waitFor(() => count(safe.logs(), /Unexpected reply to PSYNC from master: -NOAUTH/) >= 2, { timeoutMs: 20_000, what: 'two refused sync attempts' });
    expect(await dbsize(safe.port)).toBe(KEYS);
    expect((await replication(safe.port)).get('master_link_status')).toBe('down');
    await safe.stop();

    // Control: the file as it was (masterauth = the default user's password).
    const old = await restartFromConfig(`${conf}masterauth "${PW}"\n`);
    await waitFor(async () => (await replication(old.port)).get('master_link_status') === 'up' && (await dbsize(old.port)) === 0, {
      timeoutMs: 20_000,
      what: 'the replica wiped by a sync from the empty master',
    });
    await old.stop();
  });
});

// -------------------------------------------------------------------------------------------

describe('b. the supervisor never restarts a crashed master in place while it has replicas', () => {
  let agent: AgentProcess;
  const appPids = new Set<number>();

  afterAll(async () => {
    if (agent?.running) {
      const apps = (await agent.api('GET', '/api/apps').catch(() => ({ body: [] }))).body as { id: string; pid: number | null }[];
      for (const a of apps) {
        if (a.pid) appPids.add(a.pid);
        await agent.api('POST', '/api/stop', { id: a.id }).catch(() => undefined);
      }
      await agent.stop();
    }
    killApps(appPids);
  });

  async function app(id: string): Promise<Record<string, any>> {
    const r = await agent.api('GET', '/api/apps');
    const a = (r.body as Record<string, any>[]).find((x) => x.id === id);
    if (a?.pid) appPids.add(a.pid);
    return a!;
  }

  it('kill -9 of the master: held until HA fails over, then back as a replica of the new master; no key lost', async () => {
    const product = `rs${Math.random().toString(36).slice(2, 8)}`;
    const store = await openStore(product);
    // A 5 s down window: the hold (about a second after the kill) shows well before the
    // failover even on a loaded machine.
    agent = await startAgent({ etcd: etcd.clientUrl, product, args: ['--redis-password', PW, '--ha', '--down-after-ms', '5000', '--dead-down-after-ms', '5000'] });
    const [mPort, rPort] = [await freePort(), await freePort()];
    for (const port of [mPort, rPort]) {
      const res = await agent.api('POST', '/api/start_redis', { port, args: FAST_SYNC });
      expect(res.status).toBe(201);
      appPids.add(res.body.pid);
    }
    const [mAddr, rAddr] = [`127.0.0.1:${mPort}`, `127.0.0.1:${rPort}`];
    const [mId, rId] = [`redis-${mPort}`, `redis-${rPort}`];

    // The replication user as the HA leader's guard sets it up: secret in etcd, user on both,
    // R logging in as it.
    await on(rPort, (c) => replicaOf(c, mAddr, PW));
    await waitFor(() => linkedTo(rPort, mPort), { timeoutMs: 20_000, what: 'R linked to M' });
    const group: GroupInfo = { id: 1, servers: [{ addr: mAddr, role: 'master' }, { addr: rAddr, role: 'replica' }] };
    await store.putGroup(group);
    const guard = await ReplicationGuard.open(store, { admin: newAdmin(), logger: pino({ level: 'silent' }), metrics: { registry: new Registry() }, timeoutMs: 2000 });
    expect(await guard.checkGroup(group)).toMatchObject({ verdict: { action: 'trust' }, provisioned: [mAddr, rAddr], pointed: [rAddr] });
    expect(await ensureReplicationSecret(store)).toBe(guard.login.password);

    await writeKeys(mPort, 'k:');
    await waitFor(async () => (await dbsize(rPort)) === KEYS, { timeoutMs: 20_000, what: 'R has every key' });

    const killed = await app(mId);
    const killedAt = Date.now();
    process.kill(killed.pid, 'SIGKILL');

    // Held, not restarted in place…
    const held = await waitFor(() => agent.records().find((r) => r['msg'] === 'waiting for failover before restart' && r['app'] === mId), {
      timeoutMs: 20_000,
      what: 'the supervisor to hold the restart of M',
    });
    expect(held['reason']).toMatch(new RegExp(`master of group 1 in etcd, with replica\\(s\\) ${rAddr}`));
    // …until etcd names R master (the HA leader's failover)…
    await waitFor(async () => (await store.getGroup(1))?.servers[0]?.addr === rAddr, { timeoutMs: 30_000, what: 'HA to fail group 1 over to R' });
    const switchedAt = Date.now();
    // …then back as R's replica, holding every key, as does R.
    const back = await waitFor(async () => {
      const a = await app(mId);
      return a.state === 'running' && a.pid !== killed.pid ? a : null;
    }, { timeoutMs: 20_000, what: 'M restarted' });
    expect(back).toMatchObject({ replicaOf: rAddr, restarts: 1 });
    await waitFor(async () => (await linkedTo(mPort, rPort)) && (await holdsAll(mPort, 'k:')), { timeoutMs: 30_000, what: 'M synced from R' });
    const syncedAt = Date.now();
    expect(await holdsAll(rPort, 'k:')).toBe(true);
    expect(await dbsize(rPort)).toBe(KEYS);
    // It logged in to R as reborn-repl (the supervisor set that login at runtime).
    expect(await on(rPort, (c) => c.call('CLIENT', 'LIST', 'TYPE', 'replica'))).toMatch(new RegExp(`user=${REPL_USER}`));

    const recs = agent.records();
    const restarted = recs.filter((r) => r['app'] === mId && typeof r['msg'] === 'string' && (r['msg'] as string).startsWith('app restarted'));
    expect(restarted).toEqual([expect.objectContaining({ msg: 'app restarted as a replica', replicaOf: rAddr })]);
    const failover = recs.find((r) => typeof r['msg'] === 'string' && (r['msg'] as string).startsWith('failover: group 1'));
    expect(failover).toBeDefined();
    expect(Number(held['time'])).toBeLessThanOrEqual(Number(failover!['time']));
    expect(Number(failover!['time'])).toBeLessThanOrEqual(Number(restarted[0]!['time']));
    const after = (t: number): string => `${((t - killedAt) / 1000).toFixed(2)} s`;
    console.log(
      `[agent-restart-safety] kill -9 of the master → hold logged ${after(Number(held['time']))}, ` +
        `etcd switched ${after(switchedAt)}, restarted as a replica ${after(Number(restarted[0]!['time']))}, ` +
        `synced with all ${KEYS} keys ${after(syncedAt)} (down window 5 s)`,
    );
    // Its log: the one start after the kill carried --replicaof R (never a master).
    const starts = readFileSync(back.logFile, 'utf8').split('\n').filter((l) => l.includes('reborn-agent starts:'));
    expect(starts).toHaveLength(2);
    expect(starts[1]).toContain(`--replicaof 127.0.0.1 ${rPort}`);
    const metrics = (await agent.api('GET', '/metrics')).body as string;
    const holds = new RegExp(`^reborn_agent_restart_holds_total\\{app="${mId}",reason="failover"[^}]*\\} (\\d+)$`, 'm').exec(metrics);
    expect(Number(holds?.[1])).toBeGreaterThanOrEqual(1);

    // A crashed replica needs no failover: straight back as a replica of the master.
    process.kill(back.pid, 'SIGKILL');
    const again = await waitFor(async () => {
      const a = await app(mId);
      return a.state === 'running' && a.pid !== back.pid ? a : null;
    }, { timeoutMs: 20_000, what: 'the replica restarted' });
    expect(again).toMatchObject({ replicaOf: rAddr, restarts: 2 });
    await waitFor(async () => (await linkedTo(mPort, rPort)) && (await holdsAll(mPort, 'k:')), { timeoutMs: 30_000, what: 'the replica synced again' });
    expect((await app(rId)).restarts).toBe(0);
  }, 120_000);
});
