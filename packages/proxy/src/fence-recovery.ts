/**
 * This proxy's fence and its recovery. The proxy talks to redis as its own ACL user; when a
 * backend refuses that user, etcd decides (refusal-check.ts): with a fence record for us
 * (reborn-config disabled the user because this proxy missed a barrier) we are fenced; without
 * one the server is stale and the user is re-enabled there. etcd can also tell us directly
 * (the topology watch sees our fence record).
 *
 * Invariant: from the moment we are fenced until the recovery ends, `fenced` is true (the
 * proxy serves no data command), every backend connection has been dropped, and the proxy is
 * unfenced only after it registered again, wrote its member record, reloaded the table and
 * re-enabled its user on every server that answers, with the fence record unchanged
 * meanwhile. While fenced, `reason` says what the recovery waits for.
 */
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Barrier, ProxyRegistration } from '@reborn/coordinator';
import { AclUserError, enableAclUserWhereAlive, type AclUser } from './acl-user.js';
import { RefusalCheck, type Verdict } from './refusal-check.js';
import type { Router } from './router.js';

export interface FenceRecoveryOptions {
  proxyId: string;
  router: Router;
  aclUser: AclUser;
  /** Null until the proxy reached etcd. */
  barrier: () => Barrier | null;
  /** Our current registration (updated with what the recovery waits for). */
  registration: () => ProxyRegistration | null;
  /** Closes our registration and registers again (once); throws when that fails. */
  reregister: () => Promise<ProxyRegistration>;
  /** Writes our member record. */
  putMember: () => Promise<void>;
  /** Forgets the barrier actions handled so far and ends their drains (barrier-acks.ts). */
  forgetActions: () => void;
  /** Loads the table from etcd, whole. */
  reloadTable: () => Promise<void>;
  /** We serve again: commands held meanwhile may go on. */
  resumed: () => void;
  metrics: { fencings: Counter; staleServerRepairs: Counter };
  stopping: () => boolean;
  logger: Logger;
}

export class FenceRecovery {
  private isFenced = false;
  /** While fenced: what the recovery is waiting for (shown in /healthz, the admin view, our registration). */
  private fencedReason: string | null = null;
  /** Decides what a refused ACL user means: a fence, or a stale server to repair. */
  private readonly refusals: RefusalCheck;

  constructor(private readonly opts: FenceRecoveryOptions) {
    this.refusals = new RefusalCheck({
      fenceRecorded: async () => {
        const barrier = opts.barrier();
        if (barrier === null) throw new Error('not connected to etcd yet');
        return (await barrier.fenceRevision(opts.proxyId)) !== null;
      },
      enableUser: async (addr) => {
        const [result] = (await enableAclUserWhereAlive([addr], opts.aclUser)).unreachable;
        if (result) throw new Error(result.error);
      },
      isFenced: () => this.isFenced,
      fence: (addr, why) => this.onFenced(addr, why),
      repaired: () => {
        opts.metrics.staleServerRepairs.inc();
        opts.router.clearBackoffs();
      },
      logger: opts.logger.child({ component: 'fence' }),
    });
  }

  get fenced(): boolean {
    return this.isFenced;
  }

  /** What the recovery waits for (null before the first fence and after a recovery). */
  get reason(): string | null {
    return this.fencedReason;
  }

  /** A backend refused our ACL user: decides (and acts on) what that means. */
  refused(addr: string): Promise<Verdict> {
    return this.refusals.check(addr);
  }

  /**
   * We are fenced (etcd holds our fence record, or cannot tell). Stop data traffic at once;
   * then register again, reload the table, re-enable the user where it answers, serve again.
   */
  onFenced(addr: string, why = 'etcd fence record'): void {
    if (this.isFenced || this.opts.stopping()) return;
    this.isFenced = true;
    this.fencedReason = 'fenced: starting recovery';
    this.opts.metrics.fencings.inc();
    this.opts.logger.warn({ backend: addr, why }, 'proxy fenced: refusing data commands until re-registered and reloaded');
    this.opts.router.resetBackends('this proxy has been fenced');
    void this.recover();
  }

  /** What the recovery waits for now: logged once per change, shown in /healthz and our registration. */
  private waitingFor(reason: string): void {
    if (reason === this.fencedReason) return;
    this.fencedReason = reason;
    this.opts.registration()?.update({ fencedReason: reason }).catch(() => undefined);
  }

  /**
   * Order matters: the fence record is read first (reborn-config writes it before it
   * disables the user), the table reloaded, the user re-enabled on every server it names
   * that answers, and the record cleared only if unchanged. A fence that lands anywhere in
   * between either changes the record (we start over without serving) or disables the user
   * again (the next connection finds out, and etcd then holds a record: refusal-check.ts).
   *
   * Why a server that cannot be reached does not hold the recovery up. The fence exists so
   * that nothing this proxy sent with a table older than the barrier runs after it: every
   * master took the fence (reborn-config fails the barrier otherwise), which closed our old
   * connections there, and we dropped ours when we learnt of it. After the reload our table
   * is at least as new as the barrier, so anything we send from now on is as safe as what an
   * unfenced proxy sends. A server that is down accepts nothing, from us or anyone. When it
   * comes back it either still has our user enabled (it was down during the fence too:
   * writes we send it now use the new table) or disabled (it took the fence, then went
   * down): then our connection is refused, etcd has no fence record for us any more, and the
   * user is re-enabled there (refusal-check.ts) — not a new fence. A server that answers
   * and refuses the ACL command does hold the recovery up: it is alive, and it says no.
   */
  private async recover(): Promise<void> {
    const { proxyId, router, logger } = this.opts;
    for (let attempt = 1; !this.opts.stopping(); attempt++) {
      let step = 'waiting for etcd';
      try {
        const fence = await this.opts.barrier()!.fenceRevision(proxyId);
        const registration = await this.opts.reregister();
        await this.opts.putMember();
        this.opts.forgetActions();
        step = 'reloading the slot table';
        this.waitingFor(`fenced: ${step}`);
        await this.opts.reloadTable();
        step = 're-enabling our user';
        const servers = new Set<string>();
        for (const g of router.groupList()) for (const sv of g.servers) servers.add(sv.addr);
        const { unreachable } = await enableAclUserWhereAlive(servers, this.opts.aclUser);
        if (unreachable.length > 0) {
          logger.warn({ servers: unreachable }, 'servers not reachable while unfencing: they get our user back when they answer again');
        }
        step = 'waiting for etcd';
        if (!(await this.opts.barrier()!.clearFenceIfUnchanged(proxyId, fence))) {
          step = 'fenced again while recovering';
          throw new Error('a newer fence record landed');
        }
        router.clearBackoffs();
        this.isFenced = false;
        this.fencedReason = null;
        registration.update({ fencedReason: undefined }).catch(() => undefined);
        logger.info({ attempt, unreachable: unreachable.map((u) => u.addr) }, 'proxy unfenced: re-registered, table reloaded, serving again');
        this.opts.resumed();
        return;
      } catch (err) {
        const message = (err as Error).message;
        this.waitingFor(err instanceof AclUserError ? `fenced: ${message}` : `fenced: ${step}: ${message}`);
        logger.warn({ err: message, attempt, waitingFor: this.fencedReason }, 'cannot recover from fencing yet, retrying');
        await new Promise((r) => setTimeout(r, Math.min(200 * attempt, 2000)));
      }
    }
  }
}
