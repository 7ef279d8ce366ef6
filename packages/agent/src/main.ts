/**
 * reborn-agent entry point: options (flags > env > defaults), logger, signals.
 */
import pino from 'pino';
import { parseOptionsOrExit, runUntilSignalled } from '@reborn/coordinator';
import { Agent } from './agent.js';
import { parseAgentOptions, usage } from './options.js';

const options = parseOptionsOrExit('reborn-agent', process.argv.slice(2), parseAgentOptions, usage);
const logger = pino({ level: options.logLevel, base: { app: 'reborn-agent', id: options.id, product: options.product } });
runUntilSignalled(new Agent(options, logger), logger, 'agent', 'shutting down (supervised apps keep running)');
