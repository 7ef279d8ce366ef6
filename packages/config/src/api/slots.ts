/**
 * Routes of the slots: list, one slot, initial assignment, direct assignment (no data moved).
 * Invariant: a slot in the path is 0..SLOT_COUNT-1; bodies pass their schema first.
 */
import { SLOT_COUNT } from '@reborn/coordinator';
import { intParam, type ApiDeps, type Route } from './routing.js';
import { SCHEMAS } from './schema.js';

export function slotRoutes({ admin }: ApiDeps): Route[] {
  return [
    { method: 'GET', path: '/api/slots', handler: async () => ({ body: await admin.listSlots() }) },
    {
      method: 'GET',
      path: '/api/slots/:id',
      params: { id: intParam('slot', 0, SLOT_COUNT - 1) },
      handler: async ({ params }) => ({ body: await admin.slotInfo(params['id'] as number) }),
    },
    {
      method: 'POST',
      path: '/api/slots/init',
      schema: SCHEMAS.initSlots,
      handler: async ({ body }) => ({ body: { assigned: await admin.initSlots(body['force'] === true) } }),
    },
    {
      method: 'POST',
      path: '/api/slots/set',
      schema: SCHEMAS.setSlots,
      handler: async ({ body }) => {
        const [from, to, group] = [body['from'] as number, body['to'] as number, body['group'] as number];
        const r = await admin.setSlots(from, to, group);
        return { body: { from, to, group, changedOwner: r.changedOwner, note: 'no data was moved' } };
      },
    },
  ];
}
