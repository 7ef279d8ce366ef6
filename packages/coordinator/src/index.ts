/**
 * @reborn/coordinator — the etcd schema (docs/architecture.md §2 "etcd layout"): key paths, the cluster model, and a
 * typed Store to read, write and watch it.
 */
export * from './errors.js';
export * from './models.js';
export { Paths, assertProduct, isValidProduct } from './paths.js';
export { Store, MAX_TXN_OPS, type StoreOptions } from './store.js';
export { TopologyWatch, type TopologyHandlers } from './watch.js';
export { ProxyRegistration, type ProxyRegistrationEvents } from './registration.js';
export { ProxyListWatch, type ProxyListHandlers } from './proxy-watch.js';
export { Barrier, parseAction, type ActionInfo, type AckInfo, type FenceInfo } from './barrier.js';
export * from './migrations.js';
export * from './moves.js';
export { proxyAclUser, proxyAclRules } from './fencing.js';
export { REDIS_PASSWORD_OPTION, migrateAuthArgs } from './redis-credentials.js';
export * from './agents.js';
export { OptionReader, OptionsError, optionsUsage, wantsHelp, isHostPort, type OptionDef } from './cli-options.js';
export { parseOptionsOrExit, runUntilSignalled, type DaemonLogger } from './daemon.js';
export {
  HttpGuard,
  RequestRefusedError,
  SECURITY_HEADERS,
  allowHostProblems,
  isLoopbackHost,
  openBindRefusal,
  parseHostHeader,
  type AdmitOptions,
  type HttpGuardOptions,
} from './http-guard.js';
export { type IdentityResult, type TopologyHead } from './store.js';
export { type ResyncCause } from './watch.js';
export * from './topology-guard.js';
export { Leadership, NotLeaderCoordinatorError, type LeadershipEvents, type LeadershipMessages, type LeadershipOptions } from './leadership.js';
export * from './guarded-writes.js';
export * from './redis-config.js';
export { RedisConfigStore, ProductConfigWatch, setProductConfig, type ProductConfigHandlers } from './redis-config-store.js';
export { AgentClient, AgentRefusedError, AgentUnreachableError, type StartedRedis } from './agent-client.js';
export * from './copy-lease.js';
