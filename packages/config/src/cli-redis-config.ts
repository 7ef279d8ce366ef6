/**
 * The `redis-config` verbs of reborn-config: list, set and unset the product-wide redis
 * parameters (redis-config.ts does the work) and print the result. Invariant, as for every
 * verb: the result on stdout, warnings (a server that could not be given the value now) on
 * stderr, a refusal thrown as one error.
 */
import { writeNote, writeOut, type CliIo } from './cli-io.js';
import type { Command } from './command.js';
import type { GlobalOptions } from './options.js';
import { json, table } from './output.js';
import { RedisConfigAdmin, type RedisConfigView } from './redis-config.js';
import type { Admin } from './servers.js';

export type RedisConfigCommand = Extract<Command, { verb: 'redis-config list' | 'redis-config set' | 'redis-config unset' }>;

/** Every allowed parameter with its stored value (`-`: not set, the servers' own value stands). */
export function formatRedisConfig(view: RedisConfigView): string {
  return table(
    ['PARAMETER', 'VALUE'],
    view.allowed.map((name) => [name, view.params[name] === undefined ? '-' : JSON.stringify(view.params[name])]),
  );
}

export async function redisConfigVerb(admin: Admin, global: GlobalOptions, command: RedisConfigCommand, io: CliIo): Promise<void> {
  const configs = new RedisConfigAdmin(admin.store, { timeoutMs: io.admin?.redisTimeoutMs ?? 3000, password: global.redisPassword });
  const out = (s: string): void => writeOut(io, s);
  switch (command.verb) {
    case 'redis-config list': {
      const view = await configs.list();
      return out(global.json ? json(view) : formatRedisConfig(view));
    }
    case 'redis-config set': {
      const r = await configs.set(command.param, command.value);
      for (const f of r.failed) writeNote(io, `warning: ${f.addr} does not have it yet: ${f.error}`);
      const total = r.applied.length + r.failed.length;
      return out(`${r.param} = ${JSON.stringify(r.value)} stored (accepted by ${r.validatedOn}); applied to ${r.applied.length} of ${total} server(s)`);
    }
    case 'redis-config unset': {
      const r = await configs.unset(command.param);
      return out(`${r.param} unset: no longer applied; servers keep their current value until they restart`);
    }
  }
}
