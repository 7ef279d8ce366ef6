/**
 * reborn-proxy entry point: options (flags > env > defaults), logger, signals.
 */
import pino from 'pino';
import { OptionsError, parseProxyOptions, usage, wantsHelp } from './options.js';
import { Proxy } from './proxy.js';

const argv = process.argv.slice(2);
if (wantsHelp(argv)) {
  process.stdout.write(usage() + '\n');
  process.exit(0);
}

let options;
try {
  options = parseProxyOptions(argv);
} catch (err) {
  if (err instanceof OptionsError) {
    process.stderr.write(`reborn-proxy: ${err.problems.join('; ')}\n`);
    process.exit(2);
  }
  throw err;
}

const logger = pino({ level: options.logLevel, base: { app: 'reborn-proxy', id: options.id, product: options.product } });
const proxy = new Proxy(options, logger);

let stopping = false;
const shutdown = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down');
  proxy.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'error during shutdown');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

proxy.start().catch((err: unknown) => {
  logger.fatal({ err }, 'proxy failed to start');
  process.exit(1);
});
