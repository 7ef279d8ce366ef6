/**
 * The proxy's slot table kept in step with etcd — loaded, followed with a watch, and guarded
 * against a topology that vanished or was replaced (coordinator topology-guard.ts).
 *
 * Invariant: the router only ever holds a table of the product identity this proxy follows.
 * A change that only a lost etcd makes (identity gone or different, a served slot's key
 * deleted, a group deleted under its slots, a restore in progress, every slot key gone after
 * a resync) is not applied: the table stays, the alarm goes up, and the follower re-reads the
 * whole topology (right after each further change, and every RECHECK_MS) until it is that
 * identity's again — then installs it, clears the alarm and watches again from there.
 *
 * A proxy that holds no table yet and finds etcd empty, without identity, while other proxies
 * are registered and serving, installs nothing: it is not ready (the alarm says why) until
 * the topology is back. Empty without identity and nobody serving is a brand-new product.
 * "Other proxies serving" means registered `online` and started before this one: the rule is
 * then one-sided, so two proxies of a brand-new product never make each other step back. A
 * proxy that took such an empty product as brand-new re-asks on each periodic check, and
 * steps back (not ready) when older serving proxies show up — running proxies re-register in
 * an etcd that lost their keys only within a lease TTL, maybe after this proxy started.
 *
 * Key move records (coordinator moves.ts) are part of the table: installed with it and
 * followed in revision order with slot changes (hooks.movesLoaded / moveChanged), so a
 * revision counts as applied only once the keys it holds are held.
 *
 * Identity adoption: a product without identity (created before identities, or by a tool that
 * does not write one) gets one from the first proxy that sees groups or slots in it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  SLOT_COUNT,
  TopologyAlarm,
  identityChangedProblem,
  identityVanishedProblem,
  offlineSlot,
  restoreProblem,
  TopologyAlarmReason,
  isEmptyTopology,
  judgeTopology,
  judgeTopologyHead,
  missingTopologyProblem,
  needsServingCheck,
  type ActionInfo,
  type GroupInfo,
  type HeldTopology,
  type KeyMove,
  type ProductIdentity,
  type ResyncCause,
  type SlotInfo,
  type Store,
  type Topology,
  type TopologyProblem,
  type TopologyWatch,
} from '@reborn/coordinator';
import type { Router } from './router.js';

/** How often a proxy in alarm (or not ready) reads the whole topology again. */
const RECHECK_MS = 1000;
/** A change seen while in alarm: re-read this soon (changes come in bursts). */
const RECHECK_AFTER_CHANGE_MS = 100;
/** How often a healthy proxy checks identity and slot keys (one small read). */
const VERIFY_MS = 5000;

const EFFECT_SERVING = 'serving the last slot table; not applying topology changes until the product identity is back';
const EFFECT_NOT_READY = 'not serving (proxy not ready) until etcd holds the topology again';

export interface FollowerHooks {
  /** A complete table was installed (first load, resync, recovery). */
  installed(t: Topology): void;
  onAction(action: ActionInfo): void;
  onFence(proxyId: string, fenced: boolean): void;
  /** Whether the proxy may serve changed (a table installed, or an alarm raised/cleared). */
  stateChanged(): void;
  /** The alarm cleared after a loss: etcd may have lost per-proxy records too. */
  recovered(): void;
  /** One slot or group change applied. */
  changeApplied(): void;
  /** The key move records of an installed table (before its revision counts as applied). */
  movesLoaded(moves: ReadonlyMap<string, KeyMove>): void;
  /** A key move record was written or deleted (null), before its revision counts as applied. */
  moveChanged(id: string, move: KeyMove | null): void;
}

export interface FollowerOptions {
  proxyId: string;
  product: string;
  /** ISO-8601 start time of this process, as registered (orders proxies, see the header). */
  startedAt: string;
  logger: Logger;
  stopping(): boolean;
}

export class TopologyFollower {
  readonly alarm: TopologyAlarm;
  private identity: ProductIdentity | null = null;
  /** A table is installed in the router. */
  private holding = false;
  /** The etcd revision up to which every topology change is applied (whenApplied). */
  private appliedRevision = 0n;
  private revisionWaiters: { revision: bigint; resolve: () => void }[] = [];
  /** What the router was given, kept here to judge changes against (from/to included). */
  private slots: SlotInfo[] = [];
  private groups = new Map<number, GroupInfo>();
  private watch: TopologyWatch | null = null;
  private recheckTimer: NodeJS.Timeout | null = null;
  private recheckRunning = false;
  private readonly verifyTimer: NodeJS.Timeout;
  private adopting = false;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly router: Router,
    private readonly opts: FollowerOptions,
    private readonly hooks: FollowerHooks,
  ) {
    this.alarm = new TopologyAlarm(opts.logger, EFFECT_SERVING);
    this.verifyTimer = setInterval(() => void this.verify(), VERIFY_MS);
    this.verifyTimer.unref();
  }

  /**
   * Resolves once every topology change up to etcd `revision` is applied to the router: the
   * barrier's ack rule (an action names the revision of its slot writes). An action that
   * arrives through the watch is already past it (events come in revision order); one listed
   * after a table load may be newer than the table, and acking it before the watch delivered
   * its slot writes would let this proxy write the old group after the barrier.
   */
  whenApplied(revision: string): Promise<void> {
    const want = BigInt(revision);
    if (this.appliedRevision >= want) return Promise.resolve();
    return new Promise((resolve) => this.revisionWaiters.push({ revision: want, resolve }));
  }

  /** Everything up to `revision` is applied (`exact`: a whole table was installed at it). */
  private applied(revision: string, exact = false): void {
    const rev = BigInt(revision);
    this.appliedRevision = exact || rev > this.appliedRevision ? rev : this.appliedRevision;
    if (this.revisionWaiters.length === 0) return;
    const still: typeof this.revisionWaiters = [];
    for (const w of this.revisionWaiters) (w.revision <= this.appliedRevision ? w.resolve() : still.push(w));
    this.revisionWaiters = still;
  }

  /** True once a table is installed (it may be an alarm's kept table). */
  get ready(): boolean {
    return this.holding;
  }

  /** Why the proxy does not serve, while it holds no table; else null. */
  get notReadyReason(): string | null {
    return this.holding ? null : (this.alarm.view?.message ?? null);
  }

  get identityView(): ProductIdentity | null {
    return this.identity;
  }

  /**
   * Reads the topology (retrying until etcd answers), installs it unless it is lost or
   * foreign, and watches from there. Also the reload after a fence.
   */
  async load(): Promise<void> {
    for (let attempt = 1; !this.opts.stopping() && !this.closed; attempt++) {
      try {
        const t = await this.store.loadTopology();
        await this.consider(t);
        await this.follow(t.revision);
        return;
      } catch (err) {
        this.opts.logger.warn({ err: (err as Error).message, attempt }, 'cannot load topology from etcd, retrying');
        await sleep(Math.min(200 * attempt, 2000));
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.verifyTimer);
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    await this.watch?.close();
  }

  // -------------------------------------------------------------------------------------------

  private held(): HeldTopology | null {
    if (!this.holding) return null;
    return { identity: this.identity, groups: this.groups, slots: this.slots };
  }

  /** Installs `t` if it may replace what we hold; else raises the alarm. True when installed. */
  private async consider(t: Topology): Promise<boolean> {
    const held = this.held();
    let problem = judgeTopology(held, t);
    if (problem === null && needsServingCheck(held, t)) {
      const serving = await this.olderServingProxies();
      if (serving.length > 0) problem = missingTopologyProblem(this.opts.product, serving);
    }
    if (problem !== null) {
      this.raise(problem);
      return false;
    }
    const wasAlarmed = this.alarm.active;
    const wasHolding = this.holding;
    this.router.load(t.groups, t.slots);
    // With the table, in the same turn: no request routed by it misses a key hold.
    this.hooks.movesLoaded(t.moves);
    this.slots = [...t.slots];
    this.groups = new Map(t.groups);
    this.identity = t.identity;
    this.holding = true;
    this.applied(t.revision, true);
    this.hooks.installed(t);
    const took = t.identity ? `etcd holds a topology of product identity ${t.identity.generation}` : 'etcd holds a topology';
    if (this.alarm.clear(`${took}; slot table loaded`)) {
      if (wasHolding) this.hooks.recovered();
    }
    if (wasAlarmed || !wasHolding) this.hooks.stateChanged();
    this.adoptIfNeeded(t.groups.size > 0 || !isEmptyTopology(t), t.restoring !== null);
    return true;
  }

  private raise(problem: TopologyProblem): void {
    if (!this.holding && !this.router.isReady) {
      // An empty table, never the candidate (a restore may be half-written): a router with a
      // table lets data commands reach the proxy's refusal, which names the reason, instead
      // of the bare "proxy not ready" of a router without one.
      this.router.load(new Map(), Array.from({ length: SLOT_COUNT }, (_, id) => offlineSlot(id)));
    }
    if (this.alarm.raise(problem, this.holding ? EFFECT_SERVING : EFFECT_NOT_READY)) this.hooks.stateChanged();
    this.scheduleRecheck(RECHECK_MS);
  }

  /** (Re)starts the watch from `revision`. */
  private async follow(revision: string): Promise<void> {
    const old = this.watch;
    this.watch = null;
    await old?.close();
    if (this.closed) return;
    this.watch = this.store.watchTopology(revision, {
      onSlot: (slot, rev, deleted) => {
        if (this.whileAlarmed()) return;
        const before = this.slots[slot.id];
        if (deleted && before !== undefined && before.state !== 'offline') {
          this.raise({
            reason: TopologyAlarmReason.TopologyVanished,
            message: `the key of slot ${slot.id} (${before.state} in group ${before.group}) was deleted from etcd: something is wiping the slot table`,
          });
          return;
        }
        this.hooks.changeApplied();
        this.slots[slot.id] = slot;
        this.router.updateSlot(slot);
        this.applied(rev);
        this.adoptIfNeeded(true, false);
      },
      onGroup: (id, group, rev) => {
        if (this.whileAlarmed()) return;
        if (group === null) {
          const user = this.slots.find((s) => s.state !== 'offline' && (s.group === id || s.from === id || s.to === id));
          if (user !== undefined) {
            this.raise({
              reason: TopologyAlarmReason.TopologyVanished,
              message: `group ${id} was deleted from etcd while slot ${user.id} still belongs to it: something is wiping the topology`,
            });
            return;
          }
        }
        this.hooks.changeApplied();
        if (group === null) this.groups.delete(id);
        else this.groups.set(id, group);
        this.router.updateGroup(id, group);
        this.applied(rev);
        if (group !== null) this.adoptIfNeeded(true, false);
      },
      onIdentity: (identity) => {
        if (this.whileAlarmed()) return;
        const mine = this.identity;
        if (identity === null) {
          if (mine !== null) this.raise(identityVanishedProblem(mine));
        } else if (mine === null) {
          this.identity = identity;
          this.opts.logger.info({ generation: identity.generation, adopted: identity.adopted ?? false }, 'product identity learned');
        } else if (mine.generation !== identity.generation) {
          this.raise(identityChangedProblem(mine, identity));
        }
      },
      onRestoring: (marker) => {
        if (marker !== null) {
          this.raise(restoreProblem(marker));
        } else {
          this.whileAlarmed();
        }
      },
      onMove: (id, move, rev) => {
        if (this.whileAlarmed()) return;
        // Applied before the revision counts: a key-hold action at `rev` acks only once held.
        this.hooks.moveChanged(id, move);
        this.applied(rev);
      },
      onAction: (action, rev) => {
        // Watch events come in revision order: everything before the action is applied.
        if (!this.alarm.active) this.applied(rev);
        this.hooks.onAction(action);
      },
      onFence: (proxyId, fenced) => this.hooks.onFence(proxyId, fenced),
      onError: (err) => this.opts.logger.warn({ err: err.message }, 'topology watch error; serving with the current table'),
      onResync: (t, cause) => this.resynced(t, cause),
    });
  }

  /** While the alarm is up, changes are not applied but make us look again soon. */
  private whileAlarmed(): boolean {
    if (!this.alarm.active) return false;
    this.scheduleRecheck(RECHECK_AFTER_CHANGE_MS);
    return true;
  }

  private resynced(t: Topology, cause: ResyncCause): void {
    this.opts.logger.warn({ cause, revision: t.revision }, 'topology watch reloaded the whole topology');
    this.consider(t).catch((err: Error) => {
      this.opts.logger.warn({ err: err.message }, 'cannot check the reloaded topology; keeping the current table');
      this.scheduleRecheck(RECHECK_MS);
    });
  }

  private scheduleRecheck(delayMs: number): void {
    if (this.closed || this.opts.stopping()) return;
    if (this.recheckTimer !== null) {
      // Sooner wins: a change seen while waiting out the slow interval.
      if (delayMs >= RECHECK_MS) return;
      clearTimeout(this.recheckTimer);
    }
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = null;
      void this.recheck();
    }, delayMs);
    this.recheckTimer.unref();
  }

  /**
   * While in alarm: reads the whole topology again and installs it (and watches anew) when
   * good. The cheap head read first, so a proxy waiting out a long outage of the topology
   * does not read every slot every second.
   */
  private async recheck(): Promise<void> {
    if (!this.alarm.active || this.recheckRunning) return;
    this.recheckRunning = true;
    try {
      const held = this.held();
      const head = await this.store.loadTopologyHead();
      const still = held !== null ? judgeTopologyHead(held, head) : head.restoring ? restoreProblem(head.restoring) : null;
      if (still !== null) {
        this.raise(still);
        return;
      }
      const t = await this.store.loadTopology();
      // Changes seen while in alarm were dropped: watch again from what was installed.
      if (await this.consider(t)) await this.follow(t.revision);
    } catch (err) {
      this.opts.logger.debug({ err: (err as Error).message }, 'topology recheck failed');
    } finally {
      this.recheckRunning = false;
    }
    if (this.alarm.active) this.scheduleRecheck(RECHECK_MS);
  }

  /** Registered proxies, online, started before this one (ties: lower id): they serve. */
  private async olderServingProxies(): Promise<string[]> {
    const me = { startedAt: this.opts.startedAt, id: this.opts.proxyId };
    const older = (p: { startedAt: string; id: string }): boolean => p.startedAt < me.startedAt || (p.startedAt === me.startedAt && p.id < me.id);
    return (await this.store.listProxies()).filter((p) => p.id !== me.id && p.state === 'online' && older(p)).map((p) => p.id);
  }

  /**
   * The cheap periodic check of a healthy proxy: catches a lost etcd the watch cannot see
   * (a new etcd whose revisions already passed ours before we reconnected). A proxy serving
   * an empty product without identity (taken as brand-new) asks the registrations again.
   */
  private async verify(): Promise<void> {
    const held = this.held();
    if (held === null || this.alarm.active || this.closed || this.opts.stopping()) return;
    try {
      if (held.identity === null && held.groups.size === 0 && isEmptyTopology(held)) {
        const serving = await this.olderServingProxies();
        if (serving.length > 0 && !this.alarm.active && this.identity === null && this.groups.size === 0) {
          this.holding = false;
          this.raise(missingTopologyProblem(this.opts.product, serving));
        }
        return;
      }
      const problem = judgeTopologyHead(held, await this.store.loadTopologyHead());
      if (problem !== null && !this.alarm.active) this.raise(problem);
    } catch {
      // etcd unreachable: the watch reports that; the table stays as it is.
    }
  }

  /** Gives a product without identity one (create-if-absent), once it has groups or slots. */
  private adoptIfNeeded(populated: boolean, restoring: boolean): void {
    if (this.identity !== null || !populated || restoring || this.adopting || this.alarm.active) return;
    this.adopting = true;
    this.store.ensureIdentity().then(
      (r) => {
        this.adopting = false;
        if (r.identity === null || this.alarm.active) return;
        if (this.identity === null) this.identity = r.identity;
        if (r.created) this.opts.logger.info({ generation: r.identity.generation, adopted: r.identity.adopted ?? false }, 'product had no identity: wrote one');
      },
      (err: Error) => {
        this.adopting = false;
        this.opts.logger.warn({ err: err.message }, 'cannot give the product an identity yet; will try on the next change');
      },
    );
  }
}
