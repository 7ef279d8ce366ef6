/**
 * A whole product for end-to-end tests: etcd, `groups` redis groups (a master and `replicas`
 * replicas each, replication up), the 1024 slots spread over the groups in contiguous ranges
 * and online, and `proxies` reborn-proxy processes. Group ids are 1..groups.
 */
import { randomBytes } from 'node:crypto';
import { SLOT_COUNT, ServerRole, Store, onlineSlot, type GroupInfo } from '@reborn/coordinator';
import { trackHandle } from './cleanup.js';
import { startEtcd, type EtcdServer } from './etcd.js';
import { startProxy, type ProxyProcess } from './proxy.js';
import { startRedis, type RedisServer } from './redis.js';

export interface StartClusterOptions {
  groups?: number;
  replicas?: number;
  proxies?: number;
  /** Default: a random name, so clusters sharing an etcd never collide. */
  product?: string;
  proxyArgs?: readonly string[];
  proxyEnv?: NodeJS.ProcessEnv;
  redisArgs?: readonly string[];
  /** Every redis server gets this default-user password, and the proxies REBORN_REDIS_PASSWORD. */
  redisPassword?: string;
  /** The loopback address the redis servers bind: default 127.0.0.1; `::1` for IPv6. */
  redisHost?: string;
  /** Every proxy (addProxy's too) also gets a Redis Cluster face (`--cluster-addr`). */
  clusterFace?: boolean;
}

export interface ClusterGroup {
  id: number;
  master: RedisServer;
  replicas: RedisServer[];
}

export interface Cluster {
  product: string;
  etcd: EtcdServer;
  groups: ClusterGroup[];
  proxies: ProxyProcess[];
  store: Store;
  /** Starts one more proxy for this product (kept in `proxies`). */
  addProxy(args?: readonly string[]): Promise<ProxyProcess>;
  /** Stops proxies, then the store, redis and etcd. Idempotent. */
  stop(): Promise<void>;
}

/** Writes slots from..to (inclusive) as online in group `gid`. Returns the etcd revision. */
export async function assignSlots(store: Store, from: number, to: number, gid: number): Promise<string> {
  if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to < SLOT_COUNT)) {
    throw new RangeError(`bad slot range ${from}..${to}`);
  }
  const slots = Array.from({ length: to - from + 1 }, (_, i) => onlineSlot(from + i, gid));
  return store.putSlots(slots);
}

/** The contiguous range of group index `i` (0-based) of `n`, as even as integer division allows. */
export function slotRange(i: number, n: number): [from: number, to: number] {
  return [Math.floor((i * SLOT_COUNT) / n), Math.floor(((i + 1) * SLOT_COUNT) / n) - 1];
}

export async function startCluster(opts: StartClusterOptions = {}): Promise<Cluster> {
  const { groups: groupCount = 2, replicas = 0, proxies: proxyCount = 1 } = opts;
  const product = opts.product ?? `t${randomBytes(4).toString('hex')}`;
  // Everything started so far, stopped in reverse if a later step fails.
  const started: { stop(): Promise<void> }[] = [];
  const start = async <T extends { stop(): Promise<void> }>(p: Promise<T>): Promise<T> => {
    const v = await p;
    started.push(v);
    return v;
  };
  try {
    // Without the 5 s default delay before a diskless full sync, replicas come up at once.
    const redisOpts = {
      args: ['--repl-diskless-sync-delay', '0', ...(opts.redisArgs ?? [])],
      ...(opts.redisPassword === undefined ? {} : { password: opts.redisPassword }),
      ...(opts.redisHost === undefined ? {} : { host: opts.redisHost }),
    };
    const [etcd, groups] = await Promise.all([
      start(startEtcd()),
      Promise.all(
        Array.from({ length: groupCount }, async (_, i): Promise<ClusterGroup> => {
          const [master, ...reps] = await Promise.all(
            Array.from({ length: 1 + replicas }, () => start(startRedis(redisOpts))),
          );
          if (!master) throw new Error('unreachable: a group has a master');
          await Promise.all(reps.map((r) => replicate(r, master)));
          return { id: i + 1, master, replicas: reps };
        }),
      ),
    ]);

    const store = await Store.open({ endpoints: [etcd.clientUrl], product });
    started.push({ stop: () => store.close() });
    for (const g of groups) await store.putGroup(groupInfo(g));
    for (const [i, g] of groups.entries()) await assignSlots(store, ...slotRange(i, groupCount), g.id);

    const proxies: ProxyProcess[] = [];
    const addProxy = async (args: readonly string[] = opts.proxyArgs ?? []): Promise<ProxyProcess> => {
      const env = opts.redisPassword === undefined ? opts.proxyEnv : { ...opts.proxyEnv, REBORN_REDIS_PASSWORD: opts.redisPassword };
      const p = await start(startProxy({ etcd: etcd.clientUrl, product, args, env, ...(opts.clusterFace ? { clusterFace: true } : {}) }));
      proxies.push(p);
      return p;
    };
    await Promise.all(Array.from({ length: proxyCount }, () => addProxy()));

    let stopping: Promise<void> | null = null;
    const cluster: Cluster = {
      product,
      etcd,
      groups,
      proxies,
      store,
      addProxy,
      stop: () => {
        stopping ??= (async () => {
          untrack();
          await Promise.allSettled(proxies.map((p) => p.stop()));
          await store.close();
          await Promise.allSettled([etcd.stop(), ...groups.flatMap((g) => [g.master, ...g.replicas]).map((r) => r.stop())]);
        })();
        return stopping;
      },
    };
    const untrack = trackHandle(cluster);
    return cluster;
  } catch (err) {
    await Promise.allSettled(started.reverse().map((s) => s.stop()));
    throw err;
  }
}

function groupInfo(g: ClusterGroup): GroupInfo {
  return {
    id: g.id,
    servers: [
      { addr: g.master.addr, role: ServerRole.Master },
      ...g.replicas.map((r) => ({ addr: r.addr, role: ServerRole.Replica })),
    ],
  };
}

/** REPLICAOF master, then wait until the replica reports its link up (initial sync done). */
async function replicate(replica: RedisServer, master: RedisServer, timeoutMs = 20_000): Promise<void> {
  const c = replica.client({ maxRetriesPerRequest: 1 });
  try {
    await c.replicaof(master.host, master.port);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await c.info('replication');
      if (/^master_link_status:up\r?$/m.test(info)) return;
      if (Date.now() > deadline) {
        throw new Error(`replica ${replica.addr} of ${master.addr}: link not up after ${timeoutMs} ms:\n${info}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    c.disconnect();
  }
}
