/**
 * What reborn-config's verbs write to and read from: the CliIo the binary (or a test) passes
 * in, the lines on it, and the pino logger of the verbs that log. Invariant: results go to
 * stdout and progress to stderr, each as whole lines ending in a newline.
 */
import type { Logger } from 'pino';
import type { GlobalOptions } from './options.js';
import type { AdminOptions } from './servers.js';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  /** Aborted on Ctrl-C / SIGTERM. */
  signal?: AbortSignal;
  /**
   * Called by verbs that handle an interruption themselves (they stop at a safe point); for
   * the others the binary exits at once on Ctrl-C.
   */
  graceful?(): void;
  /** Called with the address the dashboard listens on (tests use port 0). */
  onListening?(addr: string): void;
  /** Timeouts for redis operations (tests shorten them). */
  admin?: AdminOptions;
}

export const NL = '\n';

/** A result on stdout, as one or more whole lines. */
export function writeOut(io: CliIo, s: string): void {
  io.stdout(s.endsWith(NL) ? s : s + NL);
}

/** A progress line or warning on stderr. */
export function writeNote(io: CliIo, s: string): void {
  io.stderr(s + NL);
}

/**
 * pino, the API (prom-client) and the runner (ioredis) are imported by the verbs that use
 * them: most calls need none, and start-up time is most of a CLI call.
 */
export async function cliLogger(global: GlobalOptions, dest: number, dflt: string): Promise<Logger> {
  const { default: pino } = await import('pino');
  return pino(
    { level: global.logLevel || dflt, base: { app: 'reborn-config', product: global.product } },
    pino.destination({ dest, sync: true }),
  );
}
