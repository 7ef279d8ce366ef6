/**
 * The typed commands of reborn-config's command line: what options.ts parses argv into and
 * cli.ts runs. Invariant: a Command's values are already checked (verb-builders.ts); running
 * it needs no further validation of its arguments.
 */
export type Command =
  | { verb: 'help'; topic: string | null }
  | { verb: 'group add' | 'group remove'; gid: number }
  | { verb: 'group list' }
  /** Per setting: a number sets it, null (`none`) clears it, absent leaves it; at least one is given. */
  | { verb: 'group set'; gid: number; minInSync?: number | null; wantReplicas?: number | null; force: boolean }
  | { verb: 'server add'; gid: number; addr: string }
  /** `server add <gid> --agent <id> [--port P]`: that agent starts the redis-server. */
  | { verb: 'server add'; gid: number; agent: string; port?: number; agentToken: string | null }
  | { verb: 'server remove' | 'server promote'; gid: number; addr: string }
  | { verb: 'slot init'; force: boolean }
  | { verb: 'slot set'; first: number; last: number; gid: number }
  | { verb: 'slot list' }
  | { verb: 'slot info'; id: number }
  | { verb: 'slot migrate'; first: number; last: number; gid: number; detach: boolean; throttle?: number; batchSlots?: number; maxSourceLatencyMs?: number }
  | { verb: 'slot rebalance'; confirm: boolean }
  | { verb: 'migration list' }
  | { verb: 'migration pause' | 'migration resume' | 'migration cancel'; id: string }
  | { verb: 'proxy list' }
  | { verb: 'proxy offline'; id: string }
  | { verb: 'redis-config list' }
  | { verb: 'redis-config set'; param: string; value: string }
  | { verb: 'redis-config unset'; param: string }
  | { verb: 'topology save'; file: string }
  | { verb: 'topology restore'; file: string; force: boolean }
  | { verb: 'check'; fix: boolean; scanCount?: number; throttle?: number; examples?: number }
  | { verb: 'dashboard'; httpAddr: string; token: string | null; allowHosts: string[] };

export type Verb = Command['verb'];
