/**
 * The zombie-master fence, end to end, with and without --durable: a group (master M, replica
 * R) and a proxy whose backend watchdog is long (60 s), so that only the failover can end what
 * is in flight. M is frozen (SIGSTOP) with a pipeline of writes and a WATCHed EXEC in flight;
 * the test then plays the HA leader (REPLICAOF NO ONE on R, the group rewritten in etcd with R
 * master, M replica, inSync []). What must hold:
 * - every write in flight on M gets an error saying the outcome is unknown, at once, M still frozen;
 * - new writes go to R;
 * - once M runs again (it then answers what it had read) nothing more reaches the client:
 *   each request got exactly one reply;
 * - after M has become R's replica, every write the client saw OK is on R.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerRole } from '@reborn/coordinator';
import { startCluster, waitFor, type Cluster, type ProxyProcess, type RedisServer } from '@reborn/testkit';
import { RawClient, RespError, cmd, dataReady, plain } from './helpers.js';

const IN_FLIGHT = 50;

describe.each([
  ['without --durable', [] as string[]],
  ['with --durable', ['--durable']],
])('a failover with writes in flight on the frozen old master, %s', (_mode, modeArgs) => {
  let cluster: Cluster;
  let proxy: ProxyProcess;
  let M: RedisServer;
  let R: RedisServer;

  beforeAll(async () => {
    cluster = await startCluster({ groups: 1, replicas: 1, proxyArgs: [...modeArgs, '--backend-timeout', '60000'] });
    proxy = cluster.proxies[0]!;
    M = cluster.groups[0]!.master;
    R = cluster.groups[0]!.replicas[0]!;
    await dataReady(proxy.port);
  }, 60_000);

  afterAll(async () => {
    M?.resume();
    await cluster?.stop();
  });

  /** Requests the proxy has sent to `addr` and not had answered: on its pool, and on WATCH pins. */
  async function inFlightOn(addr: string): Promise<{ pool: number; pinned: number }> {
    const view = JSON.parse(await proxy.adminGet('/api/proxy')) as {
      backends: Array<{ addr: string; pending: number }>;
      watch: { watches: number; inFlight: number };
    };
    return { pool: view.backends.find((b) => b.addr === addr)?.pending ?? 0, pinned: view.watch.inFlight };
  }

  it('fails what is in flight, sends new writes to the new master, forwards nothing the old one says later, loses no acknowledged write', async () => {
    const c = await RawClient.connect(proxy.port);
    const watcher = await RawClient.connect(proxy.port);
    const acknowledged: string[] = [];
    try {
      // Acknowledged before the freeze.
      const before = Array.from({ length: 20 }, (_, i) => `fence:before:${i}`);
      c.write(Buffer.concat(before.map((k) => cmd('SET', k, k))));
      expect((await c.next(before.length)).map(plain)).toEqual(before.map(() => 'OK'));
      acknowledged.push(...before);
      // Without --durable, replication is asynchronous: let R have them before M freezes, so
      // that what the test counts is the fence, not replication lag.
      await waitFor(async () => (await R.client().exists(...before)) === before.length, { what: 'R holding the acknowledged writes' });

      // A WATCH pinned to M, its EXEC to be in flight when the master changes.
      watcher.write(Buffer.concat([cmd('WATCH', '{fence}w'), cmd('MULTI'), cmd('SET', '{fence}w', 'exec')]));
      expect((await watcher.next(3)).map(plain)).toEqual(['OK', 'OK', 'QUEUED']);

      await M.pause();
      const inFlight = Array.from({ length: IN_FLIGHT }, (_, i) => `fence:flight:${i}`);
      c.write(Buffer.concat(inFlight.map((k) => cmd('SET', k, k))));
      watcher.write(cmd('EXEC'));
      // The shared connection has the pipeline, the pinned one the EXEC: all sent, none answered.
      // (the only WATCH pin is M's, and its WATCH was answered: what is in flight there is the
      // EXEC, and with --durable the WAIT behind it).
      await waitFor(
        async () => {
          const { pool, pinned } = await inFlightOn(M.addr);
          return pool >= IN_FLIGHT && pinned >= 1;
        },
        { what: 'the pipeline and the EXEC in flight on the frozen master' },
      );
      const other = await RawClient.connect(proxy.port);
      expect(plain(await other.call('PING'))).toBe('PONG');
      other.destroy();
      expect(c.replies.length).toBe(before.length);
      expect(watcher.replies.length).toBe(3);

      // The HA leader's part: R stops replicating, then etcd names it master.
      await R.client().replicaof('NO', 'ONE');
      await cluster.store.putGroup({
        id: 1,
        servers: [
          { addr: R.addr, role: ServerRole.Master },
          { addr: M.addr, role: ServerRole.Replica },
        ],
        inSync: [],
      });

      // M is still frozen: the errors come from the switch alone.
      const unknown = `ERR group 1 failed over to another master while the request was in flight on ${M.addr}; its outcome is unknown`;
      expect((await c.next(IN_FLIGHT)).map(plain)).toEqual(inFlight.map(() => ({ err: unknown })));
      expect(plain(await watcher.one())).toEqual({ err: unknown });

      // New writes go to R.
      const after = Array.from({ length: 20 }, (_, i) => `fence:after:${i}`);
      c.write(Buffer.concat(after.map((k) => cmd('SET', k, k))));
      expect((await c.next(after.length)).map(plain)).toEqual(after.map(() => 'OK'));
      acknowledged.push(...after);
      expect(await R.client().exists(...after)).toBe(after.length);
      // The WATCH was aborted with its master; a new one runs on R.
      watcher.write(Buffer.concat([cmd('WATCH', '{fence}w'), cmd('MULTI'), cmd('SET', '{fence}w', 'again'), cmd('EXEC')]));
      expect((await watcher.next(4)).map(plain)).toEqual(['OK', 'OK', 'QUEUED', ['OK']]);
      acknowledged.push('{fence}w');

      // M runs again: it reads and answers what it had, to a socket the proxy has let go.
      M.resume();
      await M.client().replicaof(...(R.addr.split(':') as [string, string]));
      await waitFor(
        async () => /master_link_status:up/.test(await M.client().info('replication')) && (await M.client().exists(...after)) === after.length,
        { what: 'M resynced as the replica of R', timeoutMs: 30_000 },
      );
      // One reply per request, in order: a PING behind everything gets its own PONG.
      expect(plain(await c.call('PING'))).toBe('PONG');
      expect(plain(await watcher.call('PING'))).toBe('PONG');
      expect(c.replies.length).toBe(before.length + IN_FLIGHT + after.length + 1);
      expect(watcher.replies.filter((r) => r instanceof RespError).length).toBe(1);

      // Every write the client saw acknowledged is on the new master.
      const onR = await R.client().exists(...acknowledged);
      expect(onR, 'acknowledged writes present on R').toBe(acknowledged.length);
      expect(await R.client().get('{fence}w')).toBe('again');
      // What failed never reached R (R stopped following M before M ran again).
      expect(await R.client().exists(...inFlight)).toBe(0);
    } finally {
      M.resume();
      c.destroy();
      watcher.destroy();
    }
  });
});
