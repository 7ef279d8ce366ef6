/**
 * The command line of reborn-config: one table of verbs (their positional arguments and the
 * options each accepts), global options with flags > env > defaults, and the parse into a
 * typed Command: the global options, then the verb lookup and its arity check, then the
 * verb's builder (verb-builders.ts, one entry per verb). Values are checked with the same
 * functions the operations use (servers.ts), so `slot set 10 5 1` fails before any
 * connection is made and with the same words the REST API uses.
 */
import { isValidProduct } from '@reborn/coordinator';
import type { Command, Verb } from './command.js';
import { UsageError, ValidationError } from './errors.js';
import { DEFAULT_HTTP_ADDR, VERB_BUILDERS, type VerbInput } from './verb-builders.js';

export interface GlobalOptions {
  etcd: string[];
  product: string;
  json: boolean;
  logLevel: string;
  /** The redis servers' default-user password (requirepass), or null. */
  redisPassword: string | null;
  /**
   * How long a verb that follows a migration (slot migrate, slot rebalance --confirm) waits
   * for a silent etcd before it gives up; the task stays in etcd and goes on later.
   */
  etcdWaitMs: number;
}

export type { Command, Verb } from './command.js';

export interface ParsedCommandLine {
  global: GlobalOptions;
  command: Command;
}

interface FlagDef {
  kind: 'bool' | 'value';
  /** Shown in the usage after the flag, for value flags. */
  arg?: string;
  help: string;
  /** May be given more than once; the values are joined with commas. */
  repeatable?: boolean;
}

/** How long following a migration waits for a silent etcd by default (--etcd-wait). */
const DEFAULT_ETCD_WAIT_S = 30;

/** Every option the tool knows; which verb takes which is in VERBS. */
const FLAGS: Record<string, FlagDef> = {
  etcd: { kind: 'value', arg: '<url[,url]>', help: 'etcd endpoints (default http://127.0.0.1:2379, env REBORN_ETCD)' },
  product: { kind: 'value', arg: '<name>', help: 'product name (default "default", env REBORN_PRODUCT)' },
  'redis-password': { kind: 'value', arg: '<password>', help: "password of the redis servers' default user (env REBORN_REDIS_PASSWORD, preferred: flags show in ps)" },
  'log-level': { kind: 'value', arg: '<level>', help: 'pino log level (default info for dashboard, warn otherwise; env REBORN_LOG_LEVEL)' },
  help: { kind: 'bool', help: 'show this help' },
  json: { kind: 'bool', help: 'machine-readable JSON output (listing verbs)' },
  force: { kind: 'bool', help: 'reassign slots that are already assigned' },
  detach: { kind: 'bool', help: 'print the task id and return at once' },
  throttle: { kind: 'value', arg: '<keys/s>', help: 'move (slot migrate) or scan (check) at most this many keys per second (0 = unlimited)' },
  fix: { kind: 'bool', help: 'move each stray home when its slot is online and its owner has no such key' },
  'scan-count': { kind: 'value', arg: '<n>', help: 'keys per SCAN call (check; default 1000)' },
  examples: { kind: 'value', arg: '<n>', help: 'examples shown per category (check; default 20)' },
  'batch-slots': { kind: 'value', arg: '<n>', help: 'slots moved together under one barrier' },
  'max-source-latency': { kind: 'value', arg: '<ms>', help: 'slot migrate: keep the source group\'s latency near this while keys move (default 5)' },
  confirm: { kind: 'bool', help: 'carry the plan out' },
  'etcd-wait': {
    kind: 'value',
    arg: '<seconds>',
    help: `give up following a migration after etcd has not answered this long (default ${DEFAULT_ETCD_WAIT_S}, env REBORN_ETCD_WAIT); the task stays in etcd and goes on when etcd is back`,
  },
  'min-in-sync': { kind: 'value', arg: '<n|none>', help: 'refuse durable writes while fewer replicas are in sync (group set)' },
  'want-replicas': { kind: 'value', arg: '<n|none>', help: 'replicas agents should keep the group at (group set)' },
  agent: { kind: 'value', arg: '<agent-id>', help: 'have this reborn-agent start the redis-server (server add; token from env REBORN_AGENT_TOKEN)' },
  port: { kind: 'value', arg: '<port>', help: "the port for the agent's redis-server (server add --agent; default: one from the agent's --redis-ports)" },
  'http-addr': { kind: 'value', arg: '<host:port>', help: 'dashboard listen address (default 127.0.0.1:18087, env REBORN_DASHBOARD_ADDR)' },
  token: { kind: 'value', arg: '<token>', help: 'require "Authorization: Bearer <token>" (env REBORN_DASHBOARD_TOKEN)' },
  'allow-host': {
    kind: 'value',
    arg: '<name[,name]>',
    help: 'host names the browser may use besides IP addresses and localhost, repeatable (env REBORN_DASHBOARD_ALLOW_HOST)',
    repeatable: true,
  },
};

const GLOBAL_FLAGS = ['etcd', 'product', 'redis-password', 'log-level', 'help'];

export interface VerbSpec {
  verb: Verb;
  args: readonly string[];
  /** How many of `args` must be given (default all); the builder checks the rest. */
  minArgs?: number;
  flags: readonly string[];
  summary: string;
}

export const VERBS: readonly VerbSpec[] = [
  { verb: 'group add', args: ['gid'], flags: [], summary: 'create an empty group' },
  { verb: 'group remove', args: ['gid'], flags: [], summary: 'delete a group that owns no slots' },
  { verb: 'group list', args: [], flags: ['json'], summary: 'groups, their servers, slot counts, in-sync sets and settings' },
  {
    verb: 'group set',
    args: ['gid'],
    flags: ['min-in-sync', 'want-replicas', 'force', 'json'],
    summary: 'set (n) or clear (none) a group\'s min-in-sync / want-replicas; --force: above its replica count',
  },
  {
    verb: 'server add',
    args: ['gid', 'host:port'],
    minArgs: 1,
    flags: ['agent', 'port'],
    summary: 'first server: master; later ones: replicas (synced before added); --agent instead of host:port: that agent starts it',
  },
  { verb: 'server remove', args: ['gid', 'host:port'], flags: [], summary: 'remove a replica, or the master of an empty group' },
  { verb: 'server promote', args: ['gid', 'host:port'], flags: [], summary: 'graceful switchover to this replica' },
  { verb: 'slot init', args: [], flags: ['force'], summary: 'spread all 1024 slots evenly over the groups with a master' },
  { verb: 'slot set', args: ['from', 'to', 'gid'], flags: [], summary: 'set slots online in a group directly (no data is moved)' },
  { verb: 'slot list', args: [], flags: ['json'], summary: 'slot ranges and their state' },
  { verb: 'slot info', args: ['id'], flags: ['json'], summary: 'one slot: state, group, master, migration' },
  {
    verb: 'slot migrate',
    args: ['from', 'to', 'gid'],
    flags: ['detach', 'throttle', 'batch-slots', 'max-source-latency', 'etcd-wait'],
    summary: 'move slots (and their keys) to a group; waits until they are online there',
  },
  { verb: 'slot rebalance', args: [], flags: ['confirm', 'etcd-wait'], summary: 'print a plan to even out the slots; --confirm carries it out' },
  { verb: 'migration list', args: [], flags: ['json'], summary: 'migration tasks and their progress' },
  { verb: 'topology save', args: ['file'], flags: [], summary: 'write groups, slots and the product identity to a JSON file ("-": stdout)' },
  {
    verb: 'topology restore',
    args: ['file'],
    flags: ['force'],
    summary: 'write a saved topology back (after etcd lost it); --force replaces a different one',
  },
  {
    verb: 'check',
    args: [],
    flags: ['fix', 'json', 'throttle', 'scan-count', 'examples'],
    summary: 'find keys in a group that does not own their slot, keys in two groups, slots stuck in a move; exit 3 when found',
  },
  { verb: 'migration pause', args: ['id'], flags: [], summary: 'pause a task at its next safe point' },
  { verb: 'migration resume', args: ['id'], flags: [], summary: 'resume a paused task' },
  { verb: 'migration cancel', args: ['id'], flags: [], summary: 'cancel a task (slots already moved stay moved)' },
  { verb: 'proxy list', args: [], flags: ['json'], summary: 'registered and fenced proxies' },
  { verb: 'proxy offline', args: ['id'], flags: [], summary: 'fence a proxy at every server and delete its registration' },
  { verb: 'redis-config list', args: [], flags: ['json'], summary: 'the product-wide redis parameters every server gets' },
  { verb: 'redis-config set', args: ['param', 'value'], flags: [], summary: 'check a parameter on a master, store it, apply it to every server' },
  { verb: 'redis-config unset', args: ['param'], flags: [], summary: 'stop applying a parameter (servers keep their current value)' },
  { verb: 'dashboard', args: [], flags: ['http-addr', 'token', 'allow-host'], summary: 'REST API, /metrics, /healthz and the migration runner' },
];

export const DEFAULT_ETCD = 'http://127.0.0.1:2379';
export const DEFAULT_PRODUCT = 'default';
export { DEFAULT_HTTP_ADDR } from './verb-builders.js';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The variables parseCommandLine reads, for the help text. */
const ENV_HELP: ReadonlyArray<readonly [string, string]> = [
  ['REBORN_ETCD', 'etcd endpoints, like --etcd'],
  ['REBORN_PRODUCT', 'product name, like --product'],
  ['REBORN_LOG_LEVEL', 'pino log level, like --log-level'],
  ['REBORN_REDIS_PASSWORD', "the redis servers' default-user password, like --redis-password"],
  ['REBORN_AGENT_TOKEN', 'the agents\' API token, sent as a bearer token by server add --agent'],
  ['REBORN_DASHBOARD_ADDR', `dashboard listen address, like dashboard --http-addr (default ${DEFAULT_HTTP_ADDR})`],
  ['REBORN_DASHBOARD_TOKEN', 'dashboard bearer token, like dashboard --token (unset: no token, loopback only)'],
  ['REBORN_DASHBOARD_ALLOW_HOST', 'dashboard host names, comma separated, like dashboard --allow-host'],
];

export function usage(topic: string | null = null): string {
  const specs = topic === null ? VERBS : VERBS.filter((v) => v.verb === topic || v.verb.startsWith(`${topic} `));
  const shown = specs.length > 0 ? specs : VERBS;
  const synopsis = (v: VerbSpec): string =>
    [v.verb, ...v.args.map((a) => `<${a}>`), ...v.flags.map((f) => (FLAGS[f]!.kind === 'bool' ? `[--${f}]` : `[--${f} ${FLAGS[f]!.arg}]`))].join(' ');
  const width = 34;
  const lines = ['usage: reborn-config [global options] <verb> [arguments] [options]', '', 'verbs:'];
  for (const v of shown) {
    const syn = synopsis(v);
    if (syn.length <= width) lines.push(`  ${syn.padEnd(width)}  ${v.summary}`);
    else lines.push(`  ${syn}`, `  ${''.padEnd(width)}  ${v.summary}`);
  }
  lines.push('', 'global options:');
  for (const f of GLOBAL_FLAGS) {
    const d = FLAGS[f]!;
    lines.push(`  ${`--${f}${d.arg ? ` ${d.arg}` : ''}`.padEnd(24)} ${d.help}`);
  }
  lines.push('', 'environment (a flag given on the command line wins):');
  for (const [name, what] of ENV_HELP) lines.push(`  ${name.padEnd(24)} ${what}`);
  lines.push('', 'Exit status 0 on success; otherwise non-zero with one line "reborn-config: <reason>" on stderr.');
  lines.push('"slot set" assigns slots without moving data: use it for empty slots and initial setup; "slot migrate" moves keys.');
  return lines.join('\n') + '\n';
}

interface Tokens {
  positionals: string[];
  flags: Map<string, string | true>;
}

/** Splits argv into positionals and `--flag[=value]`; a lone `--` ends the options. */
export function tokenize(argv: readonly string[]): Tokens {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h') {
      flags.set('help', true);
      continue;
    }
    // A negative number is a (bad) value, not an option: `slot info -1` says "out of range".
    if (!a.startsWith('-') || /^-\d/.test(a)) {
      positionals.push(a);
      continue;
    }
    if (!a.startsWith('--') || a.length === 2) throw new UsageError(`unknown option ${a}; run reborn-config --help`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const def = FLAGS[name];
    if (!def) throw new UsageError(`unknown option --${name}; run reborn-config --help`);
    if (flags.has(name) && !def.repeatable) throw new UsageError(`option --${name} is given twice`);
    if (def.kind === 'bool') {
      if (eq >= 0) throw new UsageError(`option --${name} takes no value`);
      flags.set(name, true);
    } else {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[i + 1];
      if (eq < 0 && (v === undefined || (v.startsWith('--') && v.length > 2))) throw new UsageError(`option --${name} needs a value ${def.arg ?? ''}`.trimEnd());
      if (eq < 0) i++;
      const before = flags.get(name);
      flags.set(name, typeof before === 'string' ? `${before},${v!}` : v!);
    }
  }
  return { positionals, flags };
}

type Flags = ReadonlyMap<string, string | true>;

/** A non-empty environment variable, or undefined. */
function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  return env[name] === undefined || env[name] === '' ? undefined : env[name];
}

/** A setting: flags > env > defaults. */
function setting(flags: Flags, env: NodeJS.ProcessEnv, flag: string, envName: string, dflt: string): string {
  const v = flags.get(flag);
  return typeof v === 'string' ? v : (envValue(env, envName) ?? dflt);
}

/** The global options, checked: a bad --etcd is reported whatever the verb. */
function parseGlobalOptions(flags: Flags, env: NodeJS.ProcessEnv): GlobalOptions {
  const etcd = setting(flags, env, 'etcd', 'REBORN_ETCD', DEFAULT_ETCD).split(',').map((s) => s.trim()).filter(Boolean);
  if (etcd.length === 0) throw new ValidationError('--etcd needs at least one endpoint');
  for (const e of etcd) if (!/^https?:\/\/[^/\s]+\/?$/.test(e)) throw new ValidationError(`invalid etcd endpoint ${JSON.stringify(e)}: want http://host:port`);
  const product = setting(flags, env, 'product', 'REBORN_PRODUCT', DEFAULT_PRODUCT);
  if (!isValidProduct(product)) throw new ValidationError(`invalid product name ${JSON.stringify(product)}: want [A-Za-z0-9_-]{1,64}`);
  const logLevelRaw = flags.get('log-level');
  const logLevel = typeof logLevelRaw === 'string' ? logLevelRaw : (envValue(env, 'REBORN_LOG_LEVEL') ?? '');
  if (logLevel !== '' && !LOG_LEVELS.includes(logLevel)) {
    throw new ValidationError(`invalid log level ${JSON.stringify(logLevel)}: want one of ${LOG_LEVELS.join(', ')}`);
  }
  const redisPassword = setting(flags, env, 'redis-password', 'REBORN_REDIS_PASSWORD', '') || null;
  const etcdWait = setting(flags, env, 'etcd-wait', 'REBORN_ETCD_WAIT', String(DEFAULT_ETCD_WAIT_S));
  if (!/^\d{1,6}$/.test(etcdWait) || Number(etcdWait) < 1) {
    throw new ValidationError(`invalid etcd wait ${JSON.stringify(etcdWait)}: want whole seconds ≥ 1`);
  }
  return { etcd, product, json: flags.get('json') === true, logLevel, redisPassword, etcdWaitMs: Number(etcdWait) * 1000 };
}

/** The verb the positionals name (two words, else one); throws "unknown verb". */
function findVerb(positionals: readonly string[]): VerbSpec {
  const two = positionals.slice(0, 2).join(' ');
  const spec = VERBS.find((v) => v.verb === two) ?? VERBS.find((v) => v.verb === positionals[0]);
  if (spec) return spec;
  const noun = positionals[0]!;
  const known = VERBS.some((v) => v.verb.startsWith(`${noun} `));
  const shown = known ? two : noun;
  throw new UsageError(`unknown verb ${JSON.stringify(shown)}; run reborn-config --help`);
}

/** The verb's arguments: exactly as many as its spec names, and only options that apply to it. */
function checkArity(spec: VerbSpec, positionals: readonly string[], flags: Flags): string[] {
  const synopsis = `${spec.verb} ${spec.args.map((a) => `<${a}>`).join(' ')}`.trimEnd();
  const args = positionals.slice(spec.verb.split(' ').length);
  if (args.length < (spec.minArgs ?? spec.args.length)) {
    throw new UsageError(`${spec.verb}: missing <${spec.args[args.length]}> (usage: reborn-config ${synopsis})`);
  }
  if (args.length > spec.args.length) {
    throw new UsageError(`${spec.verb}: unexpected argument ${JSON.stringify(args[spec.args.length])} (usage: reborn-config ${synopsis})`);
  }
  for (const name of flags.keys()) {
    if (!GLOBAL_FLAGS.includes(name) && !spec.flags.includes(name)) throw new UsageError(`${spec.verb}: option --${name} does not apply`);
  }
  return args;
}

export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv = {}): ParsedCommandLine {
  const { positionals, flags } = tokenize(argv);
  const global = parseGlobalOptions(flags, env);
  if (flags.get('help') === true) return { global, command: { verb: 'help', topic: positionals.slice(0, 2).join(' ') || null } };
  if (positionals.length === 0) throw new UsageError('missing verb; run reborn-config --help');
  const spec = findVerb(positionals);
  const input: VerbInput = {
    args: checkArity(spec, positionals, flags),
    bool: (f) => flags.get(f) === true,
    value: (f) => {
      const v = flags.get(f);
      return typeof v === 'string' ? v : undefined;
    },
    setting: (flag, envName, dflt) => setting(flags, env, flag, envName, dflt),
    env: (name) => envValue(env, name),
  };
  const build = VERB_BUILDERS[spec.verb] as (input: VerbInput) => Command;
  return { global, command: build(input) };
}
