export * from './slot.js';
export * from './errors.js';
export * from './resp.js';
export * from './request-parser.js';
export * from './reply-scanner.js';
export * from './commands/types.js';
export * from './commands/policy.js';
export * from './commands/keys.js';
export { REDIS_COMMANDS, REDIS_VERSION } from './commands/generated.js';
