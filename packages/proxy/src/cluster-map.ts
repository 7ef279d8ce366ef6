/**
 * The Redis Cluster map the cluster face shows: which proxy "serves" which of the 16384
 * CRC16 slots, the node id of each proxy, and CLUSTER KEYSLOT's hash.
 *
 * Invariant: the map is a pure function of the registered proxies, so every proxy that sees
 * the same registrations serves the same map — the online proxies with a cluster address,
 * one node per distinct address (workers of one process share theirs), ordered by proxy id,
 * the 16384 slots cut into contiguous ranges as equal as integer division allows. The map
 * only spreads client connections: any proxy serves any key (the proxy routes every request
 * by its own slot table), so no proxy ever answers MOVED or ASK.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { hashTag } from '@reborn/protocol';
import { splitAddr, type ProxyInfo } from '@reborn/coordinator';

/** Redis Cluster's slot count (the proxy's own table has 1024 slots; the two never mix). */
export const CLUSTER_SLOTS = 16384;

export interface ClusterNode {
  /** 40 hex characters, derived from the proxy id (nodeIdOf). */
  readonly id: string;
  readonly proxyId: string;
  /** `host:port` as announced (IPv6 in brackets). */
  readonly addr: string;
  /** The host without brackets, as Redis prints it. */
  readonly host: string;
  readonly port: number;
  /** The host is a name, not an IP literal (Redis then lists it as `hostname` too). */
  readonly isHostname: boolean;
  /** First and last cluster slot, inclusive. */
  readonly from: number;
  readonly to: number;
  /** 1-based position in the map: the node's config epoch. */
  readonly epoch: number;
}

/**
 * A node id that never changes for a proxy id: a restarted proxy keeps its id, so clients
 * see the same node come back. Salted with the product so two products never share ids.
 */
export function nodeIdOf(product: string, proxyId: string): string {
  return createHash('sha1').update(`reborn-cluster-node\0${product}\0${proxyId}`).digest('hex');
}

/**
 * The map served for `proxies` (as registered in etcd). `self` stands in alone when no
 * online proxy has a cluster address yet (etcd not read yet, or this proxy not yet online):
 * the proxy serves every key itself, so a map of itself is true, and clients can start.
 */
export function clusterMap(product: string, proxies: readonly ProxyInfo[], self: { id: string; clusterAddr: string }): ClusterNode[] {
  const byAddr = new Map<string, string>();
  for (const p of proxies) {
    if (p.state !== 'online' || p.clusterAddr === undefined) continue;
    const holder = byAddr.get(p.clusterAddr);
    if (holder === undefined || p.id < holder) byAddr.set(p.clusterAddr, p.id);
  }
  if (byAddr.size === 0) byAddr.set(self.clusterAddr, self.id);
  const entries = [...byAddr].sort(([, a], [, b]) => (a < b ? -1 : a > b ? 1 : 0));
  const n = entries.length;
  return entries.map(([addr, proxyId], i) => {
    const { host, port } = splitAddr(addr);
    return {
      id: nodeIdOf(product, proxyId),
      proxyId,
      addr,
      host,
      port,
      isHostname: isIP(host) === 0,
      from: Math.floor((i * CLUSTER_SLOTS) / n),
      to: Math.floor(((i + 1) * CLUSTER_SLOTS) / n) - 1,
      epoch: i + 1,
    };
  });
}

/** Two maps show clients the same thing. */
export function sameMap(a: readonly ClusterNode[], b: readonly ClusterNode[]): boolean {
  return a.length === b.length && a.every((x, i) => x.id === b[i]!.id && x.addr === b[i]!.addr && x.from === b[i]!.from && x.to === b[i]!.to);
}

/** CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with. */
const CRC16_TABLE = ((): Uint16Array => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc;
}

/** CLUSTER KEYSLOT: Redis Cluster's slot of a key (same hash-tag rule as the proxy's own slots). */
export function clusterKeySlot(key: Uint8Array): number {
  return crc16(hashTag(key)) % CLUSTER_SLOTS;
}
