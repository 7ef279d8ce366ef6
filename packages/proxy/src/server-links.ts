/**
 * One idle connection to every redis server of the topology — masters and replicas — whose
 * only job is to notice a server come (back) up, so its product-wide parameters can be
 * applied again (product-config.ts): a redis that restarts forgets every CONFIG SET, and the
 * proxy's data connections cannot tell (they only go to masters, and reconnect lazily).
 *
 * Invariant: while a server is in the set, there is a link to it or a reconnect scheduled
 * (100 ms doubling to 2 s); `onUp` fires on every successful connect, the first one included.
 * The link authenticates and names itself (CLIENT LIST shows `reborn-config-watch:<proxy id>`), then
 * sends nothing more; whatever the server says is ignored. A server removed from the set
 * loses its link at once.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { encodeCommand } from '@reborn/protocol';
import { splitAddr } from '@reborn/coordinator';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2000;
const CONNECT_TIMEOUT_MS = 2000;
/** A link that stayed up this long was a real one: the next reconnect starts from the minimum again. */
const STABLE_MS = 5000;

export interface ServerLinksOptions {
  /** The servers' default-user password, or null. */
  password: string | null;
  /** CLIENT SETNAME of each link (no spaces). */
  clientName: string;
  logger: Logger;
  /** A link to `addr` connected: the server is (back) up. */
  onUp(addr: string): void;
}

class Link {
  private socket: net.Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private delay = RECONNECT_MIN_MS;
  private closed = false;

  constructor(
    readonly addr: string,
    private readonly opts: ServerLinksOptions,
  ) {
    this.connect();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.socket?.destroy();
    this.socket = null;
  }

  private connect(): void {
    this.timer = null;
    if (this.closed) return;
    const { host, port } = splitAddr(this.addr);
    const socket = net.connect({ host, port });
    this.socket = socket;
    let upAt = 0;
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy());
    socket.on('connect', () => {
      upAt = Date.now();
      socket.setTimeout(0);
      // A server that dies with the host must still be noticed one day.
      socket.setKeepAlive(true, 10_000);
      if (this.opts.password !== null) socket.write(encodeCommand(['AUTH', this.opts.password]));
      socket.write(encodeCommand(['CLIENT', 'SETNAME', this.opts.clientName]));
      this.opts.onUp(this.addr);
    });
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket !== socket || this.closed) return;
      this.socket = null;
      if (upAt > 0 && Date.now() - upAt >= STABLE_MS) this.delay = RECONNECT_MIN_MS;
      if (upAt > 0) this.opts.logger.debug({ backend: this.addr }, 'server link closed; reconnecting');
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, RECONNECT_MAX_MS);
    });
  }
}

export class ServerLinks {
  private readonly links = new Map<string, Link>();

  constructor(private readonly opts: ServerLinksOptions) {}

  /** Links to exactly these servers: new ones connect (and fire onUp), gone ones are closed. */
  sync(addrs: ReadonlySet<string>): void {
    for (const [addr, link] of this.links) {
      if (!addrs.has(addr)) {
        link.close();
        this.links.delete(addr);
      }
    }
    for (const addr of addrs) if (!this.links.has(addr)) this.links.set(addr, new Link(addr, this.opts));
  }

  close(): void {
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }
}
