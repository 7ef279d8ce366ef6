/**
 * @reborn/agent — reborn-agent: process supervisor with an HTTP API, HA leader election,
 * health checks and failover. The binary is bin/reborn-agent.js (dist/main.js).
 */
export { Agent } from './agent.js';
export { parseAgentOptions, OptionsError, usage, type AgentOptions } from './options.js';
export { Supervisor, type AppView, type AppKind, type AppState } from './supervisor.js';
export { Leadership, type LeadershipEvents } from '@reborn/coordinator';
export { HaLoop, isDown, pickCandidate, promotedGroup, type Probe, type ServerStatus, type Candidate } from './ha.js';
export { RedisAdmin, parseReplicationInfo, replicationOffset, replicatesFrom, type ReplicationInfo } from '@reborn/coordinator/admin';
export { splitAddr } from '@reborn/coordinator';
export {
  REPL_USER,
  ReplicationGuard,
  ensureReplicationSecret,
  readReplicationSecret,
  replicationLogin,
  judgeMaster,
  hasReplUser,
  provisionReplUser,
  pointReplicaLogin,
  type GroupGuardResult,
  type MasterVerdict,
} from './repl-guard.js';
export { redisConfigFile } from './app-options.js';
export * from './errors.js';
