/**
 * How the supervisor brings back a crashed redis-server, decided from the groups in etcd
 * (pure; the supervisor reads etcd and acts):
 *
 *   - in no group, or the master of a group without replicas: in place — its AOF is the only
 *     copy of its data, so it comes back with it;
 *   - the master of a group with replicas: not at all while etcd still names it master. Back
 *     empty (or behind), it would be the sync source of its replicas and wipe the group; the
 *     HA leader fails it over after its down window, and then it is
 *   - a replica (of the master etcd names): restarted with `--replicaof <master>`, so it never
 *     serves as a master, not even for a moment.
 *
 * Invariant: a crashed server etcd names master of a group that has replicas is never started
 * as a master; when the facts are unclear (in two groups, a group without a master, a name
 * that does not resolve) the plan is to wait and look again, never to guess.
 *
 * selfMatcher() says which etcd addresses are this server: its bind address, every local
 * address when it binds a wildcard, and host names that resolve to one of those.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { ServerRole, groupMaster, splitAddr, type GroupInfo } from '@reborn/coordinator';

/** Why a restart waits: for the HA leader's failover, or because etcd does not say how. */
export type HoldReason = 'failover' | 'unclear';

export type RestartPlan =
  | { kind: 'in-place'; why: string }
  | { kind: 'replica'; group: number; master: string; why: string }
  | { kind: 'wait'; hold: HoldReason; group: number | null; why: string };

/** The plan for the server that `isSelf` recognises, given every group in etcd. */
export function planRedisRestart(groups: readonly GroupInfo[], isSelf: (addr: string) => boolean): RestartPlan {
  const mine = groups.flatMap((g) => g.servers.filter((s) => isSelf(s.addr)).map((s) => ({ g, s })));
  if (mine.length === 0) return { kind: 'in-place', why: 'in no group' };
  if (mine.length > 1) {
    const where = mine.map(({ g, s }) => `group ${g.id} as ${s.addr} (${s.role})`).join(', ');
    return { kind: 'wait', hold: 'unclear', group: null, why: `named more than once in etcd: ${where}` };
  }
  const { g, s } = mine[0]!;
  if (s.role === ServerRole.Master) {
    const replicas = g.servers.filter((x) => x.role === ServerRole.Replica);
    if (replicas.length === 0) return { kind: 'in-place', why: `master of group ${g.id}, which has no replica` };
    return {
      kind: 'wait',
      hold: 'failover',
      group: g.id,
      why: `waiting for failover before restart: master of group ${g.id} in etcd, with replica(s) ${replicas.map((x) => x.addr).join(', ')}`,
    };
  }
  const master = groupMaster(g);
  if (!master) return { kind: 'wait', hold: 'unclear', group: g.id, why: `replica of group ${g.id}, which has no master in etcd` };
  return { kind: 'replica', group: g.id, master: master.addr, why: `replica of group ${g.id}, whose master is ${master.addr}` };
}

const WILDCARDS = new Set(['0.0.0.0', '::']);
const LOOKUP_TIMEOUT_MS = 2000;

/**
 * A test for "this etcd address is the server bound to `bindHost`:`port`". Host names in the
 * groups with that port are resolved (bounded); one that does not resolve throws — the
 * caller waits and asks again rather than guess.
 */
export async function selfMatcher(bindHost: string, port: number, groups: readonly GroupInfo[]): Promise<(addr: string) => boolean> {
  const local = new Set<string>([bindHost]);
  if (WILDCARDS.has(bindHost)) {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) local.add(a.address);
    for (const name of ['localhost', hostname()]) local.add(name);
  }
  if (bindHost.startsWith('127.') || bindHost === '::1') local.add('localhost');
  const names = new Set<string>();
  for (const g of groups) {
    for (const s of g.servers) {
      const { host, port: p } = splitAddr(s.addr);
      if (p === port && !local.has(host) && isIP(host) === 0) names.add(host);
    }
  }
  for (const name of names) {
    const found = await resolveBounded(name);
    if (found.some((a) => local.has(a))) local.add(name);
  }
  return (addr) => {
    const { host, port: p } = splitAddr(addr);
    return p === port && local.has(host);
  };
}

async function resolveBounded(name: string): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`cannot resolve ${name} within ${LOOKUP_TIMEOUT_MS} ms`)), LOOKUP_TIMEOUT_MS);
  });
  try {
    const res = await Promise.race([lookup(name, { all: true }), timeout]);
    return res.map((r) => r.address);
  } catch (err) {
    throw new Error(`cannot tell whether etcd's ${name} is this server: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
