/**
 * The in-sync replica set as the proxy applies it, end to end: one group (master M, replica R),
 * a `--durable --durable-timeout 2000` proxy and a plain one. The test writes the group record
 * in etcd as the HA leader would (inSync, minInSync) and waits until both proxies show it on
 * /api/proxy before it looks at writes; nothing is restarted between steps.
 *
 * "No WAIT at all" is shown with R frozen (SIGSTOP: a WAIT for it would fail after 2 s) and
 * with the master's own count of WAIT calls (INFO commandstats), which must not move.
 */
import { Redis as Redis6 } from 'ioredis6';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerRole, type GroupInfo } from '@reborn/coordinator';
import { startCluster, startRedis, waitFor, type Cluster, type ProxyProcess, type RedisServer } from '@reborn/testkit';
import { RawClient, RespError, cmd, dataReady, parsePrometheus, plain } from './helpers.js';

let cluster: Cluster;
let durable: ProxyProcess;
let plainProxy: ProxyProcess;
let M: RedisServer;
let R: RedisServer;
const frozen = new Set<RedisServer>();

beforeAll(async () => {
  cluster = await startCluster({ groups: 1, replicas: 1, proxyArgs: ['--durable', '--durable-timeout', '2000'] });
  durable = cluster.proxies[0]!;
  plainProxy = await cluster.addProxy([]);
  M = cluster.groups[0]!.master;
  R = cluster.groups[0]!.replicas[0]!;
  await Promise.all([dataReady(durable.port), dataReady(plainProxy.port)]);
}, 60_000);

afterAll(async () => {
  for (const s of frozen) s.resume();
  await cluster?.stop();
});

async function freeze(s: RedisServer): Promise<void> {
  frozen.add(s);
  await s.pause();
}

function thaw(s: RedisServer): void {
  frozen.delete(s);
  s.resume();
}

/** Writes group 1 as `servers` (default M and R) plus `extra`, and waits until both proxies applied it. */
async function writeGroup(extra: Partial<GroupInfo>, replicas: RedisServer[] = [R]): Promise<void> {
  const group: GroupInfo = {
    id: 1,
    servers: [{ addr: M.addr, role: ServerRole.Master }, ...replicas.map((r) => ({ addr: r.addr, role: ServerRole.Replica }))],
    ...extra,
  };
  await cluster.store.putGroup(group);
  const members = group.inSync ?? replicas.map((r) => r.addr);
  for (const p of [durable, plainProxy]) {
    await waitFor(
      async () => {
        const view = JSON.parse(await p.adminGet('/api/proxy')) as { groups: Array<{ group: number; inSync: string[]; minInSync: number }> };
        const g = view.groups.find((v) => v.group === 1);
        return g !== undefined && JSON.stringify(g.inSync) === JSON.stringify(members) && g.minInSync === (group.minInSync ?? 0);
      },
      { what: `proxy ${p.addr} applying group 1 ${JSON.stringify(extra)}` },
    );
  }
}

/** How many WAIT commands M has run since it started. */
async function waitCalls(): Promise<number> {
  const info = await M.client().info('commandstats');
  return Number(/^cmdstat_wait:calls=(\d+)/m.exec(info)?.[1] ?? 0);
}

async function gauges(p: ProxyProcess): Promise<{ inSync: number | undefined; degraded: number | undefined }> {
  const m = parsePrometheus(await p.metrics());
  return { inSync: m.get('reborn_proxy_group_in_sync_replicas{group="1"}'), degraded: m.get('reborn_proxy_group_degraded{group="1"}') };
}

function logCount(p: ProxyProcess, prefix: string): number {
  return p.logRecords().filter((r) => typeof r['msg'] === 'string' && r['msg'].startsWith(prefix)).length;
}

/** Waits until `p` has logged `count` lines starting with `prefix` (its output arrives through a pipe, after the change). */
async function logged(p: ProxyProcess, prefix: string, count: number): Promise<void> {
  await waitFor(() => logCount(p, prefix) >= count, { what: `${count} log lines "${prefix}…" from ${p.addr}` });
  expect(logCount(p, prefix)).toBe(count);
}

/**
 * `replica` has acknowledged everything M has (M's own view, what WAIT counts): right after a
 * full sync a replica holds the data before its first acknowledgement reaches the master.
 */
async function replicaCaughtUp(replica: RedisServer): Promise<void> {
  const [host, port] = replica.addr.split(':');
  await waitFor(
    async () => {
      const info = await M.client().info('replication');
      const total = /^master_repl_offset:(\d+)/m.exec(info)?.[1];
      const acked = new RegExp(`^slave\\d+:ip=${host},port=${port},state=online,offset=(\\d+)`, 'm').exec(info)?.[1];
      return total !== undefined && acked === total;
    },
    { what: `replica ${replica.addr} acknowledging everything ${M.addr} has` },
  );
}

describe('durable mode waits for exactly the in-sync set', () => {
  it('inSync []: writes are acknowledged on the master alone at once, with no WAIT; the group shows as degraded, logged once', async () => {
    const degradedLogs = logCount(durable, 'group degraded');
    await writeGroup({ inSync: [] });
    await logged(durable, 'group degraded', degradedLogs + 1);
    const client = new Redis6({ host: '127.0.0.1', port: durable.port });
    try {
      await freeze(R);
      const before = await waitCalls();
      expect(await client.set('isr:alone', 'v')).toBe('OK');
      const p = client.pipeline();
      for (let i = 0; i < 50; i++) p.set(`isr:alone:${i}`, String(i));
      expect(((await p.exec()) ?? []).map(([e, v]) => (e ? `error: ${e.message}` : v))).toEqual(Array(50).fill('OK'));
      expect(await waitCalls()).toBe(before);
      expect(await gauges(durable)).toEqual({ inSync: 0, degraded: 1 });
      // Without --durable an empty set promises nothing more than before: not degraded.
      expect(await gauges(plainProxy)).toEqual({ inSync: 0, degraded: 0 });
      const health = JSON.parse(await durable.adminGet('/healthz')) as { groupsDegraded: unknown[] };
      expect(health.groupsDegraded).toEqual([{ group: 1, master: M.addr, state: 'degraded', inSync: [], minInSync: 0, durableWaitFor: 0 }]);
      // Once per transition, not per request.
      expect(logCount(durable, 'group degraded')).toBe(degradedLogs + 1);
    } finally {
      thaw(R);
      client.disconnect();
    }
  });

  it('inSync [R] with R frozen: writes fail naming the set; etcd removing R makes them succeed, nothing restarted', async () => {
    await writeGroup({ inSync: [R.addr] });
    await replicaCaughtUp(R);
    expect(await gauges(durable)).toEqual({ inSync: 1, degraded: 0 });
    const c = await RawClient.connect(durable.port);
    try {
      await freeze(R);
      expect(plain(await c.call('SET', 'isr:one', 'a'))).toEqual({
        err: `ERR durable write not confirmed: 0 of 1 in-sync replicas (${R.addr}) acknowledged within 2000 ms`,
      });
      await writeGroup({ inSync: [] });
      expect(plain(await c.call('SET', 'isr:one', 'b'))).toBe('OK');
      expect(await M.client().get('isr:one')).toBe('b');
    } finally {
      thaw(R);
      c.destroy();
    }
  });

  it('inSync absent: every replica of the group counts', async () => {
    // A second replica, in the group only for this test.
    const R2 = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
    try {
      await R2.client().replicaof(...(M.addr.split(':') as [string, string]));
      await writeGroup({}, [R, R2]);
      await replicaCaughtUp(R2);
      await replicaCaughtUp(R);
      expect(await gauges(durable)).toEqual({ inSync: 2, degraded: 0 });
      const c = await RawClient.connect(durable.port);
      try {
        expect(plain(await c.call('SET', 'isr:all', 'a'))).toBe('OK');
        expect(await R2.client().get('isr:all')).toBe('a');
        await freeze(R2);
        expect(plain(await c.call('SET', 'isr:all', 'b'))).toEqual({
          err: `ERR durable write not confirmed: 1 of 2 in-sync replicas (${R.addr}, ${R2.addr}) acknowledged within 2000 ms`,
        });
      } finally {
        thaw(R2);
        c.destroy();
      }
    } finally {
      await writeGroup({});
      await R2.client().replicaof('NO', 'ONE');
      await R2.stop();
    }
  });
});

describe('minInSync', () => {
  it('minInSync 1 with inSync []: writes get NOREPLICAS on both proxies, reads work, EXEC with a write is refused whole; a member back lets writes through', async () => {
    await writeGroup({});
    const seed = new Redis6({ host: '127.0.0.1', port: plainProxy.port });
    await seed.set('isr:min', 'kept');
    seed.disconnect();
    const refusingLogs = logCount(plainProxy, 'group refuses writes');
    await writeGroup({ inSync: [], minInSync: 1 });
    const refusal = 'NOREPLICAS Not enough good replicas to write. Group 1 has 0 in-sync replicas, its minInSync is 1.';
    const writesBefore = Number(/^cmdstat_set:calls=(\d+)/m.exec(await M.client().info('commandstats'))?.[1] ?? 0);

    for (const p of [durable, plainProxy]) {
      // ioredis 6 and node-redis at their defaults: the server's error, NOREPLICAS first.
      const io = new Redis6({ host: '127.0.0.1', port: p.port });
      const nr = createClient({ url: `redis://127.0.0.1:${p.port}` });
      nr.on('error', () => undefined);
      await nr.connect();
      try {
        await expect(io.set('isr:min', 'new')).rejects.toThrow(refusal);
        await expect(nr.set('isr:min', 'new')).rejects.toThrow(refusal);
        await expect(io.incr('isr:min:n')).rejects.toThrow(refusal);
        // Scripts count as writes (only running them tells); reads do not.
        await expect(io.eval('return 1', 0)).rejects.toThrow(refusal);
        expect(await io.get('isr:min')).toBe('kept');
        expect(await io.call('EVAL_RO', "return redis.call('GET', KEYS[1])", 1, 'isr:min')).toBe('kept');
        expect(await nr.get('isr:min')).toBe('kept');
        expect(await io.exists('isr:min')).toBe(1);

        const c = await RawClient.connect(p.port);
        try {
          // A transaction with a write: refused at EXEC as a whole, as redis does (EXECABORT).
          c.write(Buffer.concat([cmd('MULTI'), cmd('GET', 'isr:min'), cmd('SET', 'isr:min', 'tx'), cmd('EXEC')]));
          expect((await c.next(4)).map(plain)).toEqual(['OK', 'QUEUED', 'QUEUED', { err: `EXECABORT Transaction discarded because of: ${refusal}` }]);
          // The same under WATCH (its own pinned connection).
          c.write(Buffer.concat([cmd('WATCH', 'isr:min'), cmd('MULTI'), cmd('SET', 'isr:min', 'cas'), cmd('EXEC')]));
          expect((await c.next(4)).map(plain)).toEqual(['OK', 'OK', 'QUEUED', { err: `EXECABORT Transaction discarded because of: ${refusal}` }]);
          // A read-only transaction runs.
          c.write(Buffer.concat([cmd('MULTI'), cmd('GET', 'isr:min'), cmd('EXEC')]));
          expect((await c.next(3)).map(plain)).toEqual(['OK', 'QUEUED', ['kept']]);
          // A blocking pop is a write too.
          expect(plain(await c.call('BLPOP', 'isr:min:q', '1'))).toEqual({ err: refusal });
        } finally {
          c.destroy();
        }
      } finally {
        io.disconnect();
        await nr.quit();
      }
      expect(await gauges(p)).toEqual({ inSync: 0, degraded: 1 });
    }
    // Refused before they were sent: the master ran none of them.
    expect(Number(/^cmdstat_set:calls=(\d+)/m.exec(await M.client().info('commandstats'))?.[1] ?? 0)).toBe(writesBefore);
    expect(await M.client().get('isr:min')).toBe('kept');
    await logged(plainProxy, 'group refuses writes', refusingLogs + 1);
    const health = JSON.parse(await plainProxy.adminGet('/healthz')) as { groupsDegraded: Array<{ state: string }> };
    expect(health.groupsDegraded.map((g) => g.state)).toEqual(['refusing']);

    // The set grows back to minInSync: writes go through again, on both proxies.
    await writeGroup({ inSync: [R.addr], minInSync: 1 });
    await replicaCaughtUp(R);
    for (const p of [durable, plainProxy]) {
      const io = new Redis6({ host: '127.0.0.1', port: p.port });
      try {
        expect(await io.set('isr:min', `after-${p.port}`)).toBe('OK');
        expect(await io.eval("return redis.call('INCR', KEYS[1])", 1, 'isr:min:n')).toBeGreaterThan(0);
      } finally {
        io.disconnect();
      }
      expect(await gauges(p)).toEqual({ inSync: 1, degraded: 0 });
      await waitFor(() => logCount(p, 'group no longer refuses writes') > 0, { what: `"group no longer refuses writes" from ${p.addr}` });
    }
    // Durable: the acknowledged write is on the member.
    expect(await R.client().get('isr:min')).toBe(`after-${plainProxy.port}`);
  });

  it('a refused write is an error reply: the connection stays usable', async () => {
    await writeGroup({ inSync: [], minInSync: 1 });
    const c = await RawClient.connect(durable.port);
    try {
      const r = await c.call('SET', 'isr:shape', 'x');
      expect(r).toBeInstanceOf(RespError);
      expect(plain(await c.call('PING'))).toBe('PONG');
    } finally {
      c.destroy();
      await writeGroup({});
    }
  });
});
