/**
 * How the proxy treats every Redis command: hand-written data, one entry per command and per
 * subcommand of generated.ts (a test fails when a command has no entry, or an entry names no
 * command). The README compatibility table is generated from this file
 * (scripts/gen-compat-table.mjs), so `note` and `reason` are written for users.
 *
 * Rules of thumb:
 * - a key-bearing data command is `route`: every key its key specs name must hash to one slot;
 * - only MGET, MSET, DEL, UNLINK, EXISTS, TOUCH are `split` (docs/architecture.md §3, step 3); MSETNX is not, since
 *   splitting it would break its all-or-nothing promise;
 * - connection state the proxy owns is `local`;
 * - anything that would read or change a whole backend, its persistence, replication or
 *   cluster state is `unsupported` — the operator tools own those;
 * - a name that is not in the table is refused ('unknown command'): the conservative default.
 */
import { REDIS_COMMANDS } from './generated.js';
import type { CommandSpec, FanoutMerge, ProxyPolicy } from './types.js';

/**
 * Commands newer than the generated table (Redis 7.0) that clients send anyway and the proxy
 * answers itself. ioredis ≥ 5.3 sends CLIENT SETINFO (Redis 7.2) on every connect.
 */
export const PROXY_EXTRA_COMMANDS: readonly CommandSpec[] = [
  {
    name: 'client|setinfo',
    arity: 4,
    flags: ['noscript', 'loading', 'stale'],
    keySpecs: [],
    group: 'connection',
    since: '7.2.0',
    summary: 'Set client or connection specific info',
  },
  {
    // node-redis 6 and redis-py 8 send it at connect over RESP3 (Redis Enterprise's maintenance
    // notifications); an answer that lets them go on is all they need.
    name: 'client|maint_notifications',
    arity: -3,
    flags: ['noscript', 'loading', 'stale'],
    keySpecs: [],
    group: 'connection',
    since: '8.0.0',
    summary: 'Opt in to maintenance notifications (accepted; the proxy sends none)',
  },
];

// --- policy constructors ------------------------------------------------------------------

const ROUTE: ProxyPolicy = Object.freeze({ kind: 'route' });
const route = (note?: string): ProxyPolicy => (note === undefined ? ROUTE : Object.freeze({ kind: 'route', note }));
const local = (note?: string): ProxyPolicy =>
  Object.freeze(note === undefined ? { kind: 'local' } : { kind: 'local', note });
const split = (merge: 'mget' | 'mset' | 'sum'): ProxyPolicy => Object.freeze({ kind: 'split', merge });
const fanout = (merge: FanoutMerge, note?: string): ProxyPolicy =>
  Object.freeze(note === undefined ? { kind: 'fanout', merge } : { kind: 'fanout', merge, note });
const refuse = (reason: string): ProxyPolicy => Object.freeze({ kind: 'unsupported', reason });

// Shared reasons: one wording per family, so the README reads consistently.
const UNKNOWN_SUBCOMMAND = refuse('unknown subcommand');
const HELP = refuse('HELP text is not available through the proxy');
const BLOCKING = route('all keys in one slot; runs on its own backend connection (at most --max-blocked at once); a migration of its slot unblocks it as if it timed out');
const SUBSCRIBE_NOTE = 'the proxy subscribes once per server for all its clients and fans messages out; delivery continues across slot migration and failover';
const PUBLISH_NOTE = "sent to the master of the channel's slot; the reply counts subscribed connections at the backends (each proxy once)";
const ONLY_DB0 = refuse('only db 0 is available through the proxy');
const ADMIN_ACL = refuse('ACL is managed on the backends, not through the proxy');
const CLUSTER = refuse('cluster administration is not available: slots are managed with reborn-config (the --cluster-addr face only shows a map)');
const CLUSTER_FACE_NOTE = 'on the --cluster-addr port, which looks like a Redis Cluster to cluster-mode clients (elsewhere: cluster support disabled, as in Redis)';
const CLUSTER_FACE = local(CLUSTER_FACE_NOTE);
const CONFIG = refuse('backend configuration is not available through the proxy');
// product config: the whitelist is coordinator's redis-config.ts (docs/product-config.md).
const CONFIG_GET = local('only the product-wide parameters (encoding thresholds, notify-keyspace-events, eviction policy, script limits …), as the first master has them; others read as absent');
const CONFIG_SET = local('only the product-wide parameters: validated on one master, stored in etcd, applied to every server (masters, replicas, servers added or restarted later); others are refused');
const PERSISTENCE = refuse('persistence is managed on the backends, not through the proxy');
const REPLICATION = refuse('replication and failover are managed by reborn-agent');
const DEBUGGING = refuse('debugging commands are not available through the proxy');
const LATENCY = refuse('LATENCY is not available through the proxy: ask the backends directly');
const MEMORY_ADMIN = refuse('MEMORY diagnostics are not available through the proxy: ask the backends directly');
const MODULES = refuse('modules are not supported');
const SLOWLOG = local("the proxy's own slow requests (time from parsing to reply, --slowlog-slower-than); ask the backends for theirs");
const FUNCTIONS_EVERYWHERE = 'on every master, like SCRIPT LOAD; a group added later needs FUNCTION RESTORE (or the load again)';
const CLIENT_ADMIN = refuse('only CLIENT SETNAME, GETNAME, ID, SETINFO, REPLY, INFO, LIST and the tracking subcommands are supported');
const TRACKING_NOTE = 'invalidations for writes through any proxy or on redis; RESP3 pushes, or with REDIRECT to a subscribed connection of the same proxy; NOLOOP still reports own writes';

const ONE_SLOT = 'all keys in one slot';
const SCRIPT_NOTE = `${ONE_SLOT}; with 0 keys runs on the first group`;
const SORT_NOTE = `${ONE_SLOT} (STORE destination too); BY/GET patterns only see keys of the sorted key's group`;
const STORE_NOTE = `${ONE_SLOT} (STORE/STOREDIST destination too)`;
const XREAD_NOTE = `${ONE_SLOT}; with BLOCK it runs on its own backend connection, like the other blocking commands`;

/** Expands `container|sub` entries that share one policy. */
function each(container: string, subs: readonly string[], policy: ProxyPolicy): Array<[string, ProxyPolicy]> {
  return subs.map((sub) => [`${container}|${sub}`, policy]);
}

/** Several top-level names sharing one policy. */
function all(names: readonly string[], policy: ProxyPolicy): Array<[string, ProxyPolicy]> {
  return names.map((name) => [name, policy]);
}

const ENTRIES: ReadonlyArray<[string, ProxyPolicy]> = [
  // --- connection -----------------------------------------------------------------------
  ['auth', local('checked against the proxy password (--auth)')],
  ['echo', local()],
  ['hello', local('RESP2 and RESP3: backend replies reach a RESP3 client as RESP3, byte for byte; version is the lowest of the backends')],
  ['ping', local()],
  ['quit', local()],
  ['reset', local('discards MULTI and WATCH, unsubscribes, clears the name, back to RESP2; with --auth the client must AUTH again')],
  ['select', local('only db 0')],
  ['client', UNKNOWN_SUBCOMMAND],
  ['client|getname', local()],
  ['client|id', local('an id assigned by the proxy')],
  ['client|setname', local()],
  ['client|setinfo', local('LIB-NAME and LIB-VER are kept per connection and shown by CLIENT INFO/LIST')],
  ['client|reply', local('ON, OFF and SKIP, per client connection')],
  ['client|info', local("this connection as the proxy sees it, in Redis' format")],
  ['client|list', local("the proxy's own client connections, in Redis' format (TYPE and ID filters)")],
  ['client|maint_notifications', local('accepted (ON/OFF); the proxy sends no notifications: it holds requests through migrations and failovers itself')],
  ...each('client', ['kill', 'no-evict', 'pause', 'unpause', 'unblock'], CLIENT_ADMIN),
  ['client|tracking', local(TRACKING_NOTE)],
  ['client|caching', local()],
  ['client|getredir', local()],
  ['client|trackinginfo', local()],
  ['client|help', HELP],

  // --- cluster --------------------------------------------------------------------------
  ['asking', CLUSTER],
  ['readonly', local('accepted as a no-op: the proxy does not redirect')],
  ['readwrite', local('accepted as a no-op: the proxy does not redirect')],
  ['cluster', UNKNOWN_SUBCOMMAND],
  ...each(
    'cluster',
    [
      'addslots', 'addslotsrange', 'bumpepoch', 'count-failure-reports', 'countkeysinslot', 'delslots',
      'delslotsrange', 'failover', 'flushslots', 'forget', 'getkeysinslot', 'links',
      'meet', 'replicate', 'reset', 'saveconfig', 'set-config-epoch', 'setslot',
    ],
    CLUSTER,
  ),
  ...each('cluster', ['slots', 'shards', 'nodes', 'info', 'myid'], CLUSTER_FACE),
  ...each('cluster', ['replicas', 'slaves'], local(`${CLUSTER_FACE_NOTE}; every node is a master without replicas`)),
  ['cluster|keyslot', local("Redis Cluster's CRC16 slot (0..16383), on every port")],
  ['cluster|help', HELP],

  // --- generic --------------------------------------------------------------------------
  ['copy', route(`${ONE_SLOT}; the DB option is not supported`)],
  ['del', split('sum')],
  ['dump', ROUTE],
  ['exists', split('sum')],
  ['expire', ROUTE],
  ['expireat', ROUTE],
  ['expiretime', ROUTE],
  ['keys', local('every master; refused when the reply would exceed --max-keys-reply keys (use SCAN)')],
  ['migrate', refuse('use reborn-config slot migrate to move data between groups')],
  ['move', ONLY_DB0],
  ['object', UNKNOWN_SUBCOMMAND],
  ...each('object', ['encoding', 'freq', 'idletime', 'refcount'], ROUTE),
  ['object|help', HELP],
  ['persist', ROUTE],
  ['pexpire', ROUTE],
  ['pexpireat', ROUTE],
  ['pexpiretime', ROUTE],
  ['pttl', ROUTE],
  ['randomkey', local('a random master, then the others if it is empty')],
  ['rename', ROUTE],
  ['renamenx', ROUTE],
  ['restore', ROUTE],
  ['scan', local('one group after another (sources of migrating slots before their targets); the cursor encodes the group and stays below 2^63 (a group of up to about a billion keys)')],
  ['sort', route(SORT_NOTE)],
  ['sort_ro', route(SORT_NOTE)],
  ['touch', split('sum')],
  ['ttl', ROUTE],
  ['type', ROUTE],
  ['unlink', split('sum')],
  ['wait', local('asks every group this connection wrote to and answers the smallest count; timeout capped at --max-wait-timeout (0 = the cap); after a write by a blocking command or under WATCH it answers an error instead (use --durable)')],

  // --- strings, bitmaps, hyperloglog ----------------------------------------------------
  ...all(
    [
      'append', 'decr', 'decrby', 'get', 'getdel', 'getex', 'getrange', 'getset', 'incr', 'incrby',
      'incrbyfloat', 'lcs', 'psetex', 'set', 'setex', 'setnx', 'setrange', 'strlen', 'substr',
    ],
    ROUTE,
  ),
  ['mget', split('mget')],
  ['mset', split('mset')],
  ['msetnx', route(`${ONE_SLOT}: not split, so that it stays atomic`)],
  ...all(['bitcount', 'bitfield', 'bitfield_ro', 'bitop', 'bitpos', 'getbit', 'setbit'], ROUTE),
  ...all(['pfadd', 'pfcount', 'pfmerge'], ROUTE),
  ['pfdebug', DEBUGGING],
  ['pfselftest', DEBUGGING],

  // --- hashes, lists, sets, sorted sets -------------------------------------------------
  ...all(
    [
      'hdel', 'hexists', 'hget', 'hgetall', 'hincrby', 'hincrbyfloat', 'hkeys', 'hlen', 'hmget', 'hmset',
      'hrandfield', 'hscan', 'hset', 'hsetnx', 'hstrlen', 'hvals',
    ],
    ROUTE,
  ),
  ...all(
    [
      'lindex', 'linsert', 'llen', 'lmove', 'lmpop', 'lpop', 'lpos', 'lpush', 'lpushx', 'lrange', 'lrem',
      'lset', 'ltrim', 'rpop', 'rpoplpush', 'rpush', 'rpushx',
    ],
    ROUTE,
  ),
  ...all(['blmove', 'blmpop', 'blpop', 'brpop', 'brpoplpush', 'bzmpop', 'bzpopmax', 'bzpopmin'], BLOCKING),
  ...all(
    [
      'sadd', 'scard', 'sdiff', 'sdiffstore', 'sinter', 'sintercard', 'sinterstore', 'sismember', 'smembers',
      'smismember', 'smove', 'spop', 'srandmember', 'srem', 'sscan', 'sunion', 'sunionstore',
    ],
    ROUTE,
  ),
  ...all(
    [
      'zadd', 'zcard', 'zcount', 'zdiff', 'zdiffstore', 'zincrby', 'zinter', 'zintercard', 'zinterstore',
      'zlexcount', 'zmpop', 'zmscore', 'zpopmax', 'zpopmin', 'zrandmember', 'zrange', 'zrangebylex',
      'zrangebyscore', 'zrangestore', 'zrank', 'zrem', 'zremrangebylex', 'zremrangebyrank',
      'zremrangebyscore', 'zrevrange', 'zrevrangebylex', 'zrevrangebyscore', 'zrevrank', 'zscan', 'zscore',
      'zunion', 'zunionstore',
    ],
    ROUTE,
  ),

  // --- geo ------------------------------------------------------------------------------
  ...all(['geoadd', 'geodist', 'geohash', 'geopos', 'georadius_ro', 'georadiusbymember_ro', 'geosearch'], ROUTE),
  ['georadius', route(STORE_NOTE)],
  ['georadiusbymember', route(STORE_NOTE)],
  ['geosearchstore', ROUTE],

  // --- streams --------------------------------------------------------------------------
  ...all(
    ['xack', 'xadd', 'xautoclaim', 'xclaim', 'xdel', 'xlen', 'xpending', 'xrange', 'xrevrange', 'xsetid', 'xtrim'],
    ROUTE,
  ),
  ['xread', route(XREAD_NOTE)],
  ['xreadgroup', route(XREAD_NOTE)],
  ['xgroup', UNKNOWN_SUBCOMMAND],
  ...each('xgroup', ['create', 'createconsumer', 'delconsumer', 'destroy', 'setid'], ROUTE),
  ['xgroup|help', HELP],
  ['xinfo', UNKNOWN_SUBCOMMAND],
  ...each('xinfo', ['consumers', 'groups', 'stream'], ROUTE),
  ['xinfo|help', HELP],

  // --- pub/sub --------------------------------------------------------------------------
  ...all(['psubscribe', 'punsubscribe', 'ssubscribe', 'subscribe', 'sunsubscribe', 'unsubscribe'], local(SUBSCRIBE_NOTE)),
  ['publish', Object.freeze({ kind: 'route', note: PUBLISH_NOTE, channel: true })],
  ['spublish', Object.freeze({ kind: 'route', note: PUBLISH_NOTE, channel: true })],
  ['pubsub', UNKNOWN_SUBCOMMAND],
  ...each('pubsub', ['channels', 'shardchannels'], local('union over every master')),
  ...each('pubsub', ['numsub', 'shardnumsub'], local('subscribed connections at the backends, each proxy counting once (the largest count over the masters)')),
  ['pubsub|numpat', local('patterns subscribed at the backends (the largest count over the masters)')],
  ['pubsub|help', HELP],

  // --- transactions ---------------------------------------------------------------------
  ...all(['discard', 'exec', 'multi', 'unwatch'], local('every key of the transaction (and of WATCH) in one slot; a migration of that slot waits --watch-grace for an open WATCH, then aborts it (EXEC answers nil)')),
  ['watch', local('keys in one slot; pins the client to its own backend connection until EXEC, DISCARD or UNWATCH')],

  // --- scripting ------------------------------------------------------------------------
  ...all(['eval', 'eval_ro', 'evalsha', 'evalsha_ro'], route(SCRIPT_NOTE)),
  ...all(['fcall', 'fcall_ro'], route(`${SCRIPT_NOTE}; FUNCTION LOAD through the proxy loads on every master`)),
  ['script', UNKNOWN_SUBCOMMAND],
  ['script|load', fanout('first', 'loaded on every master; a group added later answers NOSCRIPT until loaded again')],
  // The proxy merges EXISTS replies with a logical AND (dispatch.ts); `first` would also be
  // right while every script is loaded through the proxy, which loads it on every master.
  ['script|exists', fanout('first', 'a script exists only when every master has it')],
  ['script|flush', fanout('all-ok', 'flushes every master')],
  ['script|kill', fanout('any-ok', 'sent to every master: kills the script running on any of them (NOTBUSY when none runs one)')],
  ['script|debug', DEBUGGING],
  ['script|help', HELP],
  ['function', UNKNOWN_SUBCOMMAND],
  ['function|load', fanout('first', `${FUNCTIONS_EVERYWHERE}; answers the library name`)],
  ...each('function', ['delete', 'flush', 'restore'], fanout('all-ok', FUNCTIONS_EVERYWHERE)),
  ['function|kill', fanout('any-ok', 'sent to every master: kills the function running on any of them')],
  ...each('function', ['dump', 'list', 'stats'], fanout('first', "the first master's answer (every master has the same libraries)")),
  ['function|help', HELP],

  // --- server ---------------------------------------------------------------------------
  ['acl', UNKNOWN_SUBCOMMAND],
  ...each(
    'acl',
    ['cat', 'deluser', 'dryrun', 'genpass', 'getuser', 'list', 'load', 'log', 'save', 'setuser', 'users', 'whoami'],
    ADMIN_ACL,
  ),
  ['acl|help', HELP],
  ...all(['bgrewriteaof', 'bgsave', 'lastsave', 'save'], PERSISTENCE),
  ['command', local('describes the backend Redis commands, including refused ones')],
  ...each('command', ['count', 'docs', 'getkeys', 'getkeysandflags', 'info', 'list'], local()),
  ['command|help', HELP],
  ['config', UNKNOWN_SUBCOMMAND],
  ['config|get', CONFIG_GET],
  ['config|set', CONFIG_SET],
  ...each('config', ['resetstat', 'rewrite'], CONFIG),
  ['config|help', HELP],
  ['dbsize', local('summed over every master; not a point-in-time snapshot')],
  ['debug', DEBUGGING],
  ['failover', REPLICATION],
  ...all(['flushall', 'flushdb'], local('every master; refused when the proxy runs with --no-flush')),
  ['info', local("the proxy's own sections; keyspace summed over every master")],
  ['latency', UNKNOWN_SUBCOMMAND],
  ...each('latency', ['doctor', 'graph', 'histogram', 'history', 'latest', 'reset'], LATENCY),
  ['latency|help', HELP],
  ['lolwut', refuse('LOLWUT is not supported')],
  ['memory', UNKNOWN_SUBCOMMAND],
  ['memory|usage', ROUTE],
  ...each('memory', ['doctor', 'malloc-stats', 'purge', 'stats'], MEMORY_ADMIN),
  ['memory|help', HELP],
  ['module', UNKNOWN_SUBCOMMAND],
  ...each('module', ['list', 'load', 'loadex', 'unload'], MODULES),
  ['module|help', HELP],
  ['monitor', refuse('MONITOR is not supported')],
  ...all(['psync', 'replconf', 'replicaof', 'role', 'slaveof', 'sync'], REPLICATION),
  ['restore-asking', CLUSTER],
  ['shutdown', refuse('SHUTDOWN is not available through the proxy')],
  ['slowlog', UNKNOWN_SUBCOMMAND],
  ...each('slowlog', ['get', 'len', 'reset'], SLOWLOG),
  ['slowlog|help', HELP],
  ['swapdb', ONLY_DB0],
  ['time', local("the proxy's clock")],
];

const UNKNOWN_COMMAND: ProxyPolicy = refuse('unknown command');

const POLICIES: ReadonlyMap<string, ProxyPolicy> = buildPolicies();

function buildPolicies(): Map<string, ProxyPolicy> {
  const map = new Map<string, ProxyPolicy>();
  for (const [name, policy] of ENTRIES) {
    if (map.has(name)) throw new Error(`policy.ts: duplicate entry for ${name}`);
    map.set(name, policy);
  }
  return map;
}

/**
 * The proxy's policy for a command: `name` is the command name (any case), or
 * `container|sub` for a subcommand (`client|setname`). Unknown names are refused.
 */
export function policyFor(name: string): ProxyPolicy {
  return POLICIES.get(name) ?? POLICIES.get(name.toLowerCase()) ?? UNKNOWN_COMMAND;
}

/** Every name with an explicit policy (commands and `container|sub` subcommands). */
export function policyNames(): string[] {
  return [...POLICIES.keys()];
}

/**
 * Commands without the write flag that may write (scripts and functions: only running them
 * tells). The proxy counts them as writes, so durable mode never acknowledges a script's
 * writes unconfirmed and WAIT asks where they went.
 */
export const MAY_WRITE: ReadonlySet<string> = new Set(['eval', 'evalsha', 'fcall']);

export interface CommandPolicyEntry {
  name: string;
  policy: ProxyPolicy;
  spec: CommandSpec;
}

/**
 * Every known command with its policy, sorted by name, each container followed by its
 * subcommands (also sorted); used by the README generator. Includes PROXY_EXTRA_COMMANDS.
 */
export function commandPolicies(): CommandPolicyEntry[] {
  const out: CommandPolicyEntry[] = [];
  for (const spec of withExtras()) {
    out.push({ name: spec.name, policy: policyFor(spec.name), spec });
    for (const sub of spec.subcommands ?? []) out.push({ name: sub.name, policy: policyFor(sub.name), spec: sub });
  }
  return out;
}

/**
 * REDIS_COMMANDS with PROXY_EXTRA_COMMANDS merged in (a `container|sub` extra joins its
 * container's subcommands), sorted by name at both levels.
 */
export function withExtras(): CommandSpec[] {
  const top = new Map<string, CommandSpec>();
  for (const spec of REDIS_COMMANDS) top.set(spec.name, spec);
  for (const extra of PROXY_EXTRA_COMMANDS) {
    const bar = extra.name.indexOf('|');
    if (bar < 0) {
      if (!top.has(extra.name)) top.set(extra.name, extra);
      continue;
    }
    const containerName = extra.name.slice(0, bar);
    const container = top.get(containerName);
    if (container === undefined) continue;
    const subs = container.subcommands ?? [];
    if (subs.some((s) => s.name === extra.name)) continue;
    top.set(containerName, { ...container, subcommands: [...subs, extra].sort(byName) });
  }
  return [...top.values()].sort(byName);
}

function byName(a: CommandSpec, b: CommandSpec): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
