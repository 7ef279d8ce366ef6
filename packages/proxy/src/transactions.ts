/**
 * MULTI / EXEC / DISCARD / WATCH / UNWATCH when every key involved hashes to one slot.
 *
 * MULTI: the proxy queues the commands itself (answering +QUEUED, or an error that makes
 * EXEC answer -EXECABORT, as Redis does for queue-time errors — a key in another slot is one
 * with -CROSSSLOT). EXEC sends `MULTI <commands> EXEC` as ONE request on one backend
 * connection: its bytes are contiguous in the connection's batch, so no other client's
 * command can fall inside the transaction, and the client gets EXEC's reply. Routing happens
 * at EXEC time through the normal slot path, so a transaction on a migrating slot waits for
 * the barrier or has its keys moved first, like any other request.
 *
 * WATCH needs state on the server between WATCH and EXEC, which a shared connection cannot
 * keep (another client's EXEC would clear it). So WATCH pins the client to a connection of
 * its own to the slot's master; its commands on that slot use it until EXEC, DISCARD or
 * UNWATCH. A barrier for a migration of that slot waits up to `graceMs` for the WATCH to end:
 * meanwhile this client's commands on the slot keep going over the pinned connection (the
 * slot has not moved — this proxy has not acked), so a compare-and-set in progress finishes
 * in the old group. A WATCH still open after the grace is aborted, its pin drained and
 * dropped: EXEC then answers nil, exactly what a client sees when a watched key changed — CAS
 * loops retry, and nothing runs against the old group.
 */
import {
  encodeCommand,
  encodeError,
  extractKeyIndexes,
  keySlot,
  nullArray,
  OK,
  QUEUED,
  MAY_WRITE,
  type CommandInfo,
} from '@reborn/protocol';
import { BackendConnection, type BackendOptions, type BackendRequest } from './backend.js';
import type { WatchState } from './client-state.js';
import type { Forwarder } from './forward.js';
import type { ClientRequest } from './request.js';
import type { Router } from './router.js';
import type { Session } from './session.js';

const CROSSSLOT = encodeError("CROSSSLOT Keys in request don't hash to the same slot");
const EXECABORT = encodeError('EXECABORT Transaction discarded because of previous errors.');
/** Proxy-local commands that are also plain Redis commands, fine inside a transaction. */
const LOCAL_IN_MULTI = new Set(['ping', 'echo', 'time']);

export interface TransactionsOptions {
  router: Router;
  /** For WATCH's pinned connections: the pool's connection settings. */
  backendOptions: BackendOptions;
  /** The slot path EXEC and WATCH go through (barrier holds, key moves). */
  forward: Forwarder;
  /** How long a barrier waits for an open WATCH on its slots before aborting it. */
  graceMs: number;
  /** Most bytes one MULTI may queue: the proxy holds the queue until EXEC. */
  maxQueuedBytes: number;
}

export class Transactions {
  private readonly watches = new Set<WatchState>();
  /**
   * Pinned connections of ended WATCHes whose last commands are still in flight, by slot: a
   * barrier for that slot must wait for them too (they run in the old group).
   */
  private readonly draining = new Map<BackendConnection, { slot: number; closed: Promise<void> }>();

  private readonly router: Router;
  private readonly graceMs: number;
  private readonly maxQueuedBytes: number;

  constructor(private readonly opts: TransactionsOptions) {
    this.router = opts.router;
    this.graceMs = opts.graceMs;
    this.maxQueuedBytes = opts.maxQueuedBytes;
  }

  /** True when `name` must be queued rather than run: the session is inside MULTI. */
  queues(session: Session, name: string): boolean {
    return session.tx !== null && name !== 'exec' && name !== 'discard' && name !== 'multi' && name !== 'watch' && name !== 'quit';
  }

  handle(session: Session, req: ClientRequest, cmd: CommandInfo, args: Buffer[], raw: Buffer | null): void {
    switch (cmd.name) {
      case 'multi':
        if (session.tx !== null) {
          req.resolve(encodeError('ERR MULTI calls can not be nested'));
          return;
        }
        session.tx = { queued: [], bytes: 0, slot: session.watch?.slot ?? -1, failed: false };
        req.resolve(OK);
        return;
      case 'exec':
        this.exec(session, req);
        return;
      case 'discard':
        if (session.tx === null) {
          req.resolve(encodeError('ERR DISCARD without MULTI'));
          return;
        }
        session.tx = null;
        this.unwatch(session);
        req.resolve(OK);
        return;
      case 'watch':
        this.watch(session, req, args, raw);
        return;
      case 'unwatch':
        this.unwatch(session);
        req.resolve(OK);
        return;
    }
  }

  /** Queues a command inside MULTI, or answers the queue-time error that will abort EXEC. */
  queue(session: Session, req: ClientRequest, cmd: CommandInfo, args: Buffer[], raw: Buffer | null): void {
    const tx = session.tx!;
    const fail = (reply: Buffer): void => {
      tx.failed = true;
      req.resolve(reply);
    };
    const policy = cmd.policy;
    if (policy.kind === 'unsupported') {
      fail(encodeError(`ERR command '${cmd.name.replace('|', ' ')}' is not supported by reborn: ${policy.reason}`));
      return;
    }
    if ((policy.kind === 'local' && !LOCAL_IN_MULTI.has(cmd.name)) || policy.kind === 'fanout') {
      fail(encodeError(`ERR command '${cmd.name.replace('|', ' ')}' is not allowed inside MULTI through reborn`));
      return;
    }
    let keys: Buffer[] = [];
    if (policy.kind === 'split') {
      const step = policy.merge === 'mset' ? 2 : 1;
      for (let i = 1; i < args.length; i += step) keys.push(args[i]!);
    } else if (policy.kind === 'route') {
      try {
        keys = extractKeyIndexes(cmd, args).map((i) => args[i]!);
      } catch (err) {
        fail(encodeError(`ERR ${(err as Error).message}`));
        return;
      }
    }
    for (const key of keys) {
      const slot = keySlot(key);
      if (tx.slot === -1) tx.slot = slot;
      else if (slot !== tx.slot) {
        fail(CROSSSLOT);
        return;
      }
    }
    if (tx.failed) {
      // Doomed already (EXEC will answer EXECABORT): nothing more is kept.
      req.resolve(QUEUED);
      return;
    }
    const payload = raw ?? encodeCommand(args);
    tx.bytes += payload.length;
    if (tx.bytes > this.maxQueuedBytes) {
      tx.queued = [];
      fail(encodeError(`ERR MULTI queued more than ${this.maxQueuedBytes} bytes (--max-multi-bytes); the transaction is discarded at EXEC`));
      return;
    }
    tx.queued.push({ payload, keys, write: cmd.write || MAY_WRITE.has(cmd.name) });
    req.resolve(QUEUED);
  }

  private exec(session: Session, req: ClientRequest): void {
    const tx = session.tx;
    if (tx === null) {
      req.resolve(encodeError('ERR EXEC without MULTI'));
      return;
    }
    session.tx = null;
    const watch = session.watch;
    session.watch = null;
    if (tx.failed || (watch !== null && watch.aborted)) {
      watch?.release();
      req.resolve(tx.failed ? EXECABORT : nullArray(session.resp));
      return;
    }
    const parts: Buffer[] = [MULTI, ...tx.queued.map((q) => q.payload), EXEC];
    const composite: BackendRequest = {
      payload: Buffer.concat(parts),
      write: tx.queued.some((q) => q.write),
      skipReplies: tx.queued.length + 1,
      resolve: (reply) => {
        watch?.release();
        req.resolve(reply);
      },
    };
    const keys = tx.queued.flatMap((q) => q.keys);
    if (watch?.conn) {
      // WATCH state lives on the pinned connection: EXEC must run there (out of WAIT's view),
      // but through the slot path, so that in a migrating slot the queued commands' keys are
      // moved to the target first, as the watched ones were.
      composite.pinned = watch.conn;
      this.opts.forward.sendToSlot(session, composite, watch.slot, keys);
      return;
    }
    const slot = tx.slot >= 0 ? tx.slot : this.router.firstServed()?.id;
    if (slot === undefined) {
      composite.resolve(encodeError('ERR no slot is served: run reborn-config slot init'));
      return;
    }
    this.opts.forward.sendToSlot(session, composite, slot, keys);
  }

  private watch(session: Session, req: ClientRequest, args: Buffer[], raw: Buffer | null): void {
    if (session.tx !== null) {
      req.resolve(encodeError('ERR WATCH inside MULTI is not allowed'));
      return;
    }
    const slot = keySlot(args[1]!);
    for (let i = 2; i < args.length; i++) {
      if (keySlot(args[i]!) !== slot) {
        req.resolve(CROSSSLOT);
        return;
      }
    }
    const current = session.watch;
    if (current !== null && current.slot !== slot) {
      req.resolve(CROSSSLOT);
      return;
    }
    let state = current;
    if (state === null) {
      // Pin a connection to the slot's owner: the master when online, the target when
      // migrating (the watched keys are moved there first, by sendToSlot). In pre_migrate the
      // slot is about to move: such a WATCH can only end in an aborted EXEC.
      const entry = this.router.slots[slot]!;
      const usable = (entry.state === 'online' || entry.state === 'migrating') && entry.master !== null;
      // With the master's write policy: writes here (EXEC too) are refused below minInSync,
      // and in --durable mode wait for the in-sync replicas.
      const conn = usable ? new BackendConnection(entry.master!.addr, { ...this.opts.backendOptions, resp: session.resp }, entry.master!.writePolicy) : null;
      let ended!: () => void;
      const release = (): void => {
        if (!this.watches.delete(state!)) return;
        session.forgetWhenClosed(release);
        if (session.watch === state) session.watch = null;
        // Commands pipelined before the UNWATCH or DISCARD still get their replies, and a
        // barrier waiting for this WATCH (settleWatches) waits for them too: they run in A.
        const conn = state!.conn;
        state!.conn = null;
        if (conn === null) {
          ended();
          return;
        }
        // Closed when drained, or when it failed: then its failed requests must be settled too.
        const closed = new Promise<void>((resolve) => conn.closeWhenDrained(resolve)).then(() => conn.whenSettled());
        this.draining.set(conn, { slot, closed });
        void closed.then(() => {
          this.draining.delete(conn);
          ended();
        });
      };
      state = { slot, conn, aborted: conn === null, release, ended: new Promise((resolve) => (ended = resolve)) };
      this.watches.add(state);
      session.whenClosed(release);
      session.watch = state;
    }
    if (state.conn === null) {
      state.aborted = true;
      req.resolve(OK);
      return;
    }
    req.payload = raw ?? encodeCommand(args);
    req.pinnedOnly = true;
    // Through the slot path: a migrating slot's watched keys are moved to the target first;
    // the request then goes over the pinned connection (Dispatcher.deliver).
    this.opts.forward.sendToSlot(session, req, slot, args.slice(1));
  }

  /** RESET: the open transaction is discarded and every WATCH dropped. */
  reset(session: Session): void {
    session.tx = null;
    this.unwatch(session);
  }

  private unwatch(session: Session): void {
    session.watch?.release();
    session.watch = null;
  }

  /**
   * Before a barrier acks: every WATCH on one of `slots` gets `graceMs` to end; one still
   * open then is aborted, its pinned connection drained (requests already sent there
   * answered) and closed. A WATCH that ended counts once its pinned connection has drained.
   * WATCHes made after the barrier began never pin (pre_migrate).
   */
  async settleWatches(slots: ReadonlySet<number>): Promise<void> {
    const affected = [...this.watches].filter((w) => slots.has(w.slot) && w.conn !== null);
    const ended = [...this.draining.values()].filter((d) => slots.has(d.slot)).map((d) => d.closed);
    await Promise.all([
      ...ended,
      ...affected.map(async (w) => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([w.ended, new Promise((r) => (timer = setTimeout(r, this.graceMs)))]);
        clearTimeout(timer);
        if (w.conn === null) return; // ended within the grace
        w.aborted = true;
        const conn = w.conn!;
        w.conn = null;
        // Every request sent on it has its reply, or will never run (backend.ts "Draining").
        await conn.whenSettled();
        conn.close();
      }),
    ]);
  }

  /**
   * `addr` is no longer its group's master: WATCHes pinned to it are aborted (a later EXEC
   * answers nil), and what is in flight on the pinned connection (an EXEC sent before the
   * switch) fails with `reply`: it may or may not have run on the old master.
   */
  abortWatchesOn(addr: string, reply: Buffer): void {
    for (const w of this.watches) {
      if (w.conn === null || w.conn.addr !== addr) continue;
      w.aborted = true;
      const conn = w.conn;
      w.conn = null;
      conn.close('its group failed over to another master', reply);
    }
  }

  /** Open WATCHes with a pinned connection, and requests in flight on those (for /api/proxy). */
  pinnedView(): { watches: number; inFlight: number } {
    let watches = 0;
    let inFlight = 0;
    for (const w of this.watches) {
      if (w.conn === null) continue;
      watches++;
      inFlight += w.conn.pending;
    }
    return { watches, inFlight };
  }

  closeAll(): void {
    for (const w of [...this.watches]) w.release();
  }
}

const MULTI = Buffer.from('*1\r\n$5\r\nMULTI\r\n');
const EXEC = Buffer.from('*1\r\n$4\r\nEXEC\r\n');
