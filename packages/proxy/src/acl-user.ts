/**
 * This proxy's ACL user on the redis servers, outside the shared pools: re-enabling it after
 * a fence (on every server that answers) or on one server that still carries an old fence.
 *
 * Invariant: a server that cannot be reached (refused, reset, no reply in time, still
 * loading) never makes these fail: it is reported as unreachable, and the caller decides.
 * Only a server that answers and refuses the command is an error — it is alive, so what it
 * says counts.
 */
import { errorReplyMessage, isErrorReply } from '@reborn/protocol';
import { proxyAclRules } from '@reborn/coordinator';
import { redisCommand } from './admin-redis.js';

export interface AclUser {
  user: string;
  password: string;
  /** The servers' default-user password, or null. */
  adminPassword: string | null;
  timeoutMs: number;
}

/** A server answered the ACL command with an error. */
export class AclUserError extends Error {
  readonly code = 'EACLUSER';
  constructor(readonly addr: string, readonly reply: string) {
    super(`re-enabling our user on ${addr} failed: ${reply}`);
    this.name = 'AclUserError';
  }
}

export type EnableResult = { addr: string; enabled: true } | { addr: string; enabled: false; unreachable: string };

/** `ACL SETUSER <user> on …` on `addr`. Throws AclUserError only when the server answers an error. */
export async function enableAclUserOn(addr: string, who: AclUser): Promise<EnableResult> {
  let reply: Buffer;
  try {
    reply = await redisCommand(addr, ['ACL', 'SETUSER', who.user, ...proxyAclRules(who.password)], who.timeoutMs, who.adminPassword);
  } catch (err) {
    return { addr, enabled: false, unreachable: (err as Error).message };
  }
  if (!isErrorReply(reply)) return { addr, enabled: true };
  const message = errorReplyMessage(reply);
  // A server still loading its data set is not up yet: the same as one not answering.
  if (message.startsWith('LOADING')) return { addr, enabled: false, unreachable: message };
  throw new AclUserError(addr, message);
}

/**
 * Re-enables the user on every server of `servers` that answers. Resolves with the servers
 * that could not be reached; rejects (AclUserError) if one that answered refused.
 */
export async function enableAclUserWhereAlive(servers: Iterable<string>, who: AclUser): Promise<{ enabled: string[]; unreachable: { addr: string; error: string }[] }> {
  const results = await Promise.allSettled([...servers].map((addr) => enableAclUserOn(addr, who)));
  const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (refused) throw refused.reason;
  const done = results.map((r) => (r as PromiseFulfilledResult<EnableResult>).value);
  return {
    enabled: done.filter((r) => r.enabled).map((r) => r.addr),
    unreachable: done.flatMap((r) => (r.enabled ? [] : [{ addr: r.addr, error: r.unreachable }])),
  };
}
