/**
 * Errors of the protocol package. Each has a stable `code`; callers branch on the code (or
 * the class), never on message text.
 */
export class ProtocolError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

/** Input that is not valid RESP. The connection cannot be re-synchronised and must close. */
export class MalformedRequestError extends ProtocolError {
  constructor(message: string) {
    super('EPROTO', message);
    this.name = 'MalformedRequestError';
  }
}

/** Valid RESP, but past one of the configured bounds (argument size, argument count). */
export class RequestTooLargeError extends ProtocolError {
  constructor(message: string) {
    super('ETOOLARGE', message);
    this.name = 'RequestTooLargeError';
  }
}

/** A backend's reply stream is not valid RESP: the backend connection must be dropped. */
export class MalformedReplyError extends ProtocolError {
  constructor(message: string) {
    super('EBADREPLY', message);
    this.name = 'MalformedReplyError';
  }
}
