/**
 * The etcd side of restarting a crashed redis-server, for the supervisor: read the groups
 * (bounded by the store's call timeout) and plan (restart-plan.ts); account for restarts put
 * on hold (a log line per change of reason, reborn_agent_restart_holds_total, and the
 * reborn_agent_restart_waiting gauge); and give a server restarted as a replica its login to
 * its master once it answers.
 *
 * Invariant: without an answer from etcd the plan is to wait — a restart is never planned
 * from a guess; and a replica's login is only ever set at runtime, never in a file.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import client from 'prom-client';
import { joinAddr, type Store } from '@reborn/coordinator';
import type { RedisAdmin, ReplicationLogin } from '@reborn/coordinator/admin';
import { readReplicationSecret, replicationLogin } from './repl-guard.js';
import { planRedisRestart, selfMatcher, type HoldReason, type RestartPlan } from './restart-plan.js';

/** How often a restart on hold asks etcd again. */
export const HOLD_POLL_MS = 1000;

/** A supervised redis app as this module sees it. */
export interface RedisAppView {
  id: string;
  state: string;
  waiting?: { reason: HoldReason; why: string } | null;
}

export interface RedisRestartsOptions {
  admin: RedisAdmin;
  /** The default user's password (the login of a replica while the product has no replication user). */
  redisPassword: string | null;
  log: Logger;
  registry: client.Registry;
  /** The supervisor's redis apps, for the gauge. */
  apps: () => Iterable<RedisAppView>;
}

export class RedisRestarts {
  private store: Store | null = null;
  private readonly holds: client.Counter<'app' | 'reason'>;

  constructor(private readonly opts: RedisRestartsOptions) {
    this.holds = new client.Counter({
      name: 'reborn_agent_restart_holds_total',
      help: 'Restarts of a crashed redis-server put on hold, by reason (failover: waiting for the HA leader to fail it over first; unclear: etcd did not say how)',
      labelNames: ['app', 'reason'],
      registers: [opts.registry],
    });
    new client.Gauge({
      name: 'reborn_agent_restart_waiting',
      help: 'Crashed redis-servers whose restart is on hold now, by reason (failover, unclear)',
      labelNames: ['app', 'reason'],
      registers: [opts.registry],
      collect() {
        this.reset();
        for (const a of opts.apps()) if (a.state === 'restarting' && a.waiting) this.set({ app: a.id, reason: a.waiting.reason }, 1);
      },
    });
  }

  useStore(store: Store): void {
    this.store = store;
  }

  /**
   * How the server bound to host:port comes back, and the login it uses when it comes back as
   * a replica (the replication user's when the product has one, else null: the default user).
   * When etcd cannot say, the plan is to wait (with the reason).
   */
  async plan(host: string, port: number): Promise<{ plan: RestartPlan; login: ReplicationLogin | null }> {
    const wait = (why: string) => ({ plan: { kind: 'wait', hold: 'unclear', group: null, why } as const, login: null });
    const store = this.store;
    if (store === null) return wait('not connected to etcd yet: cannot tell whether it is a group master');
    try {
      const groups = await store.listGroups();
      const plan = planRedisRestart(groups, await selfMatcher(host, port, groups));
      if (plan.kind !== 'replica') return { plan, login: null };
      const secret = await readReplicationSecret(store);
      return { plan, login: secret === null ? null : replicationLogin(secret) };
    } catch (err) {
      return wait(`cannot read the groups from etcd: ${(err as Error).message}`);
    }
  }

  /** Accounts for a restart put on hold; logs and counts only a change of reason. */
  noteHold(app: RedisAppView, reason: HoldReason, why: string): void {
    if (app.waiting?.why === why) return;
    this.holds.inc({ app: app.id, reason });
    const msg = reason === 'failover' ? 'waiting for failover before restart' : 'restart on hold: etcd does not say how to restart it';
    this.opts.log.warn({ app: app.id, reason: why, pollMs: HOLD_POLL_MS }, msg);
  }

  /**
   * Sets the login of a server just started with --replicaof, as soon as it answers (INFO is
   * answered while it loads its AOF, before it first connects to its master), trying again
   * while `stillOurs()` (the same process is alive). Its config file holds no masterauth, so
   * until this it cannot log in to any master.
   */
  async setReplicaLogin(app: string, addr: string, login: ReplicationLogin | null, stillOurs: () => boolean, ready: () => Promise<boolean>): Promise<void> {
    const cmds = login
      ? [['CONFIG', 'SET', 'masterauth', login.password], ['CONFIG', 'SET', 'masteruser', login.user]]
      : [['CONFIG', 'SET', 'masterauth', this.opts.redisPassword ?? '']];
    while (stillOurs()) {
      try {
        if (await ready()) {
          for (const cmd of cmds) await this.opts.admin.call(addr, cmd, 2000);
          this.opts.log.info({ app, user: login?.user ?? 'default' }, 'replica login set');
          return;
        }
      } catch {
        // not up yet: try again
      }
      await sleep(100);
    }
  }
}

/** The address the agent reaches a redis app at (a wildcard bind is reached on loopback). */
export function localAddr(spec: { host: string; port: number }): string {
  const host = spec.host === '0.0.0.0' ? '127.0.0.1' : spec.host === '::' ? '::1' : spec.host;
  return joinAddr(host, spec.port);
}
