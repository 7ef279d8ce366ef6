/**
 * The API's Prometheus metrics: requests by route pattern and status, and cluster gauges.
 * Invariant: the cluster gauges are read from etcd on each scrape (an overview), never in a
 * loop, and a failed read sets reborn_config_etcd_up to 0 (and reborn_config_etcd_silent_seconds
 * to the time since the last good read) and leaves the other gauges as they were.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Admin, Durability } from '../servers.js';

const DURABILITY_STATES: readonly Durability[] = ['ok', 'degraded', 'refusing'];

export interface ApiMetrics {
  requests: Counter<'method' | 'route' | 'status'>;
  /** Reads the overview and sets the cluster gauges; throws (after etcd_up 0) when it cannot. */
  refresh(admin: Admin): Promise<void>;
}

export function createMetrics(registry: Registry): ApiMetrics {
  const requests = new Counter({
    name: 'reborn_config_http_requests_total',
    help: 'REST API requests by route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const etcdUp = new Gauge({ name: 'reborn_config_etcd_up', help: '1 when the last scrape could read etcd', registers: [registry] });
  const slots = new Gauge({ name: 'reborn_config_slots', help: 'Slots by state', labelNames: ['state'] as const, registers: [registry] });
  const groupSlots = new Gauge({ name: 'reborn_config_group_slots', help: 'Slots owned by each group', labelNames: ['group'] as const, registers: [registry] });
  const groupServers = new Gauge({ name: 'reborn_config_group_servers', help: 'Servers of each group by role', labelNames: ['group', 'role'] as const, registers: [registry] });
  const groupInSync = new Gauge({ name: 'reborn_config_group_in_sync_replicas', help: 'Members of each group\'s in-sync replica set', labelNames: ['group'] as const, registers: [registry] });
  const groupDurability = new Gauge({
    name: 'reborn_config_group_durability',
    help: '1 for the state durable writes to each group are in (ok, degraded: the master alone acknowledges, refusing: fewer in sync than minInSync)',
    labelNames: ['group', 'state'] as const,
    registers: [registry],
  });
  const migrations = new Gauge({ name: 'reborn_config_migrations_active', help: 'Active migration tasks by state', labelNames: ['state'] as const, registers: [registry] });
  const keysMoved = new Gauge({ name: 'reborn_config_migration_keys_moved', help: 'Keys moved by each active migration', labelNames: ['id'] as const, registers: [registry] });
  const slotsLeft = new Gauge({ name: 'reborn_config_migration_slots_left', help: 'Slots left to move by each active migration', labelNames: ['id'] as const, registers: [registry] });
  const waiting = new Gauge({
    name: 'reborn_config_migration_waiting',
    help: '1 while an active migration waits out a transient fault (its progress.waiting says what for), else 0',
    labelNames: ['id'] as const,
    registers: [registry],
  });
  const proxies = new Gauge({ name: 'reborn_config_proxies', help: 'Proxies by state', labelNames: ['state'] as const, registers: [registry] });
  const barriers = new Gauge({ name: 'reborn_config_barriers_waiting', help: 'Barrier actions still waiting for acks', registers: [registry] });
  const runner = new Gauge({ name: 'reborn_config_runner_alive', help: '1 when some migration runner leads the product', registers: [registry] });
  const etcdSilent = new Gauge({
    name: 'reborn_config_etcd_silent_seconds',
    help: 'Seconds since etcd last answered a scrape, 0 while it answers (tasks wait for etcd meanwhile and go on when it is back)',
    registers: [registry],
  });
  // The first failing scrape counts from the last good one (or from start-up).
  let lastAnswer = Date.now();

  const refresh = async (admin: Admin): Promise<void> => {
    let o;
    try {
      o = await admin.overview();
    } catch (err) {
      etcdUp.set(0);
      etcdSilent.set(Math.round((Date.now() - lastAnswer) / 1000));
      throw err;
    }
    etcdUp.set(1);
    lastAnswer = Date.now();
    etcdSilent.set(0);
    slots.reset();
    for (const [state, n] of Object.entries(o.slots.byState)) slots.set({ state }, n);
    groupSlots.reset();
    groupServers.reset();
    groupInSync.reset();
    groupDurability.reset();
    for (const g of o.groups) {
      groupInSync.set({ group: String(g.id) }, g.inSync.length);
      // Every state of every group: 0 for the others, so an alert on ==1 never sees a stale series.
      for (const state of DURABILITY_STATES) groupDurability.set({ group: String(g.id), state }, g.durability === state ? 1 : 0);
      groupSlots.set({ group: String(g.id) }, g.slots);
      groupServers.set({ group: String(g.id), role: 'master' }, g.servers.filter((s) => s.role === 'master').length);
      groupServers.set({ group: String(g.id), role: 'replica' }, g.servers.filter((s) => s.role === 'replica').length);
    }
    migrations.reset();
    keysMoved.reset();
    slotsLeft.reset();
    waiting.reset();
    for (const t of o.migrations) {
      migrations.inc({ state: t.state });
      keysMoved.set({ id: t.id }, t.progress.keysMoved);
      slotsLeft.set({ id: t.id }, t.progress.slotsTotal - t.progress.slotsDone);
      waiting.set({ id: t.id }, t.progress.waiting ? 1 : 0);
    }
    proxies.reset();
    for (const p of o.proxies) proxies.inc({ state: p.state });
    barriers.set(o.barriers.length);
    runner.set(o.runnerAlive ? 1 : 0);
  };
  return { requests, refresh };
}
