/**
 * Keyspace-wide commands over every group: KEYS, SCAN, RANDOMKEY, FLUSHDB/FLUSHALL.
 *
 * SCAN's cursor says where the iteration is: `backendCursor * 16384 + groupId` (group ids are
 * below 16384), 0 to start and when done. Groups are visited one after another in
 * Router.scanOrder(): the source of a migrating slot before its target. Why that is enough
 * for "every key that existed throughout the iteration is returned": a key only ever moves
 * from a slot's source to its target. If it moves before the source's scan passes it, it is
 * in the target for the whole of the target's scan, which comes later; if it moves after,
 * the source's scan sees it. (A migration started mid-iteration in the opposite direction of
 * the order already chosen could still hide a key: the order is fixed per SCAN call.)
 */
import {
  encodeArrayOfEncoded,
  encodeBulk,
  encodeCommand,
  encodeError,
  isErrorReply,
  NULL_BULK,
  splitArrayReply,
} from '@reborn/protocol';
import type { BackendPool } from './backend.js';
import { AllOkMerge, CustomMerge, type ClientRequest } from './request.js';
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
      all.push(...items);
      if (all.length > limits.maxKeysReply) {
        return encodeError(`ERR KEYS would return more than ${limits.maxKeysReply} keys; use SCAN`);
      }
    }
    return encodeArrayOfEncoded(all);
  });
  const payload = encodeCommand(args);
  masters.forEach((pool, i) => pool.pick(session.id).send(merge.part(i, payload)));
}

export function randomKey(router: Router, session: Session, req: ClientRequest): void {
  const masters = router.masters();
  const start = Math.floor(Math.random() * Math.max(1, masters.length));
  const payload = encodeCommand(['RANDOMKEY']);
  const attempt = (n: number): void => {
    if (n >= masters.length) {
      req.resolve(NULL_BULK);
      return;
    }
    masters[(start + n) % masters.length]!.pick(session.id).send({
      payload,
      resolve: (reply) => (reply.equals(NULL_BULK) ? attempt(n + 1) : req.resolve(reply)),
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
  const merge = new AllOkMerge(req, masters.length);
  const payload = encodeCommand(args);
  if (masters.length === 0) req.resolve(encodeError('ERR no groups are configured'));
  else masters.forEach((pool: BackendPool, i) => pool.pick(session.id).send(merge.part(i, payload)));
}

export function scan(router: Router, session: Session, req: ClientRequest, args: Buffer[]): void {
  const cursor = parseUnsigned(args[1]!);
  if (cursor === null) {
    req.resolve(encodeError('ERR invalid cursor'));
    return;
  }
  const order = router.scanOrder();
  let gid: number;
  let backendCursor: bigint;
  if (cursor === 0n) {
    if (order.length === 0) {
      req.resolve(encodeArrayOfEncoded([encodeBulk('0'), encodeArrayOfEncoded([])]));
      return;
    }
    gid = order[0]!;
    backendCursor = 0n;
  } else {
    gid = Number(cursor % GROUP_SPACE);
    backendCursor = cursor / GROUP_SPACE;
  }
  const pool = router.masterOf(gid);
  if (pool === undefined) {
    req.resolve(encodeError(`ERR invalid cursor: group ${gid} does not exist any more; start again from 0`));
    return;
  }
  const payload = encodeCommand(['SCAN', String(backendCursor), ...args.slice(2)]);
  pool.pick(session.id).send({
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
      if (next !== 0n) {
        out = next * GROUP_SPACE + BigInt(gid);
      } else {
        const now = router.scanOrder();
        const at = now.indexOf(gid);
        const following = at >= 0 ? now[at + 1] : now.find((id) => id > gid);
        out = following === undefined ? 0n : BigInt(following);
      }
      req.resolve(encodeArrayOfEncoded([encodeBulk(String(out)), parts[1]!]));
    },
  });
}
