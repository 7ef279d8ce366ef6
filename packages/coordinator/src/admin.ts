/**
 * @reborn/coordinator/admin — the operator's side of redis: bounded admin clients, the one INFO
 * parser, REPLICAOF with masterauth, and value comparison for checks. A separate entry point
 * so that importing `@reborn/coordinator` (as the proxy's data path does) never loads ioredis.
 * See docs/architecture.md (control path).
 */
export * from './redis-info.js';
export * from './redis-admin.js';
export { RedisAdmin, type RedisAdminErrors, type RedisAdminPoolOptions } from './redis-admin-pool.js';
