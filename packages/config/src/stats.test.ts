import { describe, expect, it } from 'vitest';
import type { Store } from '@reborn/coordinator';
import {
  MAX_WINDOW_MS, MIN_WINDOW_MS, RateHistory, Stats, describeFetchError, fromInfo, rateBetween, singleFlight, type ProxySample,
} from './stats.js';

const sample = (at: number, commands: number, slot0 = 0, pid = 1): ProxySample => {
  const slotOps = new Array<number>(1024).fill(0);
  slotOps[0] = slot0;
  slotOps[1023] = commands - slot0;
  return { at, commands, slotOps, pid };
};

describe('rates from cumulative proxy counters', () => {
  it('no rate from one sample; the difference over the time between two', () => {
    const h = new RateHistory();
    expect(h.add(sample(10_000, 100, 40))).toBeNull();
    const r = h.add(sample(12_000, 700, 440))!;
    expect(r.qps).toBe(300);
    expect(r.windowMs).toBe(2000);
    expect(r.slotQps[0]).toBe(200);
    expect(r.slotQps[1023]).toBe(100);
    expect(r.slotQps.slice(1, 1023).every((n) => n === 0)).toBe(true);
  });

  it('readers asking fast still get a rate over at least MIN_WINDOW_MS when the history has it', () => {
    const h = new RateHistory();
    h.add(sample(0, 0));
    h.add(sample(1500, 1500));
    // 10 ms later: measured from the sample 1500 ms back, not over 10 ms.
    const r = h.add(sample(1510, 1600))!;
    expect(r.windowMs).toBe(1510);
    const r2 = h.add(sample(1500 + MIN_WINDOW_MS + 1, 2000))!;
    expect(r2.windowMs).toBe(MIN_WINDOW_MS + 1);
    expect(r2.qps).toBe(Math.round(((500 * 1000) / (MIN_WINDOW_MS + 1)) * 100) / 100);
  });

  it('a restarted proxy (new pid, or counters going back) starts its history over', () => {
    const h = new RateHistory();
    h.add(sample(0, 5000));
    expect(h.add(sample(2000, 10, 0, 2))).toBeNull();
    expect(h.add(sample(4000, 2010, 0, 2))!.qps).toBe(1000);
    expect(h.add(sample(6000, 5))).toBeNull();
  });

  it('a sample not newer than the last adds nothing: the rate stays the one up to the last', () => {
    expect(rateBetween(sample(5, 1), sample(5, 9))).toBeNull();
    const h = new RateHistory();
    h.add(sample(1000, 10));
    h.add(sample(3000, 30));
    // Used as the newest, the old sample would give 10/s over 1000 ms (or nothing, as a baseline).
    expect(h.add(sample(2000, 20))).toMatchObject({ qps: 10, windowMs: 2000 });
  });

  it('no rate over more than MAX_WINDOW_MS: after a long gap the history starts over', () => {
    const h = new RateHistory();
    h.add(sample(0, 0));
    // An hour later: not the hour's average.
    expect(h.add(sample(3_600_000, 360_000))).toBeNull();
    expect(h.add(sample(3_602_000, 362_000))).toMatchObject({ qps: 1000, windowMs: 2000 });
  });

  it('an old baseline is dropped for a recent sample, even when the gap to the last one is short', () => {
    const h = new RateHistory();
    h.add(sample(0, 0));
    h.add(sample(MAX_WINDOW_MS - 500, 100));
    // The sample at 0 is more than MAX_WINDOW_MS back: the rate is from the one 700 ms back.
    expect(h.add(sample(MAX_WINDOW_MS + 200, 170))).toMatchObject({ qps: 100, windowMs: 700 });
  });

  it('readers asking every millisecond still get a window of at least MIN_WINDOW_MS', () => {
    const h = new RateHistory();
    let r = null;
    for (let t = 0; t <= 3 * MIN_WINDOW_MS; t++) r = h.add(sample(t, t * 2));
    expect(r!.windowMs).toBeGreaterThanOrEqual(MIN_WINDOW_MS);
    expect(r!.windowMs).toBeLessThanOrEqual(MIN_WINDOW_MS + 100);
    expect(r!.qps).toBe(2000);
  });
});

describe('server INFO fields', () => {
  it('a replica: role, master, link, offset, memory, keys over all databases', () => {
    const f = {
      role: 'slave', master_host: '127.0.0.1', master_port: '7001', master_link_status: 'up', master_last_io_seconds_ago: '1',
      slave_repl_offset: '12345678901234567', used_memory: '1048576', maxmemory: '0', connected_clients: '3',
      instantaneous_ops_per_sec: '42', db0: 'keys=10,expires=2,avg_ttl=0', db3: 'keys=5,expires=0,avg_ttl=0',
    };
    expect(fromInfo(f)).toEqual({
      ok: true, actualRole: 'replica', masterAddr: '127.0.0.1:7001', linkUp: true, offset: '12345678901234567', lastIoSeconds: 1,
      usedMemory: 1048576, maxMemory: 0, keys: 15, expires: 2, clients: 3, opsPerSec: 42,
    });
  });

  it('an empty master has 0 keys and no replica fields', () => {
    expect(fromInfo({ role: 'master', master_repl_offset: '0', used_memory: '900000' })).toMatchObject({
      actualRole: 'master', masterAddr: null, linkUp: null, offset: '0', lastIoSeconds: null, keys: 0, expires: 0,
    });
  });
});

describe('single flight', () => {
  it('concurrent callers share one call; a caller after it settles starts another', async () => {
    let calls = 0;
    let release!: () => void;
    const f = singleFlight(async () => {
      calls++;
      await new Promise<void>((r) => (release = r));
      return calls;
    });
    const [a, b] = [f(), f()];
    expect(a).toBe(b);
    release();
    expect(await Promise.all([a, b])).toEqual([1, 1]);
    const c = f();
    release();
    expect(await c).toBe(2);
    expect(calls).toBe(2);
  });

  it('Stats.servers() is shared by concurrent callers', async () => {
    let listed = 0;
    const store = {
      paths: { agents: '/t/agents/' },
      listGroups: async () => {
        listed++;
        return [];
      },
      call: async () => ({ kvs: [] }),
    } as unknown as Store;
    const stats = new Stats(store);
    const [a, b] = await Promise.all([stats.servers(), stats.servers()]);
    expect(a).toBe(b);
    expect(listed).toBe(1);
  });
});

describe('HA health records', () => {
  it('an etcd error reading them is reported in healthError, not hidden', async () => {
    const store = {
      paths: { agents: '/t/agents/' },
      listGroups: async () => [],
      call: async (what: string) => {
        throw new Error(`etcd: ${what} failed`);
      },
    } as unknown as Store;
    const sv = await new Stats(store).servers();
    expect(sv).toMatchObject({ servers: [], healthError: 'etcd: list server health failed', down: 0 });
  });
});

describe('fetch failures', () => {
  it('say timeout, or the socket error, in one line', () => {
    expect(describeFetchError(Object.assign(new Error('x'), { name: 'TimeoutError' }), 800)).toBe('no answer within 800 ms');
    expect(describeFetchError(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:1') }), 800)).toBe(
      'connect ECONNREFUSED 127.0.0.1:1',
    );
  });
});
