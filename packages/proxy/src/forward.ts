/**
 * Forwarding: the slot path every keyed request takes from the dispatcher or a transaction
 * (EXEC, WATCH) to redis, by the slot's state in the router's table:
 *
 *   online      → the owner's master (a shared pipelined connection, the client's WATCH pin,
 *                 or a dedicated connection for a blocking command);
 *   pre_migrate → held by the router until the barrier moves the slot on, then forwarded by
 *                 its new state (except over a WATCH's pinned connection, during its grace);
 *   migrating   → the touched keys are MIGRATEd from the source master first, then the
 *                 request goes to the target master;
 *   offline     → an error.
 *
 * Before any of that, a request naming a key under a big-key move waits for the move
 * (key-holds.ts), whatever the slot's state, and is then routed again from the top. A MIGRATE
 * the target refuses with BUSYKEY is retried briefly; one it refuses for memory lets a read be
 * answered by the source (migrate-refusals.ts).
 *
 * Invariant: while a request waits for a hold or a key move its session is gated, so the
 * client's later commands run after it, in the order sent (session.ts, "Gate"). Routing and
 * slot state sit together: router.ts owns the table, this module the moves along it
 * (docs/architecture.md §3, "The request path in the proxy").
 */
import { encodeCommand, encodeError, errorReplyMessage, isErrorReply, OK, parseIntegerReply } from '@reborn/protocol';
import type { BackendRequest } from './backend.js';
import type { BackendPool } from './backend-pool.js';
import type { BlockingCommands } from './blocking.js';
import { pinnedConnection } from './client-state.js';
import type { KeyHolds } from './key-holds.js';
import { ON_TOUCH_MOVE_SCRIPT } from '@reborn/coordinator';
import { BUSYKEY_RETRY_DELAYS_MS, COPYING_RETRY_DELAYS_MS, classifyMigrateError, mayReadFromSource, targetFullMessage } from './migrate-refusals.js';
import type { Router, SlotEntry } from './router.js';
import type { Session } from './session.js';

/** The on-touch move script, encoded once (it goes out with every on-touch move of a migrating slot). */
const ON_TOUCH_SCRIPT = Buffer.from(ON_TOUCH_MOVE_SCRIPT);

/** MIGRATE's own timeout for moving the keys of one request. */
const MIGRATE_TIMEOUT_MS = '5000';

/** `keys` without repeats, first occurrence kept. */
function distinctKeys(keys: readonly Buffer[]): readonly Buffer[] {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  for (const k of keys) {
    const id = k.toString('latin1');
    if (!seen.has(id)) {
      seen.add(id);
      out.push(k);
    }
  }
  return out.length === keys.length ? keys : out;
}

export interface ForwarderOptions {
  router: Router;
  /** Where blocking commands get a connection of their own. */
  blocking: BlockingCommands;
  /** Keys under a big-key move: requests naming them wait. */
  holds: KeyHolds;
  /** A MIGRATE answered BUSYKEY: the key exists in both groups. Surfaced, never papered over. */
  onBusyKey: (slot: number, keys: readonly Buffer[]) => void;
}

export class Forwarder {
  private readonly router: Router;
  private readonly holds: KeyHolds;
  /** Reads answered by the source because the target refused their keys for memory. */
  sourceReads = 0;
  /** MIGRATEs retried after BUSYKEY (a key between copy and delete). */
  busyKeyRetries = 0;
  /** On-touch moves retried because the migration runner was copying the key (TRYAGAIN). */
  copyingRetries = 0;
  /** On-touch moves retried because a key was big (BIGKEY: left to the runner's chunked move). */
  bigKeyRetries = 0;

  constructor(private readonly opts: ForwarderOptions) {
    this.router = opts.router;
    this.holds = opts.holds;
  }

  /** True when some key of `slot` is held: a caller that bypasses sendToSlot for online slots must not. */
  holdsKeysIn(slot: number): boolean {
    return this.holds.holdsIn(slot);
  }

  /** The last step of routing: a shared pipelined connection, or a dedicated one for a blocking command. */
  private deliver(session: Session, pool: BackendPool, breq: BackendRequest, slot: number, blocking: boolean, keys: readonly Buffer[] = []): void {
    if (blocking) {
      // Redis runs nothing else of a client while it is blocked: neither does the proxy.
      session.gate();
      if (breq.write === true) session.wroteOutsideWaitsView = true;
      const entry = this.router.slots[slot];
      const run = (): void => {
        if (this.router.slots[slot] !== entry || this.holds.heldKey(slot, keys) !== null) {
          // The slot changed while the command waited (a barrier began: it could not see this
          // command to unblock it), or a move began to hold its key: route it again by the
          // slot's state, as a new one.
          this.sendToSlot(session, breq, slot, keys, true);
          session.ungate();
          return;
        }
        this.opts.blocking.run(session, pool, slot, {
          payload: breq.payload,
          write: breq.write === true,
          resolve: (reply) => {
            breq.resolve(reply);
            session.ungate();
          },
        });
      };
      // It runs on a connection of its own: it must not overtake this client's earlier
      // requests to the same server (RPUSH then BLPOP in one pipeline), still on the shared one.
      const shared = pool.pick(session.id, session.resp);
      if (shared.settled >= shared.sent) {
        run();
        return;
      }
      shared.whenSettled(shared.sent).then(run).catch((err: unknown) => {
        // A bug here must cost this client its command, not leave it gated for ever.
        breq.resolve(encodeError(`ERR internal proxy error: ${(err as Error).message}`));
        session.ungate();
      });
      return;
    }
    // After WATCH, this client's commands on the watched slot share its pinned connection
    // (EXEC names it itself: the WATCH is already detached from the session then).
    const pinned = breq.pinned ?? (session.watch === null ? null : pinnedConnection(session, slot));
    if (pinned !== null) {
      if (breq.write === true) session.wroteOutsideWaitsView = true;
      pinned.send(breq);
    } else if (breq.pinnedOnly === true) breq.resolve(OK);
    else {
      if (breq.write === true) (session.wroteTo ??= new Set()).add(this.router.slots[slot]!.groupId);
      pool.pick(session.id, session.resp).send(breq);
    }
  }

  /**
   * Sends one backend request whose keys all belong to `slot`, by the slot's state:
   *   online      → the owner's master;
   *   pre_migrate → held until the barrier moves the slot on, then sent by its new state
   *                 (except over a WATCH's pinned connection, during its grace);
   *   migrating   → `MIGRATE … KEYS <keys>` on the source master first (never REPLACE: a
   *                 BUSYKEY reply that outlasts its retries means the key exists in both
   *                 groups, a bug to surface), then the request to the target master;
   *   offline     → an error.
   * A request naming a held key (key-holds.ts) first waits for its move, in any state.
   */
  sendToSlot(session: Session, breq: BackendRequest, slot: number, keys: readonly Buffer[], blocking = false): void {
    if (this.holds.holdsIn(slot)) {
      const held = this.holds.heldKey(slot, keys);
      if (held !== null) {
        // Gated like a barrier hold: the client's later commands stay behind this one.
        session.gate();
        this.holds.wait(slot, held, ...this.whenReleased(session, breq, slot, keys, blocking));
        return;
      }
    }
    const entry = this.router.slots[slot]!;
    if (entry.master === null) {
      breq.resolve(encodeError(`ERR ${entry.unavailable ?? `slot ${slot} is not served`}`));
      return;
    }
    if (entry.state === 'online') {
      this.deliver(session, entry.master, breq, slot, blocking, keys);
      return;
    }
    if (entry.state === 'pre_migrate' && !blocking && (breq.pinned !== undefined || pinnedConnection(session, slot) !== null)) {
      // A WATCH begun before the barrier may finish in the old group: this proxy has not
      // acked, so the slot's keys have not moved (Transactions.settleWatches).
      this.deliver(session, entry.master, breq, slot, false);
      return;
    }
    session.gate();
    if (entry.state === 'pre_migrate') {
      this.router.hold(slot, ...this.whenReleased(session, breq, slot, keys, blocking));
      return;
    }
    if (keys.length === 0) {
      this.deliver(session, entry.master, breq, slot, blocking, keys);
      session.ungate();
      return;
    }
    // A key named twice (LMOVE q q, MULTI … INCR k … EXPIRE k) must be asked for once:
    // MIGRATE would move the first and answer BUSYKEY for the second.
    const unique = keys.length === 1 ? keys : distinctKeys(keys);
    this.migrateThenDeliver({ session, breq, slot, entry, keys, unique, blocking }, 0);
  }

  /** What a held (gated) request does when released — routed again by the slot's state — or failed. */
  private whenReleased(session: Session, breq: BackendRequest, slot: number, keys: readonly Buffer[], blocking: boolean): [() => void, (reply: Buffer) => void] {
    return [
      () => {
        this.sendToSlot(session, breq, slot, keys, blocking);
        session.ungate();
      },
      (reply) => {
        breq.resolve(reply);
        session.ungate();
      },
    ];
  }

  /**
   * `MIGRATE … KEYS <unique>` on the source master, then the request to the target. The
   * session is gated by the caller and ungated here once the request is on its way (or
   * answered): BUSYKEY retries and the OOM read fallback (migrate-refusals.ts) keep it gated.
   */
  private migrateThenDeliver(m: PendingMove, busyRetries: number, whole = false): void {
    const { session, breq, slot, entry, unique } = m;
    // MIGRATE inside the copy-lease script: a key the runner is copying answers TRYAGAIN, a big
    // key BIGKEY (the runner is asked to move it in pieces) — unless `whole`, the last resort.
    const migrate = encodeCommand([
      'EVAL', ON_TOUCH_SCRIPT, String(unique.length), ...unique, whole ? '1' : '0',
      entry.targetHost, entry.targetPort, '', '0', MIGRATE_TIMEOUT_MS, ...this.router.migrateAuth,
    ]);
    entry.source!.pick(session.id, session.resp).send({
      payload: migrate,
      resolve: (reply: Buffer) => {
        if (!isErrorReply(reply)) {
          // The keys are in the target now: deliver there, unless the slot or the holds changed.
          this.deliverAfterMove(m, entry.master!);
          return;
        }
        const message = errorReplyMessage(reply);
        const refusal = classifyMigrateError(message);
        const delays = refusal === 'busykey' ? BUSYKEY_RETRY_DELAYS_MS : COPYING_RETRY_DELAYS_MS;
        if (refusal === 'busykey' || refusal === 'copying' || refusal === 'bigkey') {
          if (refusal === 'busykey') this.busyKeyRetries++;
          else if (refusal === 'copying') this.copyingRetries++;
          else this.bigKeyRetries++;
          // A big key the runner never took (paused task, no runner): moved whole after all —
          // a stall of its source, but the client's request is served.
          const last = busyRetries >= delays.length;
          if (!last || refusal === 'bigkey') {
            setTimeout(() => {
              // The runner's move of the key began (a hold) or the slot moved on: route again.
              if (this.router.slots[slot] !== entry || this.holds.heldKey(slot, unique) !== null) this.routeAgain(m);
              else this.migrateThenDeliver(m, busyRetries + 1, last);
            }, last ? 0 : delays[busyRetries]);
            return;
          }
        }
        if (refusal === 'oom' && mayReadFromSource(breq, m.blocking)) {
          this.readFromSource(m, message);
          return;
        }
        if (refusal === 'busykey') this.opts.onBusyKey(slot, unique);
        breq.resolve(encodeError(refusal === 'oom' ? targetFullMessage(slot, message) : `ERR moving the keys of migrating slot ${slot} failed: ${message}`));
        session.ungate();
      },
    });
  }

  /**
   * Sends the request to `pool` (the target once its keys moved, the source for a read the
   * target refused) if the slot is as it was and none of its keys got held meanwhile; else
   * routes it again by the slot's current state (online in the target, a failover there, the
   * next move's barrier, or a key move that began). Ungates the session.
   */
  private deliverAfterMove(m: PendingMove, pool: BackendPool, toSource = false): void {
    const { session, breq, slot, entry, keys, blocking } = m;
    if (this.router.slots[slot] !== entry || this.holds.heldKey(slot, keys) !== null) this.routeAgain(m);
    else if (toSource) {
      this.sourceReads++;
      pool.pick(session.id, session.resp).send(breq);
      session.ungate();
    } else {
      this.deliver(session, pool, breq, slot, blocking, keys);
      session.ungate();
    }
  }

  private routeAgain(m: PendingMove): void {
    this.sendToSlot(m.session, m.breq, m.slot, m.keys, m.blocking);
    m.session.ungate();
  }

  /**
   * The target refused the keys for memory and the request only reads: the source still holds
   * them whole (see migrate-refusals.ts for why, and for the one race). One key: MIGRATE's
   * refusal says it is there. Several: only if EXISTS finds them all (some may have moved).
   */
  private readFromSource(m: PendingMove, message: string): void {
    const { session, breq, slot, entry, unique } = m;
    const source = entry.source!;
    if (unique.length === 1) {
      this.deliverAfterMove(m, source, true);
      return;
    }
    source.pick(session.id, session.resp).send({
      payload: encodeCommand(['EXISTS', ...unique]),
      resolve: (reply: Buffer) => {
        if (parseIntegerReply(reply) === BigInt(unique.length)) {
          this.deliverAfterMove(m, source, true);
        } else {
          breq.resolve(encodeError(targetFullMessage(slot, message)));
          session.ungate();
        }
      },
    });
  }
}

/** One request whose keys are being moved to the target of its migrating slot. */
interface PendingMove {
  readonly session: Session;
  readonly breq: BackendRequest;
  readonly slot: number;
  /** The slot's entry when the move began: a different one means the slot changed meanwhile. */
  readonly entry: SlotEntry;
  readonly keys: readonly Buffer[];
  readonly unique: readonly Buffer[];
  readonly blocking: boolean;
}
