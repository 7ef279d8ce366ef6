/**
 * The web dashboard (packages/config/src/dashboard/page.ts) served at `GET /` by the REST API,
 * in-process against a real etcd and real redis servers: the page is HTML with the slot map and
 * its script, every `/api/…` route its script calls exists with the method it uses, the group
 * panel shows each group's in-sync set and settings and its form sets them, it works
 * behind a bearer token (the page itself is public, the API is not), and it loads nothing from
 * outside.
 */
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type ApiServer } from '@reborn/config';
import { SlotState, onlineSlot } from '@reborn/coordinator';
import { startCluster, type Cluster } from '@reborn/testkit';

let cluster: Cluster;
let server: ApiServer;
let secured: ApiServer;
const TOKEN = 'dashboard-token-0123456789';

async function get(base: ApiServer, path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(`http://${base.address}${path}`, { headers, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`http://${server.address}${path}`, {
    method,
    // The API refuses a state-changing request without this content type, body or not.
    ...(method === 'GET' ? {} : { headers: { 'content-type': 'application/json' } }),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

// ---------------------------------------------------------------------------------------------
// The page's script run in node against the live API, with a minimal DOM stand-in (no browser
// on this machine): enough to check what it renders and what its forms and buttons call.

interface FakeEl {
  id: string;
  innerHTML: string;
  textContent: string;
  className: string;
  title: string;
  value: string;
  dataset: Record<string, string>;
  style: Record<string, string>;
  children: FakeEl[];
  elements: Record<string, { value: string }>;
  listeners: Record<string, Array<(ev: unknown) => void>>;
  appendChild(c: FakeEl): void;
  addEventListener(type: string, fn: (ev: unknown) => void): void;
  reset(): void;
}

function fakeEl(id = ''): FakeEl {
  const el: FakeEl = {
    id, innerHTML: '', textContent: '', className: '', title: '', value: '', dataset: {}, style: {}, children: [], elements: {}, listeners: {},
    appendChild(c) {
      el.children.push(...(c.id === '#fragment' ? c.children : [c]));
    },
    addEventListener(type, fn) {
      (el.listeners[type] ??= []).push(fn);
    },
    reset() {
      for (const e of Object.values(el.elements)) e.value = '';
    },
  };
  return el;
}

interface Page {
  el(id: string): FakeEl;
  submit(formId: string, values: Record<string, string>): void;
  click(dataset: Record<string, string>): void;
  /** Resolves once `pred` holds (the page's promises have settled). */
  until(pred: () => boolean, what: string): Promise<void>;
  storage: Map<string, string>;
}

/** Answers a request of the page instead of the API (null: the API answers). */
type Intercept = (path: string) => Response | null;

function runPage(html: string, base: ApiServer, intercept: Intercept = () => null): Page {
  const els = new Map<string, FakeEl>();
  const el = (id: string): FakeEl => {
    let e = els.get(id);
    if (!e) els.set(id, (e = fakeEl(id)));
    return e;
  };
  const docListeners: Record<string, Array<(ev: unknown) => void>> = {};
  const storage = new Map<string, string>();
  const ctx = {
    document: {
      getElementById: el,
      createDocumentFragment: () => fakeEl('#fragment'),
      createElement: () => fakeEl(),
      addEventListener: (type: string, fn: (ev: unknown) => void) => (docListeners[type] ??= []).push(fn),
    },
    sessionStorage: {
      getItem: (k: string) => storage.get(k) ?? null,
      setItem: (k: string, v: string) => void storage.set(k, v),
      removeItem: (k: string) => void storage.delete(k),
    },
    window: { confirm: () => true },
    fetch: async (path: string, init: RequestInit) =>
      intercept(path) ?? fetch(`http://${base.address}${path}`, { ...init, signal: AbortSignal.timeout(30_000) }),
    setInterval: () => 0,
  };
  const js = html.slice(html.indexOf('<script>') + '<script>'.length, html.indexOf('</script>'));
  runInNewContext(js, ctx);
  return {
    el,
    storage,
    submit(formId, values) {
      const form = el(formId);
      form.elements = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { value: v }]));
      for (const [k, v] of Object.entries(values)) el(k).value = v;
      for (const fn of form.listeners['submit'] ?? []) fn({ preventDefault() {}, target: form });
    },
    click(dataset) {
      const button = { dataset };
      for (const fn of docListeners['click'] ?? []) fn({ target: { closest: () => button } });
    },
    async until(pred, what) {
      const deadline = Date.now() + 20_000;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

const groupColor = (gid: number): string => `hsl(${Math.round((gid * 137.508) % 360)},62%,${gid % 2 ? 48 : 60}%)`;

/** `api('METHOD', '/api/…pattern'` calls of the page's script. */
function apiCalls(html: string): Array<{ method: string; pattern: string }> {
  const out = new Map<string, { method: string; pattern: string }>();
  for (const m of html.matchAll(/api\('(GET|POST|DELETE|PUT|PATCH)', '(\/api\/[^']*)'/g)) out.set(`${m[1]} ${m[2]}`, { method: m[1]!, pattern: m[2]! });
  return [...out.values()];
}

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, proxies: 0 });
  const logger = pino({ level: 'silent' });
  server = await createApi({ store: cluster.store, logger }).listen('127.0.0.1:0');
  secured = await createApi({ store: cluster.store, logger, token: TOKEN }).listen('127.0.0.1:0');
});

afterAll(async () => {
  await Promise.all([server?.close(), secured?.close()]);
  await cluster?.stop();
});

describe('dashboard page', () => {
  it('GET / is the HTML page with the slot map and its script', async () => {
    const res = await get(server, '/');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/html/);
    expect(res.text).toMatch(/^<!doctype html>/);
    expect(res.text).toContain('<div id="slotmap"');
    expect(res.text).toContain('<script>');
    expect(res.text).toContain('</script></body></html>');
    // The sections the operator needs.
    for (const id of ['errors', 'auth', 'kpis', 'qpsChart', 'heatToggle', 'legend', 'groups', 'proxies', 'migrations', 'migrateForm', 'addServerForm', 'events', 'planBtn', 'runBtn']) {
      expect(res.text).toContain(`id="${id}"`);
    }
    expect(res.text).toContain('setInterval(refresh, 2000)');
    expect(res.text).toContain("sessionStorage");
    expect(res.text).toContain("'Bearer '");
  });

  it('loads nothing from outside: no http:// or https:// URL, no external src/href', async () => {
    const { text } = await get(server, '/');
    expect(text).not.toMatch(/https?:\/\//i);
    expect(text).not.toMatch(/\/\/[a-z0-9.-]+\.[a-z]{2,}\//i);
    expect(text).not.toMatch(/<(script|link|img|iframe)[^>]+(src|href)=/i);
    expect(text).not.toMatch(/@import|url\(/i);
  });

  it('the script is valid JavaScript', async () => {
    const { text } = await get(server, '/');
    const js = text.slice(text.indexOf('<script>') + '<script>'.length, text.indexOf('</script>'));
    expect(() => new Function(js)).not.toThrow();
  });

  it('every /api route the script calls exists with its method', async () => {
    const { text } = await get(server, '/');
    const calls = apiCalls(text);
    // Every '/api/…' literal in the page is one of these calls (none built another way).
    expect(calls.length).toBe([...text.matchAll(/'\/api\//g)].length);
    expect(calls.map((c) => `${c.method} ${c.pattern}`).sort()).toEqual(
      [
        'GET /api/overview',
        'GET /api/slots',
        'GET /api/migrations',
        'GET /api/rebalance',
        'GET /api/stats',
        'GET /api/servers',
        'GET /api/events',
        'POST /api/groups',
        'POST /api/groups/:gid/servers',
        'POST /api/groups/:gid/promote',
        'DELETE /api/groups/:gid/servers/:addr',
        'DELETE /api/groups/:gid',
        'PATCH /api/groups/:gid',
        'POST /api/migrations',
        'POST /api/migrations/:id/pause',
        'POST /api/migrations/:id/resume',
        'POST /api/migrations/:id/cancel',
        'POST /api/rebalance',
      ].sort(),
    );

    // Values that reach each route's handler without changing anything.
    const params: Record<string, string> = { gid: '1', addr: '127.0.0.1:1', id: 'no-such-migration' };
    const fill = (pattern: string, over: Record<string, string> = {}): string =>
      pattern.replace(/:([a-z]+)/g, (_, k: string) => encodeURIComponent({ ...params, ...over }[k]!));
    for (const { method, pattern } of calls) {
      if (method === 'GET') {
        const r = await call('GET', fill(pattern));
        expect({ route: pattern, status: r.status }).toEqual({ route: pattern, status: 200 });
      } else if (method === 'PATCH') {
        // Group settings: a body without a setting is refused before anything is read or written.
        const r = await call('PATCH', fill(pattern), {});
        expect({ route: pattern, status: r.status, body: r.body }).toEqual({
          route: pattern,
          status: 400,
          body: { error: 'invalid request body: give "minInSync" and/or "wantReplicas" (a count, or null to clear it)', code: 'EINVALID' },
        });
      } else if (method === 'POST' && !pattern.startsWith('/api/migrations/:id/')) {
        // A route with a body schema: an empty body is a 400 naming the field, not a 404.
        const r = await call('POST', fill(pattern), {});
        expect({ route: pattern, status: r.status, code: r.body.code }).toEqual({ route: pattern, status: 400, code: 'EINVALID' });
        expect(r.body.error).toMatch(/^invalid request body: field "\w+" is required$/);
      } else if (method === 'POST') {
        // pause/resume/cancel take no body: the handler answers for the unknown task.
        const r = await call('POST', fill(pattern), {});
        expect({ route: pattern, status: r.status, body: r.body }).toEqual({
          route: pattern,
          status: 404,
          body: { error: 'migration no-such-migration does not exist', code: 'ENOTFOUND' },
        });
      } else {
        // DELETE of things that do not exist: the handler's 404, not the router's.
        const r = await call('DELETE', fill(pattern, { gid: pattern.endsWith(':gid') ? '9999' : '1' }));
        expect(r.status).toBe(404);
        expect(r.body.error).not.toMatch(/^no route/);
        expect(r.body.error).toMatch(/does not exist|is not in group/);
      }
    }
    // Nothing above changed the cluster.
    expect((await call('GET', '/api/groups')).body.map((g: { id: number }) => g.id)).toEqual([1, 2]);
    expect((await call('GET', '/api/slots')).body).toEqual([
      { first: 0, last: 511, state: 'online', group: 1 },
      { first: 512, last: 1023, state: 'online', group: 2 },
    ]);
  });

  it('the data the page renders has the fields its script reads', async () => {
    const o = (await call('GET', '/api/overview')).body;
    expect(o).toMatchObject({ product: cluster.product, runnerAlive: expect.any(Boolean) });
    expect(o.slots.byState).toEqual({ online: 1024, pre_migrate: 0, migrating: 0, offline: 0 });
    expect(o.groups.map((g: { id: number; slots: number }) => [g.id, g.slots])).toEqual([[1, 512], [2, 512]]);
    expect(o.groups[0].servers).toEqual([{ addr: cluster.groups[0]!.master.addr, role: 'master' }]);
    expect(o.groups[0]).toMatchObject({ inSync: [], inSyncManaged: false, minInSync: null, wantReplicas: null, durability: 'ok' });
    for (const k of ['proxies', 'fences', 'barriers', 'migrations']) expect(Array.isArray(o[k])).toBe(true);
    const plan = (await call('GET', '/api/rebalance')).body;
    expect(Array.isArray(plan.moves)).toBe(true);
    expect(Array.isArray(plan.summary)).toBe(true);
  });

  it('with a token the page is public, the API asks for the bearer token the page sends', async () => {
    const page = await get(secured, '/');
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/^text\/html/);
    const denied = await get(secured, '/api/overview');
    expect(denied.status).toBe(401);
    expect(JSON.parse(denied.text)).toMatchObject({ code: 'EUNAUTHORIZED' });
    const ok = await get(secured, '/api/overview', { authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
  });
});

describe('dashboard script against the live API', () => {
  it('renders the overview, 1024 slot cells coloured by group, the groups and the migrations', async () => {
    const page = runPage((await get(server, '/')).text, server);
    await page.until(() => page.el('updated').textContent.startsWith('updated'), 'the first refresh');
    expect(page.el('errors').className).toBe('');
    expect(page.el('product').textContent).toBe(cluster.product);
    const cells = page.el('slotmap').children;
    expect(cells).toHaveLength(1024);
    expect(cells.map((c) => c.style['background'])).toEqual([...Array(512).fill(groupColor(1)), ...Array(512).fill(groupColor(2))]);
    expect(cells.every((c) => c.className === 's online')).toBe(true);
    expect(cells[0]!.title).toBe('slot 0: online, group 1');
    expect(cells[700]!.title).toBe('slot 700: online, group 2');
    expect(page.el('legend').innerHTML).toContain('group 1 (512)');
    expect(page.el('legend').innerHTML).toContain('group 2 (512)');
    expect(page.el('kpis').innerHTML).toContain('online slots</span><b>1024</b>');
    expect(page.el('groups').innerHTML).toContain(cluster.groups[0]!.master.addr);
    expect(page.el('groups').innerHTML).toContain(`data-remove-server="${cluster.groups[1]!.master.addr}" data-gid="2"`);
    expect(page.el('proxies').innerHTML).toContain('no proxies');
    expect(page.el('migrations').innerHTML).toContain('no migrations');
    expect(page.el('events').innerHTML).toContain('no events');
    // INFO of each server: its own role, memory, keys; no proxies, so no QPS yet.
    expect(page.el('groups').innerHTML).toMatch(/<td>master<\/td><td>master<\/td><td><span class="mute">-<\/span><\/td><td>[\d.]+ [KM]iB<\/td><td>0<\/td>/);
    expect(page.el('kpis').innerHTML).toContain('total QPS</span><b>-</b>');
    expect(page.el('kpis').innerHTML).toContain('keys</span><b>0</b>');
    expect(page.el('qpsChart').innerHTML).toContain('waiting for samples');
  });

  it('shows an API error to the user instead of swallowing it', async () => {
    const page = runPage((await get(server, '/')).text, server);
    await page.until(() => page.el('updated').textContent.startsWith('updated'), 'the first refresh');
    page.submit('addServerForm', { gid: '1', addr: 'nohost' });
    await page.until(() => page.el('errors').className === 'show', 'the error area');
    expect(page.el('errors').innerHTML).toContain('POST /api/groups/1/servers → 400 <code>EINVALID</code> invalid server address &quot;nohost&quot;: want host:port');
    page.click({ dismiss: '0' });
    expect(page.el('errors').className).toBe('');
  });

  it('shows pre_migrate, migrating and offline slots distinctly, with from→to in the tooltip', async () => {
    const html = (await get(server, '/')).text;
    await cluster.store.putSlots([
      { id: 10, state: SlotState.PreMigrate, group: 1, from: 1, to: 2 },
      { id: 11, state: SlotState.Migrating, group: 2, from: 1, to: 2 },
      { id: 12, state: SlotState.Offline, group: 0 },
    ]);
    try {
      const page = runPage((await get(server, '/')).text, server);
      await page.until(() => page.el('updated').textContent.startsWith('updated'), 'the first refresh');
      const [pre, mig, off, on] = [10, 11, 12, 13].map((i) => page.el('slotmap').children[i]!);
      expect(pre!.className).toBe('s pre_migrate');
      expect(pre!.title).toBe('slot 10: pre_migrate, group 1, 1→2');
      expect(pre!.style['background']).toContain('repeating-linear-gradient');
      expect(mig!.className).toBe('s migrating');
      expect(mig!.title).toBe('slot 11: migrating, group 2, 1→2');
      expect(off!.className).toBe('s offline');
      expect(off!.title).toBe('slot 12: offline, group -');
      expect(on!.className).toBe('s online');
      expect(page.el('kpis').innerHTML).toContain('pre_migrate</span><b>1</b>');
      expect(page.el('kpis').innerHTML).toContain('offline slots</span><b>1</b>');
      // The CSS makes the three states look different from an owned slot.
      expect(html).toContain('#slotmap .s.pre_migrate{outline:2px dashed');
      expect(html).toContain('#slotmap .s.migrating{outline:2px solid');
      expect(html).toContain('#slotmap .s.offline{background:#c9ccd1 !important');
    } finally {
      await cluster.store.putSlots([10, 11, 12].map((i) => onlineSlot(i, 1)));
    }
  });

  it('previews the rebalance plan', async () => {
    const page = runPage((await get(server, '/')).text, server);
    await page.until(() => page.el('updated').textContent.startsWith('updated'), 'the first refresh');
    for (const fn of page.el('planBtn').listeners['click'] ?? []) fn({});
    await page.until(() => page.el('plan').innerHTML.startsWith('<pre>') || page.el('errors').className === 'show', 'the plan');
    expect(page.el('errors').innerHTML).toBe('');
    expect(page.el('plan').innerHTML).toBe('<pre>group 1: 512 → 512 slots\ngroup 2: 512 → 512 slots\nalready balanced: every group owns 512 slots\nnothing to move</pre>');
  });

  it('a failing call blanks only its own section: the others render, its error is shown', async () => {
    const page = runPage((await get(server, '/')).text, server, (path) =>
      path === '/api/servers' ? Response.json({ error: 'INFO exploded', code: 'EINTERNAL' }, { status: 500 }) : null,
    );
    await page.until(() => page.el('updated').textContent.startsWith('refresh failed'), 'the first refresh');
    expect(page.el('errors').className).toBe('show');
    expect(page.el('errors').innerHTML).toContain('GET /api/servers → 500 <code>EINTERNAL</code> INFO exploded');
    // Everything the other calls answered is there.
    expect(page.el('product').textContent).toBe(cluster.product);
    expect(page.el('slotmap').children[700]!.title).toBe('slot 700: online, group 2');
    expect(page.el('groups').innerHTML).toContain(cluster.groups[0]!.master.addr);
    expect(page.el('kpis').innerHTML).toContain('online slots</span><b>1024</b>');
    expect(page.el('kpis').innerHTML).toContain('keys</span><b>?</b>');
    expect(page.el('proxies').innerHTML).toContain('no proxies');
    expect(page.el('migrations').innerHTML).toContain('progress');
    expect(page.el('events').innerHTML).toContain('no events');
  });

  it('the QPS chart keeps the last 2 minutes by the samples\' time, however often it refreshes', async () => {
    // Samples 0 s, 60 s and 130 s apart, fetched one right after the other: the first one is
    // more than 2 minutes older than the last, so it leaves the chart (and its max).
    const samples = [{ at: 1_000_000, qps: 30 }, { at: 1_060_000, qps: 20 }, { at: 1_130_000, qps: 10 }];
    let n = 0;
    const page = runPage((await get(server, '/')).text, server, (path) => {
      if (path !== '/api/stats') return null;
      const s = samples[Math.min(n++, samples.length - 1)]!;
      return Response.json({ ...s, commands: 0, proxies: [], slotQps: new Array(1024).fill(0) });
    });
    const refreshed = async (what: string): Promise<void> => page.until(() => page.el('updated').textContent.startsWith('updated'), what);
    await refreshed('the first refresh');
    expect(page.el('qpsChart').innerHTML).toContain('(max 30)');
    for (const what of ['the second refresh', 'the third refresh']) {
      page.el('updated').textContent = '';
      page.submit('authForm', { token: '' }); // the token form refreshes, as actions do
      await refreshed(what);
    }
    expect(n).toBe(3);
    expect(page.el('qpsChart').innerHTML).toContain('(max 20)');
    expect(/points="([^"]*)"/.exec(page.el('qpsChart').innerHTML)![1]!.split(' ')).toHaveLength(2);
  });

  it('starts a migration from its form and cancels it with its button', async () => {
    const page = runPage((await get(server, '/')).text, server);
    await page.until(() => page.el('updated').textContent.startsWith('updated'), 'the first refresh');
    page.submit('migrateForm', { from: '0', to: '9', group: '2', throttle: '' });
    let id = '';
    await page.until(() => {
      id = /data-mig="cancel" data-id="([^"]+)"/.exec(page.el('migrations').innerHTML)?.[1] ?? '';
      return id !== '';
    }, 'the migration in the table');
    const task = (await call('GET', `/api/migrations/${id}`)).body;
    expect(task).toMatchObject({ slots: Array.from({ length: 10 }, (_, i) => i), from: [1], to: 2, throttle: 0 });
    expect(page.el('migrations').innerHTML).toContain('0/10');
    page.click({ mig: 'cancel', id });
    await page.until(() => !page.el('migrations').innerHTML.includes('data-mig="cancel"'), 'the cancel');
    expect(['cancelling', 'cancelled']).toContain((await call('GET', `/api/migrations/${id}`)).body.state);
    expect(page.el('errors').className).toBe('');
    // No runner is alive here, so the task stays cancelling: a plan preview now is refused, visibly.
    for (const fn of page.el('planBtn').listeners['click'] ?? []) fn({});
    await page.until(() => page.el('errors').className === 'show', 'the refusal');
    expect(page.el('errors').innerHTML).toMatch(/GET \/api\/rebalance → 409 <code>ECONFLICT<\/code> cannot plan a rebalance while migration \S+ is cancelling/);
  });

  it('shows each group\'s in-sync set, settings and durability marker, and sets them with its form', async () => {
    // Group 5 lives in etcd only (no redis behind it: its servers show as down, which is fine
    // here); removed at the end so the other tests see the two groups of the cluster.
    const [m, r1, r2] = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'];
    const servers = [{ addr: m, role: 'master' as const }, { addr: r1, role: 'replica' as const }, { addr: r2, role: 'replica' as const }];
    await cluster.store.putGroup({ id: 5, servers, inSync: [r2], minInSync: 1, wantReplicas: 2 });
    try {
      const page = runPage((await get(server, '/')).text, server);
      const refreshed = async (what: string): Promise<void> => {
        page.el('updated').textContent = '';
        page.submit('authForm', { token: '' }); // the token form refreshes, as actions do
        await page.until(() => page.el('updated').textContent.startsWith('updated'), what);
      };
      await page.until(() => page.el('updated').textContent.startsWith('updated'), 'the first refresh');
      /** The groups table's row of server `addr`. */
      const rowOf = (addr: string): string => page.el('groups').innerHTML.split('<tr>').find((r) => r.includes(`<td>${addr}</td>`)) ?? '';
      expect(page.el('groups').innerHTML).toContain('<th>in sync</th>');
      expect(rowOf(m)).toContain('<span class="mute gset">in-sync 1/2, min-in-sync 1, want-replicas 2</span>');
      expect(rowOf(m)).not.toContain('data-durability');
      expect(rowOf(r1)).toContain('<td><span class="bad">no</span></td>');
      expect(rowOf(r2)).toContain('<td><span class="ok">yes</span></td>');
      // The cluster's own groups: no HA leader has recorded a set, so every replica counts.
      expect(rowOf(cluster.groups[0]!.master.addr)).toContain('in-sync 0/0, min-in-sync -, want-replicas -');

      // The settings form: none clears, a number sets, the in-sync set stays as the HA leader wrote it.
      page.submit('groupSettingsForm', { gid: '5', minInSync: 'none', wantReplicas: '3' });
      await page.until(() => rowOf(m).includes('min-in-sync -, want-replicas 3'), 'the new settings in the table');
      expect(await cluster.store.getGroup(5)).toEqual({ id: 5, servers, inSync: [r2], wantReplicas: 3 });
      expect(page.el('errors').className).toBe('');

      // The HA leader empties the set: DEGRADED; with a floor of 1: REFUSING.
      await cluster.store.putGroup({ id: 5, servers, inSync: [], wantReplicas: 3 });
      await refreshed('a refresh after the set was emptied');
      expect(rowOf(m)).toContain('data-durability="degraded"');
      expect(rowOf(m)).toContain('>DEGRADED</span>');
      expect(rowOf(r2)).toContain('<td><span class="bad">no</span></td>');
      page.submit('groupSettingsForm', { gid: '5', minInSync: '1', wantReplicas: '' });
      await page.until(() => rowOf(m).includes('data-durability="refusing"'), 'the REFUSING marker');
      expect(await cluster.store.getGroup(5)).toEqual({ id: 5, servers, inSync: [], minInSync: 1, wantReplicas: 3 });

      // A bad value reaches the API as typed, and its error names the field.
      page.submit('groupSettingsForm', { gid: '5', minInSync: 'x', wantReplicas: '' });
      await page.until(() => page.el('errors').className === 'show', 'the error area');
      expect(page.el('errors').innerHTML).toContain(
        'PATCH /api/groups/5 → 400 <code>EINVALID</code> invalid request body: field &quot;minInSync&quot; must be an integer in 0..16 or null, got &quot;x&quot;',
      );
    } finally {
      await cluster.store.deleteGroup(5);
    }
  });

  it('asks for the token on 401, keeps it in sessionStorage and sends it as a bearer token', async () => {
    const page = runPage((await get(secured, '/')).text, secured);
    // The token input shows on the first 401; the error list once every section's call settled.
    await page.until(() => page.el('auth').className === 'show' && page.el('errors').className === 'show', 'the token input and the error');
    expect(page.el('errors').innerHTML).toContain('<code>EUNAUTHORIZED</code>');
    page.submit('authForm', { token: TOKEN });
    await page.until(() => page.el('updated').textContent.startsWith('updated'), 'a refresh with the token');
    expect(page.storage.get('reborn-token')).toBe(TOKEN);
    expect(page.el('auth').className).toBe('');
    expect(page.el('errors').className).toBe('');
    expect(page.el('slotmap').children[1023]!.title).toBe('slot 1023: online, group 2');
  });
});
