/**
 * Routes of the product-wide redis parameters (redis-config.ts does the work):
 *
 *   GET    /api/redis-config                 {params, updatedAt, allowed}
 *   PUT    /api/redis-config/:param {value}  validate on a master, store, apply to every server
 *   DELETE /api/redis-config/:param          stop applying it (404 when it is not set)
 *
 * Invariant: a path's parameter passes checkConfigParam (the whitelist, the same words as the
 * CLI) before anything else runs, and arrives at the handler under its canonical name.
 */
import { checkConfigParam } from '@reborn/coordinator';
import { RedisConfigAdmin } from '../redis-config.js';
import type { ApiDeps, Route } from './routing.js';
import { SCHEMAS } from './schema.js';

export function redisConfigRoutes({ store, redisPassword }: ApiDeps): Route[] {
  const configs = new RedisConfigAdmin(store, { timeoutMs: 3000, password: redisPassword });
  const param = { param: checkConfigParam };
  return [
    { method: 'GET', path: '/api/redis-config', handler: async () => ({ body: await configs.list() }) },
    {
      method: 'PUT',
      path: '/api/redis-config/:param',
      params: param,
      schema: SCHEMAS.redisConfig,
      handler: async ({ params, body }) => ({ body: await configs.set(params['param'] as string, body['value']) }),
    },
    {
      method: 'DELETE',
      path: '/api/redis-config/:param',
      params: param,
      handler: async ({ params }) => ({ body: { removed: (await configs.unset(params['param'] as string)).param } }),
    },
  ];
}
