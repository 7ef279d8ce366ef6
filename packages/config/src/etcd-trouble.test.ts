/** The operator's words for a silent etcd: the running reports, the give-up, the final message. */
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UnavailableError } from '@reborn/coordinator';
import { EtcdSilentError, etcdTrouble, explainEtcdSilence } from './etcd-trouble.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('etcdTrouble', () => {
  it('says nothing for a short hiccup, then every 5 s while etcd stays silent, and once when it answers again', () => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
    const lines: string[] = [];
    const report = etcdTrouble((l) => lines.push(l), 'Ctrl-C detaches');
    const down = new Error('etcd did not answer within 5000 ms');
    report(down);
    vi.setSystemTime(2000);
    report(down);
    report(null); // a 2 s hiccup: nothing said
    expect(lines).toEqual([]);

    vi.setSystemTime(10_000);
    report(down);
    for (const t of [12_000, 13_500, 17_000, 18_600]) {
      vi.setSystemTime(t);
      report(down);
    }
    expect(lines).toEqual([
      'etcd has not answered for 4 s (etcd did not answer within 5000 ms); still waiting (Ctrl-C detaches)',
      'etcd has not answered for 9 s (etcd did not answer within 5000 ms); still waiting (Ctrl-C detaches)',
    ]);
    report(null);
    report(null);
    expect(lines.at(-1)).toBe('etcd answers again');
    expect(lines).toHaveLength(3);
  });
});

describe('etcdTrouble give-up', () => {
  it('gives up once, when etcd has been silent for the bound; an answer in between starts the count again', () => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
    const gaveUp: number[] = [];
    const report = etcdTrouble(() => undefined, 'hint', { afterMs: 10_000, onGiveUp: (ms) => gaveUp.push(ms) });
    const down = new Error('down');
    report(down);
    vi.setSystemTime(9000);
    report(null);
    vi.setSystemTime(15_000);
    report(down);
    expect(gaveUp).toEqual([]);
    vi.setSystemTime(25_000);
    report(down);
    vi.setSystemTime(30_000);
    report(down);
    expect(gaveUp).toEqual([10_000]);
  });
});

describe('explainEtcdSilence', () => {
  it('names the endpoints and how many accept a connection, and says what was left behind', async () => {
    const open = net.createServer().listen(0, '127.0.0.1');
    await once(open, 'listening');
    const closed = net.createServer().listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    try {
      const up = `http://127.0.0.1:${(open.address() as net.AddressInfo).port}`;
      const down = `http://127.0.0.1:${deadPort}`;
      const err = await explainEtcdSilence(new UnavailableError('list slots: etcd did not answer within 5000 ms'), [up, down, down], 5000, 'nothing was changed');
      expect(err).toBeInstanceOf(EtcdSilentError);
      expect((err as Error).message).toBe(`etcd at ${up},${down},${down} did not answer within 5 s (no quorum? 1 of 3 endpoints reachable): nothing was changed`);
      expect((err as EtcdSilentError).code).toBe('EUNAVAILABLE');
      // Already explained, or not about etcd: left as it is.
      expect(await explainEtcdSilence(err, [up], 5000, 'x')).toBe(err);
      const other = new Error('boom');
      expect(await explainEtcdSilence(other, [up], 5000, 'x')).toBe(other);
      expect((await explainEtcdSilence(new UnavailableError('u'), [down], 5000, 'nothing was changed') as Error).message).toBe(
        `etcd at ${down} did not answer within 5 s (its endpoint is not reachable: is etcd running?): nothing was changed`,
      );
    } finally {
      open.close();
    }
  });
});
