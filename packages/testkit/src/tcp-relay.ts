/**
 * A TCP relay on a free loopback port that forwards to one target and can be told to stop
 * forwarding: a network partition between one client (a proxy, say) and a server (an etcd
 * member) without touching either process. `cut()` freezes every open connection (bytes are
 * dropped, sockets stay open, as a partition looks to both ends) and leaves new connections
 * hanging; `heal()` closes the frozen ones (both ends then reconnect) and forwards again.
 * Invariant: while cut, not one byte passes in either direction.
 */
import net from 'node:net';
import { trackHandle } from './cleanup.js';
import { HOST } from './server-process.js';

/** One relayed connection; `frozen` once a cut broke its stream (it is closed on heal). */
interface Pair {
  client: net.Socket;
  upstream: net.Socket | null;
  frozen: boolean;
}

export class TcpRelay {
  private readonly server: net.Server;
  private readonly pairs = new Set<Pair>();
  private cutNow = false;
  private readonly untrack: () => void;
  port = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
    this.untrack = trackHandle(this);
  }

  static async start(target: { host?: string; port: number }): Promise<TcpRelay> {
    const relay = new TcpRelay({ host: target.host ?? HOST, port: target.port });
    await new Promise<void>((resolve, reject) => {
      relay.server.once('error', reject);
      relay.server.listen({ host: HOST, port: 0 }, () => resolve());
    });
    relay.port = (relay.server.address() as net.AddressInfo).port;
    return relay;
  }

  get url(): string {
    return `http://${HOST}:${this.port}`;
  }

  get isCut(): boolean {
    return this.cutNow;
  }

  /** Stops forwarding: open connections go silent, new ones are accepted and never answered. */
  cut(): void {
    this.cutNow = true;
  }

  /** Forwards again; connections opened or frozen during the cut are closed so both ends reconnect. */
  heal(): void {
    this.cutNow = false;
    for (const p of [...this.pairs]) if (p.frozen) this.drop(p);
  }

  async stop(): Promise<void> {
    this.untrack();
    for (const p of [...this.pairs]) this.drop(p);
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    if (this.cutNow) {
      // Nothing reaches the target while cut, not even a connect; heal() closes this socket.
      const hung: Pair = { client, upstream: null, frozen: true };
      this.pairs.add(hung);
      client.on('close', () => this.pairs.delete(hung));
      return;
    }
    const upstream = net.connect(this.target);
    upstream.on('error', () => undefined);
    const pair: Pair = { client, upstream, frozen: false };
    this.pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (this.cutNow) pair.frozen = true; // dropped: this connection's stream is broken for good
        if (!pair.frozen) to.write(chunk);
      });
    };
    forward(client, upstream);
    forward(upstream, client);
    // A side closing during a cut is not told to the other side: a partition hides it.
    const close = (): void => {
      if (this.cutNow || pair.frozen) pair.frozen = true;
      else this.drop(pair);
    };
    client.on('close', close);
    upstream.on('close', close);
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
