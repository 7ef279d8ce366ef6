/**
 * The topology alarm of a product as the dashboard and `GET /api/overview` show it: what etcd
 * alone says (a restore in progress; no topology and no identity while proxies are
 * registered) and what every registered proxy and agent reports on its /healthz (each keeps
 * its own alarm: coordinator topology-guard.ts).
 *
 * Invariant: bounded and total — every probe has a timeout, a process that does not answer
 * is listed as such, and only an etcd failure makes the call fail (as the overview's own
 * reads do).
 */
import {
  AgentStore,
  type ProductIdentity,
  type RestoreMarker,
  type Store,
  type TopologyAlarmView,
} from '@reborn/coordinator';

const PROBE_TIMEOUT_MS = 1000;

export interface ProcessAlarm extends TopologyAlarmView {
  /** `proxy` or `agent`. */
  readonly kind: 'proxy' | 'agent';
  readonly id: string;
}

export interface TopologyAlarmOverview {
  /** Some process, or etcd itself, shows an alarm. */
  readonly alarmed: boolean;
  /** The identity etcd holds now (null: none — lost, or a product from before identities). */
  readonly identity: ProductIdentity | null;
  readonly restoring: RestoreMarker | null;
  /** A problem seen in etcd alone, or null. */
  readonly etcd: string | null;
  /** The processes that report an alarm. */
  readonly processes: ProcessAlarm[];
  /** Registered processes whose /healthz did not answer (their alarm state is unknown). */
  readonly unreachable: string[];
}

/** Reads etcd and asks every registered proxy and agent; see the file header. */
export async function topologyAlarms(store: Store, timeoutMs = PROBE_TIMEOUT_MS): Promise<TopologyAlarmOverview> {
  const [head, proxies, agents] = await Promise.all([store.loadTopologyHead(), store.listProxies(), new AgentStore(store).listAgents()]);
  let etcd: string | null = null;
  if (head.restoring) {
    etcd = `a topology restore of generation ${head.restoring.generation} is in progress (started ${head.restoring.startedAt} by ${head.restoring.by})`;
  } else if (head.identity === null && head.slotKeys === 0 && head.groups === 0 && proxies.some((p) => p.state === 'online')) {
    etcd = `etcd holds no slots, no groups and no identity while ${proxies.length} proxies are registered: etcd probably lost its data; restore the topology`;
  }
  const probes = [
    ...proxies.map((p) => ({ kind: 'proxy' as const, id: p.id, url: `http://${p.adminAddr}/healthz` })),
    ...agents.map((a) => ({ kind: 'agent' as const, id: a.id, url: `http://${a.httpAddr}/healthz` })),
  ];
  const processes: ProcessAlarm[] = [];
  const unreachable: string[] = [];
  await Promise.all(
    probes.map(async (p) => {
      try {
        const res = await fetch(p.url, { signal: AbortSignal.timeout(timeoutMs) });
        const body = (await res.json()) as { topologyAlarm?: unknown };
        const alarm = viewOf(body.topologyAlarm);
        if (alarm) processes.push({ kind: p.kind, id: p.id, ...alarm });
      } catch {
        unreachable.push(`${p.kind} ${p.id}`);
      }
    }),
  );
  processes.sort((a, b) => (a.kind + a.id < b.kind + b.id ? -1 : 1));
  return { alarmed: etcd !== null || processes.length > 0, identity: head.identity, restoring: head.restoring, etcd, processes, unreachable: unreachable.sort() };
}

/** A process's alarm from its /healthz body, checked field by field (it is remote input). */
function viewOf(v: unknown): TopologyAlarmView | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const str = (k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : '');
  if (str('reason') === '') return null;
  return { reason: str('reason') as TopologyAlarmView['reason'], message: str('message'), since: str('since'), effect: str('effect') };
}
