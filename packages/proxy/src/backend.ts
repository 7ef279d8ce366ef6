/**
 * Shared, pipelined connections to one redis-server.
 *
 * Many client sessions multiplex onto each connection. A request's bytes go into the
 * connection's write batch (flushed once per event-loop turn by the Flusher) and the request
 * into its in-flight FIFO; redis answers in order, so each reply completes the FIFO's head.
 *
 * Failure is definite and fast: when the socket dies, times out (no reply for
 * `timeoutMs` while requests are waiting) or sends garbage, every request on it gets an
 * `-ERR backend <addr> …` reply at once. Reconnection is on demand with exponential backoff;
 * while a server is known down, requests fail immediately instead of queueing.
 *
 * Ordering: a client session always uses the same connection of a pool (by session index),
 * so two requests of one client to one server can never overtake each other.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { encodeError, ReplyScanner } from '@reborn/protocol';
import { Fifo } from './fifo.js';
import type { Flushable, Flusher } from './flusher.js';

/** What a backend connection needs of a request. */
export interface BackendRequest {
  /** The bytes to send (one or more complete RESP commands answered by one reply each). */
  readonly payload: Buffer;
  /** Called exactly once with the raw reply (or an error reply made by the proxy). */
  resolve(reply: Buffer): void;
}

export interface BackendOptions {
  connectTimeoutMs: number;
  timeoutMs: number;
  logger: Logger;
  flusher: Flusher;
  onStateChange?: (addr: string, up: boolean) => void;
}

const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 3000;

type State = 'idle' | 'connecting' | 'ready' | 'down' | 'closed';

export class BackendConnection implements Flushable {
  flushQueued = false;
  private state: State = 'idle';
  private socket: net.Socket | null = null;
  private readonly scanner = new ReplyScanner();
  private readonly inflight = new Fifo<BackendRequest>(256);
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private lastProgressAt = 0;
  private retryAt = 0;
  private backoffMs = MIN_BACKOFF_MS;
  private lastError = '';
  private watchdog: NodeJS.Timeout | null = null;
  private readonly host: string;
  private readonly port: number;
  private readonly onReply = (reply: Buffer): void => {
    const req = this.inflight.shift();
    if (req === undefined) {
      this.fail('sent a reply nobody asked for');
      return;
    }
    this.lastProgressAt = Date.now();
    req.resolve(reply);
  };

  constructor(readonly addr: string, private readonly opts: BackendOptions) {
    const i = addr.lastIndexOf(':');
    this.host = addr.slice(0, i);
    this.port = Number(addr.slice(i + 1));
  }

  get pending(): number {
    return this.inflight.length;
  }

  get isUp(): boolean {
    return this.state === 'ready';
  }

  send(req: BackendRequest): void {
    if (this.state !== 'ready' && this.state !== 'connecting') {
      if (this.state === 'closed') {
        req.resolve(encodeError(`ERR backend ${this.addr} connection closed`));
        return;
      }
      if (this.state === 'down' && Date.now() < this.retryAt) {
        req.resolve(encodeError(`ERR backend ${this.addr} is down: ${this.lastError}`));
        return;
      }
      this.connect();
    }
    if (this.inflight.length === 0) this.lastProgressAt = Date.now();
    this.inflight.push(req);
    this.batch.push(req.payload);
    this.batchBytes += req.payload.length;
    this.opts.flusher.mark(this);
  }

  flush(): void {
    if (this.batch.length === 0 || this.socket === null) return;
    const data = this.batch.length === 1 ? this.batch[0]! : Buffer.concat(this.batch, this.batchBytes);
    this.batch = [];
    this.batchBytes = 0;
    // Writing to a socket that is still connecting is fine: node queues it until connected.
    this.socket.write(data);
  }

  close(): void {
    if (this.state === 'closed') return;
    this.fail('connection closed', 'closed');
  }

  private connect(): void {
    this.state = 'connecting';
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    const connectTimer = setTimeout(() => {
      if (this.socket === socket && this.state === 'connecting') this.fail(`connect timed out after ${this.opts.connectTimeoutMs} ms`);
    }, this.opts.connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(connectTimer);
      if (this.socket !== socket) return;
      this.state = 'ready';
      this.backoffMs = MIN_BACKOFF_MS;
      this.opts.logger.info({ backend: this.addr }, 'backend connected');
      this.opts.onStateChange?.(this.addr, true);
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

  /** Fails every waiting request with a definite error and drops the socket. */
  private fail(reason: string, next: State = 'down'): void {
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
    const waiting = this.inflight.drain();
    if (waiting.length > 0 || wasUp) {
      this.opts.logger.warn({ backend: this.addr, reason, failedRequests: waiting.length }, 'backend connection failed');
    }
    if (wasUp) this.opts.onStateChange?.(this.addr, false);
    if (waiting.length > 0) {
      const reply = encodeError(`ERR backend ${this.addr} ${reason}`);
      for (const req of waiting) req.resolve(reply);
    }
  }

  /** A stalled server (SIGSTOP, overload) must not hang clients: time out the oldest request. */
  private startWatchdog(): void {
    if (this.watchdog !== null) return;
    const interval = Math.max(10, Math.min(250, Math.floor(this.opts.timeoutMs / 4)));
    this.watchdog = setInterval(() => {
      if (this.inflight.length > 0 && Date.now() - this.lastProgressAt > this.opts.timeoutMs) {
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

/** A fixed set of connections to one server; a session always maps to the same one. */
export class BackendPool {
  private readonly connections: BackendConnection[];

  constructor(readonly addr: string, size: number, opts: BackendOptions) {
    this.connections = Array.from({ length: size }, () => new BackendConnection(addr, opts));
  }

  pick(sessionIndex: number): BackendConnection {
    return this.connections[sessionIndex % this.connections.length]!;
  }

  get pending(): number {
    let n = 0;
    for (const c of this.connections) n += c.pending;
    return n;
  }

  get isUp(): boolean {
    return this.connections.some((c) => c.isUp);
  }

  close(): void {
    for (const c of this.connections) c.close();
  }
}
