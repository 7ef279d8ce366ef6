/**
 * One client connection: parses its requests, hands each to the dispatcher, and writes the
 * replies back strictly in request order.
 *
 * Order: every parsed request is appended to a singly linked reply queue before it is
 * dispatched. Replies may complete in any order (different backends, merges); only the
 * queue's head is ever written, and a completed head releases every completed request
 * behind it.
 *
 * Gate: a request whose slot is behind a migration barrier (held) or whose keys are being
 * moved first (MIGRATE) "gates" the session until it has been sent to its backend. Requests
 * parsed meanwhile are parked and routed afterwards, in order, so one client's commands run
 * in the order it sent them even when a slot changes state between two of them.
 *
 * Bounds: when `maxPipeline` requests are waiting, or the socket's send buffer is over its
 * high-water mark, the session stops reading from the client; it resumes once both are
 * clear. A client whose unsent output passes `maxClientOutputBytes` anyway (one huge reply)
 * is disconnected, so a client that never reads cannot grow proxy memory without bound.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { encodeError, MalformedRequestError, ProtocolError, RequestParser, type Protocol } from '@reborn/protocol';
import type { Flushable, Flusher } from './flusher.js';
import { Fifo } from './fifo.js';
import type { ClientSubscriptions, TxState, WatchState } from './client-state.js';
import { ClientRequest, type ReplySink } from './request.js';
import type { ClientTracking } from './tracking.js';

export interface SessionLimits {
  maxPipeline: number;
  maxClientOutputBytes: number;
  maxBulkLength: number;
  maxMultibulkLength: number;
}

const EMPTY = Buffer.alloc(0);
/** How long a connection closed by the proxy (QUIT, protocol error) lingers for its last reply. */
const CLOSE_GRACE_MS = 1000;

export interface SessionHost {
  readonly flusher: Flusher;
  readonly logger: Logger;
  readonly limits: SessionLimits;
  readonly authRequired: boolean;
  dispatch(session: Session, args: Buffer[], raw: Buffer | null): void;
  requestDone(req: ClientRequest, now: number): void;
  sessionClosed(session: Session): void;
  protocolError(): void;
}

export class Session implements Flushable, ReplySink {
  flushQueued = false;
  /** Client-visible id (CLIENT ID) and the index that picks this session's backend connections. */
  readonly id: number;
  name: Buffer | null = null;
  /** CLIENT SETINFO LIB-NAME / LIB-VER (CLIENT LIST shows them). */
  libName: string | null = null;
  libVer: string | null = null;
  /** When the last command arrived (performance.now()), and its name: CLIENT LIST's idle= and cmd=. */
  lastCommandAt = performance.now();
  lastCommand = 'NULL';
  /** The protocol replies are in: 2, or 3 after HELLO 3 (until RESET or HELLO 2). */
  resp: Protocol = 2;
  authenticated: boolean;
  /** Inside MULTI: the queued transaction (transactions.ts). */
  tx: TxState | null = null;
  /** After WATCH: the slot and the pinned connection (transactions.ts). */
  watch: WatchState | null = null;
  /** CLIENT REPLY OFF: no reply is written until CLIENT REPLY ON. */
  replyOff = false;
  /** CLIENT REPLY SKIP: the next command's reply is not written. */
  skipNextReply = false;
  /** Groups this client wrote to over the shared connections: where WAIT asks (dispatch.ts). */
  wroteTo: Set<number> | null = null;
  /**
   * The client wrote over a connection of its own (a blocking command, a write under WATCH)
   * since its last WAIT: WAIT on the shared connections cannot vouch for that write.
   */
  wroteOutsideWaitsView = false;
  /** Subscribed (pubsub.ts): in RESP2 only (P|S)(UN)SUBSCRIBE, PING, QUIT and RESET are allowed. */
  pubsub: ClientSubscriptions | null = null;
  /** CLIENT TRACKING is on: the client's tracking state (tracking.ts). Null when off. */
  tracking: ClientTracking | null = null;
  readonly connectedAt = Date.now();
  readonly remote: string;
  private head: ClientRequest | null = null;
  private tail: ClientRequest | null = null;
  private waiting = 0;
  private out: Buffer[] = [];
  private outBytes = 0;
  /** Bytes of replies ready but waiting behind an unanswered earlier request. */
  private heldReplyBytes = 0;
  private readPaused = false;
  private gates = 0;
  private readonly closeHooks = new Set<() => void>();
  /** The subset of closeHooks that also run when the client half-closes. */
  private readonly inputEndHooks = new Set<() => void>();
  private readonly parked = new Fifo<() => void>(8);
  /** whenAnswered() callers; null when none (the reply path checks only that). */
  private answeredWaiters: Array<() => void> | null = null;
  private closeAfterFlush = false;
  /** socket.end() has been called. */
  private ending = false;
  private closed = false;
  private readonly parser: RequestParser;
  /** The client half-closed: answer what it sent, then close. */
  private inputEnded = false;
  private readonly onRequest = (args: Buffer[], raw: Buffer | null): boolean => {
    if (this.closeAfterFlush) return false;
    this.host.dispatch(this, args, raw);
    // Past the pipeline bound, stop parsing even inside this chunk: the rest stays buffered.
    return this.waiting < this.host.limits.maxPipeline;
  };

  constructor(readonly socket: net.Socket, id: number, private readonly host: SessionHost) {
    this.id = id;
    this.authenticated = !host.authRequired;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.parser = new RequestParser({
      maxBulkLength: host.limits.maxBulkLength,
      maxMultibulkLength: host.limits.maxMultibulkLength,
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.updateReading());
    socket.on('end', () => {
      this.inputEnded = true;
      // A client that ends its input cannot be waiting for a blocking command to wake:
      // cancel those (so they consume nothing), answer the rest, then close. Not a WATCH:
      // an EXEC it sent before its FIN must still see it.
      for (const hook of this.inputEndHooks) {
        this.closeHooks.delete(hook);
        hook();
      }
      this.inputEndHooks.clear();
      this.host.flusher.mark(this);
    });
    socket.on('error', () => this.onClose());
    socket.on('close', () => this.onClose());
  }

  /** Requests parsed but not yet answered to the client. */
  get pendingRequests(): number {
    return this.waiting;
  }

  /**
   * Resolves once every request parsed so far is answered (or the connection closed): how
   * a stopping proxy lets in-flight requests finish. Woken by the reply queue itself.
   */
  whenAnswered(): Promise<void> {
    if (this.waiting === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => (this.answeredWaiters ??= []).push(resolve));
  }

  private wakeAnsweredWaiters(): void {
    const waiters = this.answeredWaiters;
    this.answeredWaiters = null;
    if (waiters !== null) for (const resolve of waiters) resolve();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Closed, or closing once its last replies are out (after QUIT): nothing new reaches it. */
  get isEnding(): boolean {
    return this.closed || this.closeAfterFlush;
  }

  /**
   * Runs `hook` when the client connection closes, or already when the client half-closes
   * if `alsoWhenInputEnds` (a blocked command: nobody is left to wait for its wake-up).
   */
  whenClosed(hook: () => void, alsoWhenInputEnds = false): void {
    // Registered by a request that ran late (parked behind a held one): the client is gone.
    if (this.closed || (alsoWhenInputEnds && this.inputEnded)) {
      hook();
      return;
    }
    this.closeHooks.add(hook);
    if (alsoWhenInputEnds) this.inputEndHooks.add(hook);
  }

  forgetWhenClosed(hook: () => void): void {
    this.closeHooks.delete(hook);
    this.inputEndHooks.delete(hook);
  }

  get isGated(): boolean {
    return this.gates > 0;
  }

  gate(): void {
    this.gates++;
  }

  /** Routes the requests parked behind the gate, in order, until one of them gates again. */
  ungate(): void {
    this.gates--;
    while (this.gates === 0 && this.parked.length > 0) {
      try {
        this.parked.shift()!();
      } catch (err) {
        // Runs inside another session's wake-up (a slot released, a key moved): a bug here
        // must cost this client its connection, not the others their held requests.
        this.host.logger.error({ err, client: this.remote }, 'unexpected error while running a parked request');
        this.close();
        return;
      }
    }
  }

  park(route: () => void): void {
    this.parked.push(route);
  }

  /**
   * CLIENT REPLY OFF/SKIP decide whether `req`'s reply will be written. Asked when the
   * command runs, not when it arrives: a CLIENT REPLY parked ahead of it must count.
   */
  applyReplyMode(req: ClientRequest): void {
    if (this.replyOff) {
      req.silent = true;
    } else if (this.skipNextReply) {
      req.silent = true;
      this.skipNextReply = false;
    }
  }

  /**
   * Appends an entry to the reply queue, in arrival order: a command (the dispatcher, before
   * it runs), or a reply the proxy makes itself.
   */
  enqueue(payload: Buffer, statIndex: number, now: number): ClientRequest {
    const req = new ClientRequest(this, payload, statIndex, now);
    if (this.tail === null) this.head = req;
    else this.tail.next = req;
    this.tail = req;
    this.waiting++;
    return req;
  }

  /** RESET's part of the connection state that the session owns: name and authentication. */
  resetState(): void {
    this.name = null;
    this.replyOff = false;
    this.skipNextReply = false;
    this.authenticated = !this.host.authRequired;
  }

  /**
   * A pub/sub message for this client: written behind every reply still owed, never before
   * (a message must not overtake the confirmation of its own SUBSCRIBE).
   */
  push(message: Buffer): void {
    // Not silenced by CLIENT REPLY OFF/SKIP: Redis 7.0 always sends pub/sub pushes.
    if (this.closed) return;
    if (this.head === null) {
      this.out.push(message);
      this.outBytes += message.length;
      this.host.flusher.mark(this);
    } else {
      // Not a command: neither silenced nor taking a pending SKIP.
      this.enqueue(message, -1, 0).resolve(message);
    }
  }

  /** Replies with `reply` in order, then closes the connection (QUIT, protocol errors). */
  endWith(reply: Buffer, now: number): void {
    // A reply to what the client sent: CLIENT REPLY OFF/SKIP apply, as in Redis.
    const req = this.enqueue(reply, -1, now);
    const answer = (): void => {
      this.applyReplyMode(req);
      req.resolve(reply);
    };
    // Behind parked requests, a CLIENT REPLY among them decides whether it is written.
    if (this.isGated) this.park(answer);
    else answer();
    this.endAfterReplies();
  }

  /**
   * Takes no more requests; the connection closes once every queued reply has been written.
   * Input is still read, and dropped, so a client that keeps writing never blocks on a full
   * socket while its last replies are on the way (see flush for the close itself).
   */
  endAfterReplies(): void {
    this.closeAfterFlush = true;
    if (this.readPaused && !this.inputEnded) {
      this.readPaused = false;
      this.socket.resume();
    }
    this.host.flusher.mark(this);
  }

  replyReady(req: ClientRequest): void {
    if (this.closed) return;
    if (req !== this.head) {
      // Answered, but behind an earlier request still waiting (a WAIT, a held one): these
      // replies count against the output limit too, or a pipeline behind one slow request
      // could pile up without bound.
      if (!req.silent) this.heldReplyBytes += req.reply!.length;
      this.overOutputLimit();
      return;
    }
    const now = performance.now();
    let released: Array<() => void> | null = null;
    let r: ClientRequest | null = req;
    while (r !== null && r.reply !== null) {
      if (r.onReleased !== null) (released ??= []).push(r.onReleased);
      if (r !== req && !r.silent) this.heldReplyBytes -= r.reply.length;
      if (!r.silent) {
        this.out.push(r.reply);
        this.outBytes += r.reply.length;
      }
      this.waiting--;
      this.host.requestDone(r, now);
      r = r.next;
    }
    this.head = r;
    if (r === null) this.tail = null;
    if (this.waiting === 0 && this.answeredWaiters !== null) this.wakeAnsweredWaiters();
    this.host.flusher.mark(this);
    // After the queue is consistent: a callback may run parked requests (switchProtocol).
    if (released !== null) for (const fn of released) fn();
  }

  /**
   * HELLO or RESET changes the protocol from `req` on. Requests before it went over backend
   * connections of the old protocol, later ones go over the new protocol's: so that none of
   * them can overtake an earlier one, the session waits (gated) until every earlier request
   * is answered, unless they already are.
   */
  switchProtocol(req: ClientRequest, resp: Protocol): void {
    if (resp === this.resp) return;
    this.resp = resp;
    if (req === this.head) return;
    this.gate();
    req.onReleased = () => this.ungate();
  }

  flush(): void {
    if (this.closed) return;
    if (this.out.length > 0) {
      const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out, this.outBytes);
      this.out = [];
      this.outBytes = 0;
      this.socket.write(data);
      if (this.overOutputLimit()) return;
    }
    this.updateReading();
    // Close once every request is answered and written: after QUIT or a protocol error, or
    // when the client half-closed (what is still buffered then is an incomplete request).
    const inputDone = this.closeAfterFlush || (this.inputEnded && !this.socket.writableNeedDrain);
    if (inputDone && this.head === null && this.out.length === 0 && !this.closed && !this.ending) {
      this.ending = true;
      this.socket.end();
      // After QUIT or a protocol error Redis closes outright; so do we, once the client has
      // had a moment to read the last reply, even if it never closes its side.
      if (this.closeAfterFlush) setTimeout(() => this.close(), CLOSE_GRACE_MS).unref();
    }
  }

  /** Output unsent plus replies held behind a slower one, over --max-client-output: cut off. */
  private overOutputLimit(): boolean {
    const unsent = this.socket.writableLength;
    if (unsent + this.heldReplyBytes <= this.host.limits.maxClientOutputBytes) return false;
    this.host.logger.warn({ client: this.remote, id: this.id, unsent, held: this.heldReplyBytes }, 'client output buffer over limit, disconnecting');
    this.close();
    return true;
  }

  close(): void {
    this.socket.destroy();
    this.onClose();
  }

  private onData(chunk: Buffer): void {
    if (this.closeAfterFlush) return; // after QUIT or a protocol error: dropped
    try {
      this.parser.feed(chunk, this.onRequest);
    } catch (err) {
      this.onInputError(err);
      return;
    }
    this.updateReading();
  }

  private onInputError(err: unknown): void {
    const now = performance.now();
    this.parser.reset();
    if (err instanceof ProtocolError) {
      this.host.protocolError();
      // Redis answers a protocol error and closes: the stream cannot be re-synchronised.
      const message = err instanceof MalformedRequestError || err.message.startsWith('Protocol error') ? err.message : `Protocol error: ${err.message}`;
      this.endWith(encodeError(`ERR ${message}`), now);
    } else {
      this.host.logger.error({ err, client: this.remote }, 'unexpected error while handling client input');
      this.endWith(encodeError('ERR internal proxy error'), now);
    }
  }

  private pauseReading(): void {
    if (!this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    }
  }

  private updateReading(): void {
    if (this.closed || this.closeAfterFlush) return;
    const overloaded = (): boolean => this.waiting >= this.host.limits.maxPipeline || this.socket.writableNeedDrain;
    if (!overloaded() && this.parser.hasBuffered) {
      // Requests left in the parser when the pipeline bound stopped it: continue with them.
      try {
        this.parser.feed(EMPTY, this.onRequest);
      } catch (err) {
        this.onInputError(err);
        return;
      }
    }
    if (overloaded()) {
      this.pauseReading();
    } else if (this.readPaused && !this.inputEnded) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.parser.reset();
    // Requests still in flight complete into nothing: their replies are dropped on arrival.
    this.head = null;
    this.tail = null;
    this.out = [];
    for (const hook of this.closeHooks) hook();
    this.closeHooks.clear();
    this.wakeAnsweredWaiters();
    this.host.sessionClosed(this);
  }
}
