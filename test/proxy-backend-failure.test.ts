/**
 * A group's master failing under the proxy (started with --backend-timeout 500): requests for
 * its slots get a definite `-ERR backend <addr> …` instead of hanging, the other group is
 * unaffected, and the proxy recovers by itself when the master is back. Time bounds here are
 * hang detectors, not performance thresholds.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopAll, waitFor, type Cluster, type ClusterGroup } from '@reborn/testkit';
import { Barrier } from '@reborn/coordinator';
import { RawClient, busyScript, cmd, dataReady, keysOfGroup, parsePrometheus, plain, slotOf, within, type Reply } from './helpers.js';

const HANG = 5000;

let cluster: Cluster;
let g1: ClusterGroup;
let g2: ClusterGroup;
const k1 = keysOfGroup('bf:g1:', 1, 20);
const k2 = keysOfGroup('bf:g2:', 2, 20);

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1, proxyArgs: ['--backend-timeout', '500'] });
  [g1, g2] = [cluster.groups[0]!, cluster.groups[1]!];
  await dataReady(cluster.proxies[0]!.port);
});

afterAll(stopAll);

/**
 * A proxy client that fails fast. No ready check: ioredis' ready check is an INFO, which the
 * proxy answers from every master (see the last test for what that does to default clients).
 */
function client(): Redis {
  return cluster.proxies[0]!.client({ maxRetriesPerRequest: 0, enableReadyCheck: false });
}

/** The error message of a command expected to fail, within the hang detector. */
async function failure(p: Promise<unknown>, what: string): Promise<string> {
  const outcome = await within(
    p.then(
      (v) => ({ ok: v }),
      (err: unknown) => ({ err: (err as Error).message }),
    ),
    HANG,
    what,
  );
  if (!('err' in outcome)) throw new Error(`${what}: expected an error, got ${JSON.stringify(outcome.ok)}`);
  return outcome.err;
}

/** `n` rounds of SET+GET on group-2 keys, all of which must succeed. */
async function otherGroupWorks(c: Redis, keys: string[], n = 30): Promise<void> {
  for (let i = 0; i < n; i++) {
    const k = keys[i % keys.length]!;
    await within(c.set(k, `ok${i}`), HANG, `SET ${k}`);
    expect(await within(c.get(k), HANG, `GET ${k}`)).toBe(`ok${i}`);
  }
}

describe('master killed (kill -9)', () => {
  it('its slots fail fast with -ERR backend <addr>, the other group works, and it recovers after restart', async () => {
    const a = client();
    const b = client();
    await a.set(k1[0]!, 'before');
    await b.set(k2[0]!, 'before');
    const backendErr = new RegExp(`^ERR backend ${g1.master.addr.replace(/\./g, '\\.')} \\S`);

    await g1.master.kill('SIGKILL');
    for (let i = 0; i < 10; i++) {
      expect(await failure(a.get(k1[i]!), `GET on the dead group (${i})`)).toMatch(backendErr);
      expect(await failure(a.set(k1[i]!, 'x'), `SET on the dead group (${i})`)).toMatch(backendErr);
    }
    // A split command touching the dead group fails as a whole, never half-done.
    expect(await failure(a.mget(k1[0]!, k2[0]!), 'MGET over both groups')).toMatch(backendErr);
    await otherGroupWorks(b, k2);
    // The same connection also still works for the live group.
    expect(await a.set(k2[19]!, 'via-a')).toBe('OK');
    expect(await a.get(k2[19]!)).toBe('via-a');

    await g1.master.restart();
    await waitFor(async () => (await a.set(k1[0]!, 'after')) === 'OK', { what: 'the restarted master to be used again' });
    expect(await a.get(k1[0]!)).toBe('after');
    expect(await g1.master.client().get(k1[0]!)).toBe('after');
  });

  it('requests in flight when the master dies all get an error reply, in order', async () => {
    const raw = await RawClient.connect(cluster.proxies[0]!.port);
    expect(plain(await raw.call('SET', k1[1]!, 'v'))).toBe('OK');
    await g1.master.pause(); // so that the requests below are pending at the server, not answered
    raw.write(Buffer.concat([...Array.from({ length: 100 }, () => cmd('GET', k1[1]!)), cmd('ECHO', 'tail')]));
    await g1.master.kill('SIGKILL');
    const replies = await raw.next(101, HANG);
    const errs = replies.slice(0, 100).map((r: Reply) => plain(r));
    expect(errs.every((e) => typeof e === 'object' && e !== null && /^ERR backend /.test((e as { err: string }).err))).toBe(true);
    expect(plain(replies[100]!)).toBe('tail');
    raw.destroy();
    await g1.master.restart();
    const c = client();
    await waitFor(async () => (await c.get(k1[1]!)) === null, { what: 'the restarted master to answer' });
  });
});

describe('master hung (SIGSTOP)', () => {
  it('pending requests fail with "timed out" after --backend-timeout; the other group is unaffected; SIGCONT recovers', async () => {
    const a = client();
    const b = client();
    await b.set(k2[5]!, 'kept');
    const timedOut = new RegExp(`^ERR backend ${g2.master.addr.replace(/\./g, '\\.')} .*timed out`);

    await g2.master.pause();
    try {
      // Several clients waiting on the hung server all get the timeout.
      const waiting = [client(), client(), client()].map((c, i) => failure(c.get(k2[i]!), `GET ${i} on the hung group`));
      const errors = await Promise.all(waiting);
      for (const e of errors) expect(e).toMatch(timedOut);
      // The other group answers meanwhile.
      await otherGroupWorks(a, k1, 20);
      // Replies stay in request order on one connection: the hung group's error first.
      const p = a.pipeline().get(k2[6]!).set(k1[6]!, 'behind').get(k1[6]!);
      const replies = (await within(p.exec(), HANG, 'a pipeline behind a hung request'))!;
      expect(replies[0]![0]?.message).toMatch(timedOut);
      expect(replies.slice(1).map(([err, r]) => err ?? r)).toEqual(['OK', 'behind']);
    } finally {
      g2.master.resume();
    }
    await waitFor(async () => (await b.get(k2[5]!)) === 'kept', { what: 'the resumed master to answer' });
    await otherGroupWorks(b, k2, 10);
    const metrics = parsePrometheus(await cluster.proxies[0]!.metrics());
    expect(metrics.get(`reborn_proxy_backend_up{addr="${g2.master.addr}"}`)).toBe(1);
  });
});

describe('clients connecting while a master is down', () => {
  it('a default ioredis client (ready check = INFO) connects and serves the healthy group', async () => {
    const c = client();
    await c.set(k2[10]!, 'healthy');
    await g1.master.kill('SIGKILL');
    try {
      const fresh = cluster.proxies[0]!.client({ maxRetriesPerRequest: 1, retryStrategy: () => null });
      const errors: string[] = [];
      fresh.on('error', (err: Error) => errors.push(err.message));
      const got = await within(
        fresh.get(k2[10]!).catch((err: unknown) => `rejected: ${(err as Error).message}`),
        HANG,
        'GET through a fresh default client',
      );
      // INFO itself answers too (with the keyspace of the live group at least).
      const info = await within(
        c.info().catch((err: unknown) => `rejected: ${(err as Error).message}`),
        HANG,
        'INFO',
      );
      expect({ got, errors, infoHasServer: info.includes('# Server') }).toEqual({
        got: 'healthy',
        errors: [],
        infoHasServer: true,
      });
    } finally {
      await g1.master.restart();
    }
  });
});

describe('a barrier after a request timed out', () => {
  /**
   * A 1.5 s script straight on group 1's master; the proxy's SET there times out after
   * 500 ms but already sits in redis's socket. With `busyThresholdMs` below the script's
   * length redis answers other connections -BUSY meanwhile (CLIENT KILL included).
   */
  async function timedOutWriteThenBarrier(busyThresholdMs: number): Promise<{ events: string[]; value: string | null }> {
    const key = k1[15]!;
    const slot = slotOf(key);
    const c = client();
    // After the tests above, group 1 may still be in its reconnect backoff.
    await waitFor(async () => (await c.set(key, 'before').catch(() => null)) === 'OK', { what: 'group 1 served again' });
    const direct = g1.master.client();
    const threshold = (await direct.config('GET', 'lua-time-limit'))[1]!;
    await direct.config('SET', 'lua-time-limit', String(busyThresholdMs));
    const busy = busyScript(1500);
    const events: string[] = [];
    const script = direct.eval(busy, 0).then(
      () => events.push('script done'),
      (err: Error) => events.push(`script failed: ${err.message}`),
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(await failure(c.set(key, 'timed-out-write'), 'SET during the script')).toMatch(/timed out/);
    const rev = await cluster.store.putSlots([{ id: slot, state: 'pre_migrate', group: 1, from: 1, to: 2 }]);
    const barrier = new Barrier(cluster.store);
    const action = await barrier.createAction([slot], rev, 'test: barrier after a timeout');
    try {
      expect((await barrier.waitForAcks(action, 10_000)).missing).toEqual([]);
      events.push('acked');
      await script;
      return { events, value: await direct.get(key) };
    } finally {
      await cluster.store.putSlots([{ id: slot, state: 'online', group: 1 }]);
      await barrier.deleteAction(action.seq);
      await direct.config('SET', 'lua-time-limit', threshold);
      direct.disconnect();
    }
  }

  it('the proxy acks only once redis can no longer run the timed-out write (CLIENT KILL of its connection answered)', async () => {
    const { events, value } = await timedOutWriteThenBarrier(5000);
    expect(events).toEqual(['script done', 'acked']);
    // The write ran in group 1 before the ack, so a migration started now would move it.
    expect(value).toBe('timed-out-write');
  });

  it('a -BUSY answer to that CLIENT KILL (the script past its busy threshold) is asked again, not taken as settled', async () => {
    // 700 ms: after the proxy's 500 ms timeout (so the SET times out), before the script ends.
    const { events, value } = await timedOutWriteThenBarrier(700);
    expect(events).toEqual(['script done', 'acked']);
    // Read while busy, the SET was refused -BUSY or ran after the script: before the ack either way.
    expect(['before', 'timed-out-write']).toContain(value);
  });
});
