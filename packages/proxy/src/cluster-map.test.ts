import { describe, expect, it } from 'vitest';
import type { ProxyInfo } from '@reborn/coordinator';
import { CLUSTER_SLOTS, clusterKeySlot, clusterMap, crc16, nodeIdOf, sameMap } from './cluster-map.js';

const proxy = (id: string, clusterAddr: string | undefined, state: ProxyInfo['state'] = 'online'): ProxyInfo => ({
  id,
  addr: '127.0.0.1:19000',
  adminAddr: '127.0.0.1:19001',
  pid: 1,
  host: 'h',
  startedAt: '2024-01-01T00:00:00.000Z',
  state,
  ...(clusterAddr === undefined ? {} : { clusterAddr }),
});
const self = { id: 'me', clusterAddr: '127.0.0.1:7999' };

/** The ranges must tile 0..16383: contiguous, in order, nothing left over. */
function expectTiling(ranges: Array<{ from: number; to: number }>): void {
  let next = 0;
  for (const r of ranges) {
    expect(r.from).toBe(next);
    expect(r.to).toBeGreaterThanOrEqual(r.from);
    next = r.to + 1;
  }
  expect(next).toBe(CLUSTER_SLOTS);
}

describe('clusterMap', () => {
  it('online proxies with a cluster address, by id, in near-equal contiguous ranges', () => {
    const map = clusterMap('p', [proxy('b', '10.0.0.2:7000'), proxy('a', '10.0.0.1:7000'), proxy('c', '10.0.0.3:7000')], self);
    expect(map.map((n) => [n.proxyId, n.addr, n.from, n.to, n.epoch])).toEqual([
      ['a', '10.0.0.1:7000', 0, 5460, 1],
      ['b', '10.0.0.2:7000', 5461, 10921, 2],
      ['c', '10.0.0.3:7000', 10922, 16383, 3],
    ]);
    for (let n = 1; n <= 9; n++) {
      const ranges = clusterMap('p', Array.from({ length: n }, (_, i) => proxy(`p${i}`, `10.0.0.${i}:7000`)), self);
      expectTiling(ranges);
      const sizes = ranges.map((r) => r.to - r.from + 1);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
  });

  it('skips proxies without a face or not online; falls back to itself alone', () => {
    const map = clusterMap('p', [proxy('a', undefined), proxy('b', '10.0.0.2:7000', 'starting'), proxy('c', '10.0.0.3:7000')], self);
    expect(map.map((n) => n.proxyId)).toEqual(['c']);
    expect(clusterMap('p', [proxy('a', undefined)], self).map((n) => [n.proxyId, n.addr, n.from, n.to])).toEqual([['me', '127.0.0.1:7999', 0, 16383]]);
    expect(clusterMap('p', [], self)).toHaveLength(1);
  });

  it('one node per address (workers share one), named by its lowest proxy id', () => {
    const map = clusterMap('p', [proxy('x-w1', '10.0.0.1:7000'), proxy('x-w0', '10.0.0.1:7000'), proxy('y', '10.0.0.2:7000')], self);
    expect(map.map((n) => [n.proxyId, n.addr])).toEqual([
      ['x-w0', '10.0.0.1:7000'],
      ['y', '10.0.0.2:7000'],
    ]);
  });

  it('is the same map whatever order the registrations come in', () => {
    const list = [proxy('b', '10.0.0.2:7000'), proxy('a', '10.0.0.1:7000'), proxy('c', '10.0.0.3:7000')];
    expect(sameMap(clusterMap('p', list, self), clusterMap('p', [...list].reverse(), { id: 'other', clusterAddr: 'h:1' }))).toBe(true);
    expect(sameMap(clusterMap('p', list, self), clusterMap('p', list.slice(1), self))).toBe(false);
  });

  it('hosts: IPv6 without brackets, names flagged as hostnames', () => {
    const [v6, name] = clusterMap('p', [proxy('a', '[::1]:7000'), proxy('b', 'proxy-b.example:7001')], self);
    expect([v6!.host, v6!.port, v6!.isHostname]).toEqual(['::1', 7000, false]);
    expect([name!.host, name!.port, name!.isHostname]).toEqual(['proxy-b.example', 7001, true]);
  });
});

describe('node ids', () => {
  it('40 hex characters, stable per product and proxy id, distinct otherwise', () => {
    const id = nodeIdOf('prod', 'proxy-1');
    expect(id).toMatch(/^[0-9a-f]{40}$/);
    expect(nodeIdOf('prod', 'proxy-1')).toBe(id);
    expect(nodeIdOf('prod', 'proxy-2')).not.toBe(id);
    expect(nodeIdOf('other', 'proxy-1')).not.toBe(id);
    expect(clusterMap('prod', [proxy('proxy-1', 'h:1')], self)[0]!.id).toBe(id);
  });
});

describe('CLUSTER KEYSLOT', () => {
  it("is Redis Cluster's CRC16 (the reference values of the Redis Cluster spec and redis-server)", () => {
    expect(crc16(Buffer.from('123456789'))).toBe(0x31c3);
    // Answers of a real redis-server 7.0 (CLUSTER KEYSLOT); cluster-face.test.ts compares many more.
    expect(clusterKeySlot(Buffer.from('foo'))).toBe(12182);
    expect(clusterKeySlot(Buffer.from('{user1}:a'))).toBe(8106);
    expect(clusterKeySlot(Buffer.from('{}x'))).toBe(10595);
    expect(clusterKeySlot(Buffer.from('{user1}:b'))).toBe(clusterKeySlot(Buffer.from('user1')));
  });
});
