/**
 * Proxy metrics. Process-level gauges and counters use prom-client on a registry owned by the
 * proxy (never the global one). The per-command counters and latency histograms are on the
 * hot path, so they are plain typed arrays indexed by command, updated with a few integer
 * operations per request, and rendered into Prometheus text only when /metrics is scraped.
 */
import client from 'prom-client';
import { SLOT_COUNT } from '@reborn/protocol';
import { TOPOLOGY_ALARM_REASONS, type TopologyAlarmReason } from '@reborn/coordinator';
import type { GroupWriteView } from './in-sync.js';

/** Histogram bucket upper bounds in seconds. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BUCKETS = LATENCY_BUCKETS.length + 1; // + the +Inf bucket

export class CommandStats {
  /**
   * Keyed requests routed per slot since start (a split MGET counts once per key). Cumulative,
   * so readers (the dashboard's heat map) take rates from differences between two reads.
   */
  readonly slotOps = new Float64Array(SLOT_COUNT);
  private readonly names: string[] = [];
  private readonly index = new Map<string, number>();
  private calls = new Float64Array(64);
  private errors = new Float64Array(64);
  private sums = new Float64Array(64);
  private buckets = new Float64Array(64 * BUCKETS);

  /** The stats slot of a command name; created on first use. */
  indexOf(name: string): number {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.index.set(name, i);
      if (i >= this.calls.length) this.grow();
    }
    return i;
  }

  nameOf(i: number): string {
    return this.names[i] ?? 'unknown';
  }

  record(i: number, seconds: number, isError: boolean): void {
    this.calls[i]!++;
    if (isError) this.errors[i]!++;
    this.sums[i]! += seconds;
    let b = 0;
    while (b < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[b]!) b++;
    this.buckets[i * BUCKETS + b]!++;
  }

  totalCalls(): number {
    let n = 0;
    for (let i = 0; i < this.names.length; i++) n += this.calls[i]!;
    return n;
  }

  /** Prometheus text for the per-command series. */
  render(): string {
    const lines: string[] = [
      '# HELP reborn_proxy_commands_total Commands answered, by command.',
      '# TYPE reborn_proxy_commands_total counter',
    ];
    const order = this.names.map((n, i) => [n, i] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [name, i] of order) lines.push(`reborn_proxy_commands_total{cmd="${name}"} ${this.calls[i]}`);
    lines.push('# HELP reborn_proxy_command_errors_total Commands answered with an error reply, by command.');
    lines.push('# TYPE reborn_proxy_command_errors_total counter');
    for (const [name, i] of order) lines.push(`reborn_proxy_command_errors_total{cmd="${name}"} ${this.errors[i]}`);
    lines.push('# HELP reborn_proxy_command_duration_seconds Time from parsing a command to its reply being ready, by command.');
    lines.push('# TYPE reborn_proxy_command_duration_seconds histogram');
    for (const [name, i] of order) {
      let cumulative = 0;
      for (let b = 0; b < BUCKETS; b++) {
        cumulative += this.buckets[i * BUCKETS + b]!;
        const le = b < LATENCY_BUCKETS.length ? String(LATENCY_BUCKETS[b]) : '+Inf';
        lines.push(`reborn_proxy_command_duration_seconds_bucket{cmd="${name}",le="${le}"} ${cumulative}`);
      }
      lines.push(`reborn_proxy_command_duration_seconds_sum{cmd="${name}"} ${this.sums[i]}`);
      lines.push(`reborn_proxy_command_duration_seconds_count{cmd="${name}"} ${this.calls[i]}`);
    }
    return lines.join('\n') + '\n';
  }

  private grow(): void {
    const size = this.calls.length * 2;
    const grown = (a: Float64Array<ArrayBuffer>, n: number): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    this.calls = grown(this.calls, size);
    this.errors = grown(this.errors, size);
    this.sums = grown(this.sums, size);
    this.buckets = grown(this.buckets, size * BUCKETS);
  }
}

export interface ProxyGauges {
  clients(): number;
  held(): number;
  /** Key holds of big-key moves (key-holds.ts). */
  keyHolds(): { waiting: number; timeouts: number; keys: number };
  /** On-touch MIGRATE refusals handled (forward.ts): reads the source answered, BUSYKEY retries. */
  onTouch(): { sourceReads: number; busyKeyRetries: number; copyingRetries: number; bigKeyRetries: number };
  fenced(): boolean;
  /** Clients waiting in the start-up hold. */
  startupHeld(): number;
  backends(): Array<{ addr: string; up: boolean; pending: number }>;
  ready(): boolean;
  pubsubSubscriptions(): number;
  pubsubDelivered(): number;
  /** Stray keys seen by the stray watch, by group (empty when it is off). */
  strays(): ReadonlyMap<number, number>;
  /** The reason of the topology alarm that is up, or null. */
  topologyAlarm(): TopologyAlarmReason | null;
  /** Client-side caching (tracking.ts). */
  tracking(): TrackingGauges;
  /** Every group with a master: its in-sync set and write state (in-sync.ts). */
  groupWrites(): readonly GroupWriteView[];
}

/** What client-side caching reports (tracking.ts's stats). */
export interface TrackingGauges {
  clients: number;
  keys: number;
  prefixes: number;
  /** Invalidation messages pushed to clients, by reason. */
  invalidations: ReadonlyMap<string, number>;
  /** Per group with an invalidation listener: live or not. */
  listeners: ReadonlyMap<number, boolean>;
}

export class ProxyMetrics {
  readonly registry = new client.Registry();
  readonly commands = new CommandStats();
  readonly connectionsTotal: client.Counter;
  readonly rejectedConnections: client.Counter;
  readonly protocolErrors: client.Counter;
  readonly topologyUpdates: client.Counter;
  readonly barrierAcks: client.Counter;
  readonly fencings: client.Counter;
  readonly staleServerRepairs: client.Counter;

  constructor(gauges: ProxyGauges) {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: 'reborn_proxy_' });
    this.connectionsTotal = new client.Counter({ name: 'reborn_proxy_connections_total', help: 'Client connections accepted.', registers });
    this.rejectedConnections = new client.Counter({ name: 'reborn_proxy_rejected_connections_total', help: 'Client connections refused (max clients).', registers });
    this.protocolErrors = new client.Counter({ name: 'reborn_proxy_protocol_errors_total', help: 'Client connections closed for malformed or oversized input.', registers });
    this.topologyUpdates = new client.Counter({ name: 'reborn_proxy_topology_updates_total', help: 'Slot and group changes applied from etcd.', registers });
    this.barrierAcks = new client.Counter({ name: 'reborn_proxy_barrier_acks_total', help: 'Migration barrier actions acked.', registers });
    this.fencings = new client.Counter({ name: 'reborn_proxy_fenced_total', help: 'Times this proxy found itself fenced at a backend.', registers });
    this.staleServerRepairs = new client.Counter({
      name: 'reborn_proxy_stale_server_repairs_total',
      help: 'Times a server refused our user with no fence recorded in etcd, and the user was re-enabled there.',
      registers,
    });
    new client.Gauge({
      name: 'reborn_proxy_startup_held_clients',
      help: 'Clients whose commands wait for the proxy to serve (start-up hold).',
      registers,
      collect() {
        this.set(gauges.startupHeld());
      },
    });
    new client.Gauge({
      name: 'reborn_proxy_held_requests',
      help: 'Requests held while their slot waits for a migration barrier.',
      registers,
      collect() {
        this.set(gauges.held());
      },
    });
    this.keyHoldMetrics(gauges, registers);
    new client.Gauge({
      name: 'reborn_proxy_fenced',
      help: '1 while this proxy is fenced and reloading.',
      registers,
      collect() {
        this.set(gauges.fenced() ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'reborn_proxy_clients',
      help: 'Connected clients.',
      registers,
      collect() {
        this.set(gauges.clients());
      },
    });
    new client.Gauge({
      name: 'reborn_proxy_pubsub_subscriptions',
      help: 'Distinct channels, patterns and shard channels subscribed through this proxy.',
      registers,
      collect() {
        this.set(gauges.pubsubSubscriptions());
      },
    });
    new client.Counter({
      name: 'reborn_proxy_pubsub_messages_total',
      help: 'Pub/sub messages written to subscribed clients (one per receiving client).',
      registers,
      collect() {
        this.reset();
        this.inc(gauges.pubsubDelivered());
      },
    });
    new client.Counter({
      name: 'reborn_proxy_stray_keys_total',
      help: 'New keys seen in a group that does not own their slot (--watch-strays; run reborn-config check).',
      labelNames: ['group'],
      registers,
      collect() {
        this.reset();
        for (const [group, n] of gauges.strays()) this.inc({ group: String(group) }, n);
      },
    });
    new client.Gauge({
      // Not reborn_proxy_…: the agent exports the same series, so one alert rule covers both.
      name: 'reborn_topology_alarm',
      help: '1 for the reason of the topology alarm that is up (etcd lost or replaced the topology; the last table is kept), 0 for the others.',
      labelNames: ['reason'],
      registers,
      collect() {
        const up = gauges.topologyAlarm();
        for (const reason of TOPOLOGY_ALARM_REASONS) this.set({ reason }, reason === up ? 1 : 0);
      },
    });
    this.trackingMetrics(gauges, registers);
    this.inSyncMetrics(gauges, registers);
    new client.Gauge({
      name: 'reborn_proxy_ready',
      help: '1 when the proxy has a complete slot table.',
      registers,
      collect() {
        this.set(gauges.ready() ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'reborn_proxy_backend_up',
      help: '1 when at least one connection to the backend is established.',
      labelNames: ['addr'],
      registers,
      collect() {
        this.reset();
        for (const b of gauges.backends()) this.set({ addr: b.addr }, b.up ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'reborn_proxy_backend_pending_requests',
      help: 'Requests sent to the backend and not yet answered.',
      labelNames: ['addr'],
      registers,
      collect() {
        this.reset();
        for (const b of gauges.backends()) this.set({ addr: b.addr }, b.pending);
      },
    });
  }

  /** Read from the key holds and the forwarder when scraped: nothing on the request path. */
  private keyHoldMetrics(gauges: ProxyGauges, registers: client.Registry[]): void {
    const counter = (name: string, help: string, value: () => number): void => {
      new client.Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(value());
        },
      });
    };
    new client.Gauge({
      name: 'reborn_proxy_key_held_requests',
      help: 'Requests waiting because they name a key being moved between groups (a big key copied in chunks).',
      registers,
      collect() {
        this.set(gauges.keyHolds().waiting);
      },
    });
    new client.Gauge({
      name: 'reborn_proxy_held_keys',
      help: 'Keys this proxy holds requests for while they move between groups.',
      registers,
      collect() {
        this.set(gauges.keyHolds().keys);
      },
    });
    counter('reborn_proxy_key_hold_timeouts_total', 'Requests answered -TRYAGAIN after waiting --key-hold-timeout for their key\'s move.', () => gauges.keyHolds().timeouts);
    counter('reborn_proxy_source_reads_total', 'Reads of a migrating slot answered by the source because the target refused their keys for memory.', () => gauges.onTouch().sourceReads);
    counter('reborn_proxy_busykey_retries_total', 'On-touch MIGRATEs retried after BUSYKEY (a key copied to the target, its source copy not yet deleted).', () => gauges.onTouch().busyKeyRetries);
    counter('reborn_proxy_copying_retries_total', 'On-touch moves retried because the migration runner was copying the key (its copy lease).', () => gauges.onTouch().copyingRetries);
    counter('reborn_proxy_bigkey_retries_total', 'On-touch moves retried because the key is big: left to the runner, which moves it in pieces.', () => gauges.onTouch().bigKeyRetries);
  }

  /** Read from the router's last applied table when scraped: nothing on the request path. */
  private inSyncMetrics(gauges: ProxyGauges, registers: client.Registry[]): void {
    new client.Gauge({
      name: 'reborn_proxy_group_in_sync_replicas',
      help: "Members of the group's in-sync replica set as this proxy applies it (every replica while the group has no explicit set).",
      labelNames: ['group'],
      registers,
      collect() {
        this.reset();
        for (const g of gauges.groupWrites()) this.set({ group: String(g.group) }, g.members.length);
      },
    });
    new client.Gauge({
      name: 'reborn_proxy_group_degraded',
      help: '1 while the group\'s writes are acknowledged on its master alone (--durable, empty in-sync set) or refused (in-sync set below minInSync), else 0.',
      labelNames: ['group'],
      registers,
      collect() {
        this.reset();
        for (const g of gauges.groupWrites()) this.set({ group: String(g.group) }, g.state === 'ok' ? 0 : 1);
      },
    });
  }

  private trackingMetrics(gauges: ProxyGauges, registers: client.Registry[]): void {
    const gauge = (name: string, help: string, value: (t: TrackingGauges) => number): void => {
      new client.Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(value(gauges.tracking()));
        },
      });
    };
    gauge('reborn_proxy_tracking_clients', 'Clients with CLIENT TRACKING on.', (t) => t.clients);
    gauge('reborn_proxy_tracking_keys', 'Keys in the tracking table: read by a tracking client and not invalidated since.', (t) => t.keys);
    gauge('reborn_proxy_tracking_prefixes', 'Distinct BCAST prefixes of tracking clients.', (t) => t.prefixes);
    new client.Counter({
      name: 'reborn_proxy_tracking_invalidations_total',
      help: 'Invalidation messages pushed to clients, by reason (write, flush, listener_lost, not_listening, slot_moved, evicted).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of gauges.tracking().invalidations) this.inc({ reason }, n);
      },
    });
    new client.Gauge({
      name: 'reborn_proxy_tracking_listener_up',
      help: "1 while the group master's invalidation listener is confirmed (CLIENT TRACKING ON BCAST), 0 while it is not; absent while no client tracks.",
      labelNames: ['group'],
      registers,
      collect() {
        this.reset();
        for (const [group, live] of gauges.tracking().listeners) this.set({ group: String(group) }, live ? 1 : 0);
      },
    });
  }

  async render(): Promise<string> {
    return (await this.registry.metrics()) + this.commands.render();
  }
}
