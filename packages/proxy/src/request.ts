/**
 * Requests as the session sees them, and the merge steps of commands the proxy splits.
 *
 * A ClientRequest sits in its session's reply queue from the moment it is parsed; whichever
 * way its reply is produced (locally, by one backend, or merged from several), the session
 * sends replies strictly in queue order. A split command's sub-requests share one Merge,
 * which completes the ClientRequest when its last part arrives.
 */
import {
  encodeArrayOfEncoded,
  encodeError,
  encodeInteger,
  isErrorReply,
  OK,
  ONE,
  ZERO,
  parseIntegerReply,
  splitArrayReply,
} from '@reborn/protocol';
import type { BackendRequest } from './backend.js';

/** What a request needs of its session. */
export interface ReplySink {
  replyReady(req: ClientRequest): void;
}

export class ClientRequest implements BackendRequest {
  next: ClientRequest | null = null;
  reply: Buffer | null = null;
  /** A write command (durable mode holds its reply until a replica confirmed it). */
  write = false;
  /** A WATCH: never sent anywhere but the client's pinned connection. */
  pinnedOnly = false;
  /** CLIENT REPLY OFF/SKIP: answered (and counted) but not written to the client. */
  silent = false;
  /** Runs once the reply has left the queue: every earlier request is answered (Session). */
  onReleased: (() => void) | null = null;
  /** Bytes to forward when the request goes to one backend unchanged. */
  payload: Buffer;

  constructor(
    readonly sink: ReplySink,
    payload: Buffer,
    /** Index into the proxy's per-command stats; -1 for requests not counted per command. */
    readonly statIndex: number,
    readonly startedAt: number,
  ) {
    this.payload = payload;
  }

  resolve(reply: Buffer): void {
    if (this.reply !== null) return;
    this.reply = reply;
    this.sink.replyReady(this);
  }
}

/** Collects the replies of a split command's parts and merges them into one reply. */
export abstract class Merge {
  protected readonly replies: (Buffer | null)[];
  private left: number;

  constructor(readonly target: ClientRequest, parts: number, private readonly toleratesErrors = false) {
    this.replies = new Array<Buffer | null>(parts).fill(null);
    this.left = parts;
  }

  part(index: number, payload: Buffer): BackendRequest {
    return { payload, write: this.target.write, resolve: (reply: Buffer) => this.done(index, reply) };
  }

  private done(index: number, reply: Buffer): void {
    if (this.replies[index] !== null) return;
    this.replies[index] = reply;
    if (--this.left === 0) {
      const error = this.toleratesErrors ? null : this.firstError();
      let merged: Buffer;
      try {
        merged = error ?? this.merge(this.replies as Buffer[]);
      } catch (err) {
        // A merge that cannot be built (a reply too big to handle, a bug) fails this request
        // alone, not the backend connection whose reply completed it.
        merged = encodeError(`ERR cannot merge the backends' replies: ${(err as Error).message}`);
      }
      this.target.resolve(merged);
    }
  }

  /** Any part's error is the command's error: the client must not get a partial success. */
  private firstError(): Buffer | null {
    for (const r of this.replies) if (r !== null && isErrorReply(r)) return r;
    return null;
  }

  protected abstract merge(replies: Buffer[]): Buffer;
}

/** DEL, UNLINK, EXISTS, TOUCH and fan-out counts: the integer replies add up. */
export class SumMerge extends Merge {
  protected merge(replies: Buffer[]): Buffer {
    let total = 0n;
    for (const r of replies) {
      const n = parseIntegerReply(r);
      if (n === null) return encodeError('ERR unexpected reply from backend while merging');
      total += n;
    }
    return encodeInteger(total);
  }
}

/** WAIT over several groups: the smallest count, what every group can promise. */
export class MinMerge extends Merge {
  protected merge(replies: Buffer[]): Buffer {
    let min: bigint | null = null;
    for (const r of replies) {
      const n = parseIntegerReply(r);
      if (n === null) return encodeError('ERR unexpected reply from backend while merging');
      if (min === null || n < min) min = n;
    }
    return encodeInteger(min ?? 0n);
  }
}

/** MSET and fan-outs that must all succeed: +OK when every part said OK. */
export class AllOkMerge extends Merge {
  protected merge(): Buffer {
    return OK;
  }
}

/** SCRIPT KILL on every master: OK when one of them had a script to kill, else its error. */
export class AnyOkMerge extends Merge {
  constructor(target: ClientRequest, parts: number) {
    super(target, parts, true);
  }

  protected merge(replies: Buffer[]): Buffer {
    return replies.find((r) => !isErrorReply(r)) ?? replies[0]!;
  }
}

/** Fan-outs whose parts answer the same thing (SCRIPT LOAD's sha): the first reply. */
export class FirstMerge extends Merge {
  protected merge(replies: Buffer[]): Buffer {
    return replies[0]!;
  }
}

/**
 * MGET: each part asked for a subset of the keys; `positions[p][i]` is where the i-th value
 * of part p goes in the client's reply.
 */
export class MgetMerge extends Merge {
  constructor(target: ClientRequest, private readonly positions: number[][], private readonly total: number) {
    super(target, positions.length);
  }

  protected merge(replies: Buffer[]): Buffer {
    const values = new Array<Buffer>(this.total);
    for (let p = 0; p < replies.length; p++) {
      const items = splitArrayReply(replies[p]!);
      const where = this.positions[p]!;
      if (items === null || items.length !== where.length) return encodeError('ERR unexpected reply from backend while merging MGET');
      for (let i = 0; i < items.length; i++) values[where[i]!] = items[i]!;
    }
    return encodeArrayOfEncoded(values);
  }
}

/** SCRIPT EXISTS on every master: a script exists only if every master has it. */
export class ArrayAndMerge extends Merge {
  protected merge(replies: Buffer[]): Buffer {
    const first = splitArrayReply(replies[0]!);
    if (first === null) return encodeError('ERR unexpected reply from backend while merging');
    const all = first.map((item) => parseIntegerReply(item) === 1n);
    for (const r of replies.slice(1)) {
      const items = splitArrayReply(r);
      if (items === null || items.length !== all.length) return encodeError('ERR unexpected reply from backend while merging');
      items.forEach((item, i) => {
        if (parseIntegerReply(item) !== 1n) all[i] = false;
      });
    }
    return encodeArrayOfEncoded(all.map((ok) => (ok ? ONE : ZERO)));
  }
}

/**
 * A fan-out whose parts are merged by a caller-supplied function, which also sees error
 * replies: INFO must still answer (with what it has) when one master is down.
 */
export class CustomMerge extends Merge {
  constructor(target: ClientRequest, parts: number, private readonly fn: (replies: Buffer[]) => Buffer) {
    super(target, parts, true);
  }

  protected merge(replies: Buffer[]): Buffer {
    return this.fn(replies);
  }
}
