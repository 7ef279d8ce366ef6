/**
 * reborn-proxy options: one typed schema with defaults. Precedence: flags > env > defaults.
 * Every problem is collected and reported in one message at start.
 */
import { hostname } from 'node:os';
import { OptionReader, REDIS_PASSWORD_OPTION, allowHostProblems, isValidAddr, optionsUsage, splitAddr, type OptionDef } from '@reborn/coordinator';

export { OptionsError } from '@reborn/coordinator';

export interface ProxyOptions {
  addr: string;
  adminAddr: string;
  /** Host names the admin port's Host header may carry besides IP literals, localhost and its own host. */
  allowHosts: string[];
  etcd: string[];
  product: string;
  id: string;
  auth: string | null;
  /** Password of the redis servers' default user; used to create and re-enable the proxy's ACL user. */
  redisPassword: string | null;
  maxClients: number;
  /** Requests a client may have in flight before the proxy stops reading from it. */
  maxPipeline: number;
  maxBulkLength: number;
  maxMultibulkLength: number;
  /** A client whose unsent replies exceed this many bytes is disconnected. */
  maxClientOutputBytes: number;
  /** Shared connections per backend server (each client sticks to one of them). */
  backendConnections: number;
  /** A backend request older than this fails its connection and every request on it. */
  backendTimeoutMs: number;
  backendConnectTimeoutMs: number;
  logLevel: string;
  /** Acknowledge a write only once a replica has it (WAIT, batched per connection). */
  durable: boolean;
  durableTimeoutMs: number;
  /** How long a request waits for its slot's migration barrier before it fails. */
  holdTimeoutMs: number;
  /** How long a request naming a key under a big-key move waits for the move before -TRYAGAIN. */
  keyHoldTimeoutMs: number;
  /** How long a data command arriving before the proxy serves waits for it (0: refused at once). */
  startupHoldMs: number;
  /**
   * How long a barrier waits for an open WATCH on a moving slot to end (EXEC, DISCARD,
   * UNWATCH) before aborting it; keep it well below the runner's barrier timeout.
   */
  watchGraceMs: number;
  maxMultiBytes: number;
  /** WAIT's timeout is capped at this many ms (WAIT holds a backend connection other clients share). */
  maxWaitTimeoutMs: number;
  /** Blocking commands (each on its own backend connection) at once. */
  maxBlocked: number;
  /** SLOWLOG: requests slower than this many µs are recorded (negative: off). */
  slowlogSlowerThan: number;
  slowlogMaxLen: number;
  /** KEYS answers an error instead of a longer reply. */
  maxKeysReply: number;
  /** FLUSHDB / FLUSHALL are refused. */
  noFlush: boolean;
  /** Watch every master's new keys for strays (stray-watch.ts). */
  watchStrays: boolean;
  /** Worker processes sharing the client port (node:cluster); 1 = this process serves. */
  workers: number;
  /** Listen address of the Redis Cluster face (cluster-face.ts), or null: no cluster face. */
  clusterAddr: string | null;
  /** The address the cluster map gives for this proxy; null: the cluster listener's own. */
  clusterAnnounce: string | null;
  /** Client-side caching: keys the tracking table holds (0 = no limit); past it the oldest are invalidated. */
  trackingMaxKeys: number;
  /** Client-side caching: BCAST prefixes one client may register. */
  trackingMaxPrefixes: number;
}

const DEFS: Record<string, OptionDef> = {
  addr: { env: 'REBORN_PROXY_ADDR', kind: 'string', default: '127.0.0.1:19000', help: 'client listen address' },
  'admin-addr': { env: 'REBORN_PROXY_ADMIN_ADDR', kind: 'string', default: '127.0.0.1:19001', help: 'admin HTTP address (/metrics, /healthz)' },
  'allow-host': { env: 'REBORN_PROXY_ALLOW_HOST', kind: 'list', default: null, help: 'host names admin clients may use besides IP addresses and localhost', repeatable: true },
  etcd: { env: 'REBORN_ETCD', kind: 'list', default: 'http://127.0.0.1:2379', help: 'etcd endpoints, comma separated' },
  product: { env: 'REBORN_PRODUCT', kind: 'string', default: 'default', help: 'product (tenant) name' },
  id: { env: 'REBORN_PROXY_ID', kind: 'string', default: null, help: 'proxy id (default: <host>-<port>)' },
  auth: { env: 'REBORN_PROXY_AUTH', kind: 'string', default: null, help: 'password clients must AUTH with' },
  'redis-password': REDIS_PASSWORD_OPTION,
  'max-clients': { env: 'REBORN_PROXY_MAX_CLIENTS', kind: 'int', default: 10000, help: 'most client connections' },
  'max-pipeline': { env: 'REBORN_PROXY_MAX_PIPELINE', kind: 'int', default: 1024, help: 'requests in flight per client before reading pauses' },
  'max-bulk-length': { env: 'REBORN_PROXY_MAX_BULK_LENGTH', kind: 'int', default: 64 * 1024 * 1024, help: 'largest argument in bytes' },
  'max-multibulk-length': { env: 'REBORN_PROXY_MAX_MULTIBULK_LENGTH', kind: 'int', default: 1024 * 1024, help: 'most arguments per command' },
  'max-client-output': { env: 'REBORN_PROXY_MAX_CLIENT_OUTPUT', kind: 'int', default: 64 * 1024 * 1024, help: 'unsent reply bytes before a client is disconnected' },
  'max-multi-bytes': { env: 'REBORN_PROXY_MAX_MULTI_BYTES', kind: 'int', default: 64 * 1024 * 1024, help: 'bytes one MULTI may queue before the transaction is aborted' },
  'backend-connections': { env: 'REBORN_PROXY_BACKEND_CONNECTIONS', kind: 'int', default: 2, help: 'shared connections per backend server' },
  'backend-timeout': { env: 'REBORN_PROXY_BACKEND_TIMEOUT_MS', kind: 'int', default: 5000, help: 'ms a backend may take to answer' },
  'backend-connect-timeout': { env: 'REBORN_PROXY_BACKEND_CONNECT_TIMEOUT_MS', kind: 'int', default: 1000, help: 'ms to connect to a backend' },
  durable: { env: 'REBORN_PROXY_DURABLE', kind: 'bool', default: false, help: 'acknowledge writes only once a replica has them' },
  'durable-timeout': { env: 'REBORN_PROXY_DURABLE_TIMEOUT_MS', kind: 'int', default: 1000, help: 'ms a write may wait for a replica in --durable mode' },
  'hold-timeout': { env: 'REBORN_PROXY_HOLD_TIMEOUT_MS', kind: 'int', default: 15000, help: 'ms a request may wait for its slot\'s migration barrier' },
  'key-hold-timeout': { env: 'REBORN_PROXY_KEY_HOLD_TIMEOUT_MS', kind: 'int', default: 30000, help: 'ms a request naming a key that is being moved between groups (a big key copied in chunks) waits for the move before -TRYAGAIN' },
  'startup-hold': { env: 'REBORN_PROXY_STARTUP_HOLD_MS', kind: 'int', default: 5000, help: 'ms a data command arriving before the proxy serves (loading, registering) waits for it; 0 refuses at once' },
  'watch-grace': { env: 'REBORN_PROXY_WATCH_GRACE_MS', kind: 'int', default: 1000, help: 'ms a migration barrier waits for an open WATCH on its slots to end before aborting it' },
  'max-wait-timeout': { env: 'REBORN_PROXY_MAX_WAIT_TIMEOUT_MS', kind: 'int', default: null, help: 'cap on the timeout of a client\'s WAIT, in ms (WAIT 0 waits this long; default 1000, or half of --backend-timeout if less)' },
  'max-blocked': { env: 'REBORN_PROXY_MAX_BLOCKED', kind: 'int', default: 1000, help: 'blocking commands (BLPOP …) running at once' },
  'slowlog-slower-than': { env: 'REBORN_PROXY_SLOWLOG_SLOWER_THAN', kind: 'string', default: '10000', help: 'SLOWLOG on the proxy records requests slower than this many µs (-1: off)' },
  'slowlog-max-len': { env: 'REBORN_PROXY_SLOWLOG_MAX_LEN', kind: 'int', default: 128, help: 'entries the proxy SLOWLOG keeps' },
  'max-keys-reply': { env: 'REBORN_PROXY_MAX_KEYS_REPLY', kind: 'int', default: 100000, help: 'KEYS refuses to answer more keys than this (use SCAN)' },
  'no-flush': { env: 'REBORN_PROXY_NO_FLUSH', kind: 'bool', default: false, help: 'refuse FLUSHDB and FLUSHALL' },
  'watch-strays': { env: 'REBORN_PROXY_WATCH_STRAYS', kind: 'bool', default: false, help: 'notice keys written in a group that does not own their slot (turns on new-key events on the masters)' },
  'cluster-addr': { env: 'REBORN_PROXY_CLUSTER_ADDR', kind: 'string', default: null, help: 'also listen here as a Redis Cluster (CLUSTER SLOTS/SHARDS/NODES…) for cluster-mode clients' },
  'cluster-announce': { env: 'REBORN_PROXY_CLUSTER_ANNOUNCE', kind: 'string', default: null, help: 'host:port the cluster map gives for this proxy (NAT, containers; default: --cluster-addr with its bound port)' },
  'tracking-max-keys': { env: 'REBORN_PROXY_TRACKING_MAX_KEYS', kind: 'int', default: 1_000_000, help: 'keys the client-side caching table tracks (0: no limit); past it the oldest are invalidated' },
  'tracking-max-prefixes': { env: 'REBORN_PROXY_TRACKING_MAX_PREFIXES', kind: 'int', default: 1000, help: 'BCAST prefixes one client may register with CLIENT TRACKING' },
  workers: { env: 'REBORN_PROXY_WORKERS', kind: 'int', default: 1, help: 'worker processes sharing --addr (each is its own proxy in etcd: <id>-w<n>)' },
  'log-level': { env: 'REBORN_LOG_LEVEL', kind: 'string', default: 'info', help: 'pino log level' },
};

export function usage(): string {
  return optionsUsage('reborn-proxy', DEFS);
}

/** `--auth ""` would ask clients for an empty password; an empty env var means none, as unset. */
function authOption(r: OptionReader): string | null {
  const auth = r.str('auth');
  if (auth === '') r.problems.push('--auth must not be empty (leave it out for no password)');
  return auth === '' ? null : auth;
}

export function parseProxyOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): ProxyOptions {
  const r = new OptionReader(argv, env, DEFS);
  const { problems } = r;
  const addr = r.hostPort('addr');
  const adminAddr = r.hostPort('admin-addr');
  const { etcd, product, logLevel } = r.common();
  const allowHosts = r.list('allow-host');
  problems.push(...allowHostProblems(allowHosts));
  const id = r.str('id') ?? `${hostname()}-${addr.slice(addr.lastIndexOf(':') + 1)}`;
  const backendTimeoutMs = r.int('backend-timeout', 10);
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(id)) problems.push(`--id must match [A-Za-z0-9_.:-]{1,128}, got "${id}"`);

  const options: ProxyOptions = {
    addr,
    adminAddr,
    allowHosts,
    etcd,
    product,
    id,
    auth: authOption(r),
    redisPassword: r.redisPassword(),
    maxClients: r.int('max-clients', 1),
    maxPipeline: r.int('max-pipeline', 1),
    maxBulkLength: r.int('max-bulk-length', 1),
    maxMultibulkLength: r.int('max-multibulk-length', 1),
    maxClientOutputBytes: r.int('max-client-output', 1024),
    backendConnections: r.int('backend-connections', 1),
    backendTimeoutMs,
    backendConnectTimeoutMs: r.int('backend-connect-timeout', 10),
    logLevel,
    durable: r.bool('durable'),
    durableTimeoutMs: r.int('durable-timeout', 1),
    holdTimeoutMs: r.int('hold-timeout', 100),
    keyHoldTimeoutMs: r.int('key-hold-timeout', 1),
    startupHoldMs: r.int('startup-hold', 0),
    watchGraceMs: r.int('watch-grace', 0),
    maxMultiBytes: r.int('max-multi-bytes', 1),
    maxWaitTimeoutMs: maxWaitTimeout(r, backendTimeoutMs),
    workers: r.int('workers', 1, 256),
    maxKeysReply: r.int('max-keys-reply', 1),
    maxBlocked: r.int('max-blocked', 0),
    slowlogSlowerThan: ((): number => {
      const v = r.str('slowlog-slower-than') ?? '';
      if (!/^-?\d+$/.test(v)) problems.push(`--slowlog-slower-than must be an integer (µs, -1 = off), got "${v}"`);
      return Number(v);
    })(),
    slowlogMaxLen: r.int('slowlog-max-len', 0),
    noFlush: r.bool('no-flush'),
    watchStrays: r.bool('watch-strays'),
    ...clusterFaceOptions(r, addr),
    trackingMaxKeys: r.int('tracking-max-keys', 0),
    trackingMaxPrefixes: r.int('tracking-max-prefixes', 1, 1_000_000),
  };
  if (options.durable && options.durableTimeoutMs >= options.backendTimeoutMs) {
    // Otherwise the backend watchdog kills the connection before WAIT can answer.
    problems.push(`--durable-timeout (${options.durableTimeoutMs} ms) must be below --backend-timeout (${options.backendTimeoutMs} ms)`);
  }
  r.done();
  return options;
}

/** Hosts that accept connections but that no client can connect to. */
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

/**
 * --cluster-addr and --cluster-announce. The announced address goes to clients as is, so it
 * must be reachable: a port, and not a wildcard host (listening on 0.0.0.0 then needs an
 * explicit --cluster-announce).
 */
function clusterFaceOptions(r: OptionReader, addr: string): { clusterAddr: string | null; clusterAnnounce: string | null } {
  const given = r.str('cluster-addr');
  const clusterAnnounce = r.str('cluster-announce');
  if (given === null) {
    if (clusterAnnounce !== null) r.problems.push('--cluster-announce needs --cluster-addr (the cluster face is off without it)');
    return { clusterAddr: null, clusterAnnounce: null };
  }
  const clusterAddr = r.hostPort('cluster-addr');
  if (clusterAnnounce !== null && !isValidAddr(clusterAnnounce)) {
    r.problems.push(`--cluster-announce must be host:port with a port 1..65535 (IPv6 as [addr]:port), got "${clusterAnnounce}"`);
  }
  if (clusterAnnounce === null && WILDCARD_HOSTS.has(splitAddr(clusterAddr).host)) {
    r.problems.push(`--cluster-addr ${clusterAddr} listens on every interface, which clients cannot connect to: give --cluster-announce host:port`);
  }
  if (clusterAddr === addr && splitAddr(addr).port !== 0) r.problems.push(`--cluster-addr must differ from --addr (both are ${addr})`);
  return { clusterAddr, clusterAnnounce };
}

/**
 * --max-wait-timeout: a WAIT that outlasts the backend watchdog would take its shared
 * connection down with it, so the cap must stay below --backend-timeout. Not given, it is
 * 1000 ms or half of a shorter --backend-timeout; given, a value too high is a problem.
 */
function maxWaitTimeout(r: OptionReader, backendTimeoutMs: number): number {
  if (r.str('max-wait-timeout') === null) return Math.max(1, Math.min(1000, Math.floor(backendTimeoutMs / 2)));
  const cap = r.int('max-wait-timeout', 1);
  if (cap >= backendTimeoutMs) r.problems.push(`--max-wait-timeout (${cap} ms) must be below --backend-timeout (${backendTimeoutMs} ms)`);
  return cap;
}
