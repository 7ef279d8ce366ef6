/**
 * SLOWLOG on the proxy shows the proxy's own slow requests (time from parsing to reply), and
 * the per-command latency histogram on /metrics counts them in the right bucket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Redis from 'ioredis';
import { keySlot } from '@reborn/protocol';
import { startCluster, type Cluster } from '@reborn/testkit';

let cluster: Cluster;
let r: Redis;

// Busy-waits `ARGV[1]` milliseconds inside redis: a request that is slow for a known reason.
const SLOW_SCRIPT = `
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1]) * 1000
return 1`;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 1, proxyArgs: ['--slowlog-slower-than', '50000', '--slowlog-max-len', '3'] });
  r = cluster.proxies[0]!.client();
}, 60_000);

afterAll(async () => {
  r?.disconnect();
  await cluster?.stop();
});

type Entry = [number, number, number, string[], string, string];

describe('proxy SLOWLOG', () => {
  it('records a slow request with its arguments and duration, not the fast ones', async () => {
    await r.call('SLOWLOG', 'RESET');
    await r.set('fast:key', 'v');
    await r.eval(SLOW_SCRIPT, 1, 'slow:key', '120');
    await r.get('fast:key');
    const entries = (await r.call('SLOWLOG', 'GET')) as Entry[];
    // Only requests over the threshold are recorded. The two fast ones normally take well under
    // a millisecond, but a loaded machine can stall any request past 50 ms: such an entry is
    // right to be there, and it must carry its real duration.
    for (const e of entries) expect(e[2]).toBeGreaterThanOrEqual(50_000);
    const slow = entries.filter((e) => e[3][0]!.toLowerCase() === 'eval');
    expect(slow).toHaveLength(1);
    const [id, time, micros, args, client] = slow[0]!;
    expect(typeof id).toBe('number');
    expect(Math.abs(time - Date.now() / 1000)).toBeLessThan(60);
    expect(micros).toBeGreaterThanOrEqual(120_000);
    expect(args[0]!.toLowerCase()).toBe('eval');
    expect(args.slice(2)).toEqual(['1', 'slow:key', '120']);
    expect(client).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await r.call('SLOWLOG', 'LEN')).toBe(entries.length);
  });

  it('keeps only --slowlog-max-len entries, newest first, and RESET empties it', async () => {
    await r.call('SLOWLOG', 'RESET');
    for (const ms of ['60', '61', '62', '63']) await r.eval(SLOW_SCRIPT, 1, `slow:${ms}`, ms);
    const entries = (await r.call('SLOWLOG', 'GET', '-1')) as Entry[];
    expect(entries.map((e) => e[3][3])).toEqual(['slow:63', 'slow:62', 'slow:61']);
    expect(((await r.call('SLOWLOG', 'GET', '1')) as Entry[]).map((e) => e[3][3])).toEqual(['slow:63']);
    expect(await r.call('SLOWLOG', 'RESET')).toBe('OK');
    expect(await r.call('SLOWLOG', 'LEN')).toBe(0);
    // Bad arguments get redis 7.0's own replies.
    await expect(r.call('SLOWLOG', 'GET', 'x')).rejects.toThrow(/^ERR count should be greater than or equal to -1$/);
    await expect(r.call('SLOWLOG', 'GET', '99999999999999999999999')).rejects.toThrow(/^ERR count should be greater than or equal to -1$/);
    await expect(r.call('SLOWLOG', 'GET', '1', '2')).rejects.toThrow(/^ERR unknown subcommand or wrong number of arguments for 'get'\. Try SLOWLOG HELP\.$/);
  });

  it('the latency histogram puts the slow EVALs above 50 ms and parses as Prometheus text', async () => {
    const text = await cluster.proxies[0]!.metrics();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      expect(line, line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (NaN|\+Inf|-Inf)$/);
    }
    const value = (series: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(series + ' '));
      expect(line, series).toBeDefined();
      return Number(line!.split(' ').pop());
    };
    const count = value('reborn_proxy_command_duration_seconds_count{cmd="eval"}');
    const under50ms = value('reborn_proxy_command_duration_seconds_bucket{cmd="eval",le="0.05"}');
    expect(count).toBeGreaterThanOrEqual(5);
    expect(under50ms).toBe(0);
    expect(value('reborn_proxy_command_duration_seconds_bucket{cmd="eval",le="+Inf"}')).toBe(count);
  });

  it('/api/slots counts keyed requests per slot, splits counted per key', async () => {
    const read = async (): Promise<{ commands: number; slotOps: number[] }> =>
      JSON.parse(await cluster.proxies[0]!.adminGet('/api/slots'));
    const before = await read();
    expect(before.slotOps).toHaveLength(1024);
    // {a} and {b} hash to different slots; MGET is split across them and counts each key.
    for (let i = 0; i < 7; i++) await r.set('{a}k', 'v');
    await r.mget('{a}k', '{b}k', '{b}k2');
    const after = await read();
    const delta = after.slotOps.map((n, slot) => n - before.slotOps[slot]!);
    expect(delta[keySlot(Buffer.from('{a}k'))]).toBe(8);
    expect(delta[keySlot(Buffer.from('{b}k'))]).toBe(2);
    expect(delta.reduce((sum, n) => sum + n, 0)).toBe(10);
    expect(after.commands).toBeGreaterThan(before.commands);
  });
});
