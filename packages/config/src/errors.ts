/**
 * Errors of reborn-config. Every error a user sees carries a stable `code`; the CLI's exit
 * status and the REST API's HTTP status are derived from the code, never from message text.
 *
 * | code          | class / origin                         | CLI exit | HTTP | meaning                                  |
 * |---------------|----------------------------------------|----------|------|------------------------------------------|
 * | EUSAGE        | UsageError                             | 2        | 400  | unknown verb, missing or extra arguments |
 * | EINVALID      | coordinator ValidationError            | 1        | 400  | a value out of range, malformed          |
 * | ENOTFOUND     | coordinator NotFoundError              | 1        | 404  | unknown group, server, migration, proxy  |
 * | ECONFLICT     | coordinator ConflictError              | 1        | 409  | the state forbids it (slots still owned…)|
 * | EUNAVAILABLE  | coordinator UnavailableError           | 1        | 503  | etcd did not answer                      |
 * | EUNREACHABLE  | ServerUnreachableError                 | 1        | 502  | a redis server did not answer            |
 * | ETIMEOUT      | OperationTimeoutError                  | 1        | 504  | a bounded wait (sync, catch-up) ran out  |
 * | EMIGRATION    | MigrationEndedError                    | 1        | 409  | a migration ended cancelled or failed    |
 * | EREFUSED      | coordinator RedisConfigRefusedError    | 1        | 400  | redis refused a parameter's value        |
 * | EINTERRUPTED  | InterruptedError                       | 130      | —    | Ctrl-C; what was left behind is said     |
 * | EUNAUTHORIZED | (API only)                             | —        | 401  | missing or wrong bearer token            |
 * | anything else |                                        | 1        | 500  |                                          |
 */
import { CoordinatorError, ConflictError, NotFoundError, ValidationError } from '@reborn/coordinator';

export { CoordinatorError, ConflictError, NotFoundError, ValidationError };

/** The command line does not name a verb we know, or its arguments do not fit the verb. */
export class UsageError extends CoordinatorError {
  constructor(message: string) {
    super('EUSAGE', message);
    this.name = 'UsageError';
  }
}

/** A redis server did not answer (refused, timed out, or answered with an error to PING). */
export class ServerUnreachableError extends CoordinatorError {
  constructor(message: string, cause?: unknown) {
    super('EUNREACHABLE', message, { cause, retryable: true });
    this.name = 'ServerUnreachableError';
  }
}

/** A bounded wait gave up: a replica's initial sync, a promotion's catch-up. */
export class OperationTimeoutError extends CoordinatorError {
  constructor(message: string) {
    super('ETIMEOUT', message, { retryable: true });
    this.name = 'OperationTimeoutError';
  }
}

/** A migration the caller waited for ended without moving its slots (cancelled or failed). */
export class MigrationEndedError extends CoordinatorError {
  constructor(message: string) {
    super('EMIGRATION', message);
    this.name = 'MigrationEndedError';
  }
}

/** The user pressed Ctrl-C; the message says what state was left behind. */
export class InterruptedError extends CoordinatorError {
  constructor(message: string) {
    super('EINTERRUPTED', message);
    this.name = 'InterruptedError';
  }
}

/** The stable code of any thrown value (`EINTERNAL` for errors that carry none). */
export function errorCode(err: unknown): string {
  if (err instanceof CoordinatorError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  // FenceError and other classes of this package's siblings carry a string code too.
  if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return code;
  return 'EINTERNAL';
}

const HTTP_STATUS: Record<string, number> = {
  EUSAGE: 400,
  EINVALID: 400,
  ENOTFOUND: 404,
  ECONFLICT: 409,
  EMIGRATION: 409,
  EREFUSED: 400,
  EUNAVAILABLE: 503,
  EUNREACHABLE: 502,
  ETIMEOUT: 504,
  EUNAUTHORIZED: 401,
};

export function httpStatusOf(err: unknown): number {
  return HTTP_STATUS[errorCode(err)] ?? 500;
}

export function exitCodeOf(err: unknown): number {
  const code = errorCode(err);
  if (code === 'EUSAGE') return 2;
  if (code === 'EINTERRUPTED') return 130;
  return 1;
}

/** The message as one line (the CLI promises a one-line reason on stderr). */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s*[\r\n]+\s*/g, '; ').trim() || 'unknown error';
}
