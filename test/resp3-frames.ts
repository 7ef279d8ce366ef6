/**
 * Frames: a raw TCP client for the end-to-end suite that keeps every reply and push as its raw
 * bytes (latin1), split by the proxy's own ReplyScanner, so RESP2 and RESP3 replies can be
 * compared byte for byte (not a test file itself).
 *
 * Invariant: `frames` holds every frame received, in arrival order, and is never trimmed.
 * Two ways to read it, which do not affect each other: `run`/`until` count frames from the
 * start of the connection (for scripts sent in one write), `next`/`call` step a cursor of
 * frames not yet taken (for replies interleaved with pushes).
 */
import net from 'node:net';
import { expect } from 'vitest';
import { ReplyScanner } from '@reborn/protocol';
import { cmd, within } from './helpers.js';

export class Frames {
  readonly frames: string[] = [];
  closed = false;
  /** Frames already returned by next(). */
  private taken = 0;
  private readonly scanner = new ReplyScanner();
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.scanner.feed(chunk, (reply) => this.frames.push(reply.toString('latin1')));
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static connect(port: number): Promise<Frames> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(new Frames(s)));
      s.once('error', reject);
    });
  }

  /** A RESP3 client: HELLO 3 answered. */
  static async resp3(port: number): Promise<Frames> {
    const f = await Frames.connect(port);
    expect(await f.call('HELLO', '3')).toMatch(/^%7\r\n/);
    return f;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private arrival(): Promise<void> {
    return new Promise<void>((r) => this.waiters.push(r));
  }

  /** Waits until `n` frames arrived in all (or the socket closed). */
  async until(n: number): Promise<string[]> {
    while (this.frames.length < n && !this.closed) await this.arrival();
    return this.frames;
  }

  /** Sends commands in one write and returns their `count` replies. */
  async run(commands: Array<Array<string | number>>, count = commands.length): Promise<string[]> {
    const start = this.frames.length;
    this.socket.write(Buffer.concat(commands.map((c) => cmd(...c))));
    await this.until(start + count);
    return this.frames.slice(start, start + count);
  }

  send(...args: Array<string | number>): void {
    this.socket.write(cmd(...args));
  }

  /** The next frame not yet taken (a reply or a push). */
  async next(ms = 10_000): Promise<string> {
    await within(this.until(this.taken + 1), ms, 'the next frame');
    if (this.frames.length <= this.taken) throw new Error('connection closed');
    return this.frames[this.taken++]!;
  }

  async call(...args: Array<string | number>): Promise<string> {
    this.send(...args);
    return this.next();
  }

  close(): void {
    this.socket.destroy();
  }
}
