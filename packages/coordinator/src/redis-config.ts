/**
 * The product-wide redis parameters: the one whitelist the proxy (CONFIG GET/SET) and
 * reborn-config (`redis-config` verbs, /api/redis-config) share, the record stored at
 * `/reborn/<p>/redis-config`, and the rule for applying it to one server.
 *
 * Product-wide means: a parameter that changes what a client sees of its data (encodings,
 * eviction, keyspace events, script time limits) and so must be the same on every server of
 * every group, or a key would behave differently depending on the group its slot lives in.
 * Parameters that belong to one server (memory size, persistence, replication, networking,
 * security) are not here: the agent and the operator own those (docs/product-config.md).
 *
 * Invariants: only whitelisted parameters are ever stored, each under its canonical name (the
 * Redis 7 name; `hash-max-ziplist-entries` is stored as `hash-max-listpack-entries`), so an
 * alias and its parameter can never hold two values; a stored value has passed CONFIG SET on
 * one master before it was written (redis-config-store.ts).
 */
import { CoordinatorError, ValidationError } from './errors.js';

export interface ProductConfigParam {
  /** The Redis 7 name, lower case: the name stored in etcd. */
  readonly name: string;
  /** Older names redis accepts for the same parameter (CONFIG GET answers them too). */
  readonly aliases: readonly string[];
}

/** The whitelist, in the order listings show it. docs/product-config.md argues each entry. */
export const PRODUCT_CONFIG_PARAMS: readonly ProductConfigParam[] = [
  { name: 'notify-keyspace-events', aliases: [] },
  { name: 'hash-max-listpack-entries', aliases: ['hash-max-ziplist-entries'] },
  { name: 'hash-max-listpack-value', aliases: ['hash-max-ziplist-value'] },
  { name: 'set-max-intset-entries', aliases: [] },
  // Redis 7.2 and later; a 7.0 server refuses them, and that refusal is what the client sees.
  { name: 'set-max-listpack-entries', aliases: [] },
  { name: 'set-max-listpack-value', aliases: [] },
  { name: 'zset-max-listpack-entries', aliases: ['zset-max-ziplist-entries'] },
  { name: 'zset-max-listpack-value', aliases: ['zset-max-ziplist-value'] },
  { name: 'list-max-listpack-size', aliases: ['list-max-ziplist-size'] },
  { name: 'list-compress-depth', aliases: [] },
  { name: 'stream-node-max-bytes', aliases: [] },
  { name: 'stream-node-max-entries', aliases: [] },
  { name: 'maxmemory-policy', aliases: [] },
  { name: 'maxmemory-samples', aliases: [] },
  { name: 'lfu-log-factor', aliases: [] },
  { name: 'lfu-decay-time', aliases: [] },
  { name: 'busy-reply-threshold', aliases: ['lua-time-limit'] },
  { name: 'hll-sparse-max-bytes', aliases: [] },
  { name: 'active-expire-effort', aliases: [] },
];

/** Every canonical name, in whitelist order. */
export const PRODUCT_CONFIG_NAMES: readonly string[] = PRODUCT_CONFIG_PARAMS.map((p) => p.name);

/** Any accepted name (canonical or alias, lower case) → the canonical name. */
const CANONICAL: ReadonlyMap<string, string> = new Map(
  PRODUCT_CONFIG_PARAMS.flatMap((p) => [p.name, ...p.aliases].map((n) => [n, p.name] as const)),
);

/** Values longer than this are refused before any server sees them (the longest real one is a few bytes). */
export const PRODUCT_CONFIG_VALUE_MAX = 256;

/** The canonical name of a whitelisted parameter (any case, alias or not), or null. */
export function canonicalConfigParam(name: string): string | null {
  return CANONICAL.get(name.toLowerCase()) ?? null;
}

/** The canonical name, or a ValidationError that names the whitelist. */
export function checkConfigParam(name: string): string {
  const canonical = canonicalConfigParam(name);
  if (canonical === null) {
    throw new ValidationError(
      `redis parameter ${JSON.stringify(name)} is not product-wide: only ${PRODUCT_CONFIG_NAMES.join(', ')} (and their older ziplist/lua-time-limit names) are set through reborn; set others on each server`,
    );
  }
  return canonical;
}

/** A value as reborn accepts it; what it means is for redis to judge. */
export function checkConfigValue(param: string, value: unknown): string {
  if (typeof value !== 'string') throw new ValidationError(`the value of ${param} must be a string, got ${JSON.stringify(value)}`);
  if (value.length > PRODUCT_CONFIG_VALUE_MAX) {
    throw new ValidationError(`the value of ${param} is ${value.length} characters long: at most ${PRODUCT_CONFIG_VALUE_MAX}`);
  }
  // Control characters could only ever be a mistake here, and would make log lines lie.
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new ValidationError(`the value of ${param} contains a control character`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// CONFIG GET patterns

/** Whether a CONFIG GET argument is a glob pattern (redis' own test). */
function isPattern(arg: string): boolean {
  return /[*?[]/.test(arg);
}

/**
 * Redis' glob (`stringmatchlen`, case-insensitive as CONFIG GET uses it): `*`, `?`, `[abc]`,
 * `[^a-z]`, and `\x` for a literal x.
 */
export function globMatch(pattern: string, text: string): boolean {
  const p = pattern.toLowerCase();
  const t = text.toLowerCase();
  // Positions (pattern, text) already known not to match: without this, a client's pattern of
  // many `*`s backtracks exponentially (seconds for `*?*?…*#`) and stalls the whole proxy.
  // With it every position pair is tried once: O(|pattern| · |text|²) at worst.
  const failed = new Uint8Array((p.length + 1) * (t.length + 1));
  const match = (pi: number, ti: number): boolean => {
    const at = pi * (t.length + 1) + ti;
    if (failed[at] === 1) return false;
    const hit = matchFrom(pi, ti);
    if (!hit) failed[at] = 1;
    return hit;
  };
  const matchFrom = (pi: number, ti: number): boolean => {
    while (pi < p.length) {
      const c = p[pi]!;
      if (c === '*') {
        while (p[pi + 1] === '*') pi++;
        if (pi + 1 === p.length) return true;
        for (let k = ti; k <= t.length; k++) if (match(pi + 1, k)) return true;
        return false;
      }
      if (ti >= t.length) return false;
      if (c === '?') {
        pi++;
        ti++;
        continue;
      }
      if (c === '[') {
        let i = pi + 1;
        const not = p[i] === '^';
        if (not) i++;
        let hit = false;
        for (; i < p.length && p[i] !== ']'; i++) {
          if (p[i] === '\\' && i + 1 < p.length) {
            i++;
            if (p[i] === t[ti]) hit = true;
          } else if (p[i + 1] === '-' && i + 2 < p.length && p[i + 2] !== ']') {
            const [lo, hi] = p[i]! <= p[i + 2]! ? [p[i]!, p[i + 2]!] : [p[i + 2]!, p[i]!];
            if (t[ti]! >= lo && t[ti]! <= hi) hit = true;
            i += 2;
          } else if (p[i] === t[ti]) hit = true;
        }
        if (hit === not) return false;
        pi = i + 1;
        ti++;
        continue;
      }
      const lit = c === '\\' && pi + 1 < p.length ? p[++pi]! : c;
      if (lit !== t[ti]) return false;
      pi++;
      ti++;
    }
    return ti === t.length;
  };
  return match(0, 0);
}

/**
 * What to ask redis for, for CONFIG GET `patterns` restricted to the whitelist: a plain name
 * that is whitelisted is passed on as given (redis echoes it so), a pattern becomes every
 * whitelisted name and alias it matches. Empty when nothing whitelisted matches.
 */
export function configGetArgs(patterns: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (name: string): void => {
    if (seen.has(name.toLowerCase())) return;
    seen.add(name.toLowerCase());
    out.push(name);
  };
  for (const pattern of patterns) {
    if (!isPattern(pattern)) {
      if (canonicalConfigParam(pattern) !== null) add(pattern);
      continue;
    }
    for (const name of CANONICAL.keys()) if (globMatch(pattern, name)) add(name);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The stored record

export interface ProductConfigRecord {
  /** Canonical name → value, as the operator gave it and one master accepted it. */
  readonly params: Readonly<Record<string, string>>;
  /** ISO-8601 time of the last change; null for a product that never stored any. */
  readonly updatedAt: string | null;
}

export const EMPTY_PRODUCT_CONFIG: ProductConfigRecord = Object.freeze({ params: Object.freeze({}), updatedAt: null });

export function parseProductConfig(value: unknown, where = 'redis config'): ProductConfigRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(`${where}: want a JSON object`);
  const o = value as Record<string, unknown>;
  const raw = o['params'];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ValidationError(`${where}: params must be an object`);
  const params: Record<string, string> = {};
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (canonicalConfigParam(name) !== name) throw new ValidationError(`${where}: ${JSON.stringify(name)} is not a canonical product-wide parameter`);
    try {
      params[name] = checkConfigValue(name, v);
    } catch (err) {
      throw new ValidationError(`${where}: ${(err as Error).message}`);
    }
  }
  const updatedAt = o['updatedAt'];
  if (typeof updatedAt !== 'string' || updatedAt === '') throw new ValidationError(`${where}: updatedAt must be a non-empty string`);
  return { params, updatedAt };
}

/** JSON with the parameters in whitelist order, so values diff cleanly in etcdctl. */
export function encodeProductConfig(r: ProductConfigRecord): string {
  const v = parseProductConfig({ params: r.params, updatedAt: r.updatedAt ?? new Date().toISOString() });
  const params: Record<string, string> = {};
  for (const name of PRODUCT_CONFIG_NAMES) if (v.params[name] !== undefined) params[name] = v.params[name]!;
  return JSON.stringify({ params, updatedAt: v.updatedAt });
}

// ---------------------------------------------------------------------------------------------
// Applying to one server

/** A redis server answered CONFIG SET with an error: the value (or the parameter) is not accepted there. */
export class RedisConfigRefusedError extends CoordinatorError {
  /** Redis' own error line, e.g. `ERR CONFIG SET failed (possibly related to argument 'x') - …`. */
  readonly redisMessage: string;
  constructor(
    readonly addr: string,
    redisMessage: string,
  ) {
    super('EREFUSED', `redis ${addr} refused it: ${redisMessage}`);
    this.name = 'RedisConfigRefusedError';
    this.redisMessage = redisMessage;
  }
}

/**
 * How a caller reaches a server's CONFIG: the proxy over its own admin connections, reborn-config
 * over the admin client. Failures to reach the server reject with any other error.
 */
export interface ServerConfigAccess {
  /** CONFIG GET of these names: name → value (names redis does not know are absent). */
  get(addr: string, names: readonly string[]): Promise<Map<string, string>>;
  /** One CONFIG SET of every pair (all or nothing in redis 7); RedisConfigRefusedError on an error reply. */
  set(addr: string, pairs: ReadonlyArray<readonly [string, string]>): Promise<void>;
}

export const NOTIFY_KEYSPACE_EVENTS = 'notify-keyspace-events';
/** What `--watch-strays` turns on: keyevent channels (E) with new-key events (n). */
const NEW_KEY_FLAGS = 'En';

export interface ApplyConfigOptions {
  /** Keep E and n in notify-keyspace-events whatever the stored value (this proxy watches strays). */
  keepNewKeyEvents?: boolean;
}

/**
 * The notify-keyspace-events value to set on a server: the stored one, plus E and n when the
 * caller needs them or the server has n now — a proxy's stray watch turned those on and must
 * not go blind because another proxy applied the product's value.
 */
export function keyspaceEventsToSet(stored: string, current: string | undefined, opts: ApplyConfigOptions = {}): string {
  if (!opts.keepNewKeyEvents && !(current ?? '').includes('n')) return stored;
  let out = stored;
  for (const f of NEW_KEY_FLAGS) if (!out.includes(f)) out += f;
  return out;
}

/** `params` as CONFIG SET pairs, notify-keyspace-events adjusted (keyspaceEventsToSet) for `addr`. */
async function pairsFor(access: ServerConfigAccess, addr: string, params: Readonly<Record<string, string>>, opts: ApplyConfigOptions): Promise<Array<[string, string]>> {
  const pairs = Object.entries(params);
  const i = pairs.findIndex(([name]) => name === NOTIFY_KEYSPACE_EVENTS);
  if (i >= 0) {
    const current = opts.keepNewKeyEvents ? undefined : (await access.get(addr, [NOTIFY_KEYSPACE_EVENTS])).get(NOTIFY_KEYSPACE_EVENTS);
    pairs[i] = [NOTIFY_KEYSPACE_EVENTS, keyspaceEventsToSet(pairs[i]![1], current, opts)];
  }
  return pairs;
}

/** Sets every parameter at once: all of them or none (RedisConfigRefusedError). */
export async function setAllOrNothing(access: ServerConfigAccess, addr: string, params: Readonly<Record<string, string>>, opts: ApplyConfigOptions = {}): Promise<void> {
  const pairs = await pairsFor(access, addr, params, opts);
  if (pairs.length > 0) await access.set(addr, pairs);
}

export interface ConfigRefusal {
  param: string;
  message: string;
}

/**
 * Applies the stored parameters to one server: at once, and when the server refuses that (an
 * older redis without one of them), one by one, so one refused parameter does not keep the
 * others off the server. Resolves with what was refused; rejects when the server cannot be reached.
 */
export async function enforceConfig(access: ServerConfigAccess, addr: string, params: Readonly<Record<string, string>>, opts: ApplyConfigOptions = {}): Promise<ConfigRefusal[]> {
  const pairs = await pairsFor(access, addr, params, opts);
  if (pairs.length === 0) return [];
  try {
    await access.set(addr, pairs);
    return [];
  } catch (err) {
    if (!(err instanceof RedisConfigRefusedError)) throw err;
    if (pairs.length === 1) return [{ param: pairs[0]![0], message: err.redisMessage }];
  }
  const refused: ConfigRefusal[] = [];
  for (const pair of pairs) {
    try {
      await access.set(addr, [pair]);
    } catch (err) {
      if (!(err instanceof RedisConfigRefusedError)) throw err;
      refused.push({ param: pair[0], message: err.redisMessage });
    }
  }
  return refused;
}
