/**
 * Errors of the agent. Each has a stable `code`; the HTTP API maps the class to a status, and
 * policy (retry, fail over) reads the class or the code, never the message.
 *
 * | class               | code         | HTTP | meaning                                            |
 * |---------------------|--------------|------|----------------------------------------------------|
 * | BadRequestError     | EBADREQUEST  | 400  | the request body or query is wrong (says what)     |
 * | UnknownAppError     | ENOAPP       | 404  | no supervised app has that id                      |
 * | AppExistsError      | EEXISTS      | 409  | an app with that id (same port) is already there   |
 * | StartFailedError    | ESTART       | 502  | the process exited while starting (log tail kept)  |
 * | RedisCommandError   | EREDIS       |  —   | a redis server answered with an error              |
 * | RedisTimeoutError   | ETIMEOUT     |  —   | a redis server did not answer in time / unreachable|
 * | NotLeaderError      | ENOTLEADER   |  —   | leader work attempted without (or after) leadership|
 */
export class AgentError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 500,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AgentError';
  }
}

export class BadRequestError extends AgentError {
  constructor(message: string) {
    super('EBADREQUEST', message, 400);
    this.name = 'BadRequestError';
  }
}

export class UnknownAppError extends AgentError {
  constructor(id: string) {
    super('ENOAPP', `unknown app id ${JSON.stringify(id)}`, 404);
    this.name = 'UnknownAppError';
  }
}

export class AppExistsError extends AgentError {
  constructor(message: string) {
    super('EEXISTS', message, 409);
    this.name = 'AppExistsError';
  }
}

export class StartFailedError extends AgentError {
  constructor(
    message: string,
    readonly logTail: string,
  ) {
    super('ESTART', message, 502);
    this.name = 'StartFailedError';
  }
}

export class RedisCommandError extends AgentError {
  constructor(message: string, cause?: unknown) {
    super('EREDIS', message, 502, { cause });
    this.name = 'RedisCommandError';
  }
}

export class RedisTimeoutError extends AgentError {
  constructor(message: string, cause?: unknown) {
    super('ETIMEOUT', message, 504, { cause });
    this.name = 'RedisTimeoutError';
  }
}

export class NotLeaderError extends AgentError {
  constructor(message = 'not the HA leader (any more)') {
    super('ENOTLEADER', message, 503);
    this.name = 'NotLeaderError';
  }
}
