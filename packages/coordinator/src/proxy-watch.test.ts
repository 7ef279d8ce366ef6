/**
 * ProxyListWatch against a real etcd (testkit): the list follows registrations, updates and
 * lease ends, and catches up after etcd was away.
 */
import { randomBytes } from 'node:crypto';
import { startEtcd, waitFor, type EtcdServer } from '@reborn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyInfo } from './models.js';
import { ProxyListWatch } from './proxy-watch.js';
import { Store } from './store.js';

const proxyInfo = (id: string, clusterAddr?: string): ProxyInfo => ({
  id,
  addr: '127.0.0.1:19000',
  adminAddr: '127.0.0.1:19001',
  pid: process.pid,
  host: 'test',
  startedAt: new Date().toISOString(),
  state: 'starting',
  ...(clusterAddr === undefined ? {} : { clusterAddr }),
});

/** What a watch delivered: every list, as `id:state` strings. */
function recorder() {
  const lists: string[][] = [];
  const errors: Error[] = [];
  return {
    lists,
    errors,
    last: () => lists.at(-1)?.join(' ') ?? null,
    handlers: { onList: (ps: ProxyInfo[]) => lists.push(ps.map((p) => `${p.id}:${p.state}${p.clusterAddr ? `@${p.clusterAddr}` : ''}`)), onError: (e: Error) => errors.push(e) },
  };
}

describe('ProxyListWatch', () => {
  let etcd: EtcdServer;
  const open = (product: string): Promise<Store> => Store.open({ endpoints: [etcd.clientUrl], product, callTimeoutMs: 2000, dialTimeoutMs: 2000 });

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 30_000);
  afterAll(async () => {
    await etcd?.stop();
  });

  it('delivers the whole list on start and after each registration, update and close', async () => {
    const product = `t${randomBytes(4).toString('hex')}`;
    const [store, writer] = await Promise.all([open(product), open(product)]);
    try {
      const before = await writer.registerProxy(proxyInfo('px-a', '10.0.0.1:7000'), 5);
      const rec = recorder();
      const w = new ProxyListWatch(store, rec.handlers);
      await waitFor(() => rec.last() === 'px-a:starting@10.0.0.1:7000', { what: 'the initial list' });

      const b = await writer.registerProxy(proxyInfo('px-b'), 5);
      await waitFor(() => rec.last() === 'px-a:starting@10.0.0.1:7000 px-b:starting', { what: 'a new registration' });
      await before.update({ state: 'online' });
      await waitFor(() => rec.last() === 'px-a:online@10.0.0.1:7000 px-b:starting', { what: 'a state update' });
      await before.close();
      await waitFor(() => rec.last() === 'px-b:starting', { what: 'a closed registration' });

      await w.close();
      const seen = rec.lists.length;
      await b.close();
      // Nothing after close: a marker written after the deletion proves the watch had its chance.
      const marker = await writer.registerProxy(proxyInfo('px-marker'), 5);
      await waitFor(async () => (await store.listProxies()).length === 1);
      expect(rec.lists.length).toBe(seen);
      expect(rec.errors).toEqual([]);
      await marker.close();
    } finally {
      await Promise.all([store.close(), writer.close()]);
    }
  });

  it('keeps following across an etcd restart', async () => {
    const product = `t${randomBytes(4).toString('hex')}`;
    const [store, writer] = await Promise.all([open(product), open(product)]);
    try {
      const a = await writer.registerProxy(proxyInfo('px-a'), 30);
      const rec = recorder();
      const w = new ProxyListWatch(store, rec.handlers);
      await waitFor(() => rec.last() === 'px-a:starting', { what: 'the initial list' });

      await etcd.kill('SIGKILL');
      await etcd.restart();
      // The writer's circuit breaker may still be open for a few seconds: retry until it writes.
      await waitFor(() => a.update({ state: 'online' }).then(() => true), { timeoutMs: 20_000, what: 'a write after the restart' });
      await waitFor(() => rec.last() === 'px-a:online', { timeoutMs: 20_000, what: 'the list after the restart' });
      await w.close();
      await a.close();
    } finally {
      await Promise.all([store.close(), writer.close()]);
    }
  }, 60_000);
});
