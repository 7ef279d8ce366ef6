/**
 * The per-verb builders of reborn-config's command line: one entry per verb that turns its
 * positional arguments and options (already checked for arity and applicability by
 * options.ts) into a typed Command. Invariant: every value is checked here, before any
 * connection is made, with the same functions (servers.ts) and in the same words the
 * operations and the REST API use; within a verb, arguments are checked left to right.
 */
import { MAX_GROUP_REPLICAS, allowHostProblems, isValidSourceLatency, sourceLatencyError, checkConfigParam, checkConfigValue, isValidAgentId, openBindRefusal } from '@reborn/coordinator';
import { UsageError, ValidationError } from './errors.js';
import type { Command, Verb } from './command.js';
import { checkAddr, checkGroupId, checkMigrationId, checkProxyId, checkSlotId, checkSlotRange } from './servers.js';

export const DEFAULT_HTTP_ADDR = '127.0.0.1:18087';

/** What a builder reads: the verb's positional arguments and its options. */
export interface VerbInput {
  /** The positional arguments, exactly as many as the verb's spec names. */
  args: readonly string[];
  /** A boolean option is given. */
  bool(flag: string): boolean;
  /** A value option's value, or undefined. */
  value(flag: string): string | undefined;
  /** A setting: the flag, else the (non-empty) environment variable, else the default. */
  setting(flag: string, envName: string, dflt: string): string;
  /** An environment variable, unless unset or empty. */
  env(name: string): string | undefined;
}

type Builder<V extends Verb> = (input: VerbInput) => Extract<Command, { verb: V }>;

/** An integer argument; `what` names it in the message. */
export function int(text: string, what: string, want: string): number {
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

/** `<from> <to> <gid>` of slot set and slot migrate. */
function slotRangeArgs(args: readonly string[]): { first: number; last: number; gid: number } {
  const first = slotArg(args[0]!);
  const last = slotArg(args[1]!);
  checkSlotRange(first, last);
  return { first, last, gid: gidArg(args[2]!) };
}

const slotMigrate: Builder<'slot migrate'> = (input) => {
  const { first, last, gid } = slotRangeArgs(input.args);
  const throttle = input.value('throttle');
  const batch = input.value('batch-slots');
  const latency = input.value('max-source-latency');
  const command: Extract<Command, { verb: 'slot migrate' }> = {
    verb: 'slot migrate',
    first,
    last,
    gid,
    detach: input.bool('detach'),
    ...(throttle === undefined ? {} : { throttle: int(throttle, 'throttle', 'keys per second ≥ 0 (0 = unlimited)') }),
    ...(batch === undefined ? {} : { batchSlots: int(batch, 'batch size', '1..1024 slots') }),
    ...(latency === undefined ? {} : { maxSourceLatencyMs: int(latency, 'max source latency', 'whole milliseconds 1..10000') }),
  };
  if (command.maxSourceLatencyMs !== undefined && !isValidSourceLatency(command.maxSourceLatencyMs)) {
    throw new ValidationError(sourceLatencyError(command.maxSourceLatencyMs));
  }
  if (command.throttle !== undefined && command.throttle < 0) {
    throw new ValidationError(`invalid throttle ${command.throttle}: want keys per second ≥ 0 (0 = unlimited)`);
  }
  if (command.batchSlots !== undefined && (command.batchSlots < 1 || command.batchSlots > 1024)) {
    throw new ValidationError(`invalid batch size ${command.batchSlots}: want 1..1024 slots`);
  }
  return command;
};

/** `--min-in-sync` / `--want-replicas`: a count 0..16, `none` (null: clear it), or not given. */
function replicaSetting(input: VerbInput, flag: 'min-in-sync' | 'want-replicas'): number | null | undefined {
  const v = input.value(flag);
  if (v === undefined) return undefined;
  if (v === 'none') return null;
  if (!/^\d{1,2}$/.test(v) || Number(v) > MAX_GROUP_REPLICAS) {
    throw new ValidationError(`invalid --${flag} ${JSON.stringify(v)}: want 0..${MAX_GROUP_REPLICAS}, or none to clear it`);
  }
  return Number(v);
}

const groupSet: Builder<'group set'> = (input) => {
  const gid = gidArg(input.args[0]!);
  const minInSync = replicaSetting(input, 'min-in-sync');
  const wantReplicas = replicaSetting(input, 'want-replicas');
  if (minInSync === undefined && wantReplicas === undefined) {
    throw new UsageError(`group set: give --min-in-sync and/or --want-replicas (a count 0..${MAX_GROUP_REPLICAS}, or none to clear it)`);
  }
  return {
    verb: 'group set',
    gid,
    ...(minInSync === undefined ? {} : { minInSync }),
    ...(wantReplicas === undefined ? {} : { wantReplicas }),
    force: input.bool('force'),
  };
};

const check: Builder<'check'> = (input) => {
  // Ranges are checked by the engine (resolveCheckOptions), in the same words the API uses.
  const n = (flag: string, what: string): number | undefined => {
    const v = input.value(flag);
    return v === undefined ? undefined : int(v, what, 'an integer');
  };
  const [throttle, scanCount, examples] = [n('throttle', 'throttle'), n('scan-count', 'scan count'), n('examples', 'examples')];
  return {
    verb: 'check',
    fix: input.bool('fix'),
    ...(throttle === undefined ? {} : { throttle }),
    ...(scanCount === undefined ? {} : { scanCount }),
    ...(examples === undefined ? {} : { examples }),
  };
};

const dashboard: Builder<'dashboard'> = (input) => {
  const httpAddr = input.setting('http-addr', 'REBORN_DASHBOARD_ADDR', DEFAULT_HTTP_ADDR);
  if (!isHostPort(httpAddr)) throw new ValidationError(`invalid --http-addr ${JSON.stringify(httpAddr)}: want host:port`);
  const token = input.value('token') ?? input.env('REBORN_DASHBOARD_TOKEN') ?? null;
  if (token !== null && token.length < 8) throw new ValidationError('the dashboard token must be at least 8 characters');
  // Before etcd is even dialled: the reason to fix comes first (listen() checks it again).
  const openBind = openBindRefusal(httpAddr, token, { flag: '--token', env: 'REBORN_DASHBOARD_TOKEN' });
  if (openBind !== null) throw new ValidationError(openBind);
  const allowHosts = input.setting('allow-host', 'REBORN_DASHBOARD_ALLOW_HOST', '').split(',').map((h) => h.trim()).filter(Boolean);
  const badHosts = allowHostProblems(allowHosts);
  if (badHosts.length > 0) throw new ValidationError(badHosts.join('; '));
  return { verb: 'dashboard', httpAddr, token, allowHosts };
};

const group = <V extends 'group add' | 'group remove'>(verb: V): Builder<V> =>
  ({ args }) => ({ verb, gid: gidArg(args[0]!) }) as Extract<Command, { verb: V }>;
/** `server add <gid> <host:port>`, or `server add <gid> --agent <id> [--port P]`. */
const serverAdd: Builder<'server add'> = (input) => {
  const gid = gidArg(input.args[0]!);
  const agent = input.value('agent');
  const port = input.value('port');
  if (agent === undefined) {
    if (port !== undefined) throw new UsageError('server add: --port needs --agent <agent-id> (with a host:port, the server runs already)');
    if (input.args[1] === undefined) throw new UsageError('server add: give <host:port>, or --agent <agent-id> to have that agent start the server');
    return { verb: 'server add', gid, addr: checkAddr(input.args[1]) };
  }
  if (input.args[1] !== undefined) throw new UsageError('server add: give <host:port> or --agent, not both (the agent picks the address)');
  if (!isValidAgentId(agent)) throw new ValidationError(`invalid --agent ${JSON.stringify(agent)}: want an agent id [A-Za-z0-9_.:-]{1,128}`);
  if (port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)) {
    throw new ValidationError(`invalid --port ${JSON.stringify(port)}: want 1..65535`);
  }
  return { verb: 'server add', gid, agent, ...(port === undefined ? {} : { port: Number(port) }), agentToken: input.env('REBORN_AGENT_TOKEN') ?? null };
};
const server = <V extends 'server remove' | 'server promote'>(verb: V): Builder<V> =>
  ({ args }) => ({ verb, gid: gidArg(args[0]!), addr: checkAddr(args[1]!) }) as Extract<Command, { verb: V }>;
const migration = <V extends 'migration pause' | 'migration resume' | 'migration cancel'>(verb: V): Builder<V> =>
  ({ args }) => ({ verb, id: checkMigrationId(args[0]!) }) as Extract<Command, { verb: V }>;
const bare = <V extends 'group list' | 'slot list' | 'migration list' | 'proxy list' | 'redis-config list'>(verb: V): Builder<V> =>
  () => ({ verb }) as Extract<Command, { verb: V }>;

/** Every verb's builder; options.ts looks the verb up in VERBS and calls its entry here. */
export const VERB_BUILDERS: { readonly [V in Verb]: Builder<V> } = {
  help: () => ({ verb: 'help', topic: null }),
  'group add': group('group add'),
  'group remove': group('group remove'),
  'group list': bare('group list'),
  'group set': groupSet,
  'server add': serverAdd,
  'server remove': server('server remove'),
  'server promote': server('server promote'),
  'slot init': (input) => ({ verb: 'slot init', force: input.bool('force') }),
  'slot set': ({ args }) => ({ verb: 'slot set', ...slotRangeArgs(args) }),
  'slot list': bare('slot list'),
  'slot info': ({ args }) => ({ verb: 'slot info', id: slotArg(args[0]!) }),
  'slot migrate': slotMigrate,
  'slot rebalance': (input) => ({ verb: 'slot rebalance', confirm: input.bool('confirm') }),
  'migration list': bare('migration list'),
  'migration pause': migration('migration pause'),
  'migration resume': migration('migration resume'),
  'migration cancel': migration('migration cancel'),
  'proxy list': bare('proxy list'),
  'proxy offline': ({ args }) => ({ verb: 'proxy offline', id: checkProxyId(args[0]!) }),
  'redis-config list': bare('redis-config list'),
  'redis-config set': ({ args }) => {
    const param = checkConfigParam(args[0]!);
    return { verb: 'redis-config set', param, value: checkConfigValue(param, args[1]!) };
  },
  'redis-config unset': ({ args }) => ({ verb: 'redis-config unset', param: checkConfigParam(args[0]!) }),
  'topology save': ({ args }) => ({ verb: 'topology save', file: args[0]! }),
  'topology restore': (input) => ({ verb: 'topology restore', file: input.args[0]!, force: input.bool('force') }),
  check,
  dashboard,
};
