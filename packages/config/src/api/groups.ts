/**
 * Routes of the groups and their servers: list, add, remove, change a group's settings
 * (minInSync, wantReplicas), add/remove a server, promote (switchover). Invariant: every
 * path's group id is 1..9999 and every address passes checkAddr before the operation runs
 * (servers.ts does the work and its own checks).
 */
import { ValidationError } from '@reborn/coordinator';
import { checkAddr, type GroupSettingsChange } from '../servers.js';
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
      // Only the fields given change; null clears one. Answers the group as written, and the
      // warnings the CLI prints on stderr.
      method: 'PATCH',
      path: '/api/groups/:gid',
      params: gid,
      schema: SCHEMAS.groupSettings,
      handler: async ({ params, body }) => {
        const change: GroupSettingsChange = {};
        if (body['minInSync'] !== undefined) change.minInSync = body['minInSync'] as number | null;
        if (body['wantReplicas'] !== undefined) change.wantReplicas = body['wantReplicas'] as number | null;
        if (change.minInSync === undefined && change.wantReplicas === undefined) {
          throw new ValidationError('invalid request body: give "minInSync" and/or "wantReplicas" (a count, or null to clear it)');
        }
        return { body: await admin.setGroupSettings(params['gid'] as number, change, { force: body['force'] === true }) };
      },
    },
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
