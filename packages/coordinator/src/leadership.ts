/**
 * Leadership in one etcd election as a stream of events — the one election of the control
 * plane: the agents' HA leader and the migration runner both campaign through it
 * (docs/architecture.md, control path). The shape is that of etcd3's election.ts, on its Campaign: (the shape of etcd3's election.ts, on its Campaign):
 * 'elected' hands the leader an AbortSignal; 'lost' fires — after that signal has been
 * aborted, so leader work stops first — the moment leadership can no longer be trusted;
 * then the agent campaigns again by itself.
 *
 *   1. Campaign (etcd3 Election `name` in the `namespace`; the value is the candidate id;
 *      keys `<namespace>election/<name>/<leaseId>`, the oldest key leads; the agents run
 *      "leader" in agents/, the migration runner `<product root>runner` with no namespace).
 *   2. Elected: ask etcd how long our lease has left (LeaseTimeToLive, bounded). The leader
 *      holds a local deadline `validUntil` = (time the question was sent) + (TTL left, which
 *      etcd rounds down). The question is asked again every TTL/6 (at most every second) and
 *      the deadline moved. (etcd3 renews the lease every TTL/3, so the TTL left is at least
 *      ~2/3 TTL, rounded down: the deadline stays comfortably ahead of the next question.)
 *   3. Lost when any of: the campaign reports an error (etcd3: lease lost), etcd says the
 *      lease is gone (TTL ≤ 0), or `validUntil − margin` passes without a new answer — which
 *      is before the lease can expire in etcd, so before any other agent can be elected.
 *      Then: abort the signal (leader work stops), emit 'lost', resign (best effort, bounded),
 *      wait a moment and campaign again. relinquish() does the same on the leader's own word
 *      (a guarded write failed: someone else leads).
 *   4. close(): abort, emit 'lost' if leading, resign so another agent takes over at once
 *      instead of after the TTL.
 *
 * The election key doubles as a fencing token: etcd writes of the leader are transactions
 * that require `guardKey` to exist (agents.ts, guarded-writes.ts), and a deposed leader's key
 * has gone with its lease.
 *
 * Invariant: 'lost' (and the abort of the leader's signal) always comes before the campaign
 * is resigned or restarted, so leader work stops before another candidate can be elected.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Campaign, Election } from 'etcd3';
import type { Logger } from 'pino';
import { CoordinatorError } from './errors.js';
import type { Store } from './store.js';

export interface LeadershipEvents {
  elected: [signal: AbortSignal];
  lost: [reason: string];
}

/** Log lines of one election's user (operators and tests read them). */
export interface LeadershipMessages {
  elected: string;
  lost: string;
  campaignFailed: string;
  unconfirmed: string;
}

const HA_MESSAGES: LeadershipMessages = {
  elected: 'HA leader elected',
  lost: 'HA leadership lost; leader work stopped',
  campaignFailed: 'campaign failed; campaigning again',
  unconfirmed: 'elected but cannot confirm the lease; campaigning again',
};

/** Leader work attempted without (or after) leadership. */
export class NotLeaderCoordinatorError extends CoordinatorError {
  constructor(message = 'not the leader (any more)') {
    super('ENOTLEADER', message);
    this.name = 'NotLeaderError';
  }
}

export interface LeadershipOptions {
  store: Store;
  /** etcd3 namespace the election runs in (`AgentPaths.root` for the agents), '' for none. */
  namespace: string;
  /** Election name inside the namespace (`AgentPaths.electionName` for the agents). */
  name: string;
  /** This candidate's value in the election. */
  id: string;
  ttlSeconds: number;
  logger: Logger;
  /** The leader's abort reason and guardKey()'s error; default NotLeaderCoordinatorError. */
  notLeader?: (message?: string) => Error;
  /** Default: the HA leader's lines. */
  messages?: LeadershipMessages;
  /** Logger component. Default 'leadership'. */
  component?: string;
}

const RECAMPAIGN_DELAY_MS = 500;

export class Leadership extends EventEmitter<LeadershipEvents> {
  private readonly election: Election;
  private readonly log: Logger;
  private campaign: Campaign | null = null;
  private leading: { abort: AbortController; guardKey: string; leaseId: string; since: number } | null = null;
  private validUntil = 0;
  private confirmTimer: NodeJS.Timeout | null = null;
  private expiryTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private generation = 0;
  private readonly confirmEveryMs: number;
  private readonly marginMs: number;
  /** Campaign keys are this prefix + the lease id. */
  private readonly keyPrefix: string;
  private readonly notLeader: (message?: string) => Error;
  private readonly messages: LeadershipMessages;

  constructor(private readonly opts: LeadershipOptions) {
    super();
    this.confirmEveryMs = Math.min(1000, (opts.ttlSeconds * 1000) / 6);
    this.marginMs = Math.min(500, (opts.ttlSeconds * 1000) / 10);
    const client = opts.namespace === '' ? opts.store.etcd : opts.store.etcd.namespace(opts.namespace);
    this.election = client.election(opts.name, opts.ttlSeconds);
    this.keyPrefix = `${opts.namespace}election/${opts.name}/`;
    this.notLeader = opts.notLeader ?? ((message) => new NotLeaderCoordinatorError(message));
    this.messages = opts.messages ?? HA_MESSAGES;
    this.log = opts.logger.child({ component: opts.component ?? 'leadership' });
  }

  /** Leader now: elected and the lease confirmed recently enough. */
  get isLeader(): boolean {
    return this.leading !== null && Date.now() < this.validUntil - this.marginMs;
  }

  get leaderSince(): number | null {
    return this.leading?.since ?? null;
  }

  /** The election key to guard leader writes with; throws when not the leader. */
  guardKey(): string {
    if (!this.isLeader || this.leading === null) throw this.notLeader();
    return this.leading.guardKey;
  }

  /** The current leader's agent id as etcd sees it (bounded), or null. */
  async currentLeader(): Promise<string | null> {
    const v = await this.opts.store.call('read HA leader', () => this.election.leader());
    return v ?? null;
  }

  start(): void {
    this.runCampaign();
  }

  /** Leader work found that someone else leads: stop it now and campaign again. */
  relinquish(reason: string): void {
    if (this.leading) this.lose(reason);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stepDown('shutting down');
    const c = this.campaign;
    this.campaign = null;
    if (c) await this.resign(c);
  }

  private runCampaign(): void {
    if (this.closed) return;
    const gen = ++this.generation;
    const c = this.election.campaign(this.opts.id);
    this.campaign = c;
    c.on('error', (err: Error) => {
      if (gen !== this.generation) return;
      if (this.leading) this.lose(`campaign failed: ${err.message}`);
      else {
        this.log.warn({ err: err.message }, this.messages.campaignFailed);
        void this.restart(gen);
      }
    });
    c.on('elected', () => {
      if (gen !== this.generation || this.closed) return;
      void this.onElected(c, gen);
    });
  }

  private async onElected(c: Campaign, gen: number): Promise<void> {
    try {
      const key = await this.opts.store.call('read campaign key', () => c.getCampaignKey());
      const leaseId = key.slice(this.keyPrefix.length);
      const sentAt = Date.now();
      const ttl = await this.leaseTtl(leaseId);
      if (gen !== this.generation || this.closed) return;
      if (ttl <= 0) throw new Error('lease already expired');
      this.validUntil = sentAt + ttl * 1000;
      this.leading = { abort: new AbortController(), guardKey: key, leaseId, since: Date.now() };
      this.armExpiry();
      this.confirmTimer = setInterval(() => void this.confirm(gen), this.confirmEveryMs);
      this.log.info({ key, leaseId, ttl }, this.messages.elected);
      this.emit('elected', this.leading.abort.signal);
    } catch (err) {
      if (gen !== this.generation) return;
      this.log.warn({ err: (err as Error).message }, this.messages.unconfirmed);
      void this.restart(gen);
    }
  }

  private async confirm(gen: number): Promise<void> {
    const lead = this.leading;
    if (!lead || gen !== this.generation) return;
    const sentAt = Date.now();
    let ttl: number;
    try {
      ttl = await this.leaseTtl(lead.leaseId);
    } catch (err) {
      // Not confirmed this time; the expiry timer steps down if this goes on.
      this.log.debug({ err: (err as Error).message }, 'cannot confirm the leader lease');
      return;
    }
    if (this.leading !== lead) return;
    if (ttl <= 0) {
      this.lose('etcd says the leader lease has expired');
      return;
    }
    this.validUntil = Math.max(this.validUntil, sentAt + ttl * 1000);
    this.armExpiry();
  }

  private armExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const ms = Math.max(0, this.validUntil - this.marginMs - Date.now());
    this.expiryTimer = setTimeout(() => {
      if (this.leading && Date.now() >= this.validUntil - this.marginMs) this.lose('leader lease not confirmed in time');
    }, ms);
  }

  private async leaseTtl(leaseId: string): Promise<number> {
    const res = await this.opts.store.call('leader lease TTL', () =>
      this.opts.store.etcd.leaseClient.leaseTimeToLive({ ID: leaseId }),
    );
    return Number(res.TTL);
  }

  /** Stop leader work first (abort + 'lost'), then campaign again. */
  private lose(reason: string): void {
    const gen = this.generation;
    this.stepDown(reason);
    void this.restart(gen);
  }

  private stepDown(reason: string): void {
    if (this.confirmTimer) clearInterval(this.confirmTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.confirmTimer = null;
    this.expiryTimer = null;
    const lead = this.leading;
    this.leading = null;
    this.validUntil = 0;
    if (!lead) return;
    lead.abort.abort(this.notLeader(`leadership lost: ${reason}`));
    this.log.warn({ reason, ledMs: Date.now() - lead.since }, this.messages.lost);
    this.emit('lost', reason);
  }

  private async restart(gen: number): Promise<void> {
    if (gen !== this.generation) return;
    this.generation++; // ignore anything the old campaign still emits
    const c = this.campaign;
    this.campaign = null;
    if (c) await this.resign(c);
    if (this.closed) return;
    await sleep(RECAMPAIGN_DELAY_MS);
    if (!this.closed && this.campaign === null) this.runCampaign();
  }

  private async resign(c: Campaign): Promise<void> {
    try {
      await this.opts.store.call('resign', () => c.resign());
    } catch (err) {
      // The lease expires by itself; a late resign must not hold anything up.
      this.log.debug({ err: (err as Error).message }, 'resign failed; the lease will expire');
    }
  }
}
