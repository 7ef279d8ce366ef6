/**
 * reborn-proxy options: one typed schema with defaults. Precedence: flags > env > defaults.
 * Every problem is collected and reported in one message at start.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';

export interface ProxyOptions {
  addr: string;
  adminAddr: string;
  etcd: string[];
  product: string;
  id: string;
  auth: string | null;
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
  /** Blocking commands (each on its own backend connection) at once. */
  maxBlocked: number;
  /** SLOWLOG: requests slower than this many µs are recorded (negative: off). */
  slowlogSlowerThan: number;
  slowlogMaxLen: number;
  /** KEYS answers an error instead of a longer reply. */
  maxKeysReply: number;
  /** FLUSHDB / FLUSHALL are refused. */
  noFlush: boolean;
  /** Worker processes sharing the client port (node:cluster); 1 = this process serves. */
  workers: number;
}

interface OptionDef {
  env: string;
  kind: 'string' | 'int' | 'bool' | 'list';
  default: string | number | boolean | null;
  help: string;
}

const DEFS: Record<string, OptionDef> = {
  addr: { env: 'REBORN_PROXY_ADDR', kind: 'string', default: '127.0.0.1:19000', help: 'client listen address' },
  'admin-addr': { env: 'REBORN_PROXY_ADMIN_ADDR', kind: 'string', default: '127.0.0.1:19001', help: 'admin HTTP address (/metrics, /healthz)' },
  etcd: { env: 'REBORN_ETCD', kind: 'list', default: 'http://127.0.0.1:2379', help: 'etcd endpoints, comma separated' },
  product: { env: 'REBORN_PRODUCT', kind: 'string', default: 'default', help: 'product (tenant) name' },
  id: { env: 'REBORN_PROXY_ID', kind: 'string', default: null, help: 'proxy id (default: <host>-<port>)' },
  auth: { env: 'REBORN_PROXY_AUTH', kind: 'string', default: null, help: 'password clients must AUTH with' },
  'max-clients': { env: 'REBORN_PROXY_MAX_CLIENTS', kind: 'int', default: 10000, help: 'most client connections' },
  'max-pipeline': { env: 'REBORN_PROXY_MAX_PIPELINE', kind: 'int', default: 1024, help: 'requests in flight per client before reading pauses' },
  'max-bulk-length': { env: 'REBORN_PROXY_MAX_BULK_LENGTH', kind: 'int', default: 64 * 1024 * 1024, help: 'largest argument in bytes' },
  'max-multibulk-length': { env: 'REBORN_PROXY_MAX_MULTIBULK_LENGTH', kind: 'int', default: 1024 * 1024, help: 'most arguments per command' },
  'max-client-output': { env: 'REBORN_PROXY_MAX_CLIENT_OUTPUT', kind: 'int', default: 64 * 1024 * 1024, help: 'unsent reply bytes before a client is disconnected' },
  'backend-connections': { env: 'REBORN_PROXY_BACKEND_CONNECTIONS', kind: 'int', default: 2, help: 'shared connections per backend server' },
  'backend-timeout': { env: 'REBORN_PROXY_BACKEND_TIMEOUT_MS', kind: 'int', default: 5000, help: 'ms a backend may take to answer' },
  'backend-connect-timeout': { env: 'REBORN_PROXY_BACKEND_CONNECT_TIMEOUT_MS', kind: 'int', default: 1000, help: 'ms to connect to a backend' },
  durable: { env: 'REBORN_PROXY_DURABLE', kind: 'bool', default: false, help: 'acknowledge writes only once a replica has them' },
  'durable-timeout': { env: 'REBORN_PROXY_DURABLE_TIMEOUT_MS', kind: 'int', default: 1000, help: 'ms a write may wait for a replica in --durable mode' },
  'hold-timeout': { env: 'REBORN_PROXY_HOLD_TIMEOUT_MS', kind: 'int', default: 15000, help: 'ms a request may wait for its slot\'s migration barrier' },
  'max-blocked': { env: 'REBORN_PROXY_MAX_BLOCKED', kind: 'int', default: 1000, help: 'blocking commands (BLPOP …) running at once' },
  'slowlog-slower-than': { env: 'REBORN_PROXY_SLOWLOG_SLOWER_THAN', kind: 'string', default: '10000', help: 'SLOWLOG on the proxy records requests slower than this many µs (-1: off)' },
  'slowlog-max-len': { env: 'REBORN_PROXY_SLOWLOG_MAX_LEN', kind: 'int', default: 128, help: 'entries the proxy SLOWLOG keeps' },
  'max-keys-reply': { env: 'REBORN_PROXY_MAX_KEYS_REPLY', kind: 'int', default: 100000, help: 'KEYS refuses to answer more keys than this (use SCAN)' },
  'no-flush': { env: 'REBORN_PROXY_NO_FLUSH', kind: 'bool', default: false, help: 'refuse FLUSHDB and FLUSHALL' },
  workers: { env: 'REBORN_PROXY_WORKERS', kind: 'int', default: 1, help: 'worker processes sharing --addr (each is its own proxy in etcd: <id>-w<n>)' },
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
  const lines = ['usage: reborn-proxy [options]', ''];
  for (const [name, def] of Object.entries(DEFS)) {
    const dflt = def.default === null ? '' : ` (default ${String(def.default)})`;
    lines.push(`  --${name.padEnd(24)} ${def.help}${dflt} [env ${def.env}]`);
  }
  return lines.join('\n');
}

function isHostPort(s: string): boolean {
  const i = s.lastIndexOf(':');
  if (i <= 0) return false;
  const port = Number(s.slice(i + 1));
  return Number.isInteger(port) && port >= 0 && port <= 65535;
}

export function parseProxyOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): ProxyOptions {
  const parseOptions: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const [name, def] of Object.entries(DEFS)) parseOptions[name] = { type: def.kind === 'bool' ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: parseOptions, strict: true, allowPositionals: false }));
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
  const int = (name: string, min: number): number => {
    const v = str(name) ?? '';
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min) {
      problems.push(`--${name} must be an integer ≥ ${min}, got "${v}"`);
      return min;
    }
    return n;
  };

  const addr = str('addr')!;
  if (!isHostPort(addr)) problems.push(`--addr must be host:port, got "${addr}"`);
  const adminAddr = str('admin-addr')!;
  if (!isHostPort(adminAddr)) problems.push(`--admin-addr must be host:port, got "${adminAddr}"`);
  const etcd = str('etcd')!.split(',').map((s) => s.trim()).filter(Boolean);
  if (etcd.length === 0) problems.push('--etcd needs at least one endpoint');
  for (const e of etcd) if (!/^https?:\/\/[^/]+$/.test(e)) problems.push(`--etcd endpoint must look like http://host:port, got "${e}"`);
  const product = str('product')!;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(product)) problems.push(`--product must match [A-Za-z0-9_-]{1,64}, got "${product}"`);
  const id = str('id') ?? `${hostname()}-${addr.slice(addr.lastIndexOf(':') + 1)}`;
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(id)) problems.push(`--id must match [A-Za-z0-9_.:-]{1,128}, got "${id}"`);
  const logLevel = str('log-level')!;
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    problems.push(`--log-level must be one of fatal,error,warn,info,debug,trace,silent, got "${logLevel}"`);
  }

  const options: ProxyOptions = {
    addr,
    adminAddr,
    etcd,
    product,
    id,
    auth: str('auth'),
    maxClients: int('max-clients', 1),
    maxPipeline: int('max-pipeline', 1),
    maxBulkLength: int('max-bulk-length', 1),
    maxMultibulkLength: int('max-multibulk-length', 1),
    maxClientOutputBytes: int('max-client-output', 1024),
    backendConnections: int('backend-connections', 1),
    backendTimeoutMs: int('backend-timeout', 10),
    backendConnectTimeoutMs: int('backend-connect-timeout', 10),
    logLevel,
    durable: raw('durable') === true,
    durableTimeoutMs: int('durable-timeout', 1),
    holdTimeoutMs: int('hold-timeout', 100),
    workers: int('workers', 1),
    maxKeysReply: int('max-keys-reply', 1),
    maxBlocked: int('max-blocked', 0),
    slowlogSlowerThan: ((): number => {
      const v = str('slowlog-slower-than') ?? '';
      if (!/^-?\d+$/.test(v)) problems.push(`--slowlog-slower-than must be an integer (µs, -1 = off), got "${v}"`);
      return Number(v);
    })(),
    slowlogMaxLen: int('slowlog-max-len', 0),
    noFlush: raw('no-flush') === true,
  };
  if (options.durable && options.durableTimeoutMs >= options.backendTimeoutMs) {
    // Otherwise the backend watchdog kills the connection before WAIT can answer.
    problems.push(`--durable-timeout (${options.durableTimeoutMs} ms) must be below --backend-timeout (${options.backendTimeoutMs} ms)`);
  }
  if (problems.length > 0) throw new OptionsError(problems);
  return options;
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}
