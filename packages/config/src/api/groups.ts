/**
 * Routes of the groups and their servers: list, add, remove, add/remove a server, promote
 * (switchover). Invariant: every path's group id is 1..9999 and every address passes
 * checkAddr before the operation runs (servers.ts does the work and its own checks).
 */
import { checkAddr } from '../servers.js';
import { intParam, type ApiDeps, type Route } from './routing.js';
import { SCHEMAS } from './schema.js';

export const groupIdParam = intParam('group id', 1, 9999);

export function groupRoutes({ admin }: ApiDeps): Route[] {
  const gid = { gid: groupIdParam };
  return [
    { method: 'GET', path: '/api/groups', handler: async () => ({ body: await admin.listGroups() }) },
    {
      method: 'POST',
      path: '/api/groups',
      schema: SCHEMAS.addGroup,
      handler: async ({ body }) => ({ status: 201, body: await admin.addGroup(body['id'] as number) }),
    },
    { method: 'GET', path: '/api/groups/:gid', params: gid, handler: async ({ params }) => ({ body: await admin.getGroup(params['gid'] as number) }) },
    {
      method: 'DELETE',
      path: '/api/groups/:gid',
      params: gid,
      handler: async ({ params }) => {
        const group = params['gid'] as number;
        await admin.removeGroup(group);
        return { body: { removed: group } };
      },
    },
    {
      method: 'POST',
      path: '/api/groups/:gid/servers',
      params: gid,
      schema: SCHEMAS.addServer,
      handler: async ({ params, body }) => {
        const addr = checkAddr(body['addr'] as string);
        const r = await admin.addServer(params['gid'] as number, addr);
        return { status: 201, body: { addr, role: r.role, group: r.group } };
      },
    },
    {
      method: 'DELETE',
      path: '/api/groups/:gid/servers/:addr',
      params: { ...gid, addr: checkAddr },
      handler: async ({ params }) => {
        const [group, addr] = [params['gid'] as number, params['addr'] as string];
        const r = await admin.removeServer(group, addr);
        return { body: { removed: addr, role: r.role, group: await admin.getGroup(group) } };
      },
    },
    {
      method: 'POST',
      path: '/api/groups/:gid/promote',
      params: gid,
      schema: SCHEMAS.promote,
      handler: async ({ params, body }) => ({ body: await admin.promoteServer(params['gid'] as number, checkAddr(body['addr'] as string)) }),
    },
  ];
}
