/**
 * What a caller of the agent's API may ask redis-server and reborn-proxy to run with.
 *
 * The API is a door to processes the agent starts as its own user (often root), so nothing in a
 * request becomes a file path, a module or code: `args` is a list of `--name value` pairs (a
 * proxy's switches take no value) and each name must be in the table below with a value its
 * check accepts. Everything else is refused with the reason: `--loadmodule`, `include`,
 * `--dir`, `--logfile`, `--aclfile`, `--rename-command`, `--requirepass`, `--enable-*-command`,
 * a proxy's `--etcd`/`--product`/`--id`, … The agent itself decides where data and logs live
 * and how servers authenticate.
 *
 * Values are checked by patterns that admit no spaces, quotes or line breaks beyond what the
 * option itself needs (`save "900 1"`), so a value can never smuggle another config line into
 * redis-server's argument parsing.
 */
import { BadRequestError } from './errors.js';

type Check = (value: string) => boolean;

const re = (pattern: RegExp): Check => (v) => pattern.test(v);
const oneOf = (...words: string[]): Check => (v) => words.includes(v.toLowerCase());
const uint = (max = 2_147_483_647): Check => (v) => /^\d{1,10}$/.test(v) && Number(v) <= max;
const yesNo = oneOf('yes', 'no');
const bytes = re(/^\d{1,15}(b|k|kb|m|mb|g|gb)?$/i);
const HOST_PORT = re(/^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):\d{1,5}$/);
/** A plain file name inside the server's own data dir: no slash, no leading dot. */
const fileName = re(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/);

const REDIS_OPTIONS: Record<string, { check: Check; want: string }> = {
  maxmemory: { check: bytes, want: 'a size like 1073741824, 512mb or 2gb' },
  'maxmemory-policy': {
    check: oneOf('noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl'),
    want: 'a redis eviction policy (noeviction, allkeys-lru, …)',
  },
  'maxmemory-samples': { check: uint(64), want: 'an integer 0..64' },
  appendonly: { check: yesNo, want: 'yes or no' },
  appendfsync: { check: oneOf('always', 'everysec', 'no'), want: 'always, everysec or no' },
  'aof-use-rdb-preamble': { check: yesNo, want: 'yes or no' },
  'auto-aof-rewrite-percentage': { check: uint(), want: 'an integer' },
  'auto-aof-rewrite-min-size': { check: bytes, want: 'a size' },
  save: { check: re(/^(\d{1,10} \d{1,10}( \d{1,10} \d{1,10})*)?$/), want: '"" (no snapshots) or "<seconds> <changes> …"' },
  dbfilename: { check: fileName, want: 'a plain file name (it lives in the server\'s data dir)' },
  appendfilename: { check: fileName, want: 'a plain file name (it lives in the server\'s data dir)' },
  appenddirname: { check: fileName, want: 'a plain directory name (inside the server\'s data dir)' },
  maxclients: { check: uint(1_000_000), want: 'an integer 1..1000000' },
  timeout: { check: uint(), want: 'seconds, an integer' },
  'tcp-keepalive': { check: uint(), want: 'seconds, an integer' },
  'tcp-backlog': { check: uint(65535), want: 'an integer 0..65535' },
  hz: { check: uint(500), want: 'an integer 1..500' },
  loglevel: { check: oneOf('debug', 'verbose', 'notice', 'warning'), want: 'debug, verbose, notice or warning' },
  'repl-backlog-size': { check: bytes, want: 'a size' },
  'repl-backlog-ttl': { check: uint(), want: 'seconds, an integer' },
  'repl-timeout': { check: uint(), want: 'seconds, an integer' },
  'repl-diskless-sync': { check: yesNo, want: 'yes or no' },
  'repl-diskless-sync-delay': { check: uint(), want: 'seconds, an integer' },
  'replica-priority': { check: uint(), want: 'an integer' },
  'min-replicas-to-write': { check: uint(), want: 'an integer' },
  'min-replicas-max-lag': { check: uint(), want: 'seconds, an integer' },
  'io-threads': { check: uint(128), want: 'an integer 1..128' },
  'io-threads-do-reads': { check: yesNo, want: 'yes or no' },
  'lazyfree-lazy-eviction': { check: yesNo, want: 'yes or no' },
  'lazyfree-lazy-expire': { check: yesNo, want: 'yes or no' },
  'lazyfree-lazy-server-del': { check: yesNo, want: 'yes or no' },
  'lazyfree-lazy-user-del': { check: yesNo, want: 'yes or no' },
  'lazyfree-lazy-user-flush': { check: yesNo, want: 'yes or no' },
  activedefrag: { check: yesNo, want: 'yes or no' },
  'notify-keyspace-events': { check: re(/^[KEA$lshzxegtmnd]{0,20}$/), want: 'keyspace event classes like "KEA" or ""' },
  'slowlog-log-slower-than': { check: re(/^-?\d{1,10}$/), want: 'microseconds, an integer (-1: off)' },
  'slowlog-max-len': { check: uint(), want: 'an integer' },
  'latency-monitor-threshold': { check: uint(), want: 'milliseconds, an integer' },
  'busy-reply-threshold': { check: uint(), want: 'milliseconds, an integer' },
  'client-output-buffer-limit': {
    check: re(/^(normal|replica|slave|pubsub) \d{1,15}[kmg]?b? \d{1,15}[kmg]?b? \d{1,10}$/i),
    want: '"<class> <hard> <soft> <seconds>"',
  },
};

/** The proxy's own flags an API caller may set; the agent sets addresses, etcd, product, id. */
const PROXY_VALUE_OPTIONS: Record<string, { check: Check; want: string }> = {
  'log-level': { check: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), want: 'a pino log level' },
  'slowlog-slower-than': { check: re(/^-?\d{1,10}$/), want: 'microseconds, an integer (-1: off)' },
  'allow-host': { check: re(/^[A-Za-z0-9.-]{1,253}(,[A-Za-z0-9.-]{1,253}){0,15}$/), want: 'host names separated by commas' },
  // The Redis Cluster face: a listen address and the address clients are told (host:port,
  // [v6]:port); an address is only ever bound or announced, never opened as a path.
  'cluster-addr': { check: HOST_PORT, want: 'host:port (or [ipv6]:port)' },
  'cluster-announce': { check: HOST_PORT, want: 'host:port (or [ipv6]:port)' },
};
for (const name of [
  'max-clients', 'max-pipeline', 'max-bulk-length', 'max-multibulk-length', 'max-client-output', 'max-multi-bytes',
  'backend-connections', 'backend-timeout', 'backend-connect-timeout', 'hold-timeout', 'watch-grace',
  'max-wait-timeout', 'durable-timeout', 'max-blocked', 'slowlog-max-len', 'max-keys-reply', 'workers',
  'tracking-max-keys', 'tracking-max-prefixes',
]) {
  PROXY_VALUE_OPTIONS[name] = { check: uint(), want: 'a non-negative integer' };
}
const PROXY_SWITCHES = new Set(['durable', 'no-flush']);

export function allowedRedisOptions(): string[] {
  return Object.keys(REDIS_OPTIONS);
}

function argsArray(args: unknown): string[] {
  if (args === undefined) return [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new BadRequestError('args must be an array of strings');
  if (args.length > 200) throw new BadRequestError(`args has ${args.length} entries; at most 200`);
  return args as string[];
}

function optionName(arg: string | undefined, i: number): string {
  if (arg === undefined || !/^--[a-z][a-z0-9-]{0,63}$/.test(arg)) {
    throw new BadRequestError(`args[${i}] must be an option like --maxmemory, got ${JSON.stringify(arg)}`);
  }
  return arg.slice(2);
}

/**
 * `args` for redis-server: `["--maxmemory", "1gb", "--save", ""]`. Returns them as given once
 * every name is allowed and every value passes; throws BadRequestError naming the first that
 * does not.
 */
export function checkRedisArgs(raw: unknown): string[] {
  const args = argsArray(raw);
  for (let i = 0; i < args.length; i += 2) {
    const name = optionName(args[i], i);
    const rule = REDIS_OPTIONS[name];
    if (rule === undefined) {
      throw new BadRequestError(`args: --${name} is not an option the agent passes to redis-server; allowed: ${allowedRedisOptions().map((n) => `--${n}`).join(', ')}`);
    }
    const value = args[i + 1];
    if (value === undefined) throw new BadRequestError(`args: --${name} needs a value (${rule.want})`);
    if (!rule.check(value)) throw new BadRequestError(`args: --${name} must be ${rule.want}, got ${JSON.stringify(value)}`);
  }
  return args;
}

/** `args` for reborn-proxy: `["--max-clients", "5000", "--durable"]`. Same contract as checkRedisArgs. */
export function checkProxyArgs(raw: unknown): string[] {
  const args = argsArray(raw);
  for (let i = 0; i < args.length; i++) {
    const name = optionName(args[i], i);
    if (PROXY_SWITCHES.has(name)) continue;
    const rule = PROXY_VALUE_OPTIONS[name];
    if (rule === undefined) {
      const allowed = [...Object.keys(PROXY_VALUE_OPTIONS), ...PROXY_SWITCHES].map((n) => `--${n}`).join(', ');
      const hint = name === 'auth' ? ' (give the client password as the "auth" field)' : '';
      throw new BadRequestError(`args: --${name} is not an option the agent passes to reborn-proxy${hint}; allowed: ${allowed}`);
    }
    const value = args[++i];
    if (value === undefined) throw new BadRequestError(`args: --${name} needs a value (${rule.want})`);
    if (!rule.check(value)) throw new BadRequestError(`args: --${name} must be ${rule.want}, got ${JSON.stringify(value)}`);
  }
  return args;
}

/**
 * The lines of the config file a redis-server started by the agent reads first (its command
 * line comes after and wins, so callers can turn persistence off, but cannot reach what is
 * not in REDIS_OPTIONS). The password lives here and not on the command line, where any
 * local user could read it in `ps`; the file is written 0600.
 *
 * No masterauth: a server restarted from this file (by anyone) cannot log in to a master at
 * all until reborn sets its login at runtime — the replication user's, which a restarted,
 * maybe empty master no longer has (repl-guard.ts). A masterauth here would let it log in as
 * the default user, which every master has, and take a full resync from an empty one.
 */
export function redisConfigFile(password: string): string {
  return [
    '# Written by reborn-agent at every start; edits are lost.',
    `requirepass ${quote(password)}`,
    // Durable by default: a restarted master comes back with its data, not empty.
    'appendonly yes',
    'appendfsync everysec',
    'protected-mode yes',
    'enable-protected-configs no',
    'enable-debug-command no',
    'enable-module-command no',
    '',
  ].join('\n');
}

/** A double-quoted redis config string; control characters never reach here (redisPasswordRefusal refuses them at start). */
function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Why `password` cannot be the servers' password, or null. */
export function redisPasswordRefusal(password: string): string | null {
  if (password.length < 8 || password.length > 512) return 'must be 8..512 characters long';
  if (/[\x00-\x20\x7f]/.test(password)) return 'must not contain spaces or control characters';
  return null;
}
