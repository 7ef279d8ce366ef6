/**
 * The Redis Cluster face of a proxy (`--cluster-addr`): sessions accepted on that listener
 * are ordinary proxy sessions that also answer CLUSTER SLOTS / SHARDS / NODES / INFO / MYID /
 * KEYSLOT / REPLICAS as a Redis 7 cluster node would, so cluster-mode clients work unchanged.
 * The map they see comes from cluster-map.ts, rebuilt whenever the proxies registered in
 * etcd change.
 *
 * Invariant: a session is a cluster session exactly when it was accepted on a cluster
 * listener (adopt); every other session gets Redis' answer for a server without cluster
 * support, except CLUSTER KEYSLOT, which is a pure function of the key. Every reply is
 * built in the session's protocol (RESP2, or RESP3 after HELLO 3): maps, verbatim text.
 */
import type { Logger } from 'pino';
import {
  encodeArrayOfEncoded,
  encodeBulk,
  encodeError,
  encodeInteger,
  encodeMap,
  encodeMapOf,
  encodeVerbatim,
  type Protocol,
} from '@reborn/protocol';
import { ProxyListWatch, type ProxyInfo, type Store } from '@reborn/coordinator';
import { CLUSTER_SLOTS, clusterKeySlot, clusterMap, nodeIdOf, sameMap, type ClusterNode } from './cluster-map.js';
import type { Session } from './session.js';

const DISABLED = encodeError('ERR This instance has cluster support disabled');

export interface ClusterFaceOptions {
  product: string;
  proxyId: string;
  logger: Logger;
  /** Whether this proxy serves data commands now: CLUSTER INFO says `ok`, else `fail`. */
  serving(): boolean;
}

/** The face a cluster session was accepted by; no entry: a session of the plain port. */
const faceOf = new WeakMap<Session, ClusterFace>();

/** Whether `session` came in on a cluster listener (HELLO answers `mode cluster` there). */
export function isClusterSession(session: Session): boolean {
  return faceOf.has(session);
}

/**
 * CLUSTER <subcommand> for any session (local-commands.ts hands every `cluster|*` here).
 * Arity is checked by the dispatcher already.
 */
export function answerCluster(session: Session, name: string, args: readonly Buffer[]): Buffer {
  if (name === 'cluster|keyslot') return encodeInteger(clusterKeySlot(args[2]!));
  const face = faceOf.get(session);
  return face === undefined ? DISABLED : face.answer(session.resp, name, args);
}

export class ClusterFace {
  private announced: string | null = null;
  private proxies: readonly ProxyInfo[] = [];
  private nodes: ClusterNode[] = [];
  private watch: ProxyListWatch | null = null;

  constructor(private readonly options: ClusterFaceOptions) {}

  /** Sets the address clients are told (--cluster-announce, or the bound listen address). */
  announceAt(addr: string): void {
    this.announced = addr;
    this.rebuild();
  }

  get announcedAddr(): string | null {
    return this.announced;
  }

  /** The current map (for tests and /api/proxy). */
  get map(): readonly ClusterNode[] {
    return this.nodes;
  }

  /** Marks `session` as one of this face's (called as the cluster listener accepts it). */
  adopt(session: Session): void {
    faceOf.set(session, this);
  }

  /** Follows the registered proxies; the map changes as they come and go. */
  follow(store: Store): void {
    this.watch ??= new ProxyListWatch(store, {
      onList: (proxies) => {
        this.proxies = proxies;
        this.rebuild();
      },
      onError: (err) => this.options.logger.warn({ err: err.message }, 'cannot read the registered proxies for the cluster map; keeping the last one'),
    });
  }

  async close(): Promise<void> {
    await this.watch?.close();
  }

  /** This proxy's node id: that of its address in the map (workers share one), else its own. */
  get myId(): string {
    return this.nodes.find((n) => n.addr === this.announced)?.id ?? nodeIdOf(this.options.product, this.options.proxyId);
  }

  answer(resp: Protocol, name: string, args: readonly Buffer[]): Buffer {
    switch (name) {
      case 'cluster|slots':
        return encodeArrayOfEncoded(this.nodes.map((n) => slotsEntry(resp, n)));
      case 'cluster|shards':
        return encodeArrayOfEncoded(this.nodes.map((n) => shard(resp, n)));
      case 'cluster|nodes':
        return encodeVerbatim(resp, nodesText(this.nodes, this.myId));
      case 'cluster|info':
        return encodeVerbatim(resp, this.infoText());
      case 'cluster|myid':
        return encodeBulk(this.myId);
      case 'cluster|replicas':
      case 'cluster|slaves': {
        // Every node is a master without replicas (a proxy's redundancy is the other proxies).
        const id = args[2]!.toString('latin1');
        return this.nodes.some((n) => n.id === id) ? encodeArrayOfEncoded([]) : encodeError(`ERR Unknown node ${id.slice(0, 128)}`);
      }
      default:
        return encodeError(`ERR command '${name.replace('|', ' ')}' is not supported by reborn`);
    }
  }

  private infoText(): string {
    const n = this.nodes.length;
    const mine = this.nodes.find((x) => x.addr === this.announced);
    return [
      `cluster_state:${this.options.serving() ? 'ok' : 'fail'}`,
      `cluster_slots_assigned:${CLUSTER_SLOTS}`,
      `cluster_slots_ok:${CLUSTER_SLOTS}`,
      'cluster_slots_pfail:0',
      'cluster_slots_fail:0',
      `cluster_known_nodes:${n}`,
      `cluster_size:${n}`,
      `cluster_current_epoch:${n}`,
      `cluster_my_epoch:${mine?.epoch ?? 0}`,
      'cluster_stats_messages_sent:0',
      'cluster_stats_messages_received:0',
      'total_cluster_links_buffer_limit_exceeded:0',
      '',
    ].join('\r\n');
  }

  private rebuild(): void {
    if (this.announced === null) return;
    const next = clusterMap(this.options.product, this.proxies, { id: this.options.proxyId, clusterAddr: this.announced });
    if (sameMap(next, this.nodes)) return;
    this.nodes = next;
    this.options.logger.info({ nodes: next.map((n) => `${n.proxyId}@${n.addr} ${n.from}-${n.to}`) }, 'cluster map changed');
  }
}

/** A node as CLUSTER SLOTS lists it: endpoint, port, id, and Redis 7's metadata map. */
function slotsNode(resp: Protocol, n: ClusterNode): Buffer {
  const metadata = n.isHostname ? encodeMapOf(resp, [['hostname', encodeBulk(n.host)]]) : encodeMap(resp, []);
  return encodeArrayOfEncoded([encodeBulk(n.host), encodeInteger(n.port), encodeBulk(n.id), metadata]);
}

function slotsEntry(resp: Protocol, n: ClusterNode): Buffer {
  return encodeArrayOfEncoded([encodeInteger(n.from), encodeInteger(n.to), slotsNode(resp, n)]);
}

/** One CLUSTER SHARDS entry: a map of its slot ranges and its nodes (each a map, Redis 7's fields in its order). */
function shard(resp: Protocol, n: ClusterNode): Buffer {
  const node = encodeMapOf(resp, [
    ['id', encodeBulk(n.id)],
    ['port', encodeInteger(n.port)],
    ['ip', encodeBulk(n.host)],
    ['endpoint', encodeBulk(n.host)],
    ...(n.isHostname ? ([['hostname', encodeBulk(n.host)]] as const) : []),
    ['role', encodeBulk('master')],
    ['replication-offset', encodeInteger(0)],
    ['health', encodeBulk('online')],
  ]);
  return encodeMapOf(resp, [
    ['slots', encodeArrayOfEncoded([encodeInteger(n.from), encodeInteger(n.to)])],
    ['nodes', encodeArrayOfEncoded([node])],
  ]);
}

/**
 * CLUSTER NODES: one `\n`-terminated line per node, Redis 7's columns. The cluster bus port
 * is 0 (proxies have no bus); pong-recv is now for the others (they are registered live).
 */
function nodesText(nodes: readonly ClusterNode[], myId: string): string {
  const now = Date.now();
  return nodes
    .map((n) => {
      const me = n.id === myId;
      const addr = `${n.host}:${n.port}@0${n.isHostname ? `,${n.host}` : ''}`;
      return `${n.id} ${addr} ${me ? 'myself,master' : 'master'} - 0 ${me ? 0 : now} ${n.epoch} connected ${n.from}-${n.to}\n`;
    })
    .join('');
}
