import { existsSync } from 'node:fs';
import { Store } from '@reborn/coordinator';
import { afterAll, describe, expect, it } from 'vitest';
import { stopAll } from './cleanup.js';
import { startEtcd } from './etcd.js';
import { waitFor } from './wait.js';

afterAll(stopAll);

describe('startEtcd', () => {
  it('serves on a free port and restart() keeps its data', async () => {
    const etcd = await startEtcd();
    expect(etcd.clientUrl).toBe(`http://127.0.0.1:${etcd.port}`);
    const store = await Store.open({ endpoints: [etcd.clientUrl], product: 'p' });
    try {
      const g = { id: 1, servers: [] };
      await store.putGroup(g);
      const pid = etcd.pid;
      await etcd.restart();
      expect(etcd.pid).not.toBe(pid);
      // The client may need a moment (its circuit breaker) before it talks to etcd again.
      expect(await waitFor(() => store.getGroup(1), { timeoutMs: 15_000 })).toEqual(g);
    } finally {
      await store.close();
    }
    const dir = etcd.dir;
    await etcd.stop();
    expect(existsSync(dir)).toBe(false);
  });

  it('two at once do not collide', async () => {
    const [a, b] = await Promise.all([startEtcd(), startEtcd()]);
    expect(new Set([a.port, a.peerPort, b.port, b.peerPort]).size).toBe(4);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('pause() stops answering until resume()', async () => {
    const etcd = await startEtcd();
    await etcd.pause();
    await expect(fetch(`${etcd.clientUrl}/health`, { signal: AbortSignal.timeout(300) })).rejects.toThrow();
    etcd.resume();
    expect((await fetch(`${etcd.clientUrl}/health`)).status).toBe(200);
    await etcd.stop();
  });
});
