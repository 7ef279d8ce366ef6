/**
 * Durable mode (`--durable`): every write batch a connection flushes is followed by one
 * `WAIT <n> <timeout>`, n being the size of the group's in-sync set; the replies of that
 * batch's writes are parked until WAIT answers, then released — or replaced by an error
 * naming the set when fewer than n replicas confirmed. One WAIT per batch per connection,
 * not one round trip per write. n = 0 (the set is the master alone: degraded) means no WAIT
 * at all: the write is acknowledged on the master alone, like a group without replicas.
 *
 * Invariant: a write's reply reaches its client only after the WAIT behind it answered
 * with n replicas, or as an error; an error reply of the write itself passes unchanged.
 *
 * n is read when a batch is flushed and kept by that batch's WAIT; the next batch reads it
 * again, so a change of the set (etcd watch) applies from the next batch on. A batch already
 * sent with the old n is safe either way:
 * - the set shrank: the HA leader removed the member in etcd before any proxy could learn of
 *   it, so a batch still waiting for the larger n asks for more than needed: at worst it
 *   fails (an error, never an unsafe acknowledgement);
 * - the set grew: a replica joins only once it holds what the master held, and a batch
 *   confirmed by the old members is on every one of them; a new member missing its tail
 *   cannot be promoted over them (only a server holding everything the members hold is).
 * Writes of a batch queued while n was 0 and flushed after it grew get no WAIT: they belong
 * to the degraded period that ended in the same event-loop turn.
 */
import { encodeCommand, encodeError, isErrorReply, parseIntegerReply } from '@reborn/protocol';
import type { BackendRequest, WritePolicy } from './backend-types.js';

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
export function waitBehindBatch(policy: WritePolicy, addr: string, unconfirmed: Array<[BackendRequest, Buffer]>): BackendRequest {
  // This batch's own n, members and timeout: a later change of the set is for later batches.
  const { replicas, members, timeoutMs } = policy;
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
                : `ERR durable write not confirmed: ${confirmed} of ${replicas} in-sync replicas (${members}) acknowledged within ${timeoutMs} ms`,
            );
      for (const [req, r] of writes) req.resolve(failure === null || isErrorReply(r) ? r : failure);
    },
  };
}
