/**
 * Live numbers for the dashboard, read on demand (when the API is asked; there is no loop):
 *
 *   proxies  GET http://<adminAddr>/api/slots and /api/proxy of every registered proxy. Both
 *            hold cumulative counters (commands since start, keyed requests per slot); a rate
 *            is the difference of two samples of the same proxy process divided by the time
 *            between them. The samples are kept here, in memory, per proxy id.
 *   servers  INFO of every server of every group: role as the server sees it, replication
 *            offset and lag, memory, keys, clients, ops/s; plus the HA leader's health record.
 *
 * Every remote call is bounded by a short timeout and fails alone: a proxy or server that does
 * not answer is reported as such (`ok: false, error`), the rest of the answer stands.
 *
 * Rates and the sampling window. Several readers may ask at any pace (two dashboards, a
 * test); a rate over 10 ms would be noise. So each proxy keeps a short history and a rate is
 * taken from the newest sample back to the newest one at least MIN_WINDOW_MS older (or the
 * oldest kept, when none is that old yet). A proxy seen for the first time has no rate
 * (`qps: null`) until its second sample. A counter that went backwards, or a new pid, means
 * the proxy restarted: its history starts over.
 *
 * A rate is never taken over more than MAX_WINDOW_MS: the first read after an hour of nobody
 * asking, or after a proxy did not answer for a while, would otherwise give an hour's average
 * as "live" QPS (and the total would sum it with the others' live rates). Samples older than
 * that are dropped; with none left, the proxy has no rate until its next sample.
 *
 * Concurrent readers share one round of remote calls (singleFlight): the proxies' admin
 * endpoints, INFO of every server and the events are each read once for all of them.
 */
import { AgentStore, SLOT_COUNT, type AgentEvent, type ServerHealth, type Store } from '@reborn/coordinator';
import { info } from '@reborn/coordinator/admin';

/** The shortest interval a rate is computed over, when the history has one that long. */
export const MIN_WINDOW_MS = 1000;
/** The longest interval a rate is computed over: older samples are not a baseline. */
export const MAX_WINDOW_MS = 10_000;
/** Samples kept per proxy, at most (a safety net: MIN_STORE_GAP_MS keeps far fewer). */
const MAX_SAMPLES = 64;
/**
 * A sample closer than this to the last stored one is used for the rate but not stored:
 * readers asking every few ms would otherwise fill MAX_SAMPLES within a few hundred ms, the
 * trim would drop the baseline, and the window would be shorter than MIN_WINDOW_MS. With this
 * gap at most MIN_WINDOW_MS / MIN_STORE_GAP_MS + 2 = 34 samples are ever kept.
 */
export const MIN_STORE_GAP_MS = MIN_WINDOW_MS / 32;
/** Events GET /api/events returns (the newest); the page shows all of them. */
export const EVENTS_SHOWN = 50;

export interface StatsOptions {
  /** Per HTTP request to a proxy's admin address. Default 1000. */
  proxyTimeoutMs?: number;
  /** Connect and command timeout of INFO. Default 1500. */
  redisTimeoutMs?: number;
  /** The servers' default-user password (requirepass), or none. */
  redisPassword?: string | null;
  /** For tests: the fetch used to reach proxies. */
  fetch?: typeof fetch;
}

// ---------------------------------------------------------------------------------------------
// Rates from cumulative samples (pure)

export interface ProxySample {
  /** epoch ms, the proxy's clock (both counters of a sample come from one read). */
  at: number;
  commands: number;
  slotOps: readonly number[];
  /** Identifies the process: a different one means the counters started over. */
  pid: number | null;
}

export interface Rate {
  qps: number;
  slotQps: number[];
  windowMs: number;
}

/** The samples of one proxy and the rate they give. */
export class RateHistory {
  private samples: ProxySample[] = [];

  /**
   * Adds a sample and returns the rate up to it, or null. A sample not newer than the last
   * stored one adds nothing: the answer is the rate up to that last one.
   */
  add(s: ProxySample): Rate | null {
    const last = this.samples[this.samples.length - 1];
    // Same process, not newer (a read that was overtaken): its lower counters are no restart.
    if (last && s.pid === last.pid && s.at <= last.at) return rateBetween(this.samples[0]!, last);
    if (last && (s.pid !== last.pid || s.commands < last.commands)) this.samples = [];
    // No baseline older than MAX_WINDOW_MS (a long gap would give a long average).
    while (this.samples.length > 0 && this.samples[0]!.at < s.at - MAX_WINDOW_MS) this.samples.shift();
    // Keep exactly one sample at least MIN_WINDOW_MS older than s (the baseline).
    while (this.samples.length > 1 && this.samples[1]!.at <= s.at - MIN_WINDOW_MS) this.samples.shift();
    const base = this.samples[0];
    const prev = this.samples[this.samples.length - 1];
    if (!prev || s.at - prev.at >= MIN_STORE_GAP_MS) this.samples.push(s);
    while (this.samples.length > MAX_SAMPLES) this.samples.shift();
    return base ? rateBetween(base, s) : null;
  }
}

export function rateBetween(base: ProxySample, newest: ProxySample): Rate | null {
  const dt = newest.at - base.at;
  if (!(dt > 0)) return null;
  const slotQps = new Array<number>(SLOT_COUNT).fill(0);
  for (let i = 0; i < SLOT_COUNT; i++) {
    const d = (newest.slotOps[i] ?? 0) - (base.slotOps[i] ?? 0);
    if (d > 0) slotQps[i] = round2((d * 1000) / dt);
  }
  return { qps: round2((Math.max(0, newest.commands - base.commands) * 1000) / dt), slotQps, windowMs: dt };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

// ---------------------------------------------------------------------------------------------
// Views

export interface ProxyStats {
  id: string;
  addr: string;
  adminAddr: string;
  /** Both admin endpoints answered. */
  ok: boolean;
  error?: string;
  /** Commands per second over `windowMs`; null until two samples exist. */
  qps: number | null;
  windowMs: number | null;
  commands: number | null;
  sessions: number | null;
  fenced: boolean | null;
  ready: boolean | null;
  /** Stray keys the proxy's --watch-strays saw, summed over groups; null when it does not watch. */
  strays: number | null;
}

/** /api/proxy's `strays` ({watching, byGroup}) → the total, checked field by field; null when not watching. */
function strayCount(v: unknown): number | null {
  if (typeof v !== 'object' || v === null || (v as { watching?: unknown }).watching !== true) return null;
  const byGroup = (v as { byGroup?: unknown }).byGroup;
  if (typeof byGroup !== 'object' || byGroup === null) return null;
  let n = 0;
  for (const c of Object.values(byGroup)) if (typeof c === 'number' && Number.isFinite(c) && c >= 0) n += c;
  return n;
}

export interface ClusterStats {
  at: number;
  /** Sum of the proxies' rates; null when no proxy has a rate yet. */
  qps: number | null;
  /** Commands since start, summed over the proxies that answered. */
  commands: number;
  proxies: ProxyStats[];
  /** Keyed requests per second per slot, summed over the proxies with a rate (1024 numbers). */
  slotQps: number[];
}

export interface ServerStats {
  group: number;
  addr: string;
  /** The role the group in etcd gives it. */
  role: 'master' | 'replica';
  /** INFO answered. */
  ok: boolean;
  error?: string;
  /** The role the server itself reports (`slave` shown as replica). */
  actualRole: 'master' | 'replica' | null;
  /** A replica's master as it sees it (`host:port`). */
  masterAddr: string | null;
  linkUp: boolean | null;
  /** Replication offset: a master's master_repl_offset, a replica's slave_repl_offset (decimal string). */
  offset: string | null;
  /** The group master's offset minus this replica's, in bytes (null for masters or when unknown). */
  lagBytes: number | null;
  /** A replica's master_last_io_seconds_ago. */
  lastIoSeconds: number | null;
  usedMemory: number | null;
  maxMemory: number | null;
  /** Keys over all databases, and those with a TTL. */
  keys: number | null;
  expires: number | null;
  clients: number | null;
  opsPerSec: number | null;
  /** The HA leader's record of this server, if there is one. */
  health: ServerHealth | null;
}

export interface ServersStats {
  at: number;
  servers: ServerStats[];
  /** Why the HA leader's health records could not be read (then every `health` is null). */
  healthError: string | null;
  /** Keys on the masters that answered. */
  keys: number;
  /** Memory used by every server that answered. */
  usedMemory: number;
  /** Servers that did not answer. */
  down: number;
}

// ---------------------------------------------------------------------------------------------
// Collection

/**
 * Wraps `fn` so that callers arriving while a call runs share its promise (and its result or
 * error); the next caller after it settles starts a new call.
 */
export function singleFlight<T>(fn: () => Promise<T>): () => Promise<T> {
  let inflight: Promise<T> | null = null;
  return () =>
    (inflight ??= fn().finally(() => {
      inflight = null;
    }));
}

export class Stats {
  private readonly histories = new Map<string, RateHistory>();
  private readonly proxyTimeoutMs: number;
  private readonly redisTimeoutMs: number;
  private readonly redisPassword: string | null;
  private readonly fetch: typeof fetch;
  private readonly agents: AgentStore;

  constructor(
    private readonly store: Store,
    opts: StatsOptions = {},
  ) {
    this.proxyTimeoutMs = opts.proxyTimeoutMs ?? 1000;
    this.redisTimeoutMs = opts.redisTimeoutMs ?? 1500;
    this.redisPassword = opts.redisPassword ?? null;
    this.fetch = opts.fetch ?? fetch;
    this.agents = new AgentStore(store);
  }

  /** Samples every registered proxy; concurrent callers share one round of requests. */
  readonly proxies: () => Promise<ClusterStats> = singleFlight(() => this.collectProxies());
  /** INFO of every server; concurrent callers share one round. */
  readonly servers: () => Promise<ServersStats> = singleFlight(() => this.collectServers());
  /** The newest EVENTS_SHOWN events of the HA agents; concurrent callers share one read. */
  readonly events: () => Promise<AgentEvent[]> = singleFlight(() => this.agents.listEvents(EVENTS_SHOWN));

  private async collectProxies(): Promise<ClusterStats> {
    const registered = await this.store.listProxies();
    const ids = new Set(registered.map((p) => p.id));
    for (const id of this.histories.keys()) if (!ids.has(id)) this.histories.delete(id);

    const slotQps = new Array<number>(SLOT_COUNT).fill(0);
    let total: number | null = null;
    let commands = 0;
    const proxies = await Promise.all(
      registered.map(async (p): Promise<ProxyStats> => {
        const view: ProxyStats = {
          id: p.id, addr: p.addr, adminAddr: p.adminAddr, ok: false,
          qps: null, windowMs: null, commands: null, sessions: null, fenced: null, ready: null, strays: null,
        };
        try {
          const [slots, desc] = await Promise.all([this.getJson(p.adminAddr, '/api/slots'), this.getJson(p.adminAddr, '/api/proxy')]);
          const sample = parseSlotsSample(slots, desc);
          view.ok = true;
          view.commands = sample.commands;
          view.sessions = typeof desc['sessions'] === 'number' ? desc['sessions'] : null;
          view.fenced = typeof desc['fenced'] === 'boolean' ? desc['fenced'] : null;
          view.ready = typeof desc['ready'] === 'boolean' ? desc['ready'] : null;
          view.strays = strayCount(desc['strays']);
          commands += sample.commands;
          let h = this.histories.get(p.id);
          if (!h) this.histories.set(p.id, (h = new RateHistory()));
          const rate = h.add(sample);
          if (rate) {
            view.qps = rate.qps;
            view.windowMs = rate.windowMs;
            total = (total ?? 0) + rate.qps;
            for (let i = 0; i < SLOT_COUNT; i++) slotQps[i]! += rate.slotQps[i]!;
          }
        } catch (err) {
          view.error = describeFetchError(err, this.proxyTimeoutMs);
        }
        return view;
      }),
    );
    for (let i = 0; i < SLOT_COUNT; i++) slotQps[i] = round2(slotQps[i]!);
    return { at: Date.now(), qps: total === null ? null : round2(total), commands, proxies, slotQps };
  }

  private async getJson(adminAddr: string, path: string): Promise<Record<string, unknown>> {
    const res = await this.fetch(`http://${adminAddr}${path}`, { signal: AbortSignal.timeout(this.proxyTimeoutMs) });
    const text = await res.text();
    if (!res.ok) throw new Error(`GET ${path} answered HTTP ${res.status}`);
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new Error(`GET ${path} answered something that is not JSON`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`GET ${path} answered something that is not a JSON object`);
    return v as Record<string, unknown>;
  }

  /** INFO of every server of every group, at once; a server that does not answer has `error`. */
  private async collectServers(): Promise<ServersStats> {
    let healthError: string | null = null;
    const [groups, health] = await Promise.all([
      this.store.listGroups(),
      // The servers' INFO is still worth showing without the health records; the error is shown too.
      this.agents.listServerHealth().catch((err: unknown): ServerHealth[] => {
        healthError = err instanceof Error ? err.message : String(err);
        return [];
      }),
    ]);
    const healthOf = new Map(health.map((h) => [h.addr, h]));
    const opts = { connectTimeoutMs: this.redisTimeoutMs, commandTimeoutMs: this.redisTimeoutMs, password: this.redisPassword };
    const servers = await Promise.all(
      groups.flatMap((g) =>
        g.servers.map(async (s): Promise<ServerStats> => {
          const view: ServerStats = {
            group: g.id, addr: s.addr, role: s.role, ok: false, actualRole: null, masterAddr: null, linkUp: null,
            offset: null, lagBytes: null, lastIoSeconds: null, usedMemory: null, maxMemory: null,
            keys: null, expires: null, clients: null, opsPerSec: null, health: healthOf.get(s.addr) ?? null,
          };
          try {
            const fields = await info(s.addr, 'default', opts);
            return { ...view, ...fromInfo(fields) };
          } catch (err) {
            return { ...view, error: (err as Error).message };
          }
        }),
      ),
    );
    // Lag: the configured master's offset minus each replica's, from this same round of INFO.
    const masterOffset = new Map<number, bigint>();
    for (const r of servers) if (r.role === 'master' && r.actualRole === 'master' && r.offset !== null) masterOffset.set(r.group, BigInt(r.offset));
    for (const r of servers) {
      const m = masterOffset.get(r.group);
      if (r.actualRole === 'replica' && m !== undefined && r.offset !== null) {
        const d = m - BigInt(r.offset);
        r.lagBytes = d > 0n ? Number(d) : 0;
      }
    }
    return {
      at: Date.now(),
      servers,
      healthError,
      keys: servers.reduce((n, s) => n + (s.role === 'master' && s.keys !== null ? s.keys : 0), 0),
      usedMemory: servers.reduce((n, s) => n + (s.usedMemory ?? 0), 0),
      down: servers.filter((s) => !s.ok).length,
    };
  }
}

function parseSlotsSample(slots: Record<string, unknown>, desc: Record<string, unknown>): ProxySample {
  const { at, commands, slotOps } = slots;
  if (typeof at !== 'number' || typeof commands !== 'number' || !Array.isArray(slotOps) || slotOps.length !== SLOT_COUNT || !slotOps.every((n) => typeof n === 'number')) {
    throw new Error('GET /api/slots answered without {at, commands, slotOps[1024]}');
  }
  return { at, commands, slotOps: slotOps as number[], pid: typeof desc['pid'] === 'number' ? desc['pid'] : null };
}

/** A one-line reason for a failed request to a proxy: timeout, refused, HTTP status. */
export function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${timeoutMs} ms`;
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (cause instanceof Error && cause.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

function num(fields: Record<string, string>, name: string): number | null {
  const v = fields[name];
  if (v === undefined || !/^-?\d+(\.\d+)?$/.test(v)) return null;
  return Number(v);
}

function offsetOf(fields: Record<string, string>): bigint | null {
  const raw = fields['role'] === 'slave' ? fields['slave_repl_offset'] : fields['master_repl_offset'];
  return raw !== undefined && /^-?\d+$/.test(raw) ? BigInt(raw) : null;
}

/** The fields of ServerStats that INFO gives. */
export function fromInfo(fields: Record<string, string>): Partial<ServerStats> {
  let keys: number | null = null;
  let expires: number | null = null;
  for (const [k, v] of Object.entries(fields)) {
    // db0:keys=12,expires=0,avg_ttl=0,subexpiry=0
    if (!/^db\d+$/.test(k)) continue;
    const m = /(?:^|,)keys=(\d+)/.exec(v);
    const e = /(?:^|,)expires=(\d+)/.exec(v);
    keys = (keys ?? 0) + (m ? Number(m[1]) : 0);
    expires = (expires ?? 0) + (e ? Number(e[1]) : 0);
  }
  const role = fields['role'];
  const isReplica = role === 'slave';
  const offset = offsetOf(fields);
  return {
    ok: true,
    actualRole: role === 'master' ? 'master' : isReplica ? 'replica' : null,
    masterAddr: isReplica && fields['master_host'] !== undefined ? `${fields['master_host']}:${fields['master_port'] ?? '?'}` : null,
    linkUp: isReplica ? fields['master_link_status'] === 'up' : null,
    offset: offset === null ? null : offset.toString(),
    lastIoSeconds: isReplica ? num(fields, 'master_last_io_seconds_ago') : null,
    usedMemory: num(fields, 'used_memory'),
    maxMemory: num(fields, 'maxmemory'),
    // A server with no keys has no db lines.
    keys: keys ?? 0,
    expires: expires ?? 0,
    clients: num(fields, 'connected_clients'),
    opsPerSec: num(fields, 'instantaneous_ops_per_sec'),
  };
}
