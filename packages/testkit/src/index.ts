/**
 * @reborn/testkit — real redis-server, etcd and reborn-proxy processes for tests, on free
 * ports, safe to run in parallel, and never left behind (see cleanup.ts).
 */
export { freePort } from './ports.js';
export { waitFor, type WaitOptions } from './wait.js';
export { stopAll, tempDir, liveChildPids, type Stoppable } from './cleanup.js';
export { ManagedProcess, ExitedEarlyError, healthzFrom, type SpawnSpec, type Exit } from './process.js';
export { startRedis, RedisServer, type StartRedisOptions } from './redis.js';
export { startEtcd, EtcdServer, type StartEtcdOptions } from './etcd.js';
export { startProxy, ProxyProcess, PROXY_BIN, type StartProxyOptions } from './proxy.js';
export {
  startCluster,
  assignSlots,
  slotRange,
  type Cluster,
  type ClusterGroup,
  type StartClusterOptions,
} from './cluster.js';
