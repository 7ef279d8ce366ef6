/**
 * Routes of the migrations and the rebalance that creates them: list, start (or resume the
 * same range), one task, pause/resume/cancel, the rebalance plan and carrying it out.
 * Invariant: a task id in the path passes checkMigrationId; starting returns 201 only when a
 * new task was created (200 when it resumed one or there was nothing to move).
 */
import { checkMigrationId, type MigrationOp } from '../servers.js';
import type { ApiDeps, Handler, Route } from './routing.js';
import { SCHEMAS } from './schema.js';

export function migrationRoutes({ admin }: ApiDeps): Route[] {
  const id = { id: checkMigrationId };
  const change = (op: MigrationOp): Handler => async ({ params }) => ({ body: await admin.changeMigration(params['id'] as string, op) });
  return [
    { method: 'GET', path: '/api/migrations', handler: async () => ({ body: await admin.listMigrations() }) },
    {
      method: 'POST',
      path: '/api/migrations',
      schema: SCHEMAS.migrate,
      handler: async ({ body }) => {
        const r = await admin.startMigration(body['from'] as number, body['to'] as number, body['group'] as number, {
          ...(body['throttle'] === undefined ? {} : { throttle: body['throttle'] as number }),
          ...(body['batchSlots'] === undefined ? {} : { batchSlots: body['batchSlots'] as number }),
          ...(body['maxSourceLatencyMs'] === undefined ? {} : { maxSourceLatencyMs: body['maxSourceLatencyMs'] as number }),
        });
        return { status: r.task !== null && !r.resumed ? 201 : 200, body: r };
      },
    },
    { method: 'GET', path: '/api/migrations/:id', params: id, handler: async ({ params }) => ({ body: await admin.getMigration(params['id'] as string) }) },
    { method: 'POST', path: '/api/migrations/:id/pause', params: id, handler: change('pause') },
    { method: 'POST', path: '/api/migrations/:id/resume', params: id, handler: change('resume') },
    { method: 'POST', path: '/api/migrations/:id/cancel', params: id, handler: change('cancel') },
    { method: 'GET', path: '/api/rebalance', handler: async () => ({ body: await admin.rebalancePlan() }) },
    { method: 'POST', path: '/api/rebalance', schema: SCHEMAS.rebalance, handler: async () => ({ body: await admin.rebalance() }) },
  ];
}
