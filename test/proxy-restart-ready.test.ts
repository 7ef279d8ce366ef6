/**
 * A proxy killed with -9 and restarted with the same --id on the same port does not turn
 * clients away (issue 19, finding 4): it takes over its dead predecessor's registration at
 * once (same host, pid gone) instead of waiting for the lease to run out, and data commands
 * that arrive before it serves wait for it (--startup-hold-ms) instead of getting
 * `-ERR proxy not ready`.
 *
 * Clients are ioredis at its defaults (reconnects, resends what was in flight), each writing
 * its own keys in sequence; every write acknowledged must be readable afterwards.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProxyProcess, TcpRelay, freePort, startCluster, stopAll, waitFor } from '@reborn/testkit';

afterAll(async () => {
  await stopAll();
});

/** One client writing `rs:<n>:<i>` = i in sequence, keeping what was acknowledged and every error. */
class SequentialWriter {
  acked = new Map<string, string>();
  errors: string[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly client: Redis, private readonly n: number) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    for (let i = 0; this.running; i++) {
      const key = `rs:${this.n}:${i}`;
      try {
        if ((await this.client.set(key, String(i))) === 'OK') this.acked.set(key, String(i));
      } catch (err) {
        this.errors.push((err as Error).message);
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

describe('a proxy restarted after kill -9', () => {
  it('serves its clients again without one "not ready" error; every acknowledged write is readable', { timeout: 120_000 }, async () => {
    const cluster = await startCluster({ groups: 2, proxies: 0 });
    const id = 'rs-a';
    let restarted: ProxyProcess | null = null;
    const clients: Redis[] = [];
    let firstPid = 0;
    try {
      const first = await cluster.addProxy(['--id', id]);
      firstPid = first.pid;
      for (let n = 0; n < 4; n++) {
        const c = new Redis({ host: first.host, port: first.port });
        c.on('error', () => undefined); // connection refused while the proxy is down: expected
        clients.push(c);
      }
      const writers = clients.map((c, n) => new SequentialWriter(c, n));
      const acked = (): number => writers.reduce((sum, w) => sum + w.acked.size, 0);
      try {
        await waitFor(async () => acked() >= 200, { timeoutMs: 30_000, what: 'writes before the kill' });
        await first.kill('SIGKILL');
        const before = acked();
        // The same id, port and admin port, as a supervisor restarting it would.
        restarted = new ProxyProcess(first.port, first.adminPort, { etcd: cluster.etcd.clientUrl, product: cluster.product, id });
        await restarted.waitHealthy(30_000);
        await waitFor(async () => acked() >= before + 400, { timeoutMs: 60_000, what: 'writes after the restart' });
      } finally {
        await Promise.all(writers.map((w) => w.stop()));
      }
      const errors = writers.flatMap((w) => w.errors);
      const notReady = errors.filter((e) => /not ready/i.test(e));
      console.log(`[proxy-restart-ready] ${acked()} writes acknowledged, ${errors.length} errors: ${JSON.stringify([...new Set(errors)].slice(0, 5))}`);
      expect(notReady).toEqual([]);
      // It did not wait for the dead process's lease: it took the registration over.
      const registered = restarted!.logRecords().find((r) => r.msg === 'proxy registered in etcd');
      expect(registered?.['tookOverFromPid']).toBe(firstPid);

      const reader = restarted!.client();
      const missing: string[] = [];
      for (const w of writers) {
        const keys = [...w.acked.keys()];
        for (let i = 0; i < keys.length; i += 500) {
          const batch = keys.slice(i, i + 500);
          const values = await reader.mget(...batch);
          batch.forEach((k, j) => {
            if (values[j] !== w.acked.get(k)) missing.push(`${k}: ${values[j]} (acknowledged ${w.acked.get(k)})`);
          });
        }
      }
      expect(missing.slice(0, 20)).toEqual([]);
    } finally {
      for (const c of clients) c.disconnect();
      await restarted?.stop();
      await cluster.stop();
    }
  });

  it('a proxy started while etcd cannot be reached waits for it instead of exiting, then serves', { timeout: 120_000 }, async () => {
    const cluster = await startCluster({ groups: 1, proxies: 0 });
    const relay = await TcpRelay.start({ port: cluster.etcd.port });
    let proxy: ProxyProcess | null = null;
    let client: Redis | null = null;
    try {
      relay.cut();
      proxy = new ProxyProcess(await freePort(), await freePort(), { etcd: relay.url, product: cluster.product, id: 'no-etcd-yet' });
      await waitFor(async () => proxy!.logRecords().some((r) => r.msg === 'cannot reach etcd yet, retrying'), {
        timeoutMs: 30_000,
        what: 'the proxy retrying its first etcd connection',
      });
      expect(proxy.running).toBe(true);
      const pid = proxy.pid;
      relay.heal();
      await proxy.waitHealthy(60_000);
      expect(proxy.pid).toBe(pid); // the same process: it waited, it did not exit and get restarted
      client = proxy.client();
      expect(await client.set('after-etcd', '1')).toBe('OK');
      expect(await client.get('after-etcd')).toBe('1');
    } finally {
      client?.disconnect();
      await proxy?.stop();
      await relay.stop();
      await cluster.stop();
    }
  });
});
