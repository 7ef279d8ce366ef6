/**
 * The supervisor's records of its apps: what a start request became (the spec), what the
 * supervisor knows about the process (the record), what GET /api/apps shows (the view), and
 * the state file they live in across agent restarts (<data-dir>/agent-state.json).
 *
 * Invariant: the state file is replaced whole (a temp file renamed over it: never torn) and
 * written 0600 (it holds the proxies' client passwords); a record read back that does not
 * have the expected shape is dropped, and nothing transient (a planned restart time, a hold)
 * survives the read.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { HoldReason } from './restart-plan.js';

export type AppKind = 'redis' | 'proxy';
export type AppState = 'running' | 'restarting' | 'stopped';

export interface RedisSpec {
  kind: 'redis';
  host: string;
  port: number;
  args: string[];
  dataDir: string;
}

export interface ProxySpec {
  kind: 'proxy';
  addr: string;
  adminAddr: string;
  proxyId: string | null;
  /** The password clients must AUTH with (passed in the proxy's environment, not its argv). */
  auth?: string | null;
  args: string[];
}

export type AppSpec = RedisSpec | ProxySpec;

export interface AppRecord {
  id: string;
  spec: AppSpec;
  pid: number | null;
  state: AppState;
  restarts: number;
  startedAt: string | null;
  logFile: string;
  /** Crashes since the process last stayed up for STABLE_MS; drives the backoff. */
  crashes: number;
  nextStartAt: number | null;
  lastExit: { at: string; reason: string } | null;
  /** Why a due restart of a redis-server is on hold (restart-plan.ts), or null. */
  waiting?: { reason: HoldReason; why: string } | null;
  /** The master a redis-server was last started as a replica of, or null. */
  replicaOf?: string | null;
}


/** What GET /api/apps shows for one app. */
export interface AppView {
  id: string;
  kind: AppKind;
  pid: number | null;
  port: number;
  addr: string;
  adminAddr?: string;
  proxyId?: string | null;
  /** Whether clients must AUTH (the password itself is never shown). */
  auth?: boolean;
  state: AppState;
  restarts: number;
  startedAt: string | null;
  logFile: string;
  dataDir?: string;
  args: string[];
  nextRestartAt?: string;
  lastExit?: { at: string; reason: string };
  /** A redis-server whose restart is on hold: why (e.g. waiting for failover). */
  waiting?: string;
  /** A redis-server last started as a replica of this master. */
  replicaOf?: string;
  /** Set by a start that returned before the app was ready. */
  note?: string;
}

/** Writes every record (nothing transient) to `path`, atomically; a failure is logged. */
export function writeStateFile(path: string, records: readonly AppRecord[], log: Logger): void {
  const apps = records.map((r) => ({ ...r, nextStartAt: null, waiting: null }));
  const tmp = `${path}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify({ version: 1, apps }, null, 2), { mode: 0o600 });
    renameSync(tmp, path);
  } catch (err) {
    log.error({ err: (err as Error).message, path }, 'cannot write the state file');
  }
}

/** The records in `path` (none when it is missing or unreadable, which is logged). */
export function readStateFile(path: string, log: Logger): AppRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  try {
    const v = JSON.parse(text) as { apps?: unknown };
    if (!Array.isArray(v.apps)) throw new Error('no apps array');
    return v.apps.filter(isAppRecord).map((r) => ({ ...r, nextStartAt: null, crashes: r.crashes ?? 0, waiting: null }));
  } catch (err) {
    log.error({ err: (err as Error).message, path }, 'state file unreadable; starting with no apps');
    return [];
  }
}

function isAppRecord(v: unknown): v is AppRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Partial<AppRecord>;
  return typeof r.id === 'string' && typeof r.spec === 'object' && r.spec !== null && typeof r.logFile === 'string' &&
    (r.spec.kind === 'redis' || r.spec.kind === 'proxy') && (r.state === 'running' || r.state === 'restarting' || r.state === 'stopped');
}
