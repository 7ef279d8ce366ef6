/**
 * A shared, pipelined connection to one redis-server (a pool of them: backend-pool.ts).
 *
 * Many client sessions multiplex onto each connection. A request's bytes go into the
 * connection's write batch (flushed once per event-loop turn by the Flusher) and the request
 * into its in-flight FIFO; redis answers in order, so each reply completes the FIFO's head.
 *
 * Failure is definite and fast: when the socket dies, times out (no reply for `timeoutMs`
 * while requests are waiting) or sends garbage, every request on it gets an
 * `-ERR backend <addr> …` reply at once. Reconnection is on demand with exponential backoff;
 * while a server is known down, requests fail immediately instead of queueing.
 *
 * Ordering: a client session always uses the same connection of a pool (by session index),
 * so two requests of one client to one server can never overtake each other.
 *
 * Identity and fencing: with `auth` set, each connection first authenticates as the proxy's
 * own ACL user, and no request is written before that AUTH succeeded — after a failed AUTH
 * redis would run the requests as the connection's previous (default) user, which is exactly
 * what fencing must prevent. When AUTH fails the connection asks `ACL GETUSER`: a missing
 * user (a server the proxy never used) is created; a disabled one is reported through
 * `auth.onRefused`, which decides: fenced (reborn-config disabled it: the connection fails)
 * or a stale server that still carries an old fence (the user was re-enabled: AUTH again).
 *
 * Draining: `sent` and `answered` count requests; a barrier snapshot of `sent` is drained
 * once `settled` reaches it: every request already sent has its reply, or will never run.
 * A request failed by the proxy (timed out, connection lost) may still run: redis reads what
 * reached its socket even after we hung up, e.g. once a long script or a SIGSTOP ends. So
 * each connection learns its redis client id in the handshake, and the requests of a failed
 * connection stay unsettled until `CLIENT KILL ID` on a fresh connection has answered (after
 * it, that client runs nothing more) or the server refuses connections (its process, and
 * the client with it, is gone).
 *
 * `whenSettled` is how a barrier or a WATCH's end waits for that: a promise the connection
 * resolves itself when its count reaches the mark (failed-client.ts does the CLIENT KILL).
 *
 * Write policy (in-sync.ts): a write is refused at `send`, before anything is written, while
 * its group's in-sync set is below minInSync; with `policy.replicas > 0` (durable mode) every
 * write batch written in one flush is followed by one `WAIT <replicas> <timeout>`
 * (durable-writes.ts). The pool is in backend-pool.ts, the shared shapes in backend-types.ts.
 *
 * Failover: `close(reason, reply)` answers every request still waiting with `reply` and drops
 * the socket, so nothing the old master says afterwards reaches a client (router.ts).
 */
import net from 'node:net';
import { encodeCommand, encodeError, errorReplyMessage, isErrorReply, parseIntegerReply, ReplyScanner, splitAggregateReply, splitArrayReply } from '@reborn/protocol';
import { proxyAclRules, splitAddr } from '@reborn/coordinator';
import type { BackendAuth, BackendOptions, BackendRequest, WritePolicy } from './backend-types.js';
import { DurableWrite, waitBehindBatch } from './durable-writes.js';
import { killFailedClient } from './failed-client.js';
import { Fifo } from './fifo.js';
import type { Flushable } from './flusher.js';

export type { BackendAuth, BackendOptions, BackendRequest, WritePolicy } from './backend-types.js';

/** The text of a complete bulk (or simple) string reply. */
function bulkText(reply: Buffer): string {
  const start = reply[0] === 0x24 ? reply.indexOf(0x0a) + 1 : 1;
  return reply.toString('latin1', start, reply.length - 2);
}

const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 3000;

type State = 'idle' | 'connecting' | 'handshake' | 'ready' | 'down' | 'closed';

/** A request the connection makes for itself during the handshake. */
class InternalRequest implements BackendRequest {
  constructor(
    readonly payload: Buffer,
    readonly resolve: (reply: Buffer) => void,
  ) {}
}

export class BackendConnection implements Flushable {
  flushQueued = false;
  /** Requests handed to this connection, and those answered (or failed): see "Draining". */
  sent = 0;
  answered = 0;
  /** Failed requests of earlier connections that redis may still run: see "Draining". */
  private unsettled = 0;
  /** This connection's redis client id, from the handshake; null while not connected. */
  private clientId: bigint | null = null;
  /** The server's redis_version, from the handshake's HELLO; null until it answered one. */
  serverVersion: string | null = null;
  /** whenSettled() callers, each with the `settled` count it waits for; null when none. */
  private settleWaiters: Array<{ mark: number | null; resolve: () => void }> | null = null;
  /** whenClientId() callers waiting for the handshake. */
  private clientIdWaiters: Array<(id: bigint | null) => void> = [];
  /** closeWhenDrained() was called: close once `drained`. */
  private closingWhenDrained = false;
  /** closeWhenDrained(then): called once the connection is closed. */
  private onDrainedClose: (() => void) | null = null;
  private state: State = 'idle';
  private socket: net.Socket | null = null;
  private readonly scanner = new ReplyScanner();
  private readonly inflight = new Fifo<BackendRequest>(256);
  /** Handshake requests: answered before anything in `inflight`. */
  private readonly internal = new Fifo<InternalRequest>(4);
  private batch: Buffer[] = [];
  private batchBytes = 0;
  /** Durable mode: writes in the current batch, and writes answered but not yet confirmed. */
  private batchWrites = 0;
  private readonly unconfirmed: Array<[BackendRequest, Buffer]> = [];
  private lastProgressAt = 0;
  private retryAt = 0;
  private backoffMs = MIN_BACKOFF_MS;
  private lastError = '';
  private watchdog: NodeJS.Timeout | null = null;
  private readonly host: string;
  private readonly port: number;
  /**
   * Pub/sub feeds (pubsub.ts): replies nobody asked for — messages and subscription
   * confirmations — are offered here first; returning true consumes them.
   */
  onPush: ((reply: Buffer) => boolean) | null = null;
  /**
   * Pub/sub feeds: commands written right after the handshake, before anything queued, and
   * answered only through `onPush` (the feed's whole subscription set, on every reconnect).
   */
  afterHandshake: (() => Buffer[]) | null = null;
  private readonly onReply = (reply: Buffer): void => {
    this.lastProgressAt = Date.now();
    const internal = this.internal.shift();
    if (internal !== undefined) {
      internal.resolve(reply);
      return;
    }
    if (this.onPush !== null && this.onPush(reply)) return;
    const head = this.inflight.peek();
    if (head !== undefined && head.skipReplies !== undefined && head.skipReplies > 0) {
      head.skipReplies--;
      return;
    }
    const req = this.inflight.shift();
    if (req === undefined) {
      this.fail('sent a reply nobody asked for');
      return;
    }
    this.answered++;
    try {
      req.resolve(reply);
    } catch (err) {
      // A bug in one request's completion must not fail every request behind it.
      this.opts.logger.error({ err, backend: this.addr }, 'unexpected error while completing a request');
    }
    if (this.settleWaiters !== null) this.checkSettled();
    if (this.closingWhenDrained && this.drained) this.close();
  };

  /** Every request sent has its reply, and (durable mode) no write waits for its WAIT. */
  private get drained(): boolean {
    return this.answered >= this.sent && this.unconfirmed.length === 0;
  }

  constructor(
    readonly addr: string,
    private readonly opts: BackendOptions,
    /** Shared with every connection to this master (null: not a group master's connection). */
    private readonly policy: WritePolicy | null = null,
  ) {
    // splitAddr drops an IPv6 host's brackets: net.connect wants the bare address.
    ({ host: this.host, port: this.port } = splitAddr(addr));
  }

  get pending(): number {
    return this.inflight.length;
  }

  get isUp(): boolean {
    return this.state === 'ready';
  }

  send(req: BackendRequest): void {
    if (req.write === true && this.policy !== null && this.policy.refusal !== null) {
      // minInSync not met: refused before it is written, so it certainly did not run.
      req.resolve(req.skipReplies === undefined ? this.policy.refusal : this.policy.execRefusal!);
      return;
    }
    if (this.state === 'closed') {
      req.resolve(encodeError(`ERR backend ${this.addr} connection closed`));
      return;
    }
    if (this.state === 'idle' || this.state === 'down') {
      if (this.state === 'down' && Date.now() < this.retryAt) {
        req.resolve(encodeError(`ERR backend ${this.addr} is down: ${this.lastError}`));
        return;
      }
      this.connect();
    }
    if (this.inflight.length === 0) this.lastProgressAt = Date.now();
    this.sent++;
    if (req.write === true && this.policy !== null && this.policy.replicas > 0) {
      this.batchWrites++;
      this.inflight.push(new DurableWrite(req, this.unconfirmed));
    } else {
      this.inflight.push(req);
    }
    this.batch.push(req.payload);
    this.batchBytes += req.payload.length;
    if (this.state === 'ready') this.opts.flusher.mark(this);
  }

  /**
   * Writes a command whose replies go to `onPush` (SUBSCRIBE, UNSUBSCRIBE, …). Only while
   * connected: on (re)connect `afterHandshake` sends the whole current set anyway.
   */
  sendUnanswered(payload: Buffer): void {
    if (this.state !== 'ready') return;
    this.batch.push(payload);
    this.batchBytes += payload.length;
    this.opts.flusher.mark(this);
  }

  flush(): void {
    if (this.batch.length === 0 || this.socket === null || this.state !== 'ready') return;
    if (this.batchWrites > 0) this.appendWait();
    const data = this.batch.length === 1 ? this.batch[0]! : Buffer.concat(this.batch, this.batchBytes);
    this.batch = [];
    this.batchBytes = 0;
    this.socket.write(data);
  }

  /** Puts one WAIT behind the batch; its reply releases (or fails) the batch's writes. */
  private appendWait(): void {
    this.batchWrites = 0;
    const wait = waitBehindBatch(this.policy!, this.addr, this.unconfirmed);
    this.sent++;
    this.inflight.push(wait);
    this.batch.push(wait.payload);
    this.batchBytes += wait.payload.length;
  }

  /**
   * Closes the connection; requests still waiting get a definite error: `reply` when given
   * (a failover names the group and says the outcome is unknown), else `ERR backend … reason`.
   */
  close(reason = 'connection closed', reply?: Buffer): void {
    if (this.state === 'closed') return;
    this.fail(reason, 'closed', reply);
    const then = this.onDrainedClose;
    this.onDrainedClose = null;
    then?.();
  }

  /**
   * Closes once every request already sent has its reply, then calls `then`: a WATCH that
   * ends (UNWATCH, DISCARD) while its own earlier commands are still in flight on the pinned
   * connection. Also closes (and calls `then`) if the connection fails first.
   */
  closeWhenDrained(then?: () => void): void {
    if (this.state === 'closed') {
      then?.();
      return;
    }
    this.onDrainedClose = then ?? null;
    // The WAIT that durable mode appends to a batch counts as sent too: "drained" includes it.
    if (this.drained) this.close();
    else this.closingWhenDrained = true;
  }

  /** Set by the pool: this connection got through, so the server is up for its siblings too. */
  onUp: (() => void) | null = null;

  /** The server answered another connection: stop failing fast on an old backoff. */
  clearBackoff(): void {
    if (this.state !== 'down') return;
    this.retryAt = 0;
    this.backoffMs = MIN_BACKOFF_MS;
  }

  /** Drops the connection now; the next request reconnects after the usual backoff. */
  drop(reason: string): void {
    if (this.state === 'connecting' || this.state === 'handshake' || this.state === 'ready') this.fail(reason);
  }

  /** Drops the connection now (e.g. on fencing) but allows a later reconnect. */
  reset(reason: string): void {
    if (this.state === 'closed' || this.state === 'idle' || this.state === 'down') return;
    this.fail(reason);
    this.retryAt = 0;
  }

  private connect(): void {
    this.state = 'connecting';
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    const connectTimer = setTimeout(() => {
      if (this.socket === socket && (this.state === 'connecting' || this.state === 'handshake')) {
        this.fail(`connect timed out after ${this.opts.connectTimeoutMs} ms`);
      }
    }, this.opts.connectTimeoutMs);
    socket.once('connect', () => {
      if (this.socket !== socket) return;
      this.state = 'handshake';
      this.handshake(() => this.chooseProtocol(() => this.learnClientId(() => {
        clearTimeout(connectTimer);
        this.state = 'ready';
        this.backoffMs = MIN_BACKOFF_MS;
        this.opts.logger.info({ backend: this.addr }, 'backend connected');
        const first = this.afterHandshake?.();
        if (first !== undefined && first.length > 0) socket.write(first.length === 1 ? first[0]! : Buffer.concat(first));
        this.opts.onStateChange?.(this.addr, true);
        this.onUp?.();
        this.flush();
      })));
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      try {
        this.scanner.feed(chunk, this.onReply);
      } catch (err) {
        this.fail(`sent a malformed reply: ${(err as Error).message}`);
      }
    });
    socket.on('error', (err: Error) => {
      clearTimeout(connectTimer);
      if (this.socket === socket) this.fail(err.message);
    });
    socket.on('close', () => {
      clearTimeout(connectTimer);
      if (this.socket === socket) this.fail('connection lost');
    });
    this.startWatchdog();
  }

  /** Requests settled: answered, or failed and known never to run. See "Draining". */
  get settled(): number {
    return this.answered - this.unsettled;
  }

  /**
   * Resolves once `settled` reaches `mark` (a snapshot of `sent`: a barrier's drain marker),
   * or, without a mark, once every request sent so far — and any sent meanwhile — is settled.
   * Woken by the connection itself whenever a reply arrives or a failed request settles: a
   * waiter costs nothing until then, where polling cost a timer every millisecond.
   */
  whenSettled(mark?: number): Promise<void> {
    if (this.settled >= (mark ?? this.sent)) return Promise.resolve();
    return new Promise((resolve) => (this.settleWaiters ??= []).push({ mark: mark ?? null, resolve }));
  }

  private checkSettled(): void {
    const waiters = this.settleWaiters;
    if (waiters === null) return;
    const settled = this.settled;
    const still = waiters.filter((w) => {
      if (settled < (w.mark ?? this.sent)) return true;
      w.resolve();
      return false;
    });
    this.settleWaiters = still.length > 0 ? still : null;
  }

  /**
   * HELLO <protocol> once authenticated: picks the protocol and tells the server's version
   * (what the proxy's own HELLO and INFO report) and this connection's client id. A server
   * that refuses RESP3 fails a RESP3 connection; a RESP2 one goes on without HELLO.
   */
  private chooseProtocol(done: () => void): void {
    const socket = this.socket;
    const resp = this.opts.resp ?? 2;
    this.ask(['HELLO', String(resp)], (reply) => {
      if (this.socket !== socket || this.state !== 'handshake') return;
      if (isErrorReply(reply)) {
        if (resp === 3) this.fail(`refused RESP3: ${errorReplyMessage(reply)}`);
        else done();
        return;
      }
      const fields = splitAggregateReply(reply) ?? [];
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const name = fields[i]!.toString('latin1');
        if (name === '$7\r\nversion\r\n') this.serverVersion = bulkText(fields[i + 1]!);
        else if (name === '$2\r\nid\r\n') this.clientId = parseIntegerReply(fields[i + 1]!);
      }
      done();
    });
  }

  private learnClientId(done: () => void): void {
    if (this.clientId !== null) {
      done();
      for (const then of this.clientIdWaiters.splice(0)) then(this.clientId);
      return;
    }
    const socket = this.socket;
    this.ask(['CLIENT', 'ID'], (reply) => {
      if (this.socket !== socket || this.state !== 'handshake') return;
      this.clientId = parseIntegerReply(reply);
      done();
      for (const then of this.clientIdWaiters.splice(0)) then(this.clientId);
    });
  }

  /**
   * Calls `then` with the redis client id of the current connection, at once or when the
   * handshake has learnt it (null: redis did not say). Nothing is written to redis before
   * that, so a command sent here cannot have run on a connection whose id is unknown. A
   * connection that fails first never calls back: what it had sent failed with it.
   */
  whenClientId(then: (id: bigint | null) => void): void {
    if (this.state === 'ready') then(this.clientId);
    else this.clientIdWaiters.push(then);
  }

  /**
   * Requests of a failed connection may still run in redis: they count as unsettled until
   * `CLIENT KILL ID` answers on a fresh connection, or the server refuses connections.
   */
  private settleLater(clientId: bigint, requests: number): void {
    this.unsettled += requests;
    killFailedClient(
      {
        addr: this.addr,
        clientId,
        // Bounded even for a dedicated blocking connection (whose own watchdog is "never").
        timeoutMs: Math.min(Math.max(1000, this.opts.timeoutMs), 5000),
        adminPassword: this.opts.auth?.adminPassword ?? null,
        logger: this.opts.logger,
        isClosed: () => this.state === 'closed',
      },
      () => {
        this.unsettled -= requests;
        this.checkSettled();
      },
    );
  }

  private ask(args: (string | Buffer)[], then: (reply: Buffer) => void): void {
    const req = new InternalRequest(encodeCommand(args), then);
    this.internal.push(req);
    this.socket?.write(req.payload);
  }

  /** AUTH as the proxy's user; create the user where it is missing; detect fencing. */
  private handshake(done: () => void): void {
    const auth = this.opts.auth;
    if (auth === null) {
      done();
      return;
    }
    const socket = this.socket;
    const current = (): boolean => this.socket === socket && this.state === 'handshake';
    this.ask(['AUTH', auth.user, auth.password], (reply) => {
      if (!current()) return;
      if (!isErrorReply(reply)) {
        done();
        return;
      }
      // Still the default user here (logged in with its password where the servers have one):
      // find out why our user was refused.
      if (auth.adminPassword !== null) this.ask(['AUTH', auth.adminPassword], () => undefined);
      this.ask(['ACL', 'GETUSER', auth.user], (info) => {
        if (!current()) return;
        const fields = splitArrayReply(info);
        if (fields !== null) {
          const flagsAt = fields.findIndex((f) => f.toString('latin1') === '$5\r\nflags\r\n');
          const flags = flagsAt >= 0 ? fields[flagsAt + 1]?.toString('latin1') ?? '' : '';
          if (/\boff\b/.test(flags)) {
            this.opts.logger.warn({ backend: this.addr, user: auth.user }, 'backend refuses our ACL user: asking etcd whether this proxy is fenced');
            this.afterRefusal(auth, current, done);
            return;
          }
          // Enabled but another password: an earlier process of this proxy id. Take it over
          // without touching on/off, so a concurrent fence still wins.
          this.ask(['ACL', 'SETUSER', auth.user, 'resetpass', `>${auth.password}`], () => this.retryAuth(auth, current, done));
          return;
        }
        if (isErrorReply(info)) {
          this.fail(`cannot check the proxy's ACL user: ${info.toString('latin1', 1, info.length - 2)}`);
          return;
        }
        // No such user: first time this proxy uses this server.
        this.ask(['ACL', 'SETUSER', auth.user, ...proxyAclRules(auth.password)], () => this.retryAuth(auth, current, done));
      });
    });
  }

  private retryAuth(auth: BackendAuth, current: () => boolean, done: () => void): void {
    if (!current()) return;
    this.ask(['AUTH', auth.user, auth.password], (reply) => {
      if (!current()) return;
      if (isErrorReply(reply)) {
        this.afterRefusal(auth, current, done);
        return;
      }
      done();
    });
  }

  /**
   * Our user was refused. Nothing queued has been written (the handshake comes first), and
   * nothing is until the proxy has decided: fenced fails the connection as ever; a stale
   * server (user re-enabled there, no fence for us in etcd) gets one more AUTH. The requests
   * waiting meanwhile stay bounded by the watchdog (`timeoutMs`), which keeps running.
   */
  private afterRefusal(auth: BackendAuth, current: () => boolean, done: () => void): void {
    const failFenced = (): void => {
      if (current()) this.fail('refused this proxy: it has been fenced');
    };
    auth.onRefused(this.addr).then(
      (verdict) => {
        if (!current()) return;
        if (verdict === 'fail') {
          failFenced();
          return;
        }
        this.ask(['AUTH', auth.user, auth.password], (reply) => {
          if (!current()) return;
          if (isErrorReply(reply)) failFenced();
          else done();
        });
      },
      failFenced,
    );
  }

  /** Fails every waiting request with a definite error (`failReply` if given) and drops the socket. */
  private fail(reason: string, next: State = 'down', failReply?: Buffer): void {
    const wasUp = this.state === 'ready';
    const socket = this.socket;
    this.socket = null;
    this.state = next;
    this.lastError = reason;
    if (next === 'down') {
      this.retryAt = Date.now() + this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    }
    this.stopWatchdog();
    socket?.destroy();
    this.scanner.reset();
    this.batch = [];
    this.batchBytes = 0;
    this.batchWrites = 0;
    this.internal.drain();
    const waiting = this.inflight.drain();
    // Writes that answered but were never confirmed by a replica: not acknowledged either.
    const unconfirmed = this.unconfirmed.splice(0);
    this.answered += waiting.length;
    // Only a connection that got through wrote requests to redis.
    if (wasUp && waiting.length > 0) {
      if (this.clientId !== null) this.settleLater(this.clientId, waiting.length);
      else this.opts.logger.warn({ backend: this.addr, requests: waiting.length }, 'failed connection had no client id: its requests count as settled');
    }
    this.clientId = null;
    this.clientIdWaiters = [];
    if (next === 'closed' && waiting.length === 0) {
      this.opts.logger.debug({ backend: this.addr }, 'backend connection closed');
    } else if (waiting.length > 0 || wasUp) {
      this.opts.logger.warn({ backend: this.addr, reason, failedRequests: waiting.length }, 'backend connection failed');
    }
    if (wasUp) this.opts.onStateChange?.(this.addr, false);
    if (waiting.length > 0 || unconfirmed.length > 0) {
      const reply = failReply ?? encodeError(`ERR backend ${this.addr} ${reason}`);
      for (const [req] of unconfirmed) req.resolve(reply);
      for (const req of waiting) (req instanceof DurableWrite ? req.original : req).resolve(reply);
    }
    // Failed requests count as answered; those that may still run were made unsettled above.
    this.checkSettled();
    // Failed while closing when drained: nothing is left to drain.
    if (next === 'down' && this.closingWhenDrained) this.close(reason);
  }

  /** A stalled server (SIGSTOP, overload) must not hang clients: time out the oldest request. */
  private startWatchdog(): void {
    if (this.watchdog !== null) return;
    const interval = Math.max(10, Math.min(250, Math.floor(this.opts.timeoutMs / 4)));
    this.watchdog = setInterval(() => {
      const waiting = this.inflight.length > 0 || this.internal.length > 0;
      if (waiting && Date.now() - this.lastProgressAt > this.opts.timeoutMs) {
        this.fail(`timed out: no reply in ${this.opts.timeoutMs} ms`);
      }
    }, interval);
    this.watchdog.unref();
  }

  private stopWatchdog(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
  }
}
