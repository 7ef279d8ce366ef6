/**
 * Errors of the coordinator package. Each has a stable `code`; callers branch on the class or
 * the code (and `retryable`), never on message text.
 *
 * | class              | code         | retryable | meaning                                          |
 * |--------------------|--------------|-----------|--------------------------------------------------|
 * | ValidationError    | EINVALID     | no        | bad input, or bad data found in etcd             |
 * | NotFoundError      | ENOTFOUND    | no        | the object does not exist                        |
 * | ConflictError      | ECONFLICT    | per case  | a precondition failed: a concurrent change        |
 * |                    |              |           | (retryable) or the object is in use (not)        |
 * | UnavailableError   | EUNAVAILABLE | yes       | etcd did not answer in time or is unreachable    |
 * | CoordinatorError   | EETCD        | no        | any other etcd failure (permission, …)           |
 */
export class CoordinatorError extends Error {
  readonly code: string;
  /** Whether trying the same operation again later can succeed. */
  readonly retryable: boolean;
  constructor(code: string, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CoordinatorError';
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

/** Input that does not fit the schema, or a value in etcd that does not parse. */
export class ValidationError extends CoordinatorError {
  constructor(message: string) {
    super('EINVALID', message);
    this.name = 'ValidationError';
  }
}

export class NotFoundError extends CoordinatorError {
  constructor(message: string) {
    super('ENOTFOUND', message);
    this.name = 'NotFoundError';
  }
}

/**
 * A precondition failed. `retryable` when someone else changed the data meanwhile (try again);
 * not when the state itself forbids it (e.g. a group still owns slots).
 */
export class ConflictError extends CoordinatorError {
  constructor(message: string, options?: { retryable?: boolean }) {
    super('ECONFLICT', message, { retryable: options?.retryable ?? false });
    this.name = 'ConflictError';
  }
}

/** etcd is down, partitioned or too slow: the call timed out or could not be sent. */
export class UnavailableError extends CoordinatorError {
  constructor(message: string, cause?: unknown) {
    super('EUNAVAILABLE', message, { cause, retryable: true });
    this.name = 'UnavailableError';
  }
}
