/**
 * The redis credential every reborn daemon shares: the password of the `default` user of the
 * product's redis servers (redis's `requirepass`). Redis started by reborn-agent never has an
 * open default user, so the proxy (to create its own ACL user), reborn-config (fencing,
 * promotion, migration) and the agent (health checks, failover) authenticate with it.
 *
 * One option definition, read the same way by every daemon: `--redis-password`, falling back
 * to `REBORN_REDIS_PASSWORD` (the environment keeps it out of `ps`). An empty value means none.
 */
import type { OptionDef } from './cli-options.js';

export const REDIS_PASSWORD_OPTION: OptionDef = {
  env: 'REBORN_REDIS_PASSWORD',
  kind: 'string',
  default: null,
  help: "password of the redis servers' default user (prefer the env var: flags show in ps)",
};

/**
 * What MIGRATE needs to log in to its target (`MIGRATE host port "" 0 timeout AUTH pw KEYS …`):
 * the target is another server of the same product, so it takes the same password.
 */
export function migrateAuthArgs(password: string | null): string[] {
  return password === null ? [] : ['AUTH', password];
}
