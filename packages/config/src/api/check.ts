/**
 * Routes of `reborn-config check` (GET: report; POST: with options, `fix: true` moves strays
 * home). Invariant: one check at a time per API — two fixes would race for the same strays —
 * a second one meanwhile gets 409.
 */
import { HttpError, type ApiDeps, type Reply, type Route } from './routing.js';
import { SCHEMAS } from './schema.js';

export function checkRoutes({ store, logger, redisPassword }: ApiDeps): Route[] {
  let checking = false;
  const runCheck = async (options: Record<string, unknown>): Promise<Reply> => {
    if (checking) throw new HttpError('ECONFLICT', 409, 'a check is already running on this dashboard; wait for it');
    checking = true;
    try {
      // Imported on first use: the check engine is large and most dashboards never run it.
      const { checkProduct } = await import('../check.js');
      return { body: await checkProduct(store, { ...options, redisPassword, logger }) };
    } finally {
      checking = false;
    }
  };
  return [
    { method: 'GET', path: '/api/check', handler: async () => runCheck({}) },
    { method: 'POST', path: '/api/check', schema: SCHEMAS.check, handler: async ({ body }) => runCheck(body) },
  ];
}
