/**
 * The proxy's side of the migration barrier (docs/architecture.md §4, "The 2PC barrier"): acks
 * every barrier action that names this proxy, once.
 *
 * The watch delivers actions after the slot changes they guard. For an action that names this
 * proxy, the router already holds new requests of those slots once the table holds the
 * action's revision; we snapshot how many requests each backend connection has been sent,
 * wait until all of them are answered, and only then write the ack.
 *
 * A key hold (action kind `keys`, a big-key move began): the table holding the action's
 * revision means the move record is applied and its keys are held (key-holds.ts); the
 * requests already sent for the action's slots are drained as above, then the ack. Blocked
 * commands and WATCHes of those slots are left alone: the rest of the slot keeps flowing.
 *
 * Invariant: an ack is written only after the table holds the action's revision and every
 * request sent before that has been answered — never undrained. Stopping or a fence recovery
 * (forget) ends the waits in progress without acking.
 */
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { ActionInfo, Barrier } from '@reborn/coordinator';
import type { BlockingCommands } from './blocking.js';
import { Router } from './router.js';
import type { TopologyFollower } from './topology-follower.js';
import type { Transactions } from './transactions.js';

export interface BarrierAcksOptions {
  proxyId: string;
  router: Router;
  blocking: BlockingCommands;
  transactions: Transactions;
  /** The barrier and the follower exist once the proxy reached etcd; actions come only after that. */
  barrier: () => Barrier;
  follower: () => TopologyFollower;
  /** Counts the acks written. */
  acked: Counter;
  stopping: () => boolean;
  logger: Logger;
}

/** A promise with its resolve function. */
function settleable(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

export class BarrierAcks {
  /** Actions acked (or being drained) by this process, so a replayed action is acked once. */
  private readonly handledActions = new Set<number>();
  /** Settles when the drains of the actions being handled must stop waiting (stop, fence recovery). */
  private waitsCancelled = settleable();

  constructor(private readonly opts: BarrierAcksOptions) {}

  /** A complete table was installed: ack any barrier action naming us that we have not acked. */
  ackListed(): void {
    this.opts.barrier().listActions().then(
      (actions) => actions.forEach((a) => this.onAction(a)),
      (err: Error) => this.opts.logger.warn({ err: err.message }, 'cannot list barrier actions'),
    );
  }

  /** Ends every barrier drain in progress; later actions wait on a fresh signal. */
  cancelWaits(): void {
    this.waitsCancelled.resolve();
    this.waitsCancelled = settleable();
  }

  /**
   * A fence recovery starts over: every action is handled again (and acked by that run), and
   * the drains in progress stop waiting.
   */
  forget(): void {
    this.handledActions.clear();
    this.cancelWaits();
  }

  /** Drains the requests already sent, then acks (docs/architecture.md §4, "The 2PC barrier"). */
  onAction(action: ActionInfo): void {
    const { proxyId, logger, stopping } = this.opts;
    if (!action.proxies.includes(proxyId) || this.handledActions.has(action.seq)) return;
    this.handledActions.add(action.seq);
    const started = Date.now();
    const ack = async (): Promise<void> => {
      // First the slot writes the action names must be in our table (an action listed after a
      // load can be newer than the table): only then are new requests for the slots held, so
      // the drain below covers every request that can still reach the old group.
      let applied = false;
      await Promise.race([this.opts.follower().whenApplied(action.revision).then(() => (applied = true)), this.waitsCancelled.promise]);
      if (!applied || stopping() || !this.handledActions.has(action.seq)) return;
      const marker = this.opts.router.drainMarker(action.slots);
      if (action.kind === 'slots') {
        // Commands blocked on these slots must not pop from the old group after the barrier,
        // and no WATCH may keep a connection to it: open ones get --watch-grace to finish.
        // Not for a key hold: only the move's keys are held, the slot keeps flowing.
        const slots = new Set(action.slots);
        await Promise.all([this.opts.blocking.unblock(slots), this.opts.transactions.settleWatches(slots)]);
      }
      // Usually a round trip; a request that timed out waits for its CLIENT KILL, on a stalled
      // server maybe until the barrier fences us. Stopping or a fence recovery (which forgets
      // the handled actions) ends the wait: this ack is no longer ours to write — never
      // written undrained, even if the action is handled again by then (that run acks it).
      let drained = false;
      if (!stopping() && this.handledActions.has(action.seq)) {
        await Promise.race([Router.whenDrained(marker).then(() => (drained = true)), this.waitsCancelled.promise]);
      }
      if (!drained || stopping() || !this.handledActions.has(action.seq)) return;
      for (let attempt = 1; !stopping(); attempt++) {
        try {
          if (await this.opts.barrier().ack(action.seq, proxyId)) {
            this.opts.acked.inc();
            logger.info({ action: action.seq, kind: action.kind, slots: action.slots.length, drainMs: Date.now() - started }, 'barrier acked');
          }
          return;
        } catch (err) {
          logger.warn({ err: (err as Error).message, action: action.seq, attempt }, 'cannot ack barrier action yet');
          await new Promise((r) => setTimeout(r, Math.min(100 * attempt, 1000)));
        }
      }
    };
    void ack();
  }
}
