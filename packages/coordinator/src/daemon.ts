/**
 * The entry-point chores every reborn daemon shares: --help, option errors (exit 2), and a
 * graceful stop on SIGTERM / SIGINT (exit 0, or 1 when stopping failed). A start that fails
 * is fatal (exit 1). Logging goes through the daemon's own logger.
 */
import { OptionsError, wantsHelp } from './cli-options.js';

/** What these helpers need of a logger (pino's shape). */
export interface DaemonLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  fatal(obj: object, msg: string): void;
}

/** Parses `argv` with `parse`; prints usage and exits on --help, and exits 2 on bad options. */
export function parseOptionsOrExit<T>(app: string, argv: string[], parse: (argv: string[]) => T, usage: () => string): T {
  if (wantsHelp(argv)) {
    process.stdout.write(usage() + '\n');
    process.exit(0);
  }
  try {
    return parse(argv);
  } catch (err) {
    if (err instanceof OptionsError) {
      process.stderr.write(`${app}: ${err.problems.join('; ')}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** Starts `daemon` and stops it once on the first SIGTERM or SIGINT, then exits. */
export function runUntilSignalled(
  daemon: { start(): Promise<void>; stop(): Promise<void> },
  logger: DaemonLogger,
  what: string,
  stoppingNote = 'shutting down',
): void {
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, stoppingNote);
    daemon.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  daemon.start().catch((err: unknown) => {
    logger.fatal({ err: err instanceof Error ? err.message : err }, `${what} failed to start`);
    process.exit(1);
  });
}
