/**
 * HA leadership as a stream of events (the shape of etcd3's election.ts, on its Campaign):
 * 'elected' hands the leader an AbortSignal; 'lost' fires — after that signal has been
 * aborted, so leader work stops first — the moment leadership can no longer be trusted;
 * then the agent campaigns again by itself.
 *
 *   1. Campaign (etcd3 Election "leader" in the agents/ namespace; the value is the agent id;
 *      keys `agents/election/leader/<leaseId>`, the oldest key leads).
 *   2. Elected: ask etcd how long our lease has left (LeaseTimeToLive, bounded). The leader
 *      holds a local deadline `validUntil` = (time the question was sent) + (TTL left, which
 *      etcd rounds down). The question is asked again every TTL/6 (at most every second) and
 *      the deadline moved. (etcd3 renews the lease every TTL/3, so the TTL left is at least
 *      ~2/3 TTL, rounded down: the deadline stays comfortably ahead of the next question.)
 *   3. Lost when any of: the campaign reports an error (etcd3: lease lost), etcd says the
 *      lease is gone (TTL ≤ 0), or `validUntil − margin` passes without a new answer — which
 *      is before the lease can expire in etcd, so before any other agent can be elected.
 *      Then: abort the signal (leader work stops), emit 'lost', resign (best effort, bounded),
 *      wait a moment and campaign again.
 *   4. close(): abort, emit 'lost' if leading, resign so another agent takes over at once
 *      instead of after the TTL.
 *
 * The election key doubles as a fencing token: etcd writes of the leader are transactions
 * that require `guardKey` to exist (agents.ts), and a deposed leader's key has gone with its
 * lease.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Campaign, Election } from 'etcd3';
import type { Logger } from 'pino';
import type { AgentPaths, Store } from '@reborn/coordinator';
import { NotLeaderError } from './errors.js';

export interface LeadershipEvents {
  elected: [signal: AbortSignal];
  lost: [reason: string];
}

export interface LeadershipOptions {
  store: Store;
  paths: AgentPaths;
  id: string;
  ttlSeconds: number;
  /** Upper bound of each etcd call made here. */
  callTimeoutMs: number;
  logger: Logger;
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

  constructor(private readonly opts: LeadershipOptions) {
    super();
    this.confirmEveryMs = Math.min(1000, (opts.ttlSeconds * 1000) / 6);
    this.marginMs = Math.min(500, (opts.ttlSeconds * 1000) / 10);
    this.election = opts.store.etcd.namespace(opts.paths.root).election(opts.paths.electionName, opts.ttlSeconds);
    this.log = opts.logger.child({ component: 'leadership' });
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
    if (!this.isLeader || this.leading === null) throw new NotLeaderError();
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
        this.log.warn({ err: err.message }, 'campaign failed; campaigning again');
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
      const leaseId = key.slice(this.opts.paths.election.length);
      const sentAt = Date.now();
      const ttl = await this.leaseTtl(leaseId);
      if (gen !== this.generation || this.closed) return;
      if (ttl <= 0) throw new Error('lease already expired');
      this.validUntil = sentAt + ttl * 1000;
      this.leading = { abort: new AbortController(), guardKey: key, leaseId, since: Date.now() };
      this.armExpiry();
      this.confirmTimer = setInterval(() => void this.confirm(gen), this.confirmEveryMs);
      this.log.info({ key, leaseId, ttl }, 'HA leader elected');
      this.emit('elected', this.leading.abort.signal);
    } catch (err) {
      if (gen !== this.generation) return;
      this.log.warn({ err: (err as Error).message }, 'elected but cannot confirm the lease; campaigning again');
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
    lead.abort.abort(new NotLeaderError(`leadership lost: ${reason}`));
    this.log.warn({ reason, ledMs: Date.now() - lead.since }, 'HA leadership lost; leader work stopped');
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
