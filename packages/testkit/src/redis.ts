/**
 * A real redis-server for tests: free port, private temp dir, no persistence unless asked
 * (`args` are appended and override the defaults), ready when PING answers +PONG.
 */
import { connect } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { joinAddr } from '@reborn/coordinator';
import { tempDir } from './cleanup.js';
import { freePort } from './ports.js';
import { HOST, ServerProcess, launchWithRetries } from './server-process.js';

export interface StartRedisOptions {
  /** Default: a free port (retried with another one if taken meanwhile). */
  port?: number;
  /** Extra arguments, e.g. `['--appendonly', 'yes']`; later ones win in redis. */
  args?: readonly string[];
  /** Working dir; default a fresh temp dir, removed on stop(). A given dir is left alone. */
  dir?: string;
  /** Default `redis-server` from PATH. */
  bin?: string;
  /** The default user's password (requirepass, and masterauth for replication); none by default. */
  password?: string;
  /** The loopback address to bind: default 127.0.0.1; `::1` for an IPv6 server. */
  host?: string;
  startTimeoutMs?: number;
}

export class RedisServer extends ServerProcess {
  override readonly host: string;
  readonly port: number;
  readonly dir: string;
  private readonly clients = new Set<Redis>();

  /** @internal use startRedis() */
  constructor(
    port: number,
    dir: string,
    removeDir: () => Promise<void>,
    private readonly opts: StartRedisOptions,
  ) {
    super(removeDir);
    this.host = opts.host ?? HOST;
    this.port = port;
    this.dir = dir;
  }

  /** `host:port`, an IPv6 host in brackets (`[::1]:6379`): the form etcd and the proxy use. */
  get addr(): string {
    return joinAddr(this.host, this.port);
  }

  protected override get label(): string {
    return `redis ${this.addr}`;
  }

  /** An ioredis client for this server, disconnected by stop(). */
  client(opts: RedisOptions = {}): Redis {
    const c = new Redis({ host: this.host, port: this.port, ...(this.opts.password === undefined ? {} : { password: this.opts.password }), ...opts });
    this.clients.add(c);
    c.once('end', () => this.clients.delete(c));
    return c;
  }

  protected override beforeStop(): void {
    for (const c of this.clients) c.disconnect();
    this.clients.clear();
  }

  /** @internal */
  override async launch(): Promise<void> {
    const args = [
      '--port', String(this.port),
      '--bind', this.host,
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.dir,
      '--daemonize', 'no',
      '--protected-mode', 'no',
      '--logfile', '',
      ...(this.opts.password === undefined ? [] : ['--requirepass', this.opts.password, '--masterauth', this.opts.password]),
      ...(this.opts.args ?? []),
    ];
    await this.spawnAndWait(
      { name: `redis-server ${this.addr}`, command: this.opts.bin ?? 'redis-server', args, maxLines: 500 },
      // Printed once the listener is up (a taken port makes redis exit before it).
      'Ready to accept connections',
      'PONG',
      () => ping(this.host, this.port, this.opts.password),
      this.opts.startTimeoutMs ?? 10_000,
    );
  }
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const { dir, remove: removeDir } = opts.dir ? { dir: opts.dir, remove: async () => {} } : await tempDir('reborn-redis-');
  return launchWithRetries(
    async () => new RedisServer(opts.port ?? (await freePort(opts.host)), dir, removeDir, opts),
    removeDir,
    // A port the caller chose is not retried with another one.
    opts.port === undefined,
  );
}

/** One PING over a raw socket (after AUTH with a password): true on +PONG (not -LOADING), false on anything else. */
function ping(host: string, port: number, password: string | undefined, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('error', () => done(false));
    // With AUTH first, the PING's reply is the second line.
    const lines = password === undefined ? 1 : 2;
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const got = buf.split('\r\n');
      if (got.length > lines) done(got[lines - 1]!.startsWith('+PONG'));
    });
    sock.once('connect', () => {
      if (password !== undefined) sock.write(`AUTH ${password}\r\n`);
      sock.write('PING\r\n');
    });
  });
}
