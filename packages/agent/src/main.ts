/**
 * reborn-agent entry point: options (flags > env > defaults), logger, signals.
 */
import pino from 'pino';
import { Agent } from './agent.js';
import { OptionsError, parseAgentOptions, usage, wantsHelp } from './options.js';

const argv = process.argv.slice(2);
if (wantsHelp(argv)) {
  process.stdout.write(usage() + '\n');
  process.exit(0);
}

let options;
try {
  options = parseAgentOptions(argv);
} catch (err) {
  if (err instanceof OptionsError) {
    process.stderr.write(`reborn-agent: ${err.problems.join('; ')}\n`);
    process.exit(2);
  }
  throw err;
}

const logger = pino({ level: options.logLevel, base: { app: 'reborn-agent', id: options.id, product: options.product } });
const agent = new Agent(options, logger);

let stopping = false;
const shutdown = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down (supervised apps keep running)');
  agent.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'error during shutdown');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

agent.start().catch((err: unknown) => {
  logger.fatal({ err: (err as Error).message }, 'agent failed to start');
  process.exit(1);
});
