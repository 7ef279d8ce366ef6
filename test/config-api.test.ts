/**
 * The REST API of reborn-config in-process (createApi on port 0) against a real etcd and real
 * redis servers: the core flows of the CLI through HTTP, group settings (PATCH, and a concurrent
 * in-sync write landing between the read and the write of one), the bearer token, schema errors
 * naming the field, 404/405/409, and the loopback rule.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migrations, Store, newProgress, type MigrationTask } from '@reborn/coordinator';
import { Admin, createApi, type ApiServer } from '@reborn/config';
import { startEtcd, startRedis, stopAll, type EtcdServer, type RedisServer } from '@reborn/testkit';
import { groupView } from './helpers.js';

let etcd: EtcdServer;
let r: RedisServer[];
let store: Store;
let server: ApiServer;
let secured: ApiServer;
const TOKEN = 'test-token-0123456789';

interface Res {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * `store`, with `after` run each time a bounded etcd call named `what` has answered: a seam to
 * land a concurrent write between an operation's read and its write.
 */
function storeWithHook(what: string, after: () => Promise<void>): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'call') {
        return async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
          const res = await target.call(name, fn);
          if (name === what) await after();
          return res;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function call(method: string, path: string, body?: unknown, opts: { base?: ApiServer; token?: string } = {}): Promise<Res> {
  const headers: Record<string, string> = {};
  // The API refuses a state-changing request without it, body or not.
  if (method !== 'GET') headers['content-type'] = 'application/json';
  if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
  const res = await fetch(`http://${(opts.base ?? server).address}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

const err = (status: number, code: string, error: string) => ({ status, body: { error, code } });

const view = groupView;

beforeAll(async () => {
  [etcd, ...r] = await Promise.all([startEtcd(), ...Array.from({ length: 3 }, () => startRedis({ args: ['--repl-diskless-sync-delay', '0'] }))]);
  store = await Store.open({ endpoints: [etcd.clientUrl], product: `api${process.pid}` });
  const logger = pino({ level: 'silent' });
  server = await createApi({ store, logger }).listen('127.0.0.1:0');
  secured = await createApi({ store, logger, token: TOKEN }).listen('127.0.0.1:0');
});

afterAll(async () => {
  await Promise.all([server?.close(), secured?.close()]);
  await store?.close();
  await stopAll();
});

describe('groups and servers', () => {
  it('create, list, add master and replica, refuse duplicates, delete', async () => {
    expect(await call('POST', '/api/groups', { id: 1 })).toEqual({ status: 201, body: view(1, [], 0) });
    expect((await call('POST', '/api/groups', { id: 2 })).status).toBe(201);
    expect(await call('POST', '/api/groups', { id: 1 })).toEqual(err(409, 'ECONFLICT', 'group 1 already exists'));

    const m = await call('POST', '/api/groups/1/servers', { addr: r[0]!.addr });
    expect(m).toEqual({ status: 201, body: { addr: r[0]!.addr, role: 'master', group: view(1, [{ addr: r[0]!.addr, role: 'master' }], 0) } });
    const rep = await call('POST', '/api/groups/1/servers', { addr: r[1]!.addr });
    expect(rep.status).toBe(201);
    expect(rep.body.role).toBe('replica');
    expect(await r[1]!.client().info('replication')).toMatch(/^master_link_status:up\r$/m);
    expect((await call('POST', '/api/groups/2/servers', { addr: r[2]!.addr })).status).toBe(201);

    expect(await call('POST', '/api/groups/2/servers', { addr: r[1]!.addr })).toEqual(
      err(409, 'ECONFLICT', `server ${r[1]!.addr} is already in group 1`),
    );
    expect(await call('POST', '/api/groups/1/servers', { addr: 'nohost' })).toEqual(
      err(400, 'EINVALID', 'invalid server address "nohost": want host:port'),
    );
    expect(await call('POST', '/api/groups/1/servers', { addr: '127.0.0.1:1' })).toEqual(
      err(502, 'EUNREACHABLE', 'server 127.0.0.1:1 is unreachable: connect ECONNREFUSED 127.0.0.1:1'),
    );
    expect((await call('GET', '/api/groups')).body).toEqual([
      view(1, [{ addr: r[0]!.addr, role: 'master' }, { addr: r[1]!.addr, role: 'replica' }], 0),
      view(2, [{ addr: r[2]!.addr, role: 'master' }], 0),
    ]);
    expect((await call('POST', '/api/groups', { id: 3 })).status).toBe(201);
    expect(await call('DELETE', '/api/groups/3')).toEqual({ status: 200, body: { removed: 3 } });
    expect(await call('GET', '/api/groups/3')).toEqual(err(404, 'ENOTFOUND', 'group 3 does not exist'));
  });

  it('removes a replica by its address in the path', async () => {
    const addr = encodeURIComponent(r[1]!.addr);
    const res = await call('DELETE', `/api/groups/1/servers/${addr}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ removed: r[1]!.addr, role: 'replica', group: { id: 1, servers: [{ addr: r[0]!.addr, role: 'master' }] } });
    expect(await call('DELETE', `/api/groups/1/servers/${addr}`)).toEqual(err(404, 'ENOTFOUND', `server ${r[1]!.addr} is not in group 1`));
  });
});

describe('group settings: PATCH /api/groups/:gid', () => {
  // Group 9 is written straight into etcd (no redis behind it: setting it only touches etcd)
  // and removed at the end, before the slot tests spread slots over the groups with a master.
  const [M, R1, R2] = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'];
  const servers: { addr: string; role: 'master' | 'replica' }[] = [{ addr: M, role: 'master' }, { addr: R1, role: 'replica' }, { addr: R2, role: 'replica' }];
  beforeAll(async () => {
    await store.putGroup({ id: 9, servers });
  });
  afterAll(async () => {
    await store.deleteGroup(9);
  });

  it('sets, shows and clears the settings; the in-sync set the HA leader wrote is kept', async () => {
    expect((await call('GET', '/api/groups/9')).body).toEqual(view(9, servers, 0));
    expect(await call('PATCH', '/api/groups/9', { minInSync: 1, wantReplicas: 2 })).toEqual({
      status: 200,
      body: { group: view(9, servers, 0, { minInSync: 1, wantReplicas: 2 }), warnings: [] },
    });
    expect(await store.getGroup(9)).toEqual({ id: 9, servers, minInSync: 1, wantReplicas: 2 });

    // The HA leader took R1 out of the set: one member left, which still meets minInSync 1.
    await store.putGroup({ id: 9, servers, inSync: [R2], minInSync: 1, wantReplicas: 2 });
    expect((await call('GET', '/api/groups')).body.find((g: { id: number }) => g.id === 9)).toEqual(
      view(9, servers, 0, { inSync: [R2], inSyncManaged: true, minInSync: 1, wantReplicas: 2 }),
    );
    // A floor of 2 is within the replica count, but only one is in sync: set, with a warning.
    expect(await call('PATCH', '/api/groups/9', { minInSync: 2 })).toEqual({
      status: 200,
      body: {
        group: view(9, servers, 0, { inSync: [R2], inSyncManaged: true, minInSync: 2, wantReplicas: 2, durability: 'refusing' }),
        warnings: ['group 9 has 1 of 2 replica(s) in sync: durable writes to it are refused until 2 are'],
      },
    });
    // Nobody in sync, no floor: the master alone acknowledges durable writes.
    await store.putGroup({ id: 9, servers, inSync: [], minInSync: 2, wantReplicas: 2 });
    expect((await call('PATCH', '/api/groups/9', { minInSync: null, wantReplicas: null })).body.group).toEqual(
      view(9, servers, 0, { inSync: [], inSyncManaged: true, durability: 'degraded' }),
    );
    expect(await store.getGroup(9)).toEqual({ id: 9, servers, inSync: [] });
    const metrics = (await call('GET', '/metrics')).body as string;
    expect(metrics).toMatch(/^reborn_config_group_durability\{group="9",state="degraded"\} 1$/m);
    expect(metrics).toMatch(/^reborn_config_group_durability\{group="9",state="ok"\} 0$/m);
    expect(metrics).toMatch(/^reborn_config_group_in_sync_replicas\{group="9"\} 0$/m);
  });

  it('refuses a floor above the replica count unless forced, and says so', async () => {
    const why = 'min-in-sync 3 is more than the 2 replica(s) of group 9: durable writes to it would be refused until it has 3';
    expect(await call('PATCH', '/api/groups/9', { minInSync: 3 })).toEqual(err(409, 'ECONFLICT', `${why}; add replicas first, or use --force`));
    expect((await store.getGroup(9))?.minInSync).toBeUndefined();
    const forced = await call('PATCH', '/api/groups/9', { minInSync: 3, force: true });
    expect(forced).toMatchObject({ status: 200, body: { group: { minInSync: 3, durability: 'refusing' }, warnings: [why] } });
    expect((await call('PATCH', '/api/groups/9', { minInSync: null })).body.group.minInSync).toBeNull();
  });

  it.each([
    [{}, 400, 'EINVALID', 'invalid request body: give "minInSync" and/or "wantReplicas" (a count, or null to clear it)'],
    [{ force: true }, 400, 'EINVALID', 'invalid request body: give "minInSync" and/or "wantReplicas" (a count, or null to clear it)'],
    [{ minInSync: 17 }, 400, 'EINVALID', 'invalid request body: field "minInSync" must be an integer in 0..16 or null, got 17'],
    [{ wantReplicas: 'two' }, 400, 'EINVALID', 'invalid request body: field "wantReplicas" must be an integer in 0..16 or null, got "two"'],
    [{ minInSync: 1, inSync: [] }, 400, 'EINVALID', 'invalid request body: unknown field "inSync"'],
    [{ force: 'yes', minInSync: 1 }, 400, 'EINVALID', 'invalid request body: field "force" must be a boolean, got "yes"'],
  ])('bad body %j → %i %s', async (body, status, code, message) => {
    expect(await call('PATCH', '/api/groups/9', body)).toEqual(err(status, code, message));
  });

  it('an unknown group is a 404, a bad group id a 400, and PATCH needs the JSON content type', async () => {
    expect(await call('PATCH', '/api/groups/8', { minInSync: 0 })).toEqual(err(404, 'ENOTFOUND', 'group 8 does not exist'));
    expect(await call('PATCH', '/api/groups/0', { minInSync: 0 })).toEqual(err(400, 'EINVALID', 'invalid group id "0" in the path: want an integer 1..9999'));
    const res = await fetch(`http://${server.address}/api/groups/9`, { method: 'PATCH', body: '{"minInSync":0}', headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(415);
    expect((await store.getGroup(9))?.minInSync).toBeUndefined();
  });

  it('an in-sync set written between the read and the write of a group set is kept (the write re-decides)', async () => {
    await store.putGroup({ id: 9, servers });
    // The seam: the HA leader's write lands right after setGroupSettings read the topology.
    let fired = 0;
    const admin = new Admin(storeWithHook('read topology', async () => {
      if (fired++ === 0) await store.putGroup({ id: 9, servers, inSync: [R1] });
    }));
    const { group } = await admin.setGroupSettings(9, { wantReplicas: 3 });
    expect(fired).toBeGreaterThanOrEqual(2); // read, concurrent write, read again
    expect(await store.getGroup(9)).toEqual({ id: 9, servers, inSync: [R1], wantReplicas: 3 });
    expect(group).toEqual(view(9, servers, 0, { inSync: [R1], inSyncManaged: true, wantReplicas: 3 }));
  });

  it('a group removed between the read and the write is not written back to life', async () => {
    await store.putGroup({ id: 9, servers });
    let fired = 0;
    const admin = new Admin(storeWithHook('read topology', async () => {
      if (fired++ === 0) await store.deleteGroup(9);
    }));
    await expect(admin.setGroupSettings(9, { wantReplicas: 3 })).rejects.toThrow('group 9 does not exist');
    expect(await store.getGroup(9)).toBeNull();
    await store.putGroup({ id: 9, servers }); // for afterAll
  });
});

describe('slots and migrations', () => {
  it('init, list, info, set, and the refusals', async () => {
    expect(await call('POST', '/api/slots/init', {})).toEqual({
      status: 200,
      body: { assigned: [{ first: 0, last: 511, group: 1 }, { first: 512, last: 1023, group: 2 }] },
    });
    expect(await call('POST', '/api/slots/init', {})).toEqual(
      err(409, 'ECONFLICT', '1024 slot(s) are already assigned (e.g. slot 0 online in group 1); use --force to reassign all of them'),
    );
    expect((await call('GET', '/api/slots')).body).toEqual([
      { first: 0, last: 511, state: 'online', group: 1 },
      { first: 512, last: 1023, state: 'online', group: 2 },
    ]);
    expect((await call('GET', '/api/slots/700')).body).toEqual({ id: 700, state: 'online', group: 2, master: r[2]!.addr, migration: null });
    expect(await call('GET', '/api/slots/1024')).toEqual(err(400, 'EINVALID', 'invalid slot "1024" in the path: want an integer 0..1023'));
    expect(await call('POST', '/api/slots/set', { from: 0, to: 9, group: 2 })).toEqual({
      status: 200,
      body: { from: 0, to: 9, group: 2, changedOwner: 10, note: 'no data was moved' },
    });
    expect(await call('POST', '/api/slots/set', { from: 10, to: 5, group: 2 })).toEqual(
      err(400, 'EINVALID', 'invalid slot range 10-5: from must not be greater than to'),
    );
    expect(await call('POST', '/api/slots/set', { from: 0, to: 5, group: 9 })).toEqual(err(404, 'ENOTFOUND', 'group 9 does not exist'));
    expect(await call('DELETE', '/api/groups/1')).toEqual(
      err(409, 'ECONFLICT', 'group 1 still owns 502 slot(s) (10-511); move them to another group first'),
    );
    const o = (await call('GET', '/api/overview')).body;
    expect(o.slots).toEqual({ byState: { offline: 0, online: 1024, pre_migrate: 0, migrating: 0 }, byGroup: { '1': 502, '2': 522 } });
    expect(o.migrations).toEqual([]);
    expect(o.runnerAlive).toBe(false);
    // Products sharing the etcd: this one, and another once it has a slot table.
    expect(o.products).toEqual([`api${process.pid}`]);
    const other = await Store.open({ endpoints: [etcd.clientUrl], product: 'zz-other' });
    try {
      await other.putSlots([{ id: 0, state: 'offline', group: 0 }]);
      expect((await call('GET', '/api/overview')).body.products).toEqual([`api${process.pid}`, 'zz-other']);
    } finally {
      await other.close();
    }
  });

  it('rebalance plan, migration create / pause / resume / cancel, 404s', async () => {
    const plan = await call('GET', '/api/rebalance');
    expect(plan.status).toBe(200);
    expect(plan.body.moves).toEqual([{ first: 1014, last: 1023, from: 2, to: 1, kind: 'migrate' }]);
    expect(await call('POST', '/api/rebalance', {})).toEqual(err(400, 'EINVALID', 'invalid request body: field "confirm" is required'));

    const created = await call('POST', '/api/migrations', { from: 0, to: 9, group: 1, throttle: 100 });
    expect(created.status).toBe(201);
    expect(created.body.resumed).toBe(false);
    const task = created.body.task;
    expect(task).toMatchObject({ slots: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], from: [2], to: 1, state: 'pending', throttle: 100 });
    expect((await call('GET', `/api/migrations/${task.id}`)).body.id).toBe(task.id);
    expect((await call('GET', '/api/migrations')).body.map((t: { id: string }) => t.id)).toEqual([task.id]);
    expect((await call('GET', '/api/slots/3')).body.migration).toBe(task.id);

    expect((await call('POST', `/api/migrations/${task.id}/pause`)).body.state).toBe('paused');
    // Asking again for the same (active) range resumes the paused task instead of a new one.
    const again = await call('POST', '/api/migrations', { from: 0, to: 9, group: 1 });
    expect(again).toMatchObject({ status: 200, body: { resumed: true, task: { id: task.id, state: 'running' } } });
    expect((await call('POST', `/api/migrations/${task.id}/cancel`)).body.state).toBe('cancelling');
    expect(await call('POST', `/api/migrations/${task.id}/resume`)).toEqual(
      err(409, 'ECONFLICT', `cannot resume migration ${task.id}: it is being cancelled`),
    );
    expect(await call('POST', '/api/migrations/m-nope/pause')).toEqual(err(404, 'ENOTFOUND', 'migration m-nope does not exist'));
    expect(await call('GET', '/api/migrations/m-nope')).toEqual(err(404, 'ENOTFOUND', 'migration m-nope does not exist'));
    expect(await call('POST', '/api/slots/set', { from: 0, to: 0, group: 2 })).toEqual(
      err(409, 'ECONFLICT', `slot 0 is part of active migration ${task.id}; wait for it or cancel it first`),
    );
  });
});

describe('input validation names the field', () => {
  it.each([
    ['POST', '/api/groups', { id: 'one' }, 'invalid request body: field "id" must be an integer in 1..9999, got "one"'],
    ['POST', '/api/groups', {}, 'invalid request body: field "id" is required'],
    ['POST', '/api/groups', { id: 1, name: 'x' }, 'invalid request body: unknown field "name"'],
    ['POST', '/api/groups', '[1]', 'invalid request body: want a JSON object'],
    ['POST', '/api/groups', '{"id":', 'invalid request body: not JSON (Unexpected end of JSON input)'],
    ['POST', '/api/slots/set', { from: 0, to: 1024, group: 1 }, 'invalid request body: field "to" must be an integer in 0..1023, got 1024'],
    ['POST', '/api/migrations', { from: 0, to: 1, group: 1, batchSlots: 0 }, 'invalid request body: field "batchSlots" must be an integer in 1..1024, got 0'],
    ['POST', '/api/groups/1/servers', { addr: 5 }, 'invalid request body: field "addr" must be a string, got 5'],
    ['POST', '/api/slots/init', { force: 'yes' }, 'invalid request body: field "force" must be a boolean, got "yes"'],
    ['GET', '/api/groups/abc', undefined, 'invalid group id "abc" in the path: want an integer 1..9999'],
  ])('%s %s %j', async (method, path, body, message) => {
    expect(await call(method, path, body)).toEqual(err(400, 'EINVALID', message));
  });

  it('unknown routes and methods', async () => {
    expect(await call('GET', '/api/nothing')).toEqual(err(404, 'ENOTFOUND', 'no route GET /api/nothing'));
    expect(await call('PUT', '/api/groups')).toEqual(err(405, 'EMETHOD', 'method PUT not allowed on /api/groups'));
  });
});

describe('authentication and exposure', () => {
  it('with a token: 401 without or with a wrong one, served with the right one; /healthz open', async () => {
    const denied = err(401, 'EUNAUTHORIZED', 'missing or wrong bearer token (Authorization: Bearer <token>)');
    expect(await call('GET', '/api/groups', undefined, { base: secured })).toEqual(denied);
    expect(await call('GET', '/api/groups', undefined, { base: secured, token: 'wrong-token-xxxxx' })).toEqual(denied);
    expect(await call('GET', `/api/groups?token=${TOKEN}`, undefined, { base: secured })).toEqual(denied);
    expect(await call('GET', '/metrics', undefined, { base: secured })).toEqual(denied);
    expect((await call('GET', '/api/groups', undefined, { base: secured, token: TOKEN })).status).toBe(200);
    expect(await call('GET', '/healthz', undefined, { base: secured })).toEqual({ status: 200, body: { status: 'ok', product: store.product, pid: process.pid } });
    // The dashboard page holds no data, so it loads without the token (its API calls need it).
    const page = await call('GET', '/', undefined, { base: secured });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>reborn dashboard</title>');
    expect(page.body).toContain('<div id="slotmap"');
  });

  it('/metrics scrapes the cluster', async () => {
    const m = await call('GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/^reborn_config_slots\{state="online"\} 1024$/m);
    expect(m.body).toMatch(/^reborn_config_group_servers\{group="1",role="master"\} 1$/m);
    expect(m.body).toMatch(/^reborn_config_etcd_up 1$/m);
    expect(m.body).toMatch(/^reborn_config_http_requests_total\{method="GET",route="\/api\/groups",status="200"\} \d+$/m);
  });

  it('/metrics shows which migration waits out a fault', async () => {
    const migrations = new Migrations(store);
    const now = new Date().toISOString();
    const task = (id: string, waiting?: string): MigrationTask => ({
      id, slots: [], from: [1], to: 1, state: 'paused', throttle: 0, batchSlots: 128, createdAt: now, updatedAt: now, error: null,
      progress: { ...newProgress(0), ...(waiting ? { waiting } : {}) },
    });
    await migrations.create(task('m-metrics-waits', 'waiting for group 1 to have a reachable master (h:1: connect ECONNREFUSED)'));
    await migrations.create(task('m-metrics-moves'));
    try {
      const m = (await call('GET', '/metrics')).body as string;
      expect(m).toMatch(/^reborn_config_migration_waiting\{id="m-metrics-waits"\} 1$/m);
      expect(m).toMatch(/^reborn_config_migration_waiting\{id="m-metrics-moves"\} 0$/m);
    } finally {
      await migrations.delete('m-metrics-waits');
      await migrations.delete('m-metrics-moves');
    }
  });

  it('refuses a non-loopback address without a token', async () => {
    const api = createApi({ store, logger: pino({ level: 'silent' }) });
    await expect(api.listen('0.0.0.0:0')).rejects.toThrow(
      'refusing to serve the API on non-loopback address 0.0.0.0:0 without a token: set --token (or REBORN_DASHBOARD_TOKEN), or listen on 127.0.0.1',
    );
    const withToken = await createApi({ store, logger: pino({ level: 'silent' }), token: TOKEN }).listen('0.0.0.0:0');
    await withToken.close();
  });
});
