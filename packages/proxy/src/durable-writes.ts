/**
 * Durable mode (`--durable`): every write batch a connection flushes is followed by one
 * `WAIT <replicas> <timeout>`; the replies of that batch's writes are parked until WAIT
 * answers, then released — or replaced by an error when too few replicas confirmed. One
 * WAIT per batch per connection, not one round trip per write.
 *
 * Invariant: a write's reply reaches its client only after the WAIT behind it answered
 * with enough replicas, or as an error; an error reply of the write itself passes unchanged.
 */
import { encodeCommand, encodeError, isErrorReply, parseIntegerReply } from '@reborn/protocol';
import type { BackendRequest, Durability } from './backend-types.js';

/** Durable mode: a write whose reply is parked until the WAIT behind its batch answers. */
export class DurableWrite implements BackendRequest {
  readonly payload: Buffer;
  skipReplies: number | undefined;
  constructor(
    readonly original: BackendRequest,
    private readonly unconfirmed: Array<[BackendRequest, Buffer]>,
  ) {
    this.payload = original.payload;
    this.skipReplies = original.skipReplies;
  }

  resolve(reply: Buffer): void {
    this.unconfirmed.push([this.original, reply]);
  }
}


/**
 * The WAIT put behind a batch of writes. Replies are in order, so when it answers every
 * write before it has answered into `unconfirmed`: those are released, or failed.
 */
export function waitBehindBatch(durability: Durability, addr: string, unconfirmed: Array<[BackendRequest, Buffer]>): BackendRequest {
  const { replicas, timeoutMs } = durability;
  return {
    payload: encodeCommand(['WAIT', String(replicas), String(timeoutMs)]),
    resolve: (reply) => {
      const confirmed = parseIntegerReply(reply);
      const writes = unconfirmed.splice(0);
      const failure =
        confirmed !== null && confirmed >= BigInt(replicas)
          ? null
          : encodeError(
              confirmed === null
                ? `ERR durable write not confirmed: WAIT failed on ${addr}`
                : `ERR durable write not confirmed: ${confirmed} of ${replicas} replicas acknowledged within ${timeoutMs} ms`,
            );
      for (const [req, r] of writes) req.resolve(failure === null || isErrorReply(r) ? r : failure);
    },
  };
}
