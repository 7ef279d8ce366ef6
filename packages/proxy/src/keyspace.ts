/**
 * Keyspace-wide commands over every group: KEYS, SCAN, RANDOMKEY, FLUSHDB/FLUSHALL.
 *
 * SCAN visits the groups one after another in ascending id order, each with its own redis
 * SCAN. The cursor is `((backendCursor * 16384) + groupId) * 2^19 + pass`, 0 to start and
 * when done (group ids are below 16384). It stays below 2^63, what every client library
 * parses (redis-cli saturates above 2^64, Java and .NET clients use signed 64 bits): so the
 * backend cursor must be below 2^30 (a group of up to about a billion keys). `pass` holds
 * the router's move counter when the current pass began (its low 14 bits), a 4-bit tag of
 * the proxy that made the cursor, and one bit saying whether the pass is a revisit.
 *
 * Why a full iteration returns every key that existed throughout it, even while slots
 * migrate: a key only ever moves from a slot's source group to its target.
 *  - Moving up (target id > source id): if it moves before the source's scan passes it, it is
 *    in the target for the whole of the target's scan, which comes later; if after, the
 *    source's scan saw it.
 *  - Moving down (target id < source id) could hide it: the target may already be done. So
 *    when the main pass ends, the proxy starts ONE more pass from the lowest target of any
 *    downward move that was under way at some point of the main pass: one still migrating,
 *    or one that started or finished since the pass began (the router logs those). One
 *    revisit is enough: a key that moved down after the target's first scan and before the
 *    source's scan is in the target for the whole revisit; any other key was seen in the
 *    target the first time or in the source. A revisit pass only triggers another one for
 *    moves that start during it. Keys may come twice; SCAN allows that.
 * The product's own keys (`__reborn:…`, a migration's copy marks and big keys being copied)
 * never reach a client: SCAN, KEYS and RANDOMKEY leave them out.
 * A cursor made by another proxy (another tag: move counters are per proxy), or older than
 * the log, gets the conservative answer: another pass from the lowest group — once: a
 * revisit pass begun by another proxy ends the iteration, so passes that alternate between
 * proxies still finish. (Two proxies share a tag with odds 1 in 16; a cursor is then read as
 * this proxy's own.)
 */
import {
  encodeArrayOfEncoded,
  encodeBulk,
  encodeCommand,
  encodeError,
  isErrorReply,
  NULL_BULK,
  NULL3,
  nullBulk,
  OK,
  splitArrayReply,
} from '@reborn/protocol';
import { randomInt } from 'node:crypto';
import { INTERNAL_KEY_PREFIX } from '@reborn/coordinator';
import type { BackendPool } from './backend-pool.js';
import { CustomMerge, type ClientRequest } from './request.js';
import type { Router } from './router.js';
import type { Session } from './session.js';

const GROUP_SPACE = 16384n;

export interface KeyspaceLimits {
  /** KEYS answers an error instead of a reply longer than this. */
  maxKeysReply: number;
  /** FLUSHDB / FLUSHALL allowed (`--no-flush` turns them off). */
  flushAllowed: boolean;
}

function parseUnsigned(arg: Buffer): bigint | null {
  const s = arg.toString('latin1');
  return /^\d{1,40}$/.test(s) ? BigInt(s) : null;
}

const INTERNAL = Buffer.from(INTERNAL_KEY_PREFIX);

/** Whether a raw bulk reply (`$n\r\n<key>\r\n`) names one of the product's own keys (a migration's copy marks, a big key being copied). */
function isInternalBulk(bulk: Buffer): boolean {
  const start = bulk.indexOf(0x0a) + 1;
  return start > 0 && bulk.length - 2 - start >= INTERNAL.length && bulk.subarray(start, start + INTERNAL.length).equals(INTERNAL);
}

/**
 * A raw array of keys without the product's own keys: clients never see them. Costs one
 * indexOf when there are none (the usual case: they exist only while a migration runs).
 */
function withoutInternalKeys(array: Buffer): Buffer {
  if (array.indexOf(INTERNAL) < 0) return array;
  const items = splitArrayReply(array);
  return items === null ? array : encodeArrayOfEncoded(items.filter((k) => !isInternalBulk(k)));
}

export function keys(router: Router, limits: KeyspaceLimits, session: Session, req: ClientRequest, args: Buffer[]): void {
  const masters = router.masters();
  if (masters.length === 0) {
    req.resolve(encodeArrayOfEncoded([]));
    return;
  }
  const merge = new CustomMerge(req, masters.length, (replies) => {
    const all: Buffer[] = [];
    for (const r of replies) {
      if (isErrorReply(r)) return r;
      const items = splitArrayReply(r);
      if (items === null) return encodeError('ERR unexpected KEYS reply from a backend');
      if (all.length + items.length > limits.maxKeysReply) {
        return encodeError(`ERR KEYS would return more than ${limits.maxKeysReply} keys; use SCAN`);
      }
      // A loop, not push(...items): spreading 100k+ arguments overflows the stack.
      for (const item of items) if (!isInternalBulk(item)) all.push(item);
    }
    return encodeArrayOfEncoded(all);
  });
  const payload = encodeCommand(args);
  masters.forEach((pool, i) => pool.pick(session.id, session.resp).send(merge.part(i, payload)));
}

export function randomKey(router: Router, session: Session, req: ClientRequest): void {
  const masters = router.masters();
  const start = Math.floor(Math.random() * Math.max(1, masters.length));
  const payload = encodeCommand(['RANDOMKEY']);
  const attempt = (n: number, internal = 0): void => {
    if (n >= masters.length) {
      req.resolve(nullBulk(session.resp));
      return;
    }
    masters[(start + n) % masters.length]!.pick(session.id, session.resp).send({
      payload,
      resolve: (reply) => {
        // An internal key (a migration's) is not the client's: ask that master again a few
        // times, then take it for one holding none of the client's.
        if (isInternalBulk(reply)) attempt(internal < 3 ? n : n + 1, internal < 3 ? internal + 1 : 0);
        else if (reply.equals(NULL_BULK) || reply.equals(NULL3)) attempt(n + 1);
        else req.resolve(reply);
      },
    });
  };
  attempt(0);
}

export function flush(router: Router, limits: KeyspaceLimits, session: Session, req: ClientRequest, args: Buffer[]): void {
  if (!limits.flushAllowed) {
    req.resolve(encodeError(`ERR ${args[0]!.toString('latin1').toUpperCase()} is disabled on this proxy (--no-flush)`));
    return;
  }
  const masters = router.masters();
  if (masters.length === 0) {
    req.resolve(encodeError('ERR no groups are configured'));
    return;
  }
  const payload = encodeCommand(args);
  // Sources of migrating slots first: a MIGRATE running there finishes before their flush,
  // and could otherwise land its keys in a target flushed a moment earlier.
  const sources = new Set<BackendPool>();
  for (const entry of router.slots) if (entry.state === 'migrating' && entry.source !== null) sources.add(entry.source);
  const first = masters.filter((m) => sources.has(m));
  const then = masters.filter((m) => !sources.has(m));
  const flushAll = (pools: BackendPool[], done: (error: Buffer | null) => void): void => {
    let left = pools.length;
    let error: Buffer | null = null;
    for (const pool of pools) {
      pool.pick(session.id, session.resp).send({
        payload,
        write: true,
        resolve: (reply) => {
          if (isErrorReply(reply)) error ??= reply;
          if (--left === 0) done(error);
        },
      });
    }
  };
  const finish = (error: Buffer | null): void => {
    if (error !== null) req.resolve(error);
    else if (then.length === 0) req.resolve(OK);
    else flushAll(then, (e) => req.resolve(e ?? OK));
  };
  if (first.length === 0) finish(null);
  else flushAll(first, finish);
}

const SEQ_SPACE = 2 ** 14;
const TAG_SPACE = 2 ** 4;
const REVISIT_FLAG = SEQ_SPACE * TAG_SPACE;
const PASS_SPACE = BigInt(REVISIT_FLAG * 2);
const MAX_BACKEND_CURSOR = 2n ** 30n;
/** This proxy process's tag in the cursors it makes. */
const OWN_TAG = randomInt(TAG_SPACE);

/** A pass field for a pass beginning now. */
const newPass = (router: Router, revisit: boolean): number => (revisit ? REVISIT_FLAG : 0) + OWN_TAG * SEQ_SPACE + (router.moveSeq % SEQ_SPACE);

/** The move counter a pass of this proxy began at: the latest value with the cursor's low bits. */
const passStart = (router: Router, pass: number): number => {
  const low = pass % SEQ_SPACE;
  return router.moveSeq - ((((router.moveSeq - low) % SEQ_SPACE) + SEQ_SPACE) % SEQ_SPACE);
};

export function scan(router: Router, session: Session, req: ClientRequest, args: Buffer[]): void {
  const cursor = parseUnsigned(args[1]!);
  if (cursor === null) {
    req.resolve(encodeError('ERR invalid cursor'));
    return;
  }
  let gid: number;
  let backendCursor: bigint;
  let pass: number;
  if (cursor === 0n) {
    const first = router.scanGroups()[0];
    if (first === undefined) {
      req.resolve(encodeArrayOfEncoded([encodeBulk('0'), encodeArrayOfEncoded([])]));
      return;
    }
    gid = first;
    backendCursor = 0n;
    pass = newPass(router, false);
  } else {
    pass = Number(cursor % PASS_SPACE);
    const rest = cursor / PASS_SPACE;
    gid = Number(rest % GROUP_SPACE);
    backendCursor = rest / GROUP_SPACE;
  }
  const encode = (backend: bigint, group: number, pass: number): bigint => (backend * GROUP_SPACE + BigInt(group)) * PASS_SPACE + BigInt(pass);
  if (backendCursor >= MAX_BACKEND_CURSOR) {
    req.resolve(encodeError('ERR invalid cursor'));
    return;
  }
  const pool = router.masterOf(gid);
  if (pool === undefined) {
    req.resolve(encodeError(`ERR invalid cursor: group ${gid} does not exist any more; start again from 0`));
    return;
  }
  const payload = encodeCommand(['SCAN', String(backendCursor), ...args.slice(2)]);
  pool.pick(session.id, session.resp).send({
    payload,
    resolve: (reply) => {
      const parts = isErrorReply(reply) ? null : splitArrayReply(reply);
      if (parts === null || parts.length !== 2) {
        req.resolve(isErrorReply(reply) ? reply : encodeError('ERR unexpected SCAN reply from a backend'));
        return;
      }
      // parts[0] is the raw bulk `$n\r\n<cursor>\r\n`.
      const raw = parts[0]!.toString('latin1');
      const next = BigInt(raw.slice(raw.indexOf('\n') + 1, raw.length - 2));
      let out: bigint;
      if (next >= MAX_BACKEND_CURSOR) {
        req.resolve(encodeError(`ERR group ${gid} is too large for a proxy SCAN cursor (backend cursor ${next} ≥ 2^30)`));
        return;
      }
      if (next !== 0n) {
        out = encode(next, gid, pass);
      } else {
        const following = router.scanGroups().find((id) => id > gid);
        if (following !== undefined) {
          out = encode(0n, following, pass);
        } else {
          // End of a pass: go again from wherever a key may have moved down to meanwhile.
          const isRevisit = pass >= REVISIT_FLAG;
          const ownPass = Math.floor(pass / SEQ_SPACE) % TAG_SPACE === OWN_TAG;
          const candidates = ownPass
            ? [router.lowestDownMoveSince(passStart(router, pass)), isRevisit ? undefined : router.lowestActiveDownTarget()]
            : [isRevisit ? undefined : router.scanGroups()[0]];
          const revisit = candidates.reduce<number | undefined>((a, b) => (b === undefined ? a : a === undefined ? b : Math.min(a, b)), undefined);
          const from = revisit === undefined ? undefined : router.scanGroups().find((id) => id >= revisit);
          out = from === undefined ? 0n : encode(0n, from, newPass(router, true));
        }
      }
      req.resolve(encodeArrayOfEncoded([encodeBulk(String(out)), withoutInternalKeys(parts[1]!)]));
    },
  });
}
