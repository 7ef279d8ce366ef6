/**
 * reborn-agent options: one typed schema with defaults. Precedence: flags > env > defaults.
 * Every problem is collected and reported in one message at start.
 */
import { hostname, homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

export interface AgentOptions {
  httpAddr: string;
  etcd: string[];
  product: string;
  id: string;
  /** Campaign for HA leadership and, as leader, fail dead masters over. */
  ha: boolean;
  /** Where the state file and the supervised processes' data dirs and logs live. */
  dataDir: string;
  /** A master failing every check for this long (and at least twice in a row) is failed over. */
  downAfterMs: number;
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
  logLevel: string;
}

interface OptionDef {
  env: string;
  kind: 'string' | 'int' | 'bool' | 'list';
  default: string | number | boolean | null;
  help: string;
}

/** The repo root, from this file's place: packages/agent/{src,dist}/options.* */
const REPO_ROOT = resolve(new URL('../../../', import.meta.url).pathname);
export const DEFAULT_PROXY_BIN = join(REPO_ROOT, 'packages/proxy/bin/reborn-proxy.js');

const DEFS: Record<string, OptionDef> = {
  'http-addr': { env: 'REBORN_AGENT_HTTP_ADDR', kind: 'string', default: '127.0.0.1:18090', help: 'HTTP API address' },
  etcd: { env: 'REBORN_ETCD', kind: 'list', default: 'http://127.0.0.1:2379', help: 'etcd endpoints, comma separated' },
  product: { env: 'REBORN_PRODUCT', kind: 'string', default: 'default', help: 'product (tenant) name' },
  id: { env: 'REBORN_AGENT_ID', kind: 'string', default: null, help: 'agent id (default: <host>-<http port>)' },
  ha: { env: 'REBORN_AGENT_HA', kind: 'bool', default: false, help: 'campaign for HA leadership and fail over dead masters' },
  'data-dir': { env: 'REBORN_AGENT_DATA_DIR', kind: 'string', default: null, help: 'state, data dirs and logs (default ~/.reborn-agent/<id>)' },
  'down-after-ms': { env: 'REBORN_AGENT_DOWN_AFTER_MS', kind: 'int', default: 3000, help: 'ms a master must fail its checks before failover' },
  'check-interval-ms': { env: 'REBORN_AGENT_CHECK_INTERVAL_MS', kind: 'int', default: 1000, help: 'ms between health checks of every server' },
  'check-timeout-ms': { env: 'REBORN_AGENT_CHECK_TIMEOUT_MS', kind: 'int', default: 500, help: 'ms one health check may take' },
  'command-timeout-ms': { env: 'REBORN_AGENT_COMMAND_TIMEOUT_MS', kind: 'int', default: 2000, help: 'ms an admin command (REPLICAOF) may take' },
  'lease-ttl': { env: 'REBORN_AGENT_LEASE_TTL', kind: 'int', default: 5, help: 'seconds of the registration and election leases' },
  'etcd-timeout-ms': { env: 'REBORN_AGENT_ETCD_TIMEOUT_MS', kind: 'int', default: 2000, help: 'ms one etcd call may take' },
  'redis-bin': { env: 'REBORN_AGENT_REDIS_BIN', kind: 'string', default: 'redis-server', help: 'redis-server binary for start_redis' },
  'proxy-bin': { env: 'REBORN_AGENT_PROXY_BIN', kind: 'string', default: DEFAULT_PROXY_BIN, help: 'reborn-proxy script for start_proxy' },
  'log-level': { env: 'REBORN_LOG_LEVEL', kind: 'string', default: 'info', help: 'pino log level' },
};

export class OptionsError extends Error {
  readonly code = 'EOPTIONS';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'OptionsError';
  }
}

export function usage(): string {
  const lines = ['usage: reborn-agent [options]', ''];
  for (const [name, def] of Object.entries(DEFS)) {
    const dflt = def.default === null || def.default === false ? '' : ` (default ${String(def.default)})`;
    lines.push(`  --${name.padEnd(22)} ${def.help}${dflt} [env ${def.env}]`);
  }
  return lines.join('\n');
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

function isHostPort(s: string): boolean {
  const i = s.lastIndexOf(':');
  if (i <= 0) return false;
  const p = s.slice(i + 1);
  const port = Number(p);
  return /^\d+$/.test(p) && port >= 0 && port <= 65535;
}

export function parseAgentOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentOptions {
  const spec: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const [name, def] of Object.entries(DEFS)) spec[name] = { type: def.kind === 'bool' ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new OptionsError([(err as Error).message]);
  }
  const problems: string[] = [];
  const raw = (name: string): string | boolean | null => {
    const def = DEFS[name]!;
    const flag = values[name];
    if (flag !== undefined) return flag;
    const fromEnv = env[def.env];
    if (fromEnv !== undefined && fromEnv !== '') return def.kind === 'bool' ? /^(1|true|yes|on)$/i.test(fromEnv) : fromEnv;
    return def.default === null ? null : typeof def.default === 'number' ? String(def.default) : def.default;
  };
  const str = (name: string): string | null => {
    const v = raw(name);
    return v === null ? null : String(v);
  };
  const int = (name: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = str(name) ?? '';
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `${min}..${max}`;
      problems.push(`--${name} must be an integer ${range}, got "${v}"`);
      return min;
    }
    return n;
  };

  const httpAddr = str('http-addr')!;
  if (!isHostPort(httpAddr)) problems.push(`--http-addr must be host:port, got "${httpAddr}"`);
  const etcd = str('etcd')!
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (etcd.length === 0) problems.push('--etcd needs at least one endpoint');
  for (const e of etcd) if (!/^https?:\/\/[^/]+$/.test(e)) problems.push(`--etcd endpoint must look like http://host:port, got "${e}"`);
  const product = str('product')!;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(product)) problems.push(`--product must match [A-Za-z0-9_-]{1,64}, got "${product}"`);
  const id = str('id') ?? `${hostname()}-${httpAddr.slice(httpAddr.lastIndexOf(':') + 1)}`;
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(id) || ['election', 'events', 'servers', 'event-seq'].includes(id)) {
    problems.push(`--id must match [A-Za-z0-9_.:-]{1,128} and not be election/events/servers/event-seq, got "${id}"`);
  }
  const dataDirRaw = str('data-dir') ?? join(homedir(), '.reborn-agent', id);
  const dataDir = isAbsolute(dataDirRaw) ? dataDirRaw : resolve(dataDirRaw);
  const logLevel = str('log-level')!;
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    problems.push(`--log-level must be one of fatal,error,warn,info,debug,trace,silent, got "${logLevel}"`);
  }

  const options: AgentOptions = {
    httpAddr,
    etcd,
    product,
    id,
    ha: raw('ha') === true,
    dataDir,
    downAfterMs: int('down-after-ms', 100),
    checkIntervalMs: int('check-interval-ms', 50),
    checkTimeoutMs: int('check-timeout-ms', 10),
    commandTimeoutMs: int('command-timeout-ms', 10),
    leaseTtl: int('lease-ttl', 2, 3600),
    etcdTimeoutMs: int('etcd-timeout-ms', 100),
    redisBin: str('redis-bin')!,
    proxyBin: str('proxy-bin')!,
    logLevel,
  };
  // Cross-field checks only when every field parsed: a bad value would mislead them.
  if (problems.length === 0 && options.checkTimeoutMs >= options.checkIntervalMs * 2) {
    problems.push(`--check-timeout-ms (${options.checkTimeoutMs}) must be below twice --check-interval-ms (${options.checkIntervalMs})`);
  }
  // The leader must learn it lost its lease before the lease can expire on etcd: one etcd
  // call has to fit well inside the TTL.
  if (problems.length === 0 && options.etcdTimeoutMs * 2 >= options.leaseTtl * 1000) {
    problems.push(`--etcd-timeout-ms (${options.etcdTimeoutMs}) must be below half of --lease-ttl (${options.leaseTtl} s)`);
  }
  if (problems.length > 0) throw new OptionsError(problems);
  return options;
}
