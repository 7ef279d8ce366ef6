/**
 * The command line of reborn-config: one table of verbs (their positional arguments and the
 * options each accepts), global options with flags > env > defaults, and the parse into a
 * typed Command. Values are checked here with the same functions the operations use
 * (servers.ts), so `slot set 10 5 1` fails before any connection is made and with the same
 * words the REST API uses.
 */
import { allowHostProblems, isValidProduct, openBindRefusal } from '@reborn/coordinator';
import { UsageError, ValidationError } from './errors.js';
import { checkAddr, checkGroupId, checkMigrationId, checkProxyId, checkSlotId, checkSlotRange } from './servers.js';

export interface GlobalOptions {
  etcd: string[];
  product: string;
  json: boolean;
  logLevel: string;
  /** The redis servers' default-user password (requirepass), or null. */
  redisPassword: string | null;
}

export type Command =
  | { verb: 'help'; topic: string | null }
  | { verb: 'group add' | 'group remove'; gid: number }
  | { verb: 'group list' }
  | { verb: 'server add' | 'server remove' | 'server promote'; gid: number; addr: string }
  | { verb: 'slot init'; force: boolean }
  | { verb: 'slot set'; first: number; last: number; gid: number }
  | { verb: 'slot list' }
  | { verb: 'slot info'; id: number }
  | { verb: 'slot migrate'; first: number; last: number; gid: number; detach: boolean; throttle?: number; batchSlots?: number }
  | { verb: 'slot rebalance'; confirm: boolean }
  | { verb: 'migration list' }
  | { verb: 'migration pause' | 'migration resume' | 'migration cancel'; id: string }
  | { verb: 'proxy list' }
  | { verb: 'proxy offline'; id: string }
  | { verb: 'topology save'; file: string }
  | { verb: 'topology restore'; file: string; force: boolean }
  | { verb: 'check'; fix: boolean; scanCount?: number; throttle?: number; examples?: number }
  | { verb: 'dashboard'; httpAddr: string; token: string | null; allowHosts: string[] };

export type Verb = Command['verb'];

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
  confirm: { kind: 'bool', help: 'carry the plan out' },
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
  flags: readonly string[];
  summary: string;
}

export const VERBS: readonly VerbSpec[] = [
  { verb: 'group add', args: ['gid'], flags: [], summary: 'create an empty group' },
  { verb: 'group remove', args: ['gid'], flags: [], summary: 'delete a group that owns no slots' },
  { verb: 'group list', args: [], flags: ['json'], summary: 'groups, their servers and slot counts' },
  { verb: 'server add', args: ['gid', 'host:port'], flags: [], summary: 'first server: master; later ones: replicas (synced before added)' },
  { verb: 'server remove', args: ['gid', 'host:port'], flags: [], summary: 'remove a replica, or the master of an empty group' },
  { verb: 'server promote', args: ['gid', 'host:port'], flags: [], summary: 'graceful switchover to this replica' },
  { verb: 'slot init', args: [], flags: ['force'], summary: 'spread all 1024 slots evenly over the groups with a master' },
  { verb: 'slot set', args: ['from', 'to', 'gid'], flags: [], summary: 'set slots online in a group directly (no data is moved)' },
  { verb: 'slot list', args: [], flags: ['json'], summary: 'slot ranges and their state' },
  { verb: 'slot info', args: ['id'], flags: ['json'], summary: 'one slot: state, group, master, migration' },
  {
    verb: 'slot migrate',
    args: ['from', 'to', 'gid'],
    flags: ['detach', 'throttle', 'batch-slots'],
    summary: 'move slots (and their keys) to a group; waits until they are online there',
  },
  { verb: 'slot rebalance', args: [], flags: ['confirm'], summary: 'print a plan to even out the slots; --confirm carries it out' },
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
  { verb: 'dashboard', args: [], flags: ['http-addr', 'token', 'allow-host'], summary: 'REST API, /metrics, /healthz and the migration runner' },
];

export const DEFAULT_ETCD = 'http://127.0.0.1:2379';
export const DEFAULT_PRODUCT = 'default';
export const DEFAULT_HTTP_ADDR = '127.0.0.1:18087';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The variables parseCommandLine reads, for the help text. */
const ENV_HELP: ReadonlyArray<readonly [string, string]> = [
  ['REBORN_ETCD', 'etcd endpoints, like --etcd'],
  ['REBORN_PRODUCT', 'product name, like --product'],
  ['REBORN_LOG_LEVEL', 'pino log level, like --log-level'],
  ['REBORN_REDIS_PASSWORD', "the redis servers' default-user password, like --redis-password"],
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

/** An integer argument; `what` names it in the message. */
function int(text: string, what: string, want: string): number {
  if (!/^-?\d{1,15}$/.test(text)) throw new ValidationError(`invalid ${what} ${JSON.stringify(text)}: want ${want}`);
  return Number(text);
}

const gidArg = (t: string): number => checkGroupId(int(t, 'group id', '1..9999'));
const slotArg = (t: string): number => checkSlotId(int(t, 'slot', '0..1023'));

function isHostPort(s: string): boolean {
  const i = s.lastIndexOf(':');
  if (i <= 0) return false;
  const port = s.slice(i + 1);
  return /^\d{1,5}$/.test(port) && Number(port) <= 65535;
}

export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv = {}): ParsedCommandLine {
  const { positionals, flags } = tokenize(argv);
  const fromEnv = (name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const str = (flag: string, envName: string, dflt: string): string => {
    const v = flags.get(flag);
    return typeof v === 'string' ? v : (fromEnv(envName) ?? dflt);
  };

  // Globals first: a bad --etcd is reported whatever the verb.
  const etcd = str('etcd', 'REBORN_ETCD', DEFAULT_ETCD).split(',').map((s) => s.trim()).filter(Boolean);
  if (etcd.length === 0) throw new ValidationError('--etcd needs at least one endpoint');
  for (const e of etcd) if (!/^https?:\/\/[^/\s]+\/?$/.test(e)) throw new ValidationError(`invalid etcd endpoint ${JSON.stringify(e)}: want http://host:port`);
  const product = str('product', 'REBORN_PRODUCT', DEFAULT_PRODUCT);
  if (!isValidProduct(product)) throw new ValidationError(`invalid product name ${JSON.stringify(product)}: want [A-Za-z0-9_-]{1,64}`);
  const logLevelRaw = flags.get('log-level');
  const logLevel = typeof logLevelRaw === 'string' ? logLevelRaw : (fromEnv('REBORN_LOG_LEVEL') ?? '');
  if (logLevel !== '' && !LOG_LEVELS.includes(logLevel)) {
    throw new ValidationError(`invalid log level ${JSON.stringify(logLevel)}: want one of ${LOG_LEVELS.join(', ')}`);
  }
  const redisPassword = str('redis-password', 'REBORN_REDIS_PASSWORD', '') || null;
  const global: GlobalOptions = { etcd, product, json: flags.get('json') === true, logLevel, redisPassword };

  if (flags.get('help') === true) return { global, command: { verb: 'help', topic: positionals.slice(0, 2).join(' ') || null } };
  if (positionals.length === 0) throw new UsageError('missing verb; run reborn-config --help');

  const two = positionals.slice(0, 2).join(' ');
  const spec = VERBS.find((v) => v.verb === two) ?? VERBS.find((v) => v.verb === positionals[0]);
  if (!spec) {
    const noun = positionals[0]!;
    const known = VERBS.some((v) => v.verb.startsWith(`${noun} `));
    const shown = known ? two : noun;
    throw new UsageError(`unknown verb ${JSON.stringify(shown)}; run reborn-config --help`);
  }
  const synopsis = `${spec.verb} ${spec.args.map((a) => `<${a}>`).join(' ')}`.trimEnd();
  const args = positionals.slice(spec.verb.split(' ').length);
  if (args.length < spec.args.length) {
    throw new UsageError(`${spec.verb}: missing <${spec.args[args.length]}> (usage: reborn-config ${synopsis})`);
  }
  if (args.length > spec.args.length) {
    throw new UsageError(`${spec.verb}: unexpected argument ${JSON.stringify(args[spec.args.length])} (usage: reborn-config ${synopsis})`);
  }
  for (const name of flags.keys()) {
    if (!GLOBAL_FLAGS.includes(name) && !spec.flags.includes(name)) throw new UsageError(`${spec.verb}: option --${name} does not apply`);
  }
  const a = (i: number): string => args[i]!;
  const bool = (f: string): boolean => flags.get(f) === true;
  const value = (f: string): string | undefined => {
    const v = flags.get(f);
    return typeof v === 'string' ? v : undefined;
  };

  let command: Command;
  switch (spec.verb) {
    case 'group add':
    case 'group remove':
      command = { verb: spec.verb, gid: gidArg(a(0)) };
      break;
    case 'server add':
    case 'server remove':
    case 'server promote':
      command = { verb: spec.verb, gid: gidArg(a(0)), addr: checkAddr(a(1)) };
      break;
    case 'slot init':
      command = { verb: spec.verb, force: bool('force') };
      break;
    case 'slot set':
    case 'slot migrate': {
      const first = slotArg(a(0));
      const last = slotArg(a(1));
      checkSlotRange(first, last);
      const gid = gidArg(a(2));
      if (spec.verb === 'slot set') {
        command = { verb: spec.verb, first, last, gid };
        break;
      }
      const throttle = value('throttle');
      const batch = value('batch-slots');
      command = {
        verb: spec.verb,
        first,
        last,
        gid,
        detach: bool('detach'),
        ...(throttle === undefined ? {} : { throttle: int(throttle, 'throttle', 'keys per second ≥ 0 (0 = unlimited)') }),
        ...(batch === undefined ? {} : { batchSlots: int(batch, 'batch size', '1..1024 slots') }),
      };
      if (command.throttle !== undefined && command.throttle < 0) {
        throw new ValidationError(`invalid throttle ${command.throttle}: want keys per second ≥ 0 (0 = unlimited)`);
      }
      if (command.batchSlots !== undefined && (command.batchSlots < 1 || command.batchSlots > 1024)) {
        throw new ValidationError(`invalid batch size ${command.batchSlots}: want 1..1024 slots`);
      }
      break;
    }
    case 'slot info':
      command = { verb: spec.verb, id: slotArg(a(0)) };
      break;
    case 'slot rebalance':
      command = { verb: spec.verb, confirm: bool('confirm') };
      break;
    case 'migration pause':
    case 'migration resume':
    case 'migration cancel':
      command = { verb: spec.verb, id: checkMigrationId(a(0)) };
      break;
    case 'proxy offline':
      command = { verb: spec.verb, id: checkProxyId(a(0)) };
      break;
    case 'topology save':
      command = { verb: spec.verb, file: a(0) };
      break;
    case 'topology restore':
      command = { verb: spec.verb, file: a(0), force: bool('force') };
      break;
    case 'check': {
      // Ranges are checked by the engine (resolveCheckOptions), in the same words the API uses.
      const n = (flag: string, what: string): number | undefined => {
        const v = value(flag);
        return v === undefined ? undefined : int(v, what, 'an integer');
      };
      const [throttle, scanCount, examples] = [n('throttle', 'throttle'), n('scan-count', 'scan count'), n('examples', 'examples')];
      command = {
        verb: spec.verb,
        fix: bool('fix'),
        ...(throttle === undefined ? {} : { throttle }),
        ...(scanCount === undefined ? {} : { scanCount }),
        ...(examples === undefined ? {} : { examples }),
      };
      break;
    }
    case 'dashboard': {
      const httpAddr = str('http-addr', 'REBORN_DASHBOARD_ADDR', DEFAULT_HTTP_ADDR);
      if (!isHostPort(httpAddr)) throw new ValidationError(`invalid --http-addr ${JSON.stringify(httpAddr)}: want host:port`);
      const token = value('token') ?? fromEnv('REBORN_DASHBOARD_TOKEN') ?? null;
      if (token !== null && token.length < 8) throw new ValidationError('the dashboard token must be at least 8 characters');
      // Before etcd is even dialled: the reason to fix comes first (listen() checks it again).
      const openBind = openBindRefusal(httpAddr, token, { flag: '--token', env: 'REBORN_DASHBOARD_TOKEN' });
      if (openBind !== null) throw new ValidationError(openBind);
      const allowHosts = str('allow-host', 'REBORN_DASHBOARD_ALLOW_HOST', '').split(',').map((h) => h.trim()).filter(Boolean);
      const badHosts = allowHostProblems(allowHosts);
      if (badHosts.length > 0) throw new ValidationError(badHosts.join('; '));
      command = { verb: spec.verb, httpAddr, token, allowHosts };
      break;
    }
    case 'group list':
    case 'slot list':
    case 'migration list':
    case 'proxy list':
      command = { verb: spec.verb };
      break;
    case 'help':
      command = { verb: 'help', topic: null };
      break;
  }
  return { global, command };
}
