/**
 * The replication guard: a restarted master is never a sync source.
 *
 * Replicas log in to their master as a dedicated ACL user, `reborn-repl` (psync, replconf and
 * ping only, no keys), whose password — the product's replication secret, 32 random bytes in
 * etcd — reborn gives each server at runtime with ACL SETUSER. It is never written to a config
 * file and never ACL SAVEd, so a server that restarts, whoever restarts it (the agent, systemd,
 * a person), comes back WITHOUT the user: a replica's AUTH fails, the replica keeps its data
 * and its link stays down, instead of a full resync that would replace its data with the
 * restarted master's (an empty one wipes the group).
 *
 * Each HA round, per group (ReplicationGuard.checkGroup):
 *   1. Facts: INFO server+replication+keyspace of every server (run_id, offset, keys), the
 *      replicas before the master, so a live master's offset is never read below theirs.
 *   2. The master is judged when this guard has not judged this process of it yet — its
 *      run_id changed since the last round (it restarted), or first sight without our user:
 *      judgeMaster() (pure) trusts it unless it restarted behind the group — offset below the
 *      best in-sync replica's, or no keys while replicas have some — then it must be failed
 *      over. A trusted master gets the user (once per process).
 *   3. Every replica is pointed at the user (masteruser/masterauth, set at runtime), and a
 *      replica linked to the trusted master gets the user too: it may be promoted later.
 *
 * Invariant: the user is only ever given to a process judged to hold what its group holds
 * (a trusted master, or a replica linked to one); a verdict is kept per run_id, so a process
 * judged untrusted stays so until it is failed over and resynced as a replica.
 */
import { createHash, randomBytes } from 'node:crypto';
import client from 'prom-client';
import type { Logger } from 'pino';
import { ServerRole, groupMaster, inSyncMembers, type GroupInfo, type Store } from '@reborn/coordinator';
import { AgentPaths, REPL_USER, readReplicationSecret } from '@reborn/coordinator';
import {
  parseInfo,
  replicatesFrom,
  replicationInfo,
  replicationOffset,
  type RedisAdmin,
  type ReplicationLogin,
} from '@reborn/coordinator/admin';
import type { AgentMetrics } from './metrics.js';

/** The ACL user replicas log in to their master as (its name and reader live in coordinator). */
export { REPL_USER, readReplicationSecret };

/**
 * ACL SETUSER arguments of the user: exactly these rules whatever it had before (`reset`
 * clears passwords, keys, channels and commands). A replica's side of the handshake and the
 * stream needs PING, REPLCONF (listening-port, capa, ACK) and PSYNC; AUTH is always allowed.
 */
export function replUserRules(secret: string): string[] {
  return ['reset', 'on', `>${secret}`, '+psync', '+replconf', '+ping'];
}

/** The login replicas use: the replication user with the product's secret. */
export function replicationLogin(secret: string): ReplicationLogin {
  return { user: REPL_USER, password: secret };
}

// ---------------------------------------------------------------------------------------------
// The secret in etcd: /reborn/<p>/agents/repl-secret

function secretKey(store: Store): string {
  return new AgentPaths(store.paths.agents).replSecret;
}

/**
 * The product's replication secret, created (random 32 bytes, hex) if absent: a guarded
 * create-if-absent, so concurrent agents end with the same one — whoever loses the race reads
 * the winner's.
 */
export async function ensureReplicationSecret(store: Store): Promise<string> {
  const existing = await readReplicationSecret(store);
  if (existing !== null) return existing;
  const key = secretKey(store);
  const fresh = randomBytes(32).toString('hex');
  const res = await store.call('create replication secret', () =>
    store.etcd.if(key, 'Create', '==', 0).then(store.etcd.put(key).value(fresh)).commit(),
  );
  if (res.succeeded) return fresh;
  const winner = await readReplicationSecret(store);
  if (winner === null) throw new Error(`${key} vanished while it was being created`);
  return winner;
}

// ---------------------------------------------------------------------------------------------
// Facts and the pure verdict

/** What one INFO server+replication+keyspace says about a server. */
export interface ServerFacts {
  runId: string;
  role: string;
  /** replicationOffset(): a master's stream, or what a replica has processed. */
  offset: number | null;
  keys: number;
  linkUp: boolean | null;
  masterHost: string | null;
  masterPort: number | null;
}

/** Parses the text of `INFO server replication keyspace`. */
export function serverFacts(infoText: string): ServerFacts {
  const fields = parseInfo(infoText);
  const repl = replicationInfo(fields);
  let keys = 0;
  for (const [name, value] of Object.entries(fields)) {
    if (!/^db\d+$/.test(name)) continue;
    const m = /(?:^|,)keys=(\d+)/.exec(value);
    if (m) keys += Number(m[1]);
  }
  return {
    runId: fields['run_id']?.trim() ?? '',
    role: repl.role,
    offset: replicationOffset(repl),
    keys,
    linkUp: repl.linkUp,
    masterHost: repl.masterHost,
    masterPort: repl.masterPort,
  };
}

/** A replica as the verdict sees it: null facts when it did not answer. */
export interface ReplicaView {
  addr: string;
  facts: Pick<ServerFacts, 'offset' | 'keys'> | null;
}

export interface MasterJudgement {
  /** The master's run_id when this guard last saw it, or null (first sight). */
  knownRunId: string | null;
  /** Whether it has the replication user with the product's secret. */
  hasReplUser: boolean;
  master: Pick<ServerFacts, 'runId' | 'offset' | 'keys'>;
  /** The members of the group's in-sync set. */
  inSync: readonly ReplicaView[];
  /** Every replica of the group (the in-sync ones too). */
  replicas: readonly ReplicaView[];
}

export type MasterAction = 'trust' | 'fail-over' | 'wait';

export interface MasterVerdict {
  action: MasterAction;
  /** Its run_id differs from the one this guard knew: the process restarted. */
  restarted: boolean;
  reason: string;
}

/**
 * Whether the group's master may be trusted (given the replication user, a sync source), must
 * be failed over (a restarted master behind its group), or cannot be judged yet (an in-sync
 * replica did not answer: it may hold what the master lost). Pure.
 *
 * Not restarted and (already holding our user, or known to this guard) → trust: the process
 * that replicas synced from is the same. Otherwise it restarted, or this guard meets it
 * without our user (a new leader, a first rollout): it is trusted only if it holds at least
 * what every in-sync replica holds (its offset is not below theirs), and is not empty while
 * any replica has keys.
 */
export function judgeMaster(j: MasterJudgement): MasterVerdict {
  const restarted = j.knownRunId !== null && j.knownRunId !== j.master.runId;
  if (!restarted && (j.hasReplUser || j.knownRunId !== null)) {
    return { action: 'trust', restarted, reason: 'the same process replicas synced from' };
  }
  const why = restarted ? `restarted (run_id ${j.knownRunId} → ${j.master.runId})` : 'met without the replication user';
  const silent = j.inSync.filter((r) => r.facts === null).map((r) => r.addr);
  if (silent.length > 0) {
    return { action: 'wait', restarted, reason: `${why}; in-sync replica(s) ${silent.join(', ')} did not answer: they may hold what it lost` };
  }
  const masterOffset = j.master.offset ?? 0;
  for (const r of j.inSync) {
    const off = r.facts?.offset ?? 0;
    if (off > masterOffset) {
      return { action: 'fail-over', restarted, reason: `${why}; its offset ${masterOffset} is below in-sync replica ${r.addr}'s ${off}` };
    }
  }
  if (j.master.keys === 0) {
    const holder = j.replicas.find((r) => (r.facts?.keys ?? 0) > 0);
    if (holder) {
      return { action: 'fail-over', restarted, reason: `${why}; it has no keys while replica ${holder.addr} has ${holder.facts!.keys}` };
    }
  }
  return { action: 'trust', restarted, reason: `${why}; it holds as much as its in-sync replicas (offset ${masterOffset}, ${j.master.keys} keys)` };
}

// ---------------------------------------------------------------------------------------------
// The admin calls

/** Whether the server has the replication user, enabled, with `secret` as a password. */
export async function hasReplUser(admin: RedisAdmin, addr: string, secret: string, timeoutMs: number): Promise<boolean> {
  const reply = await admin.call(addr, ['ACL', 'GETUSER', REPL_USER], timeoutMs);
  if (!Array.isArray(reply)) return false; // nil: no such user
  const field = (name: string): unknown => {
    const i = reply.findIndex((v, k) => k % 2 === 0 && String(v) === name);
    return i < 0 ? undefined : reply[i + 1];
  };
  const flags = field('flags');
  const passwords = field('passwords');
  // ACL GETUSER shows passwords as their SHA-256, never in clear.
  const hash = createHash('sha256').update(secret).digest('hex');
  return Array.isArray(flags) && flags.map(String).includes('on') && Array.isArray(passwords) && passwords.map(String).includes(hash);
}

/** Gives the server the replication user (ACL SETUSER; runtime only: never saved). */
export async function provisionReplUser(admin: RedisAdmin, addr: string, secret: string, timeoutMs: number): Promise<void> {
  await admin.call(addr, ['ACL', 'SETUSER', REPL_USER, ...replUserRules(secret)], timeoutMs);
}

/**
 * Makes the server log in to any master it replicates from as the replication user
 * (masteruser/masterauth at runtime). Returns whether anything had to change.
 */
export async function pointReplicaLogin(admin: RedisAdmin, addr: string, login: ReplicationLogin, timeoutMs: number): Promise<boolean> {
  const reply = await admin.call(addr, ['CONFIG', 'GET', 'masteruser', 'masterauth'], timeoutMs);
  const got = new Map<string, string>();
  if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) got.set(String(reply[i]), String(reply[i + 1]));
  if (got.get('masteruser') === login.user && got.get('masterauth') === login.password) return false;
  // masterauth first: in between, a reconnect fails AUTH instead of logging in as another user.
  await admin.call(addr, ['CONFIG', 'SET', 'masterauth', login.password], timeoutMs);
  await admin.call(addr, ['CONFIG', 'SET', 'masteruser', login.user], timeoutMs);
  return true;
}

// ---------------------------------------------------------------------------------------------
// The per-round guard

/** What the guard knows about one server process. */
interface ServerRecord {
  runId: string;
  /** Verdict of this process as a master; null while not judged (or only seen as a replica). */
  trust: 'trusted' | 'untrusted' | null;
  /** This guard gave this process the user (or found it there). */
  provisioned: boolean;
  /** The last verdict logged for it as a master, so transitions are logged once. */
  logged: string | null;
}

export interface GroupGuardResult {
  group: number;
  master: string | null;
  /** The master's verdict this round; null when it has no master or the master did not answer. */
  verdict: MasterVerdict | null;
  /** Servers given the user this round. */
  provisioned: string[];
  /** Replicas whose login was (re)pointed at the user this round. */
  pointed: string[];
  /** Servers the guard could not read or change this round, with the reason. */
  errors: { addr: string; error: string }[];
}

export interface ReplicationGuardOptions {
  admin: RedisAdmin;
  /** The product's replication secret (ensureReplicationSecret). */
  secret: string;
  logger: Logger;
  /** Where its metrics go (the agent's registry). */
  metrics: Pick<AgentMetrics, 'registry'>;
  /** Bound of each redis call. */
  timeoutMs: number;
}

const VERDICTS = 'reborn_agent_master_verdicts_total';
const UNTRUSTED = 'reborn_agent_untrusted_masters';

/**
 * The guard of one HA leader; keeps what it learnt per server process (run_id) across rounds.
 * checkGroup() is the per-round call; retain() forgets servers no longer in any group.
 */
export class ReplicationGuard {
  readonly login: ReplicationLogin;
  private readonly servers = new Map<string, ServerRecord>();
  private readonly log: Logger;
  private readonly verdicts: client.Counter<'verdict'>;

  constructor(private readonly opts: ReplicationGuardOptions) {
    this.login = replicationLogin(opts.secret);
    this.log = opts.logger.child({ component: 'repl-guard' });
    const registry = opts.metrics.registry;
    this.verdicts = (registry.getSingleMetric(VERDICTS) as client.Counter<'verdict'> | undefined) ?? new client.Counter({
      name: VERDICTS,
      help: 'Masters judged because they restarted or lacked the replication user, by verdict (trust, fail-over, wait)',
      labelNames: ['verdict'],
      registers: [registry],
    });
    registry.removeSingleMetric(UNTRUSTED);
    const servers = this.servers;
    new client.Gauge({
      name: UNTRUSTED,
      help: 'Group masters judged untrusted (restarted behind their group): refused as a sync source until failed over',
      registers: [registry],
      collect() {
        this.set([...servers.values()].filter((s) => s.trust === 'untrusted').length);
      },
    });
  }

  /**
   * Connects the guard and the admin pool: opens it with the product's secret (created if
   * absent) and makes every REPLICAOF the pool sends use the replication user.
   */
  static async open(store: Store, opts: Omit<ReplicationGuardOptions, 'secret'>): Promise<ReplicationGuard> {
    const secret = await ensureReplicationSecret(store);
    const guard = new ReplicationGuard({ ...opts, secret });
    opts.admin.useReplicationLogin(guard.login);
    return guard;
  }

  /** Forgets servers not in `addrs` (no longer in any group). */
  retain(addrs: ReadonlySet<string>): void {
    for (const addr of [...this.servers.keys()]) if (!addrs.has(addr)) this.servers.delete(addr);
  }

  /** One round for one group (see the file header). Never throws for a server's failure. */
  async checkGroup(g: GroupInfo): Promise<GroupGuardResult> {
    const result: GroupGuardResult = { group: g.id, master: null, verdict: null, provisioned: [], pointed: [], errors: [] };
    const fail = (addr: string, err: unknown): void => {
      result.errors.push({ addr, error: (err as Error).message });
    };
    const facts = new Map<string, ServerFacts | null>();
    const read = async (addr: string): Promise<void> => {
      try {
        const text = await this.opts.admin.call(addr, ['INFO', 'server', 'replication', 'keyspace'], this.opts.timeoutMs);
        facts.set(addr, serverFacts(String(text)));
      } catch (err) {
        facts.set(addr, null);
        fail(addr, err);
      }
    };
    const master = groupMaster(g);
    // The replicas first, then the master: a replica's offset never passes its master's, so
    // read in this order a healthy master under writes is never "below" a replica (read in
    // parallel, a replica read a moment later could be, and the master failed over for nothing).
    await Promise.all(g.servers.filter((s) => s.addr !== master?.addr).map((s) => read(s.addr)));
    if (master) await read(master.addr);

    const mf = master ? facts.get(master.addr) ?? null : null;
    if (master) result.master = master.addr;
    if (master && mf) {
      try {
        result.verdict = await this.judge(g, master.addr, mf, facts);
        if (result.verdict.action === 'trust' && (await this.provision(master.addr, mf, true))) result.provisioned.push(master.addr);
      } catch (err) {
        fail(master.addr, err);
      }
    }

    const masterTrusted = result.verdict?.action === 'trust';
    for (const s of g.servers) {
      if (s.role !== ServerRole.Replica) continue;
      const f = facts.get(s.addr);
      if (!f) continue;
      try {
        const rec = this.record(s.addr, f.runId);
        if (await pointReplicaLogin(this.opts.admin, s.addr, this.login, this.opts.timeoutMs)) result.pointed.push(s.addr);
        // Linked to the trusted master: it holds the master's data and may be promoted.
        if (masterTrusted && master && f.role === 'slave' && f.linkUp === true && replicatesFrom(replicaInfoOf(f), master.addr)) {
          rec.trust = 'trusted';
          if (await this.provision(s.addr, f, false)) result.provisioned.push(s.addr);
        }
      } catch (err) {
        fail(s.addr, err);
      }
    }
    return result;
  }

  /** The record of `addr`'s process `runId`: a new process starts a fresh one. */
  private record(addr: string, runId: string): ServerRecord {
    let rec = this.servers.get(addr);
    if (!rec || rec.runId !== runId) {
      rec = { runId, trust: null, provisioned: false, logged: rec?.logged ?? null };
      this.servers.set(addr, rec);
    }
    return rec;
  }

  /** The master's verdict: the one kept for this process, or judged now (judgeMaster). */
  private async judge(g: GroupInfo, addr: string, mf: ServerFacts, facts: Map<string, ServerFacts | null>): Promise<MasterVerdict> {
    const known = this.servers.get(addr);
    if (known && known.runId === mf.runId && known.trust !== null) {
      return known.trust === 'trusted'
        ? { action: 'trust', restarted: false, reason: 'trusted earlier' }
        : { action: 'fail-over', restarted: true, reason: known.logged ?? 'judged untrusted earlier' };
    }
    const hasUser = await hasReplUser(this.opts.admin, addr, this.opts.secret, this.opts.timeoutMs);
    const view = (a: string): ReplicaView => ({ addr: a, facts: facts.get(a) ?? null });
    const replicas = g.servers.filter((s) => s.role === ServerRole.Replica).map((s) => s.addr);
    const verdict = judgeMaster({
      knownRunId: known?.runId ?? null,
      hasReplUser: hasUser,
      master: mf,
      inSync: inSyncMembers(g).filter((a) => replicas.includes(a)).map(view),
      replicas: replicas.map(view),
    });
    const rec = this.record(addr, mf.runId);
    if (verdict.action !== 'wait') rec.trust = verdict.action === 'trust' ? 'trusted' : 'untrusted';
    if (hasUser) rec.provisioned = true;
    const line = `${verdict.action}: ${verdict.reason}`;
    if (rec.logged !== line) {
      rec.logged = line;
      this.verdicts.inc({ verdict: verdict.action });
      const fields = { group: g.id, master: addr, runId: mf.runId, offset: mf.offset, keys: mf.keys, restarted: verdict.restarted, reason: verdict.reason };
      if (verdict.action === 'fail-over') this.log.error(fields, 'master restarted behind its group: refused as a sync source, it must be failed over');
      else if (verdict.action === 'wait') this.log.warn(fields, 'master not judged yet: not a sync source until it is');
      else this.log.info(fields, 'master trusted: given the replication user');
    }
    return verdict;
  }

  /** Gives the process the user once; true when it was given now. */
  private async provision(addr: string, f: ServerFacts, checked: boolean): Promise<boolean> {
    const rec = this.record(addr, f.runId);
    if (rec.provisioned) return false;
    if (!checked && (await hasReplUser(this.opts.admin, addr, this.opts.secret, this.opts.timeoutMs))) {
      rec.provisioned = true;
      return false;
    }
    await provisionReplUser(this.opts.admin, addr, this.opts.secret, this.opts.timeoutMs);
    rec.provisioned = true;
    return true;
  }
}

/** The replication fields replicatesFrom() reads, from ServerFacts. */
function replicaInfoOf(f: ServerFacts): Parameters<typeof replicatesFrom>[0] {
  return {
    role: f.role,
    masterReplOffset: null,
    slaveReplOffset: f.offset,
    masterHost: f.masterHost,
    masterPort: f.masterPort,
    linkUp: f.linkUp,
    masterLastIoSecondsAgo: null,
    connectedReplicas: 0,
  };
}
