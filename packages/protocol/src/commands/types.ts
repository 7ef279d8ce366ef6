/**
 * The shape of the command table. The table itself is data (generated.ts, produced from a
 * real Redis 7.0 `COMMAND INFO` + `COMMAND DOCS` by scripts/gen-commands.mjs) plus the
 * proxy's policy for each command (policy.ts, written by hand).
 */

/** Where the key search starts (Redis 7 key-spec `begin_search`). */
export type BeginSearch =
  | { index: number }
  | { keyword: string; startFrom: number }
  | { unknown: true };

/** How keys are found from the begin position (Redis 7 key-spec `find_keys`). */
export type FindKeys =
  | { range: { lastKey: number; step: number; limit: number } }
  | { keynum: { keynumIdx: number; firstKey: number; step: number } }
  | { unknown: true };

export interface KeySpec {
  begin: BeginSearch;
  find: FindKeys;
  /** Redis key-spec flags, e.g. RW, RO, OW, RM, access, update, insert, delete, incomplete. */
  flags: readonly string[];
}

export interface CommandSpec {
  /** Lower-case name; subcommands are `container|sub`, e.g. `client|setname`. */
  name: string;
  /** Redis arity: positive = exact argument count (name included), negative = at least |n|. */
  arity: number;
  /** Redis command flags: write, readonly, denyoom, admin, pubsub, noscript, blocking, … */
  flags: readonly string[];
  keySpecs: readonly KeySpec[];
  /** COMMAND DOCS group: string, list, generic, server, … */
  group: string;
  since: string;
  summary: string;
  subcommands?: readonly CommandSpec[];
}

/**
 * How the proxy treats a command. The proxy implements each kind; the compatibility table in
 * the README is generated from these.
 */
export type ProxyPolicy =
  /** Keys found by the key specs must all hash to one slot; sent to that slot's master. */
  | {
      kind: 'route';
      note?: string;
      /** PUBLISH/SPUBLISH: routed by the slot of the channel (argument 1), which is not a key. */
      channel?: boolean;
    }
  /** Multi-key command split per slot and merged (docs/architecture.md §3: MGET, MSET, DEL, UNLINK, EXISTS, TOUCH). */
  | { kind: 'split'; merge: 'mget' | 'mset' | 'sum' }
  /** Answered by the proxy itself (PING, ECHO, AUTH, HELLO, …). */
  | { kind: 'local'; note?: string }
  /** Sent to every master; replies merged (`sum` of integers, `first` equal replies, `all-ok`, `any-ok`). */
  | { kind: 'fanout'; merge: FanoutMerge; note?: string }
  /** Refused with a Redis-style error; `reason` is what the client and the README say. */
  | { kind: 'unsupported'; reason: string };

/** How a fan-out's replies become one: `any-ok` is +OK when one master said OK (SCRIPT KILL). */
export type FanoutMerge = 'sum' | 'first' | 'all-ok' | 'any-ok' | 'info' | 'concat';
