/**
 * A real redis-server for tests: free port, private temp dir, no persistence unless asked
 * (`args` are appended and override the defaults), ready when PING answers +PONG.
 */
import { connect } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { tempDir, trackHandle } from './cleanup.js';
import { freePort } from './ports.js';
import { ExitedEarlyError, ManagedProcess } from './process.js';

export interface StartRedisOptions {
  /** Default: a free port (retried with another one if taken meanwhile). */
  port?: number;
  /** Extra arguments, e.g. `['--appendonly', 'yes']`; later ones win in redis. */
  args?: readonly string[];
  /** Working dir; default a fresh temp dir, removed on stop(). A given dir is left alone. */
  dir?: string;
  /** Default `redis-server` from PATH. */
  bin?: string;
  startTimeoutMs?: number;
}

const HOST = '127.0.0.1';
const PORT_ATTEMPTS = 3;

export class RedisServer {
  readonly host = HOST;
  readonly port: number;
  readonly dir: string;
  private proc: ManagedProcess | null = null;
  private readonly clients = new Set<Redis>();
  private stopped = false;
  private readonly untrack: () => void;

  /** @internal use startRedis() */
  constructor(
    port: number,
    dir: string,
    /** Removes the dir when stop() runs; a no-op for a dir the caller owns. */
    private readonly removeDir: () => Promise<void>,
    private readonly opts: StartRedisOptions,
  ) {
    this.port = port;
    this.dir = dir;
    this.untrack = trackHandle(this);
  }

  get addr(): string {
    return `${this.host}:${this.port}`;
  }

  get pid(): number {
    return this.proc?.pid ?? -1;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  /** The server's recent log lines. */
  logTail(n = 40): string {
    return this.proc?.tail(n) ?? '';
  }

  /** An ioredis client for this server, disconnected by stop(). */
  client(opts: RedisOptions = {}): Redis {
    const c = new Redis({ host: this.host, port: this.port, ...opts });
    this.clients.add(c);
    c.once('end', () => this.clients.delete(c));
    return c;
  }

  /** Graceful stop (SIGTERM: no save with the default `--save ''`), then removes its temp dir. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.untrack();
    for (const c of this.clients) c.disconnect();
    this.clients.clear();
    await this.proc?.terminate('SIGTERM');
    await this.removeDir();
  }

  /** @internal forget a server whose launch failed, keeping its dir for the next attempt */
  abandon(): void {
    this.stopped = true;
    this.untrack();
  }

  /** Crash it: sends `signal` and waits for the exit. The dir stays, so restart() works. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.proc?.terminate(signal);
  }

  /** Stops it if running and starts it again on the same port and dir, with the same args. */
  async restart(): Promise<void> {
    if (this.stopped) throw new Error(`redis ${this.addr} was stopped; start a new one`);
    await this.proc?.terminate('SIGTERM');
    await this.launch();
  }

  /** SIGSTOP: the process keeps its sockets but answers nothing, like a hung server. */
  pause(): void {
    this.proc?.signal('SIGSTOP');
  }

  resume(): void {
    this.proc?.signal('SIGCONT');
  }

  /** @internal */
  async launch(): Promise<void> {
    const args = [
      '--port', String(this.port),
      '--bind', HOST,
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.dir,
      '--daemonize', 'no',
      '--protected-mode', 'no',
      '--logfile', '',
      ...(this.opts.args ?? []),
    ];
    const proc = new ManagedProcess({
      name: `redis-server ${this.addr}`,
      command: this.opts.bin ?? 'redis-server',
      args,
      maxLines: 500,
    });
    this.proc = proc;
    try {
      await proc.waitReady('PONG', () => ping(this.host, this.port), this.opts.startTimeoutMs ?? 10_000);
    } catch (err) {
      await proc.terminate('SIGKILL');
      throw err;
    }
  }
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const { dir, remove: removeDir } = opts.dir ? { dir: opts.dir, remove: async () => {} } : await tempDir('reborn-redis-');
  for (let attempt = 1; ; attempt++) {
    const server = new RedisServer(opts.port ?? (await freePort()), dir, removeDir, opts);
    try {
      await server.launch();
      return server;
    } catch (err) {
      server.abandon();
      const portRace = err instanceof ExitedEarlyError && opts.port === undefined;
      if (!portRace || attempt >= PORT_ATTEMPTS) {
        await removeDir();
        throw err;
      }
    }
  }
}

/** One PING over a raw socket: true on +PONG (not -LOADING), false on anything else. */
function ping(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('error', () => done(false));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}
