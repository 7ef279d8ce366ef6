/**
 * Fencing a proxy at the backends (docs/architecture.md §4 "Fencing proxies that do not ack").
 *
 * A proxy that did not ack a barrier may still be alive and writing with its old slot table;
 * trusting it to stop is not fencing. Each proxy talks to redis as its own ACL user
 * (proxyAclUser), so on every server of the groups involved we:
 *
 *   1. `ACL SETUSER <user> off` — new connections (and re-AUTHs) as that user are refused.
 *      On a server where the user does not exist yet this creates it disabled, on purpose:
 *      the proxy then finds itself fenced the first time it connects there.
 *   2. `CLIENT KILL USER <user>` — its open connections are closed, so nothing it already
 *      authenticated can write either. Zero killed (or "no such user") is fine.
 *   3. Steps 1–2 run twice, a moment apart. A proxy that found no user on a server creates
 *      it enabled (GETUSER, then SETUSER on); a fence landing between those two calls would
 *      be undone by the second. The second pass re-disables it and kills what it opened.
 *
 * Masters are mandatory: if any master cannot be fenced the call throws FenceError and the
 * caller must not go on (the barrier is then rolled back). Replicas are best effort — a
 * proxy does not write to them.
 *
 * Records, and the race with the proxy's own recovery. A fenced proxy notices at once (its
 * AUTH is refused), re-registers, writes its `members/<id>` key again, reloads the table,
 * re-enables its user and deletes `fences/<id>` — possibly while we are still here. So:
 *   - `fences/<id>` is written BEFORE the ACL passes (the proxy's later delete then clears
 *     it), and afterwards only rewritten (with the servers actually fenced) or removed (on
 *     failure) if it is still the one we wrote;
 *   - `members/<id>` is deleted once fenced (a fenced proxy can write nowhere, so later
 *     barriers need not wait for it — barrier.ts), but only if it is still the one read
 *     before fencing: a member key the recovering proxy wrote meanwhile must stay.
 */
import type { Logger } from 'pino';
import { CoordinatorError, ServerRole, guard, guardedWrite, op, proxyAclUser, putKey, readKey, type FenceInfo, type Store } from '@reborn/coordinator';
import { replyCode, withRedis, type RedisAdminOptions } from '@reborn/coordinator/admin';

/** Some master of the groups could not be fenced: the proxy may still write there. */
export class FenceError extends CoordinatorError {
  readonly proxyId: string;
  /** The masters where the proxy's user could not be disabled, with why. */
  readonly servers: readonly { addr: string; error: string }[];
  constructor(proxyId: string, servers: readonly { addr: string; error: string }[]) {
    super(
      'EFENCE',
      `could not fence proxy ${proxyId} on master(s) ${servers.map((s) => `${s.addr} (${s.error})`).join(', ')}`,
      { retryable: true },
    );
    this.name = 'FenceError';
    this.proxyId = proxyId;
    this.servers = servers;
  }
}

export interface FenceOptions {
  proxyId: string;
  /** Group ids whose every server gets the fence. */
  groups: readonly number[];
  /** Why, for the record and the log (e.g. "did not ack action 12 within 5000 ms"). */
  reason: string;
  /** The barrier action the proxy failed to ack, or null for an operator's fence. */
  action?: number | null;
  logger?: Logger;
  redis?: RedisAdminOptions;
}

const SECOND_PASS_DELAY_MS = 100;

async function fenceServer(addr: string, user: string, opts: RedisAdminOptions): Promise<number> {
  return withRedis(
    addr,
    async (c) => {
      await c.call('ACL', 'SETUSER', user, 'off');
      try {
        return Number(await c.call('CLIENT', 'KILL', 'USER', user));
      } catch (err) {
        // The user was just created or disabled above, so this is a race with an ACL DELUSER;
        // either way no connection of the user remains.
        if (replyCode(err) === 'ERR') return 0;
        throw err;
      }
    },
    opts,
  );
}

export async function fenceProxy(store: Store, opts: FenceOptions): Promise<FenceInfo> {
  const { proxyId, reason, action = null, logger } = opts;
  const user = proxyAclUser(store.product, proxyId);
  const wanted = new Set(opts.groups);
  const groups = (await store.listGroups()).filter((g) => wanted.has(g.id));
  const servers = groups.flatMap((g) => g.servers.map((s) => ({ group: g.id, addr: s.addr, master: s.role === ServerRole.Master })));
  const redisOpts = { connectTimeoutMs: 2000, commandTimeoutMs: 3000, ...opts.redis };
  const { paths } = store;
  const fenceKey = paths.fence(proxyId);
  const memberKey = paths.member(proxyId);

  const member = await readKey(store, `read member ${proxyId}`, memberKey);
  const memberRev = member?.modRevision ?? null;
  const record = (servers: readonly string[]): FenceInfo => ({ proxyId, at: new Date().toISOString(), reason, action, servers: [...servers] });
  const putRevision = await putKey(store, `record fence of ${proxyId}`, fenceKey, JSON.stringify(record(servers.map((s) => s.addr))));
  const ifOurRecord = guard.modRevision(fenceKey, putRevision);

  const pass = async () => {
    const results = await Promise.allSettled(servers.map((s) => fenceServer(s.addr, user, redisOpts)));
    return servers.map((s, i) => {
      const r = results[i]!;
      return { ...s, ok: r.status === 'fulfilled', killed: r.status === 'fulfilled' ? r.value : 0, error: r.status === 'rejected' ? errText(r.reason) : '' };
    });
  };
  const first = await pass();
  await new Promise((r) => setTimeout(r, SECOND_PASS_DELAY_MS));
  const second = await pass();

  const failedMasters = servers
    .map((s, i) => ({ s, a: first[i]!, b: second[i]! }))
    .filter(({ s, a, b }) => s.master && !(a.ok && b.ok))
    .map(({ s, a, b }) => ({ addr: s.addr, error: a.ok ? b.error : a.error }));
  const failedReplicas = second.filter((r, i) => !r.master && !(r.ok && first[i]!.ok));
  if (failedReplicas.length > 0) {
    logger?.warn(
      { proxyId, servers: failedReplicas.map((r) => ({ addr: r.addr, error: r.error || first.find((f) => f.addr === r.addr)?.error })) },
      'could not fence proxy on replicas (best effort)',
    );
  }
  if (failedMasters.length > 0) {
    logger?.error({ proxyId, servers: failedMasters, action }, 'could not fence proxy on masters');
    await guardedWrite(store, `drop fence record of ${proxyId}`, [ifOurRecord], [op.delete(fenceKey)]).catch(() => {});
    throw new FenceError(proxyId, failedMasters);
  }

  const fenced = servers.filter((_, i) => first[i]!.ok && second[i]!.ok).map((s) => s.addr);
  const info = record(fenced);
  await guardedWrite(store, `record fence of ${proxyId}`, [ifOurRecord], [op.put(fenceKey, JSON.stringify(info))]);
  if (memberRev !== null) {
    await guardedWrite(store, `forget member ${proxyId}`, [guard.modRevision(memberKey, memberRev)], [op.delete(memberKey)]);
  }
  const killed = first.reduce((n, r) => n + r.killed, 0) + second.reduce((n, r) => n + r.killed, 0);
  logger?.warn({ proxyId, user, servers: fenced, groups: [...wanted], action, reason, killed }, 'proxy fenced');
  return info;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Fences every proxy of `missing` that did not ack barrier action `action` — on EVERY group,
 * not only the ones moving: the fence also drops the proxy's member record, so later barriers
 * will not name it, and it must then be unable to write anywhere with whatever table it still
 * has (a partitioned proxy keeps serving). Returns the failures (empty: all fenced).
 */
export async function fenceSilent(
  store: Store,
  opts: { missing: readonly string[]; action: number; reason: string; logger: Logger; redis: RedisAdminOptions },
): Promise<unknown[]> {
  const everyGroup = (await store.listGroups()).map((g) => g.id);
  const results = await Promise.allSettled(
    opts.missing.map((proxyId) =>
      fenceProxy(store, { proxyId, groups: everyGroup, reason: opts.reason, action: opts.action, logger: opts.logger, redis: opts.redis }),
    ),
  );
  return results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
}
