/**
 * The agents/ part of the etcd layout (docs/architecture.md §2 "etcd layout"): agent registrations, the HA
 * leader election, failover events and per-server health — the keys, the models, and typed
 * access on top of a Store. (paths.ts holds the product-level prefixes; everything below
 * `/reborn/<p>/agents/` is spelled out here, in one place.)
 *
 *   /reborn/<p>/agents/<agentId>                   {id, httpAddr, pid, host, startedAt, ha}  on the agent's lease
 *   /reborn/<p>/agents/election/leader/<leaseId>   etcd3 election (etcd's concurrency/election.go): value = agent id
 *   /reborn/<p>/agents/event-seq                   last event sequence number (a counter)
 *   /reborn/<p>/agents/events/<seq>                {seq, kind, at, agent, group?, message, data}  (10-digit seq)
 *   /reborn/<p>/agents/servers/<host:port>         {addr, group, state: online|offline, since, reason?}
 *   /reborn/<p>/agents/repl-secret                 the replication user's password (64 hex chars), created once
 *
 * Why server health lives here and not in the group: a group's servers are `{addr, role}` and
 * proxies read nothing else (models.ts), so a dead replica stays in its group with role
 * replica and its health is recorded beside it. Only the HA leader writes health records and
 * events; every such write is guarded by the leader's election key still existing (a deposed
 * leader's key is gone with its lease, so its late writes fail instead of landing).
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IOperation, Lease } from 'etcd3';
import { ValidationError } from './errors.js';
import { decodeJson, encodeGroup, isValidAddr, isValidGroupId, isValidName, parseGroup, type GroupInfo } from './models.js';
import type { Store } from './store.js';

const SEQ_WIDTH = 10;
/** Events kept in etcd; older ones are deleted as new ones are written. */
export const AGENT_EVENTS_KEPT = 1000;
/** Ids that would read like the fixed sub-keys of agents/. */
const RESERVED_AGENT_IDS: ReadonlySet<string> = new Set(['election', 'events', 'servers', 'event-seq', 'repl-secret']);

export function isValidAgentId(id: string): boolean {
  return isValidName(id) && !RESERVED_AGENT_IDS.has(id);
}

export function assertAgentId(id: string): string {
  if (!isValidAgentId(id)) {
    throw new ValidationError(
      `invalid agent id ${JSON.stringify(id)}: want [A-Za-z0-9_.:-]{1,128}, not one of ${[...RESERVED_AGENT_IDS].join(', ')}`,
    );
  }
  return id;
}

export class AgentPaths {
  /** `/reborn/<p>/agents/` — also the etcd3 namespace the election runs in. */
  readonly root: string;
  readonly events: string;
  readonly servers: string;
  readonly eventSeq: string;
  /** The replication user's secret (agent repl-guard.ts): created once, never changed. */
  readonly replSecret: string;
  /** Election name inside the root namespace; etcd3 puts candidates at `election/<name>/<leaseId>`. */
  readonly electionName = 'leader';
  /** Where the candidates' keys live (for operators and tests). */
  readonly election: string;

  constructor(agentsPrefix: string) {
    if (!agentsPrefix.endsWith('/agents/')) throw new ValidationError(`not an agents prefix: ${agentsPrefix}`);
    this.root = agentsPrefix;
    this.events = `${agentsPrefix}events/`;
    this.servers = `${agentsPrefix}servers/`;
    this.eventSeq = `${agentsPrefix}event-seq`;
    this.replSecret = `${agentsPrefix}repl-secret`;
    this.election = `${agentsPrefix}election/${this.electionName}/`;
  }

  agent(id: string): string {
    return this.root + assertAgentId(id);
  }

  /** The agent id of a registration key (exactly one segment below root), or null. */
  agentIdOf(key: string): string | null {
    if (!key.startsWith(this.root)) return null;
    const rest = key.slice(this.root.length);
    return isValidAgentId(rest) ? rest : null;
  }

  event(seq: number): string {
    if (!Number.isSafeInteger(seq) || seq < 1 || seq >= 10 ** SEQ_WIDTH) throw new ValidationError(`invalid event sequence ${seq}`);
    return this.events + String(seq).padStart(SEQ_WIDTH, '0');
  }

  server(addr: string): string {
    if (!isValidAddr(addr)) throw new ValidationError(`invalid server address ${JSON.stringify(addr)}`);
    return this.servers + addr;
  }
}

// ---------------------------------------------------------------------------------------------
// Models

export interface AgentInfo {
  readonly id: string;
  /** The agent's HTTP API, `host:port`. */
  readonly httpAddr: string;
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
  /** Whether it campaigns for HA leadership. */
  readonly ha: boolean;
  /**
   * The port range (`first-last`) it picks a redis-server's port from when asked to start one
   * without a port (--redis-ports); absent: it starts redis only on a port it is given, and
   * the replica healer never asks it.
   */
  readonly redisPorts?: string;
}

export const AgentEventKind = {
  /** A dead master was replaced by a replica. */
  Failover: 'failover',
  /** A master is confirmed down but could not be replaced (no usable replica, a veto, an error). */
  FailoverFailed: 'failover_failed',
  ServerOffline: 'server_offline',
  ServerOnline: 'server_online',
  /** A returning old master was made a replica of its group's master. */
  OldMasterDemoted: 'old_master_demoted',
  /** A replica that replicated from the wrong place was re-pointed at its group's master. */
  ReplicaRepointed: 'replica_repointed',
  LeaderElected: 'leader_elected',
  /** A replica left its group's in-sync set (down, detached, lagging); data.reason says which. */
  InSyncRemoved: 'in_sync_removed',
  /** A caught-up replica joined its group's in-sync set. */
  InSyncAdded: 'in_sync_added',
  /** A master is down, but no member of the in-sync set answers: nothing is promoted. */
  FailoverBlocked: 'failover_blocked',
  /** The replica healer had an agent start a redis-server and added it to a short group. */
  ReplicaCreated: 'replica_created',
  /** The replica healer removed a replica that had been down past the grace period. */
  ReplicaRetired: 'replica_retired',
} as const;
export type AgentEventKind = (typeof AgentEventKind)[keyof typeof AgentEventKind];
const EVENT_KINDS: ReadonlySet<string> = new Set(Object.values(AgentEventKind));

/** The `data` of a failover event. Offsets are redis replication offsets (bytes). */
export interface FailoverDetails {
  group: number;
  oldMaster: string;
  newMaster: string;
  /** The old master's master_repl_offset at the last successful check, or null if never seen. */
  oldMasterOffset: number | null;
  /** The promoted replica's slave_repl_offset just before promotion. */
  newMasterOffset: number;
  /**
   * oldMasterOffset − newMasterOffset when positive: bytes of the replication stream the old
   * master had and the new one never got — writes that may be lost. A lower bound: the old
   * master may have taken more writes after its last successful check.
   */
  lostBytesEstimate: number | null;
  candidates: { addr: string; offset: number | null; linkUp: boolean | null; error?: string }[];
  /** Other replicas told to replicate from the new master (the rest follow when they return). */
  repointed: string[];
  /** ms from the old master's last successful check to the promotion. */
  downForMs: number;
  /** ms the failover took, from decision to the etcd update. */
  tookMs: number;
  /** etcd revision of the group update. */
  revision: string;
}

export interface AgentEvent {
  readonly seq: number;
  readonly kind: AgentEventKind;
  /** ISO-8601. */
  readonly at: string;
  /** The agent that wrote it. */
  readonly agent: string;
  readonly group?: number;
  readonly message: string;
  readonly data: Record<string, unknown>;
}

export const ServerHealthState = { Online: 'online', Offline: 'offline' } as const;
export type ServerHealthState = (typeof ServerHealthState)[keyof typeof ServerHealthState];

export interface ServerHealth {
  readonly addr: string;
  readonly group: number;
  readonly state: ServerHealthState;
  /** ISO-8601 time of the transition into `state`. */
  readonly since: string;
  readonly reason?: string;
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(`${where}: want a JSON object`);
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, name: string, where: string): string {
  const v = o[name];
  if (typeof v !== 'string' || v.length === 0) throw new ValidationError(`${where}: ${name} must be a non-empty string`);
  return v;
}

function int(o: Record<string, unknown>, name: string, where: string): number {
  const v = o[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ValidationError(`${where}: ${name} must be an integer`);
  return v;
}

export function parseAgent(value: unknown, where = 'agent'): AgentInfo {
  const o = obj(value, where);
  const id = str(o, 'id', where);
  if (!isValidAgentId(id)) throw new ValidationError(`${where}: bad id ${JSON.stringify(id)}`);
  const httpAddr = str(o, 'httpAddr', where);
  if (!isValidAddr(httpAddr)) throw new ValidationError(`${where}: httpAddr must be host:port`);
  return {
    id,
    httpAddr,
    pid: int(o, 'pid', where),
    host: str(o, 'host', where),
    startedAt: str(o, 'startedAt', where),
    ha: o['ha'] === true,
    ...(typeof o['redisPorts'] === 'string' && /^\d{1,5}-\d{1,5}$/.test(o['redisPorts']) ? { redisPorts: o['redisPorts'] } : {}),
  };
}

export function parseAgentEvent(value: unknown, where = 'agent event'): AgentEvent {
  const o = obj(value, where);
  const kind = o['kind'];
  if (typeof kind !== 'string' || !EVENT_KINDS.has(kind)) throw new ValidationError(`${where}: unknown kind ${JSON.stringify(kind)}`);
  const group = o['group'];
  if (group !== undefined && (typeof group !== 'number' || !isValidGroupId(group))) throw new ValidationError(`${where}: bad group`);
  const data = o['data'] === undefined ? {} : obj(o['data'], `${where}: data`);
  return {
    seq: int(o, 'seq', where),
    kind: kind as AgentEventKind,
    at: str(o, 'at', where),
    agent: str(o, 'agent', where),
    ...(group === undefined ? {} : { group }),
    message: typeof o['message'] === 'string' ? o['message'] : '',
    data,
  };
}

export function parseServerHealth(value: unknown, where = 'server health'): ServerHealth {
  const o = obj(value, where);
  const addr = str(o, 'addr', where);
  if (!isValidAddr(addr)) throw new ValidationError(`${where}: addr must be host:port`);
  const state = o['state'];
  if (state !== ServerHealthState.Online && state !== ServerHealthState.Offline) throw new ValidationError(`${where}: bad state`);
  const group = int(o, 'group', where);
  const reason = o['reason'];
  return {
    addr,
    group,
    state,
    since: str(o, 'since', where),
    ...(typeof reason === 'string' ? { reason } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Access

/** A group as read, with the mod revision a compare-and-swap of it needs. */
export interface VersionedGroup {
  readonly group: GroupInfo;
  readonly modRevision: string;
}

export class AgentStore {
  readonly paths: AgentPaths;

  constructor(readonly store: Store) {
    this.paths = new AgentPaths(store.paths.agents);
  }

  /** Registered agents (live leases only), sorted by id. */
  async listAgents(): Promise<AgentInfo[]> {
    const res = await this.store.call('list agents', () => this.store.etcd.getAll().prefix(this.paths.root).exec());
    const out: AgentInfo[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      if (this.paths.agentIdOf(key) === null) continue;
      try {
        out.push(parseAgent(decodeJson(kv.value, key), key));
      } catch {
        // A value we cannot read is not an agent we can talk to.
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Registers under a lease kept alive in the background; see AgentRegistration. */
  register(info: AgentInfo, ttlSeconds: number): AgentRegistration {
    return new AgentRegistration(this.store, this.paths, info, ttlSeconds);
  }

  async getGroup(gid: number): Promise<VersionedGroup | null> {
    const key = this.store.paths.group(gid);
    const res = await this.store.call(`get group ${gid}`, () => this.store.etcd.get(key).exec());
    const kv = res.kvs[0];
    return kv ? { group: parseGroup(decodeJson(kv.value, key), gid, key), modRevision: kv.mod_revision } : null;
  }

  /**
   * Replaces a group only if it is unchanged since `modRevision` and `guardKey` (the leader's
   * election key) still exists. Returns the revision of the write, or null when a compare
   * failed (someone changed the group, or we are no longer the leader).
   */
  async swapGroup(next: GroupInfo, modRevision: string, guardKey: string): Promise<string | null> {
    const key = this.store.paths.group(next.id);
    const value = encodeGroup(next);
    const etcd = this.store.etcd;
    const res = await this.store.call(`swap group ${next.id}`, () =>
      etcd.if(key, 'Mod', '==', modRevision).and(guardKey, 'Create', '>', 0).then(etcd.put(key).value(value)).commit(),
    );
    return res.succeeded ? res.header.revision : null;
  }

  /**
   * Appends an event with the next sequence number (a compare-and-swap on the counter) and
   * deletes the one AGENT_EVENTS_KEPT older. Returns the event as written, or null when
   * `guardKey` is gone (no longer the leader).
   */
  async appendEvent(ev: Omit<AgentEvent, 'seq'>, guardKey?: string): Promise<AgentEvent | null> {
    const etcd = this.store.etcd;
    for (let attempt = 1; ; attempt++) {
      const cur = await this.store.call('read event counter', () => etcd.get(this.paths.eventSeq).exec());
      const kv = cur.kvs[0];
      const last = kv ? Number(kv.value.toString('utf8')) : 0;
      const seq = (Number.isSafeInteger(last) && last >= 0 ? last : 0) + 1;
      const full: AgentEvent = { ...ev, seq };
      const ops: IOperation[] = [etcd.put(this.paths.eventSeq).value(String(seq)), etcd.put(this.paths.event(seq)).value(JSON.stringify(full))];
      if (seq > AGENT_EVENTS_KEPT) ops.push(etcd.delete().key(this.paths.event(seq - AGENT_EVENTS_KEPT)));
      // The counter unchanged since we read it (or still absent), and still the leader.
      let b = kv ? etcd.if(this.paths.eventSeq, 'Mod', '==', kv.mod_revision) : etcd.if(this.paths.eventSeq, 'Create', '==', 0);
      if (guardKey !== undefined) b = b.and(guardKey, 'Create', '>', 0);
      const res = await this.store.call('append agent event', () => b.then(...ops).commit());
      if (res.succeeded) return full;
      if (guardKey !== undefined) {
        const g = await this.store.call('check leader key', () => etcd.get(guardKey).exec());
        if (g.kvs.length === 0) return null;
      }
      if (attempt >= 10) throw new ValidationError('cannot append agent event: the counter keeps changing');
    }
  }

  /** Events in sequence order, the newest `limit` of them. */
  async listEvents(limit = 100): Promise<AgentEvent[]> {
    const res = await this.store.call('list agent events', () =>
      this.store.etcd.getAll().prefix(this.paths.events).sort('Key', 'Descend').limit(limit).exec(),
    );
    const out: AgentEvent[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      try {
        out.push(parseAgentEvent(decodeJson(kv.value, key), key));
      } catch {
        // skip what does not parse
      }
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  async listServerHealth(): Promise<ServerHealth[]> {
    const res = await this.store.call('list server health', () => this.store.etcd.getAll().prefix(this.paths.servers).exec());
    const out: ServerHealth[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      try {
        out.push(parseServerHealth(decodeJson(kv.value, key), key));
      } catch {
        // skip
      }
    }
    return out;
  }

  /** Writes a health record if `guardKey` still exists; false when it does not. */
  async putServerHealth(h: ServerHealth, guardKey: string): Promise<boolean> {
    const etcd = this.store.etcd;
    const key = this.paths.server(h.addr);
    const res = await this.store.call('put server health', () =>
      etcd.if(guardKey, 'Create', '>', 0).then(etcd.put(key).value(JSON.stringify(h))).commit(),
    );
    return res.succeeded;
  }

  async deleteServerHealth(addr: string, guardKey: string): Promise<boolean> {
    const etcd = this.store.etcd;
    const key = this.paths.server(addr);
    const res = await this.store.call('delete server health', () =>
      etcd.if(guardKey, 'Create', '>', 0).then(etcd.delete().key(key)).commit(),
    );
    return res.succeeded;
  }
}

export interface AgentRegistrationEvents {
  registered: [leaseId: string];
  /** The lease was lost (or could not be granted); registration is retried in the background. */
  lost: [err: Error];
}

/**
 * `agents/<id>` on a lease, kept alive by etcd3 and written again under a new lease whenever
 * the old one is lost — retrying with backoff for as long as it is open, so an agent started
 * while etcd is down registers once etcd is back. The key is simply overwritten: an agent
 * restarted right after a crash replaces its predecessor's registration instead of waiting
 * for that lease to expire.
 */
export class AgentRegistration extends EventEmitter<AgentRegistrationEvents> {
  private lease: Lease | null = null;
  private closed = false;
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly paths: AgentPaths,
    readonly info: AgentInfo,
    readonly ttlSeconds: number,
  ) {
    super();
    assertAgentId(info.id);
    this.done = this.loop();
  }

  get registered(): boolean {
    return this.lease !== null && !this.lease.revoked();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    await this.done;
    const lease = this.lease;
    this.lease = null;
    if (lease) await this.store.call('revoke agent lease', () => lease.revoke()).catch(() => undefined);
  }

  private async loop(): Promise<void> {
    let delay = 200;
    while (!this.closed) {
      if (this.lease === null) {
        const lease = this.store.etcd.lease(this.ttlSeconds, { autoKeepAlive: true });
        let lostErr: Error | null = null;
        lease.on('lost', (err) => {
          lostErr = err;
          if (this.lease === lease) {
            this.lease = null;
            this.emit('lost', err);
          }
        });
        try {
          const id = await this.store.call('grant agent lease', () => lease.grant());
          await this.store.call('register agent', () =>
            lease.put(this.paths.agent(this.info.id)).value(JSON.stringify(this.info)).exec(),
          );
          if (this.closed || lostErr) {
            await lease.revoke().catch(() => undefined);
          } else {
            this.lease = lease;
            delay = 200;
            this.emit('registered', id);
          }
        } catch (err) {
          lease.revoke().catch(() => undefined);
          this.emit('lost', err as Error);
          delay = Math.min(delay * 2, 5000);
        }
      }
      try {
        await sleep(this.lease === null ? delay : 500, undefined, { signal: this.abort.signal });
      } catch {
        return;
      }
    }
  }
}

/** The ACL user replicas log in to their master as (provisioned by the HA leader, agent repl-guard.ts). */
export const REPL_USER = 'reborn-repl';
const REPL_SECRET_RE = /^[0-9a-f]{64}$/;

/** The product's replication secret (`agents/repl-secret`), or null while none was created. */
export async function readReplicationSecret(store: Store): Promise<string | null> {
  const key = new AgentPaths(store.paths.agents).replSecret;
  const value = await store.call('read replication secret', () => store.etcd.get(key).string());
  if (value === null) return null;
  if (!REPL_SECRET_RE.test(value)) throw new ValidationError(`${key} holds no replication secret (want 64 hex characters)`);
  return value;
}
