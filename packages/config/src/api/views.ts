/**
 * Read-only routes that show the cluster: the overview (with the topology alarm), the
 * proxies (and fencing one), live QPS, the servers' INFO and the HA agents' events.
 * Invariant: only `POST /api/proxies/:id/offline` changes anything, and its id passes
 * checkProxyId first.
 */
import { checkProxyId } from '../servers.js';
import { topologyAlarms } from '../topology-alarms.js';
import type { ApiDeps, Route } from './routing.js';

export function overviewRoutes({ admin, store }: ApiDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/overview',
      handler: async () => {
        const [overview, topologyAlarm] = await Promise.all([admin.overview(), topologyAlarms(store)]);
        return { body: { ...overview, topologyAlarm } };
      },
    },
  ];
}

export function proxyRoutes({ admin }: ApiDeps): Route[] {
  return [
    { method: 'GET', path: '/api/proxies', handler: async () => ({ body: await admin.listProxies() }) },
    {
      method: 'POST',
      path: '/api/proxies/:id/offline',
      params: { id: checkProxyId },
      handler: async ({ params }) => ({ body: await admin.proxyOffline(params['id'] as string) }),
    },
  ];
}

export function liveRoutes({ stats }: ApiDeps): Route[] {
  return [
    { method: 'GET', path: '/api/stats', handler: async () => ({ body: await stats.proxies() }) },
    { method: 'GET', path: '/api/servers', handler: async () => ({ body: await stats.servers() }) },
    { method: 'GET', path: '/api/events', handler: async () => ({ body: await stats.events() }) },
  ];
}
