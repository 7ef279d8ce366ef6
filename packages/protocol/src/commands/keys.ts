/**
 * The compiled command table used on the proxy's hot path: name lookup on raw bytes, arity,
 * and key positions.
 *
 * Why this file is shaped the way it is:
 * - Lookup never allocates: command names arrive as bytes, are hashed case-insensitively
 *   (FNV-1a over ASCII-lower-cased bytes) into a fixed open-addressing table and compared
 *   byte by byte. No string is built per request.
 * - Key positions follow Redis 7's key-spec algorithm (db.c getKeysUsingKeySpecs) so that the
 *   proxy routes on exactly the keys the backend will touch; keys.test.ts checks it against
 *   a live redis-server's `COMMAND GETKEYS`. Most commands have one `index` + `range` spec and
 *   take the precomputed fast path (firstKey/lastKey/step, the legacy triple).
 * - Deliberate differences from Redis, all on the safe side:
 *   * `numkeys` = 0 gives no keys from that spec (Redis declares the spec invalid and falls
 *     back to per-command code); the command still goes to the slot of its other keys (or,
 *     for EVAL-like commands with no keys at all, wherever the policy says) and the backend
 *     answers with its own error when 0 is not allowed.
 *   * invalid `numkeys` (not an integer, negative, larger than the arguments) and key ranges
 *     past the end of the arguments throw KeyExtractionError — the proxy answers with its
 *     `redisMessage` instead of guessing a slot.
 *   * Specs Redis marks `not_key` (SPUBLISH/SSUBSCRIBE channels) are skipped.
 *   * Specs of type `unknown` (SORT/SORT_RO BY/GET patterns and SORT STORE) cannot be
 *     followed; Redis falls back to sortGetKeys(), and so do we for SORT's STORE
 *     destination. BY/GET patterns are never keys for routing: they are resolved by the
 *     backend that holds the sorted key (policy.ts says so in the README).
 *   * Specs flagged `incomplete` (MIGRATE's) make Redis use the command's own parser
 *     (migrateGetKeys); we do the same, and a MIGRATE that parser rejects throws.
 */
import { ProtocolError } from '../errors.js';
import { policyFor, withExtras } from './policy.js';
import type { CommandSpec, KeySpec, ProxyPolicy } from './types.js';

// --- flags --------------------------------------------------------------------------------

/** Redis command flags as bits of CommandInfo.flags. */
export const CommandFlag = {
  write: 1 << 0,
  readonly: 1 << 1,
  denyoom: 1 << 2,
  admin: 1 << 3,
  pubsub: 1 << 4,
  noscript: 1 << 5,
  blocking: 1 << 6,
  loading: 1 << 7,
  stale: 1 << 8,
  skip_monitor: 1 << 9,
  skip_slowlog: 1 << 10,
  asking: 1 << 11,
  fast: 1 << 12,
  no_auth: 1 << 13,
  may_replicate: 1 << 14,
  no_mandatory_keys: 1 << 15,
  no_multi: 1 << 16,
  movablekeys: 1 << 17,
  allow_busy: 1 << 18,
  no_async_loading: 1 << 19,
} as const;
export type CommandFlagName = keyof typeof CommandFlag;

function flagBits(flags: readonly string[]): number {
  let bits = 0;
  for (const f of flags) {
    const bit = (CommandFlag as Record<string, number>)[f];
    if (bit !== undefined) bits |= bit;
  }
  return bits;
}

// --- errors -------------------------------------------------------------------------------

export type KeyExtractionReason = 'numkeys-not-integer' | 'numkeys-negative' | 'numkeys-too-large' | 'syntax';

const REASON_MESSAGES: Readonly<Record<KeyExtractionReason, string>> = {
  'numkeys-not-integer': 'ERR value is not an integer or out of range',
  'numkeys-negative': "ERR Number of keys can't be negative",
  'numkeys-too-large': "ERR Number of keys can't be greater than number of args",
  syntax: 'ERR syntax error',
};

/**
 * The arguments do not let us find the keys: a `numkeys` argument that is not a
 * non-negative integer or names more keys than there are arguments, or a key range past the
 * end of the arguments. Redis would refuse such a command too. Code `EKEYS`; branch on
 * `reason`. `redisMessage` is the whole Redis-style error line for the client (without the
 * leading `-`), e.g. `ERR Number of keys can't be greater than number of args`; `message` is
 * the same without the `ERR ` prefix.
 */
export class KeyExtractionError extends ProtocolError {
  readonly reason: KeyExtractionReason;
  readonly redisMessage: string;
  readonly command: string;
  constructor(reason: KeyExtractionReason, command: string) {
    const redisMessage = REASON_MESSAGES[reason];
    super('EKEYS', redisMessage.slice('ERR '.length));
    this.name = 'KeyExtractionError';
    this.reason = reason;
    this.redisMessage = redisMessage;
    this.command = command;
  }
}

// --- compiled form ------------------------------------------------------------------------

const BEGIN_INDEX = 0;
const BEGIN_KEYWORD = 1;
const BEGIN_UNKNOWN = 2;
const FIND_RANGE = 0;
const FIND_KEYNUM = 1;
const FIND_UNKNOWN = 2;

/** One key spec in numeric form (not_key specs are dropped at compile time). */
export interface CompiledKeySpec {
  readonly begin: number;
  readonly index: number;
  /** Upper-case keyword bytes for BEGIN_KEYWORD. */
  readonly keyword: Uint8Array | undefined;
  readonly startFrom: number;
  readonly find: number;
  readonly lastKey: number;
  readonly limit: number;
  readonly keynumIdx: number;
  readonly firstKey: number;
  readonly step: number;
}

export interface CommandInfo {
  /** Lower-case name; `container|sub` for subcommands. */
  readonly name: string;
  readonly arity: number;
  /** Bits of CommandFlag. */
  readonly flags: number;
  readonly write: boolean;
  readonly readonly: boolean;
  /** Redis's `blocking` flag: XREAD/XREADGROUP carry it too, see blocksConnection(). */
  readonly blocking: boolean;
  readonly movableKeys: boolean;
  /** EVAL/FCALL family: zero keys is a valid call. */
  readonly noMandatoryKeys: boolean;
  /** At least one key spec that names real keys. */
  readonly hasKeys: boolean;
  /** The command can name more than one key, so the one-slot rule has to be checked. */
  readonly multiKey: boolean;
  /** Some keys cannot be found from the key specs alone (SORT, SORT_RO, MIGRATE). */
  readonly incompleteKeys: boolean;
  /**
   * The per-command parser Redis falls back to when the key specs are not enough, when we
   * implement it: SORT's STORE destination, MIGRATE's single key or KEYS list.
   */
  readonly keyFallback: 'sort' | 'migrate' | undefined;
  readonly policy: ProxyPolicy;
  readonly spec: CommandSpec;
  readonly keySpecs: readonly KeySpec[];
  /**
   * Fast path, set when the command has exactly one key spec and it is `index` + `range`
   * without limit (GET, SET, MSET, DEL, …): keys are args[firstKey..lastKey] every `step`;
   * a negative lastKey counts from the end (args.length + lastKey). 0/0/0 otherwise.
   */
  readonly firstKey: number;
  readonly lastKey: number;
  readonly step: number;
  readonly compiledKeySpecs: readonly CompiledKeySpec[];
  /** For containers (CLIENT, OBJECT, …): subcommands by lower-case sub name (`setname`). */
  readonly subcommands: ReadonlyMap<string, CommandInfo> | undefined;
  /** Byte-level index over `subcommands`, used by resolveCommand(). */
  readonly subcommandIndex: CommandNameIndex<CommandInfo> | undefined;
  /** The container, for subcommands. */
  readonly container: string | undefined;
}

function compileKeySpec(ks: KeySpec): CompiledKeySpec | undefined {
  if (ks.flags.includes('not_key')) return undefined;
  let begin = BEGIN_UNKNOWN;
  let index = 0;
  let keyword: Uint8Array | undefined;
  let startFrom = 0;
  if ('index' in ks.begin) {
    begin = BEGIN_INDEX;
    index = ks.begin.index;
  } else if ('keyword' in ks.begin) {
    begin = BEGIN_KEYWORD;
    keyword = Buffer.from(ks.begin.keyword.toUpperCase(), 'latin1');
    startFrom = ks.begin.startFrom;
  }
  let find = FIND_UNKNOWN;
  let lastKey = 0;
  let limit = 0;
  let keynumIdx = 0;
  let firstKey = 0;
  let step = 1;
  if ('range' in ks.find) {
    find = FIND_RANGE;
    lastKey = ks.find.range.lastKey;
    limit = ks.find.range.limit;
    step = ks.find.range.step;
  } else if ('keynum' in ks.find) {
    find = FIND_KEYNUM;
    keynumIdx = ks.find.keynum.keynumIdx;
    firstKey = ks.find.keynum.firstKey;
    step = ks.find.keynum.step;
  }
  if (step < 1) step = 1;
  return { begin, index, keyword, startFrom, find, lastKey, limit, keynumIdx, firstKey, step };
}

function compile(spec: CommandSpec, container: string | undefined): CommandInfo {
  const flags = flagBits(spec.flags);
  const compiled: CompiledKeySpec[] = [];
  for (const ks of spec.keySpecs) {
    const c = compileKeySpec(ks);
    if (c !== undefined) compiled.push(c);
  }
  let firstKey = 0;
  let lastKey = 0;
  let step = 0;
  const only = compiled.length === 1 ? compiled[0] : undefined;
  if (only !== undefined && only.begin === BEGIN_INDEX && only.find === FIND_RANGE && only.limit === 0) {
    firstKey = only.index;
    lastKey = only.lastKey >= 0 ? only.index + only.lastKey : only.lastKey;
    step = only.step;
  }
  const incompleteKeys =
    compiled.some((c) => c.begin === BEGIN_UNKNOWN || c.find === FIND_UNKNOWN) ||
    spec.keySpecs.some((ks) => ks.flags.includes('incomplete'));
  const keyFallback = spec.name === 'sort' || spec.name === 'migrate' ? spec.name : undefined;
  const multiKey =
    compiled.length > 1 ||
    (only !== undefined &&
      (only.find !== FIND_RANGE || only.lastKey !== 0 || only.begin === BEGIN_UNKNOWN));

  let subcommands: Map<string, CommandInfo> | undefined;
  let subcommandIndex: CommandNameIndex<CommandInfo> | undefined;
  if (spec.subcommands !== undefined && spec.subcommands.length > 0) {
    subcommands = new Map();
    for (const sub of spec.subcommands) {
      const bar = sub.name.indexOf('|');
      subcommands.set(sub.name.slice(bar + 1), compile(sub, spec.name));
    }
    subcommandIndex = new CommandNameIndex(subcommands);
  }

  return {
    name: spec.name,
    arity: spec.arity,
    flags,
    write: (flags & CommandFlag.write) !== 0,
    readonly: (flags & CommandFlag.readonly) !== 0,
    blocking: (flags & CommandFlag.blocking) !== 0,
    movableKeys: (flags & CommandFlag.movablekeys) !== 0,
    noMandatoryKeys: (flags & CommandFlag.no_mandatory_keys) !== 0,
    hasKeys: compiled.length > 0,
    multiKey,
    incompleteKeys,
    keyFallback,
    policy: policyFor(spec.name),
    spec,
    keySpecs: spec.keySpecs,
    firstKey,
    lastKey,
    step,
    compiledKeySpecs: compiled,
    subcommands,
    subcommandIndex,
    container,
  };
}

// --- name index ---------------------------------------------------------------------------

/**
 * A fixed open-addressing hash table from ASCII-case-insensitive names to values. Built once;
 * get() hashes and compares the raw bytes in place, so a lookup allocates nothing.
 */
export class CommandNameIndex<T> {
  private readonly mask: number;
  private readonly names: Array<Uint8Array | undefined>;
  private readonly values: Array<T | undefined>;
  private readonly byString: Map<string, T>;
  /** Longest name: anything longer is rejected before hashing. */
  readonly maxLength: number;

  constructor(entries: Iterable<readonly [string, T]>) {
    this.byString = new Map();
    for (const [name, value] of entries) this.byString.set(name.toLowerCase(), value);
    let size = 8;
    while (size < this.byString.size * 4) size *= 2;
    this.mask = size - 1;
    this.names = new Array<Uint8Array | undefined>(size).fill(undefined);
    this.values = new Array<T | undefined>(size).fill(undefined);
    let maxLength = 0;
    for (const [name, value] of this.byString) {
      const bytes = Buffer.from(name, 'latin1');
      maxLength = Math.max(maxLength, bytes.length);
      let slot = hashLower(bytes, 0, bytes.length) & this.mask;
      while (this.names[slot] !== undefined) slot = (slot + 1) & this.mask;
      this.names[slot] = bytes;
      this.values[slot] = value;
    }
    this.maxLength = maxLength;
  }

  get size(): number {
    return this.byString.size;
  }

  /** Case-insensitive lookup on raw bytes. */
  get(name: Uint8Array): T | undefined {
    const len = name.length;
    if (len === 0 || len > this.maxLength) return undefined;
    let slot = hashLower(name, 0, len) & this.mask;
    for (;;) {
      const candidate = this.names[slot];
      if (candidate === undefined) return undefined;
      if (candidate.length === len && equalsLower(candidate, name)) return this.values[slot];
      slot = (slot + 1) & this.mask;
    }
  }

  /** Case-insensitive lookup by string (tools and tests; the hot path uses get()). */
  getString(name: string): T | undefined {
    return this.byString.get(name) ?? this.byString.get(name.toLowerCase());
  }

  entries(): IterableIterator<[string, T]> {
    return this.byString.entries();
  }
}

/** FNV-1a over ASCII-lower-cased bytes. */
function hashLower(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    let b = bytes[i]!;
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    h = Math.imul(h ^ b, 0x01000193);
  }
  return h >>> 0;
}

/** `lower` is already lower case; `other` is compared ASCII-case-insensitively. */
function equalsLower(lower: Uint8Array, other: Uint8Array): boolean {
  for (let i = 0; i < lower.length; i++) {
    let b = other[i]!;
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (b !== lower[i]) return false;
  }
  return true;
}

/** `upper` is upper case; `other` compared ASCII-case-insensitively (Redis strcasecmp). */
function equalsIgnoreCaseUpper(upper: Uint8Array, other: Uint8Array): boolean {
  if (upper.length !== other.length) return false;
  for (let i = 0; i < upper.length; i++) {
    let b = other[i]!;
    if (b >= 0x61 && b <= 0x7a) b &= 0xdf;
    if (b !== upper[i]) return false;
  }
  return true;
}

// --- the table ----------------------------------------------------------------------------

const COMMANDS: CommandNameIndex<CommandInfo> = new CommandNameIndex(
  withExtras().map((spec): [string, CommandInfo] => [spec.name, compile(spec, undefined)]),
);

/** Case-insensitive lookup of a top-level command by its raw name bytes. */
export function lookupCommand(name: Uint8Array): CommandInfo | undefined {
  return COMMANDS.get(name);
}

/**
 * Lookup by string, for tools and tests: `get`, `CLIENT|SETNAME`, `client setname`.
 */
export function lookupCommandByName(name: string): CommandInfo | undefined {
  const sep = name.search(/[| ]/);
  if (sep < 0) return COMMANDS.getString(name);
  const container = COMMANDS.getString(name.slice(0, sep));
  return container?.subcommandIndex?.getString(name.slice(sep + 1));
}

/**
 * The command a request names. For a container with subcommands (CLIENT, OBJECT, …) and a
 * second argument naming one of them, the subcommand's info (`client|setname`); otherwise —
 * no second argument, or an unknown subcommand — the container itself, whose arity and policy
 * produce the right refusal (a container's policy is 'unknown subcommand', except COMMAND,
 * which the proxy answers). undefined for an unknown command.
 */
export function resolveCommand(args: readonly Uint8Array[]): CommandInfo | undefined {
  const first = args[0];
  if (first === undefined) return undefined;
  const info = COMMANDS.get(first);
  if (info === undefined || info.subcommandIndex === undefined) return info;
  const second = args[1];
  if (second === undefined) return info;
  return info.subcommandIndex.get(second) ?? info;
}

/** Every top-level command, compiled (containers carry their subcommands). */
export function allCommands(): CommandInfo[] {
  return [...COMMANDS.entries()].map(([, info]) => info);
}

/** Redis arity: positive = exactly that many arguments (name included), negative = at least. */
export function checkArity(info: CommandInfo, argc: number): boolean {
  const arity = info.arity;
  return arity >= 0 ? argc === arity : argc >= -arity;
}

/**
 * Whether the request would hold a backend connection until data arrives: commands with
 * Redis's `blocking` flag, except XREAD/XREADGROUP, which only block with a BLOCK option
 * (options are walked, so a group or consumer named "block" is not mistaken for it).
 */
export function blocksConnection(info: CommandInfo, args: readonly Uint8Array[]): boolean {
  if (!info.blocking) return false;
  if (info.name !== 'xread' && info.name !== 'xreadgroup') return true;
  // Redis's own option walk: options in any order until STREAMS; GROUP <group> <consumer>
  // may come after COUNT or NOACK, and its arguments are names, not keywords.
  const group = info.name === 'xreadgroup';
  let i = 1;
  while (i < args.length) {
    const a = args[i]!;
    if (equalsIgnoreCaseUpper(BLOCK, a)) return true;
    if (equalsIgnoreCaseUpper(STREAMS, a)) return false;
    if (equalsIgnoreCaseUpper(COUNT, a)) i += 2;
    else if (group && equalsIgnoreCaseUpper(GROUP, a)) i += 3;
    else i += 1; // NOACK, or a syntax error redis will answer
  }
  return false;
}

const STREAMS = Buffer.from('STREAMS', 'latin1');
const BLOCK = Buffer.from('BLOCK', 'latin1');
const GROUP = Buffer.from('GROUP', 'latin1');
const COUNT = Buffer.from('COUNT', 'latin1');
const STORE = Buffer.from('STORE', 'latin1');
const LIMIT = Buffer.from('LIMIT', 'latin1');
const GET = Buffer.from('GET', 'latin1');
const BY = Buffer.from('BY', 'latin1');
const KEYS = Buffer.from('KEYS', 'latin1');
const AUTH = Buffer.from('AUTH', 'latin1');
const AUTH2 = Buffer.from('AUTH2', 'latin1');

// --- key extraction -----------------------------------------------------------------------

/**
 * Indexes into `args` (args[0] is the command name; for a subcommand args[1] is its name) of
 * every key the command names, in key-spec order, possibly with repeats (RENAME k k).
 * Call checkArity() first. Throws KeyExtractionError when numkeys is invalid or a key range
 * runs past the arguments.
 */
export function extractKeyIndexes(info: CommandInfo, args: readonly Uint8Array[]): number[] {
  const argc = args.length;
  if (info.firstKey > 0) {
    // Fast path: a single index + range spec (the legacy first/last/step triple).
    const first = info.firstKey;
    const last = info.lastKey >= 0 ? info.lastKey : argc + info.lastKey;
    if (first >= argc || last >= argc || last < first) throw new KeyExtractionError('syntax', info.name);
    const out: number[] = [];
    for (let i = first; i <= last; i += info.step) out.push(i);
    return out;
  }
  if (info.keyFallback === 'migrate') return migrateKeys(info, args);
  const out: number[] = [];
  const specs = info.compiledKeySpecs;
  for (let s = 0; s < specs.length; s++) {
    const ks = specs[s]!;
    let first: number;
    if (ks.begin === BEGIN_INDEX) {
      first = ks.index;
    } else if (ks.begin === BEGIN_KEYWORD) {
      first = findKeyword(ks, args);
      if (first === 0) continue; // optional keyword absent: this spec names no key
    } else {
      continue; // unknown: see unknownSpecKeys below
    }

    let last: number;
    if (ks.find === FIND_RANGE) {
      if (ks.lastKey >= 0) last = first + ks.lastKey;
      else if (ks.limit === 0) last = argc + ks.lastKey;
      else last = first + (Math.trunc((argc - first) / ks.limit) + ks.lastKey);
      if (first >= argc || last >= argc || last < first) throw new KeyExtractionError('syntax', info.name);
    } else if (ks.find === FIND_KEYNUM) {
      const numIdx = first + ks.keynumIdx;
      const numArg = args[numIdx];
      if (numArg === undefined) throw new KeyExtractionError('syntax', info.name);
      const numkeys = parseNumkeys(numArg, info.name);
      first += ks.firstKey;
      if (numkeys === 0) continue;
      last = first + numkeys - 1; // as Redis: numkeys arguments, of which every step-th is a key
      if (last >= argc) throw new KeyExtractionError('numkeys-too-large', info.name);
    } else {
      continue;
    }
    for (let i = first; i <= last; i += ks.step) out.push(i);
  }
  if (info.keyFallback === 'sort') sortStoreKey(args, out);
  return out;
}

/** Redis's keyword search: forward from startFrom, or backward from the end when negative. */
function findKeyword(ks: CompiledKeySpec, args: readonly Uint8Array[]): number {
  const argc = args.length;
  const keyword = ks.keyword!;
  const start = ks.startFrom > 0 ? ks.startFrom : argc + ks.startFrom;
  const end = ks.startFrom > 0 ? argc - 1 : 0;
  const dir = start <= end ? 1 : -1;
  for (let i = start; i !== end; i += dir) {
    if (i >= argc || i < 1) break;
    if (equalsIgnoreCaseUpper(keyword, args[i]!)) return i + 1;
  }
  return 0;
}

/**
 * SORT's STORE destination, found as Redis's sortGetKeys() finds it: the last STORE wins;
 * LIMIT skips two arguments, GET and BY one. BY/GET patterns are not routing keys.
 */
function sortStoreKey(args: readonly Uint8Array[], out: number[]): void {
  let store = 0;
  for (let i = 2; i < args.length; i++) {
    const a = args[i]!;
    if (equalsIgnoreCaseUpper(LIMIT, a)) i += 2;
    else if (equalsIgnoreCaseUpper(GET, a) || equalsIgnoreCaseUpper(BY, a)) i += 1;
    else if (equalsIgnoreCaseUpper(STORE, a) && i + 1 < args.length) store = i + 1;
  }
  if (store > 0) out.push(store);
}

/**
 * MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS k…]:
 * Redis's migrateGetKeys(). The key argument, or — when a KEYS option follows the fixed
 * arguments — every argument after KEYS, which requires the key argument to be empty.
 */
function migrateKeys(info: CommandInfo, args: readonly Uint8Array[]): number[] {
  const argc = args.length;
  let first = 3;
  let num = 1;
  for (let i = 6; i < argc; i++) {
    const a = args[i]!;
    if (equalsIgnoreCaseUpper(KEYS, a)) {
      if (args[3]!.length > 0) throw new KeyExtractionError('syntax', info.name);
      first = i + 1;
      num = argc - first;
      break;
    }
    if (equalsIgnoreCaseUpper(AUTH, a)) i += 1;
    else if (equalsIgnoreCaseUpper(AUTH2, a)) i += 2;
  }
  if (first >= argc) throw new KeyExtractionError('syntax', info.name);
  const out: number[] = [];
  for (let i = first; i < first + num; i++) out.push(i);
  return out;
}

/**
 * A numkeys argument, parsed the way Redis's string2ll does (optional '-', no '+', no
 * leading zeros, no spaces, fits in 64 bits).
 */
function parseNumkeys(arg: Uint8Array, command: string): number {
  const len = arg.length;
  if (len === 0 || len > 20) throw new KeyExtractionError('numkeys-not-integer', command);
  let i = 0;
  const negative = arg[0] === 0x2d;
  if (negative) i = 1;
  if (i >= len) throw new KeyExtractionError('numkeys-not-integer', command);
  const firstDigit = arg[i]!;
  if (len === 1 && firstDigit === 0x30) return 0;
  if (firstDigit < 0x31 || firstDigit > 0x39) throw new KeyExtractionError('numkeys-not-integer', command);
  let value = 0;
  for (; i < len; i++) {
    const d = arg[i]! - 0x30;
    if (d < 0 || d > 9) throw new KeyExtractionError('numkeys-not-integer', command);
    value = value * 10 + d;
  }
  if (value > Number.MAX_SAFE_INTEGER) {
    // Past 2^53 the digits are no longer exact: decide 64-bit overflow with BigInt (rare).
    const big = BigInt(Buffer.from(arg.buffer, arg.byteOffset, arg.byteLength).toString('latin1'));
    if (big > 9223372036854775807n || big < -9223372036854775808n) {
      throw new KeyExtractionError('numkeys-not-integer', command);
    }
  }
  if (negative) throw new KeyExtractionError('numkeys-negative', command);
  return value;
}

/** The keys themselves (views into `args`), for callers that do not need the positions. */
export function extractKeys(info: CommandInfo, args: readonly Uint8Array[]): Uint8Array[] {
  const idx = extractKeyIndexes(info, args);
  const out: Uint8Array[] = new Array<Uint8Array>(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = args[idx[i]!]!;
  return out;
}
