/**
 * What the test servers (redis-server, etcd) have in common: one supervised process on
 * loopback with a private dir, registered for cleanup, that a test can crash, restart on the
 * same ports and data, or freeze; and a start that retries on another port when a free port
 * was taken meanwhile.
 */
import { trackHandle } from './cleanup.js';
import { ExitedEarlyError, ManagedProcess, type SpawnSpec } from './process.js';

export const HOST = '127.0.0.1';
const PORT_ATTEMPTS = 3;

export abstract class ServerProcess {
  readonly host: string = HOST;
  protected proc: ManagedProcess | null = null;
  protected stopped = false;
  private readonly untrack: () => void;

  constructor(
    /** Removes the server's dir when stop() runs (a no-op for a dir the caller owns). */
    protected readonly removeDir: () => Promise<void>,
  ) {
    this.untrack = trackHandle(this);
  }

  /** How errors name this server, e.g. `redis 127.0.0.1:6379`. */
  protected abstract get label(): string;

  /** Starts the process (again, for restart()) and waits until it serves. */
  abstract launch(): Promise<void>;

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

  /** Graceful stop (SIGTERM), then removes its dir. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.abandon();
    this.beforeStop();
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

  /** Stops it if running and starts it again on the same ports and dir, with the same args. */
  async restart(): Promise<void> {
    if (this.stopped) throw new Error(`${this.label} was stopped; start a new one`);
    await this.proc?.terminate('SIGTERM');
    await this.launch();
  }

  /** SIGSTOP: the process keeps its sockets but answers nothing, like a hung server. Resolves once it is stopped. */
  async pause(): Promise<void> {
    await this.proc?.freeze();
  }

  resume(): void {
    this.proc?.signal('SIGCONT');
  }

  /** Things to release before the process goes (clients handed out, say). */
  protected beforeStop(): void {}

  /**
   * Spawns `spec` and waits until it has printed `listeningLine` and `ready` holds; a process
   * that never gets ready is killed. The line matters: when another server took our port first,
   * `ready` probes that server and succeeds, while ours is about to exit on EADDRINUSE — a test
   * would then pause, kill or read the wrong server.
   */
  protected async spawnAndWait(
    spec: SpawnSpec,
    listeningLine: string,
    readyWhat: string,
    ready: () => Promise<boolean>,
    timeoutMs: number,
  ): Promise<void> {
    const proc = new ManagedProcess(spec);
    this.proc = proc;
    const listening = proc.printed(listeningLine);
    try {
      await proc.waitReady(`"${listeningLine}" and ${readyWhat}`, async () => listening() && (await ready()), timeoutMs);
    } catch (err) {
      await proc.terminate('SIGKILL');
      throw err;
    }
  }
}

/**
 * Creates and launches a server, retrying with a new one (fresh ports) when the process
 * exited early because a port picked as free was taken meanwhile. `retryable` says whether
 * the ports were chosen here (a caller's fixed port is not retried).
 */
export async function launchWithRetries<S extends ServerProcess>(
  create: (attempt: number) => Promise<S>,
  cleanup: () => Promise<void>,
  retryable = true,
): Promise<S> {
  for (let attempt = 1; ; attempt++) {
    const server = await create(attempt);
    try {
      await server.launch();
      return server;
    } catch (err) {
      server.abandon();
      if (!retryable || !(err instanceof ExitedEarlyError) || attempt >= PORT_ATTEMPTS) {
        await cleanup();
        throw err;
      }
    }
  }
}
