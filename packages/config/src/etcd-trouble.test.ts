import { afterEach, describe, expect, it, vi } from 'vitest';
import { etcdTrouble } from './etcd-trouble.js';

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
