/**
 * Agent metrics on a registry the agent owns (never prom-client's global one). Gauges that
 * mirror state (apps by state, leadership, server health) are computed when scraped, from
 * the objects that own the state, so they cannot drift.
 */
import client from 'prom-client';
import { TOPOLOGY_ALARM_REASONS, type TopologyAlarmReason } from '@reborn/coordinator';

export interface MetricSources {
  apps(): { kind: string; state: string }[];
  isLeader(): boolean;
  servers(): { group: number; addr: string; up: boolean }[];
  /** The reason of the topology alarm this agent's HA loop raised, or null. */
  topologyAlarm(): TopologyAlarmReason | null;
}

export class AgentMetrics {
  readonly registry = new client.Registry();
  readonly appRestarts: client.Counter<'app' | 'kind'>;
  readonly failovers: client.Counter<'group' | 'result'>;
  readonly failoverSeconds: client.Histogram;
  readonly leaderTransitions: client.Counter<'to'>;
  readonly checkFailures: client.Counter;
  readonly repoints: client.Counter<'reason'>;
  readonly inSyncReplicas: client.Gauge<'group'>;
  readonly inSyncChanges: client.Counter<'group' | 'change'>;
  readonly stalls: client.Counter<'group' | 'role'>;

  constructor(sources: MetricSources, labels: { agent: string; product: string }) {
    const r = this.registry;
    r.setDefaultLabels(labels);
    client.collectDefaultMetrics({ register: r, prefix: 'reborn_agent_' });
    this.appRestarts = new client.Counter({
      name: 'reborn_agent_app_restarts_total',
      help: 'Supervised processes restarted after they died',
      labelNames: ['app', 'kind'],
      registers: [r],
    });
    this.failovers = new client.Counter({
      name: 'reborn_agent_failovers_total',
      help: 'Master failovers by result (done, failed, blocked: no in-sync member answers, suspended: a down master not failed over because of the topology alarm)',
      labelNames: ['group', 'result'],
      registers: [r],
    });
    this.failoverSeconds = new client.Histogram({
      name: 'reborn_agent_failover_seconds',
      help: 'From the last successful check of a dead master to the etcd update of its group',
      buckets: [0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 30],
      registers: [r],
    });
    this.leaderTransitions = new client.Counter({
      name: 'reborn_agent_leader_transitions_total',
      help: 'HA leadership won (to=leader) and lost (to=follower)',
      labelNames: ['to'],
      registers: [r],
    });
    this.checkFailures = new client.Counter({
      name: 'reborn_agent_check_failures_total',
      help: 'Failed health checks of redis servers (leader only)',
      registers: [r],
    });
    this.repoints = new client.Counter({
      name: 'reborn_agent_replicaof_total',
      help: 'REPLICAOF <master> sent to a server, by reason',
      labelNames: ['reason'],
      registers: [r],
    });
    this.inSyncReplicas = new client.Gauge({
      name: 'reborn_agent_in_sync_replicas',
      help: 'Members of each group\'s in-sync replica set as the HA leader last read or wrote it (0: durable writes rest on the master alone)',
      labelNames: ['group'],
      registers: [r],
    });
    this.inSyncChanges = new client.Counter({
      name: 'reborn_agent_in_sync_changes_total',
      help: 'Replicas the HA leader added to or removed from a group\'s in-sync set',
      labelNames: ['group', 'change'],
      registers: [r],
    });
    this.stalls = new client.Counter({
      name: 'reborn_agent_stalls_total',
      help: 'Servers that stopped answering while their port still accepted connections (alive but busy or frozen), by role',
      labelNames: ['group', 'role'],
      registers: [r],
    });
    new client.Gauge({
      name: 'reborn_agent_apps',
      help: 'Supervised processes by kind and state',
      labelNames: ['kind', 'state'],
      registers: [r],
      collect() {
        this.reset();
        for (const a of sources.apps()) this.inc({ kind: a.kind, state: a.state });
      },
    });
    new client.Gauge({
      // Named like the proxy's series, so one alert rule covers proxies and agents.
      name: 'reborn_topology_alarm',
      help: '1 for the reason of the topology alarm (etcd lost or replaced the topology; failover suspended while it is up), 0 for the others',
      labelNames: ['reason'],
      registers: [r],
      collect() {
        const up = sources.topologyAlarm();
        for (const reason of TOPOLOGY_ALARM_REASONS) this.set({ reason }, reason === up ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'reborn_agent_is_leader',
      help: '1 while this agent is the HA leader',
      registers: [r],
      collect() {
        this.set(sources.isLeader() ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'reborn_agent_server_up',
      help: 'Health of each group server as the leader sees it (1 up, 0 down)',
      labelNames: ['group', 'addr'],
      registers: [r],
      collect() {
        this.reset();
        for (const s of sources.servers()) this.set({ group: String(s.group), addr: s.addr }, s.up ? 1 : 0);
      },
    });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
