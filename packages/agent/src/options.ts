/**
 * reborn-agent options: one typed schema with defaults. Precedence: flags > env > defaults.
 * Every problem is collected and reported in one message at start.
 *
 * The API can start and stop processes, so it is never served beyond loopback without a
 * bearer token (--token / REBORN_AGENT_TOKEN): such a start is refused with the reason.
 */
import { hostname, homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { OptionReader, REDIS_PASSWORD_OPTION, allowHostProblems, openBindRefusal, optionsUsage, type OptionDef } from '@reborn/coordinator';
import { redisPasswordRefusal } from './app-options.js';

export { OptionsError } from '@reborn/coordinator';

export interface AgentOptions {
  httpAddr: string;
  /** Bearer token every API route but /healthz needs; null: none (loopback only). */
  token: string | null;
  /** Host names the Host header may carry besides IP literals, localhost and --http-addr's host. */
  allowHosts: string[];
  etcd: string[];
  product: string;
  id: string;
  /** Campaign for HA leadership and, as leader, fail dead masters over. */
  ha: boolean;
  /** Where the state file and the supervised processes' data dirs and logs live. */
  dataDir: string;
  /** A master failing every check for this long (and at least twice in a row) is failed over. */
  downAfterMs: number;
  /**
   * A master that stalls (its port accepts connections but checks get no answer) is failed
   * over only after this long; also every master of a group a migration involves, unless its
   * port refuses connections.
   */
  stallDownAfterMs: number;
  /** The stall window of a master a migration involves (ha-stall.ts). */
  migrationStallDownAfterMs: number;
  /** The window of a master whose port refuses connections (ha-stall.ts); min'd with downAfterMs. */
  deadDownAfterMs: number;
  /** An in-sync replica whose acknowledgements lag more than this leaves its group's in-sync set. */
  inSyncMaxLagMs: number;
  /** How often the leader checks every server. */
  checkIntervalMs: number;
  /** Timeout of one health check (INFO replication). */
  checkTimeoutMs: number;
  /** Timeout of an admin command (REPLICAOF …) during failover. */
  commandTimeoutMs: number;
  /** TTL of the agent's etcd leases (registration and election), seconds. */
  leaseTtl: number;
  /** Upper bound of one etcd call. */
  etcdTimeoutMs: number;
  redisBin: string;
  proxyBin: string;
  /** The servers' default-user password: given to every redis started, used for every admin call. */
  redisPassword: string | null;
  /** Ports start_redis picks from when the request names none; null: a port is required. */
  redisPorts: PortRange | null;
  /** As HA leader: a group short of replicas for this long gets a new one, and a replica down this long is retired. */
  healAfterMs: number;
  logLevel: string;
}

/** An inclusive range of TCP ports. */
export interface PortRange {
  first: number;
  last: number;
}

/** `7000-7999` as a range, or why not. */
export function parsePortRange(text: string): PortRange | string {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  if (!m) return `want first-last (e.g. 7000-7999), got ${JSON.stringify(text)}`;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (first < 1 || last > 65535 || first > last) return `want 1 ≤ first ≤ last ≤ 65535, got ${JSON.stringify(text)}`;
  return { first, last };
}

/** The repo root, from this file's place: packages/agent/{src,dist}/options.* */
const REPO_ROOT = resolve(new URL('../../../', import.meta.url).pathname);
export const DEFAULT_PROXY_BIN = join(REPO_ROOT, 'packages/proxy/bin/reborn-proxy.js');

const DEFS: Record<string, OptionDef> = {
  'http-addr': { env: 'REBORN_AGENT_HTTP_ADDR', kind: 'string', default: '127.0.0.1:18090', help: 'HTTP API address' },
  token: {
    env: 'REBORN_AGENT_TOKEN',
    kind: 'string',
    default: null,
    help: 'bearer token the API requires (all agents of a product share it); required unless --http-addr is loopback',
  },
  'allow-host': { env: 'REBORN_AGENT_ALLOW_HOST', kind: 'list', default: null, help: 'host names clients may use besides IP addresses and localhost', repeatable: true },
  etcd: { env: 'REBORN_ETCD', kind: 'list', default: 'http://127.0.0.1:2379', help: 'etcd endpoints, comma separated' },
  product: { env: 'REBORN_PRODUCT', kind: 'string', default: 'default', help: 'product (tenant) name' },
  id: { env: 'REBORN_AGENT_ID', kind: 'string', default: null, help: 'agent id (default: <host>-<http port>)' },
  ha: { env: 'REBORN_AGENT_HA', kind: 'bool', default: false, help: 'campaign for HA leadership and fail over dead masters' },
  'data-dir': { env: 'REBORN_AGENT_DATA_DIR', kind: 'string', default: null, help: 'state, data dirs and logs (default ~/.reborn-agent/<id>)' },
  'down-after-ms': { env: 'REBORN_AGENT_DOWN_AFTER_MS', kind: 'int', default: 3000, help: 'ms a master must fail its checks before failover' },
  'migration-stall-down-after-ms': {
    env: 'REBORN_AGENT_MIGRATION_STALL_DOWN_AFTER_MS',
    kind: 'int',
    default: 60000,
    help: 'ms a master a slot migration involves may stall (a MIGRATE of a big key blocks it) before failover; not below --stall-down-after-ms',
  },
  'dead-down-after-ms': {
    env: 'REBORN_AGENT_DEAD_DOWN_AFTER_MS',
    kind: 'int',
    default: 1500,
    help: 'ms a master whose port refuses connections (the process is gone) must fail its checks before failover; never above --down-after-ms',
  },
  'stall-down-after-ms': {
    env: 'REBORN_AGENT_STALL_DOWN_AFTER_MS',
    kind: 'int',
    default: 15000,
    help: 'ms a stalled master (alive, port open, not answering) or one in a migration must fail its checks before failover',
  },
  'in-sync-max-lag-ms': {
    env: 'REBORN_AGENT_IN_SYNC_MAX_LAG_MS',
    kind: 'int',
    default: 2000,
    help: 'ms since its last acknowledgement after which a replica leaves the in-sync set (≥ 2000: redis reports whole seconds)',
  },
  'check-interval-ms': { env: 'REBORN_AGENT_CHECK_INTERVAL_MS', kind: 'int', default: 1000, help: 'ms between health checks of every server' },
  'check-timeout-ms': { env: 'REBORN_AGENT_CHECK_TIMEOUT_MS', kind: 'int', default: 500, help: 'ms one health check may take' },
  'command-timeout-ms': { env: 'REBORN_AGENT_COMMAND_TIMEOUT_MS', kind: 'int', default: 2000, help: 'ms an admin command (REPLICAOF) may take' },
  'lease-ttl': { env: 'REBORN_AGENT_LEASE_TTL', kind: 'int', default: 5, help: 'seconds of the registration and election leases' },
  'etcd-timeout-ms': { env: 'REBORN_AGENT_ETCD_TIMEOUT_MS', kind: 'int', default: 2000, help: 'ms one etcd call may take' },
  'redis-bin': { env: 'REBORN_AGENT_REDIS_BIN', kind: 'string', default: 'redis-server', help: 'redis-server binary for start_redis' },
  'proxy-bin': { env: 'REBORN_AGENT_PROXY_BIN', kind: 'string', default: DEFAULT_PROXY_BIN, help: 'reborn-proxy script for start_proxy' },
  'redis-password': REDIS_PASSWORD_OPTION,
  'redis-ports': {
    env: 'REBORN_AGENT_REDIS_PORTS',
    kind: 'string',
    default: null,
    help: 'ports (first-last) start_redis picks from when asked without a port; also marks this agent as one the replica healer may ask',
  },
  'heal-after-ms': {
    env: 'REBORN_AGENT_HEAL_AFTER_MS',
    kind: 'int',
    default: 30000,
    help: 'as HA leader: ms a group must be short of its wanted replicas before one is created, and a replica down before it is retired',
  },
  'log-level': { env: 'REBORN_LOG_LEVEL', kind: 'string', default: 'info', help: 'pino log level' },
};

export function usage(): string {
  return optionsUsage('reborn-agent', DEFS);
}

/**
 * Why `dir` cannot be a data directory, or null. Kernel pseudo file systems are refused: on
 * Node 20, mkdirSync(…, { recursive: true }) under /proc never returns, and would wedge the
 * agent (and its HTTP API) for good.
 */
export function dataDirRefusal(dir: string): string | null {
  const p = resolve(dir);
  if (/^\/(proc|sys|dev)(\/|$)/.test(p)) return `must not be under /proc, /sys or /dev, got ${JSON.stringify(dir)}`;
  return null;
}

export function parseAgentOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentOptions {
  const r = new OptionReader(argv, env, DEFS);
  const { problems } = r;
  const httpAddr = r.hostPort('http-addr');
  const { etcd, product, logLevel } = r.common();
  const token = r.str('token');
  if (token !== null && token.length < 8) problems.push('--token must be at least 8 characters');
  const allowHosts = r.list('allow-host');
  problems.push(...allowHostProblems(allowHosts));
  const id = r.str('id') ?? `${hostname()}-${httpAddr.slice(httpAddr.lastIndexOf(':') + 1)}`;
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(id) || ['election', 'events', 'servers', 'event-seq'].includes(id)) {
    problems.push(`--id must match [A-Za-z0-9_.:-]{1,128} and not be election/events/servers/event-seq, got "${id}"`);
  }
  const dataDirRaw = r.str('data-dir') ?? join(homedir(), '.reborn-agent', id);
  const dataDir = isAbsolute(dataDirRaw) ? dataDirRaw : resolve(dataDirRaw);
  const whyNot = dataDirRefusal(dataDir);
  if (whyNot !== null) problems.push(`--data-dir ${whyNot}`);
  const redisPassword = r.redisPassword();
  const badPassword = redisPassword === null ? null : redisPasswordRefusal(redisPassword);
  if (badPassword !== null) problems.push(`--redis-password (REBORN_REDIS_PASSWORD) ${badPassword}`);

  const portsText = r.str('redis-ports');
  const ports = portsText === null ? null : parsePortRange(portsText);
  if (typeof ports === 'string') problems.push(`--redis-ports ${ports}`);

  const options: AgentOptions = {
    httpAddr,
    token,
    allowHosts,
    etcd,
    product,
    id,
    ha: r.bool('ha'),
    dataDir,
    downAfterMs: r.int('down-after-ms', 100),
    stallDownAfterMs: r.int('stall-down-after-ms', 100),
    deadDownAfterMs: r.int('dead-down-after-ms', 100),
    migrationStallDownAfterMs: r.int('migration-stall-down-after-ms', 100),
    // Healthy replicas acknowledge every second and redis rounds to whole seconds, so they
    // report a lag of 0 or 1: a bound under 2 s would remove them (ha-insync.ts).
    inSyncMaxLagMs: r.int('in-sync-max-lag-ms', 2000),
    checkIntervalMs: r.int('check-interval-ms', 50),
    checkTimeoutMs: r.int('check-timeout-ms', 10),
    commandTimeoutMs: r.int('command-timeout-ms', 10),
    leaseTtl: r.int('lease-ttl', 2, 3600),
    etcdTimeoutMs: r.int('etcd-timeout-ms', 100),
    redisBin: r.str('redis-bin')!,
    proxyBin: r.str('proxy-bin')!,
    redisPassword,
    redisPorts: typeof ports === 'string' ? null : ports,
    healAfterMs: r.int('heal-after-ms', 100),
    logLevel,
  };
  // Cross-field checks only when every field parsed: a bad value would mislead them.
  const openBind = problems.length === 0 ? openBindRefusal(httpAddr, token, { flag: '--token', env: 'REBORN_AGENT_TOKEN' }) : null;
  if (openBind !== null) problems.push(openBind);
  if (problems.length === 0 && options.checkTimeoutMs >= options.checkIntervalMs * 2) {
    problems.push(`--check-timeout-ms (${options.checkTimeoutMs}) must be below twice --check-interval-ms (${options.checkIntervalMs})`);
  }
  if (problems.length === 0 && options.stallDownAfterMs < options.downAfterMs) {
    problems.push(`--stall-down-after-ms (${options.stallDownAfterMs}) must not be below --down-after-ms (${options.downAfterMs}): a stall never shortens the window`);
  }
  if (problems.length === 0 && options.migrationStallDownAfterMs < options.stallDownAfterMs) {
    problems.push(
      `--migration-stall-down-after-ms (${options.migrationStallDownAfterMs}) must not be below --stall-down-after-ms (${options.stallDownAfterMs})`,
    );
  }
  // The leader must learn it lost its lease before the lease can expire on etcd: one etcd
  // call has to fit well inside the TTL.
  if (problems.length === 0 && options.etcdTimeoutMs * 2 >= options.leaseTtl * 1000) {
    problems.push(`--etcd-timeout-ms (${options.etcdTimeoutMs}) must be below half of --lease-ttl (${options.leaseTtl} s)`);
  }
  r.done();
  return options;
}
