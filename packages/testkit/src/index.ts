/**
 * @reborn/testkit — real redis-server, etcd and reborn-proxy processes for tests, on free
 * ports, safe to run in parallel, and never left behind (see cleanup.ts); and the one launcher
 * bench/ and `npm start` use too (daemon-args.ts, daemons.ts, local-cluster.ts).
 */
export { freePort, portFrom } from './ports.js';
export { waitFor, type WaitOptions } from './wait.js';
export { stopAll, tempDir, liveChildPids, type Stoppable } from './cleanup.js';
export { ManagedProcess, ExitedEarlyError, healthzFrom, tailOfFile, type SpawnSpec, type Exit } from './process.js';
export { startRedis, RedisServer, type StartRedisOptions } from './redis.js';
export { startEtcd, EtcdServer, type StartEtcdOptions } from './etcd.js';
export { startEtcdCluster, EtcdCluster } from './etcd-cluster.js';
export { TcpRelay } from './tcp-relay.js';
export { startProxy, ProxyProcess, PROXY_BIN, type StartProxyOptions } from './proxy.js';
export {
  startCluster,
  assignSlots,
  slotRange,
  type Cluster,
  type ClusterGroup,
  type StartClusterOptions,
} from './cluster.js';
export {
  REPO_ROOT,
  AGENT_BIN,
  CONFIG_BIN,
  etcdArgs,
  redisArgs,
  proxyArgs,
  agentArgs,
  dashboardArgs,
  type EtcdArgsOptions,
  type RedisArgsOptions,
  type ProxyArgsOptions,
  type AgentArgsOptions,
} from './daemon-args.js';
export {
  DaemonSet,
  type Daemon,
  type DaemonSpec,
  type DaemonSetOptions,
  type WaitReadyOptions,
  type StopOptions,
} from './daemons.js';
export { LauncherLock, LauncherBusyError, startTimeOf, type LockedProcess } from './launcher-lock.js';
export { LocalCluster, ensureSecretFile, type LocalClusterOptions, type LocalEndpoints } from './local-cluster.js';
export { AgentApi, AgentApiError, appsLeftInStateFile, stillRunsApp, type AgentAppView, type StartRedisBody, type StartProxyBody, type StateFileApp } from './agent-api.js';
