/**
 * The web dashboard in a real browser: Debian's chromium (/usr/bin/chromium, installed by
 * scripts/ensure-system-deps.mjs; no browser is downloaded) driven by playwright-core, against
 * a real local cluster — etcd, two groups of master + replica, one reborn-proxy — and the real
 * `reborn-config dashboard` process (REST API + migration runner).
 *
 * It checks what an operator sees and does: the slot map's 1024 cells in the colour of the
 * group the API says owns each slot; the heat map, the total QPS chart and the proxies' QPS
 * after traffic through the proxy; a migration started from the page's form moves the slots
 * (and their keys); promote from the groups table switches the master (etcd and ROLE on the
 * servers); a real failover by reborn-agent --ha shows up in the failover events table.
 * All of it through the locked API (coordinator/http-guard.ts): a group added and removed
 * with the page's form and button, and a group's min-in-sync set and cleared with its settings
 * form (PATCH), land in etcd, and the browser reports no violation of the page's
 * Content-Security-Policy.
 * Screenshots go to test-output/dashboard-browser/ (gitignored); the path is printed.
 */
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { ManagedProcess, freePort, healthzFrom, startCluster, waitFor, type Cluster } from '@reborn/testkit';
import { startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG_BIN = join(REPO, 'packages/config/bin/reborn-config.js');
const SHOTS = join(REPO, 'test-output', 'dashboard-browser');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let cluster: Cluster;
let dashboard: ManagedProcess;
let base: string;
let userDataDir: string;
let context: BrowserContext;
let page: Page;
let agent: AgentProcess | null = null;
const clients: Redis[] = [];
const shots: string[] = [];
/** Console errors of the page (a CSP violation is reported there). */
const consoleErrors: string[] = [];

interface Res {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

async function call(method: string, path: string, body?: unknown): Promise<Res> {
  const res = await fetch(`${base}${path}`, {
    method,
    // The API refuses a state-changing request without this content type, body or not.
    ...(method === 'GET' ? {} : { headers: { 'content-type': 'application/json' } }),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REBORN_')) env[k] = v;
  return env;
}

async function shot(name: string): Promise<void> {
  const path = join(SHOTS, `${String(shots.length + 1).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  shots.push(path);
}

/** Waits for the page's next successful refresh (the "updated …" stamp changes). */
async function nextRefresh(): Promise<void> {
  const before = await page.textContent('#updated');
  await page.waitForFunction((b) => {
    const t = document.getElementById('updated')!.textContent ?? '';
    return t.startsWith('updated') && t !== b;
  }, before, { timeout: 30_000, polling: 50 });
}

// ---------------------------------------------------------------------------------------------
// Colours: the page's group colour is `hsl(h,62%,l%)`; the browser reports `rgb(r, g, b)`.

const groupHsl = (gid: number): [number, number, number] => [Math.round((gid * 137.508) % 360), 62, gid % 2 ? 48 : 60];

/** CSS Color 4 hsl → sRGB, 0..255 per channel. */
function hslToRgb([h, s, l]: [number, number, number]): [number, number, number] {
  const sat = s / 100;
  const lig = l / 100;
  const k = (n: number): number => (n + h / 30) % 12;
  const a = sat * Math.min(lig, 1 - lig);
  const f = (n: number): number => lig - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  return [f(0), f(8), f(4)].map((x) => Math.round(x * 255)) as [number, number, number];
}

function parseRgb(css: string): [number, number, number] {
  const m = /^rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)$/.exec(css);
  if (!m) throw new Error(`not an rgb() colour: ${css}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Same colour up to the browser's rounding (one unit per channel). */
const sameColour = (a: [number, number, number], b: [number, number, number]): boolean => a.every((v, i) => Math.abs(v - b[i]!) <= 1);

interface Cell {
  slot: number;
  state: string;
  bg: string;
  qps: string;
}

async function readCells(): Promise<Cell[]> {
  return page.$$eval('#slotmap .s', (els) =>
    els.map((e) => {
      const d = (e as HTMLElement).dataset;
      return { slot: Number(d['slot']), state: d['state'] ?? '', bg: getComputedStyle(e).backgroundColor, qps: d['qps'] ?? '' };
    }),
  );
}

/** The owner of every slot per GET /api/slots. */
async function ownersFromApi(): Promise<Array<{ state: string; group: number }>> {
  const ranges = (await call('GET', '/api/slots')).body as Array<{ first: number; last: number; state: string; group: number }>;
  const out: Array<{ state: string; group: number }> = [];
  for (const r of ranges) for (let s = r.first; s <= r.last; s++) out[s] = { state: r.state, group: r.group };
  return out;
}

/** Every cell's computed colour is its owner's group colour; returns the slots per group. */
async function expectMapMatchesApi(): Promise<Map<number, number>> {
  const [cells, owners] = [await readCells(), await ownersFromApi()];
  expect(cells).toHaveLength(1024);
  expect(owners).toHaveLength(1024);
  const perGroup = new Map<number, number>();
  const wrong: string[] = [];
  for (const c of cells) {
    const o = owners[c.slot]!;
    expect(o.state).toBe('online');
    perGroup.set(o.group, (perGroup.get(o.group) ?? 0) + 1);
    const want = hslToRgb(groupHsl(o.group));
    if (c.state !== 'online' || !sameColour(parseRgb(c.bg), want)) wrong.push(`slot ${c.slot}: ${c.state} ${c.bg}, want group ${o.group} rgb(${want.join(', ')})`);
  }
  expect(wrong.slice(0, 10)).toEqual([]);
  expect(cells.map((c) => c.slot)).toEqual(Array.from({ length: 1024 }, (_, i) => i));
  return perGroup;
}

/** `n` keys whose slots are in from..to. */
function keysInSlots(prefix: string, from: number, to: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const k = `${prefix}${i}`;
    const s = keySlot(Buffer.from(k));
    if (s >= from && s <= to) out.push(k);
  }
  return out;
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1 });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  dashboard = new ManagedProcess({
    name: 'reborn-config dashboard',
    command: process.execPath,
    args: [CONFIG_BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, 'dashboard', '--http-addr', `127.0.0.1:${port}`],
    env: cleanEnv(),
    cwd: REPO,
  });
  await dashboard.waitReady('healthz', () => healthzFrom(`${base}/healthz`, dashboard.pid), 20_000);
  await dashboard.waitReady('runner elected', async () => (await call('GET', '/api/overview')).body.runnerAlive === true, 20_000);

  userDataDir = await mkdtemp(join(tmpdir(), 'reborn-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  // The page asks window.confirm() before promote / cancel: the operator says yes.
  page.on('dialog', (d) => void d.accept());
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  const response = await page.goto(base);
  expect(response?.headers()['content-security-policy']).toMatch(/script-src 'sha256-/);
  await page.waitForFunction(() => (document.getElementById('updated')!.textContent ?? '').startsWith('updated'), null, { timeout: 30_000 });
});

afterAll(async () => {
  // Every step runs even when an earlier one throws (a browser that will not close must not
  // leave the agent, the dashboard and the cluster running); the first error is rethrown.
  const errors: unknown[] = [];
  const step = async (fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  await step(() => context?.close());
  await step(() => (userDataDir ? rm(userDataDir, { recursive: true, force: true }) : undefined));
  for (const c of clients) await step(() => c.disconnect());
  await step(() => agent?.proc.terminate('SIGTERM'));
  await step(() => dashboard?.terminate('SIGTERM'));
  await step(() => cluster?.stop());
  if (shots.length) console.log(`dashboard screenshots:\n  ${shots.join('\n  ')}`);
  if (errors.length) throw errors[0];
});

describe('dashboard in chromium', () => {
  it('renders 1024 slot cells in the colour of the group the API says owns each', async () => {
    expect(await page.title()).toBe('reborn dashboard');
    expect(await page.textContent('#product')).toBe(cluster.product);
    expect(await page.getAttribute('#errors', 'class')).toBe('');
    const perGroup = await expectMapMatchesApi();
    expect([...perGroup.entries()].sort()).toEqual([[1, 512], [2, 512]]);
    // The two groups really look different.
    expect(sameColour(hslToRgb(groupHsl(1)), hslToRgb(groupHsl(2)))).toBe(false);
    // The groups table lists every server with what INFO says.
    const groups = await page.textContent('#groups');
    for (const g of cluster.groups) {
      expect(groups).toContain(g.master.addr);
      expect(groups).toContain(`replica of ${g.master.addr} link up`);
    }
    await shot('initial');
  });

  it('adds a group with its form and removes it with its button, through the locked API (etcd changes)', async () => {
    // The API now refuses what is not application/json, from a foreign origin or host: the
    // page's own requests must pass. POST with a body, then a DELETE without one.
    await page.fill('#addGroupForm input[name=id]', '77');
    await page.click('#addGroupForm button[type=submit]');
    const added = await waitFor(() => cluster.store.getGroup(77), { what: 'group 77 in etcd', timeoutMs: 30_000 });
    expect(added).toMatchObject({ id: 77, servers: [] });
    const button = page.locator('button[data-remove-group="77"]');
    await button.waitFor({ timeout: 30_000 });
    await button.click();
    await waitFor(async () => (await cluster.store.getGroup(77)) === null, { what: 'group 77 gone from etcd', timeoutMs: 30_000 });
    await nextRefresh();
    expect(await page.getAttribute('#errors', 'class')).toBe('');
    expect(consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e))).toEqual([]);
  });

  it('sets a group\'s min-in-sync with the settings form (PATCH through the locked API), shows it, clears it', async () => {
    const g = cluster.groups[0]!;
    // No HA leader has recorded a set yet: the replica counts as in sync.
    const replicaRow = page.locator('#groups tr', { has: page.locator(`td:text-is("${g.replicas[0]!.addr}")`) });
    expect(await replicaRow.locator('td').nth(9).textContent()).toBe('yes (no HA set yet: every replica counts)');
    await page.fill('#groupSettingsForm input[name=gid]', '1');
    await page.fill('#groupSettingsForm input[name=minInSync]', '1');
    await page.fill('#groupSettingsForm input[name=wantReplicas]', '2');
    await page.click('#groupSettingsForm button[type=submit]');
    await waitFor(async () => (await cluster.store.getGroup(1))?.minInSync === 1, { what: 'minInSync 1 in etcd', timeoutMs: 30_000 });
    expect(await cluster.store.getGroup(1)).toMatchObject({ minInSync: 1, wantReplicas: 2 });
    await page.locator('#groups .gset', { hasText: 'in-sync 1/1, min-in-sync 1, want-replicas 2' }).waitFor({ timeout: 30_000 });
    await shot('group-settings');

    await page.fill('#groupSettingsForm input[name=gid]', '1');
    await page.fill('#groupSettingsForm input[name=minInSync]', 'none');
    await page.fill('#groupSettingsForm input[name=wantReplicas]', 'none');
    await page.click('#groupSettingsForm button[type=submit]');
    await waitFor(async () => {
      const grp = await cluster.store.getGroup(1);
      return grp !== null && grp.minInSync === undefined && grp.wantReplicas === undefined;
    }, { what: 'the settings cleared in etcd', timeoutMs: 30_000 });
    await nextRefresh();
    expect(await page.getAttribute('#errors', 'class')).toBe('');
    expect(consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e))).toEqual([]);
  });

  it('after traffic through the proxy: total QPS, the chart, the proxy row and the heat map are non-zero', async () => {
    const c = cluster.proxies[0]!.client();
    clients.push(c);
    const keys = Array.from({ length: 6 }, (_, i) => `heat:{h${i}}`);
    const hot = [...new Set(keys.map((k) => keySlot(Buffer.from(k))))];
    let stop = false;
    // The loop's error is captured at once (no unhandled rejection masking the real failure)
    // and rethrown after the checks.
    let loadError: unknown = null;
    const load = (async () => {
      for (let i = 0; !stop; i++) await c.set(keys[i % keys.length]!, String(i));
    })().catch((err: unknown) => {
      loadError = err;
    });
    try {
      // Two samples of the proxy with traffic between them: every hot slot has a rate.
      await page.waitForFunction(
        (slots) => {
          const cells = document.querySelectorAll<HTMLElement>('#slotmap .s');
          return slots.every((s) => Number(cells[s]!.dataset['qps']) > 0);
        },
        hot,
        { timeout: 30_000, polling: 100 },
      );
      await nextRefresh();
      await page.check('#heatToggle');
      const qps = Number((await page.textContent('#kpiQps b'))!.replace(/,/g, ''));
      expect(qps).toBeGreaterThan(0);
      expect(await page.locator('#qpsLine').count()).toBe(1);
      const proxyRow = await page.locator('#proxies tr').nth(1).locator('td').allTextContents();
      expect(proxyRow[0]).toBe((await cluster.store.listProxies())[0]!.id);
      expect(Number(proxyRow[6]!.replace(/,/g, ''))).toBeGreaterThan(0); // QPS
      expect(Number(proxyRow[7])).toBeGreaterThanOrEqual(1); // sessions
      // Heat map: the written slots are coloured, every other slot is idle grey.
      const idle = parseRgb('rgb(228, 231, 235)');
      const cells = await readCells();
      const hotSet = new Set(hot);
      const wrong: string[] = [];
      for (const cell of cells) {
        const isIdle = sameColour(parseRgb(cell.bg), idle);
        if (hotSet.has(cell.slot) === isIdle) wrong.push(`slot ${cell.slot}: qps ${cell.qps}, ${cell.bg}`);
      }
      expect(wrong.slice(0, 10)).toEqual([]);
      expect(await page.textContent('#legend')).toMatch(/req\/s \(log scale/);
      await shot('heatmap-after-traffic');
    } finally {
      stop = true;
      await load;
    }
    if (loadError) throw loadError;
    await page.uncheck('#heatToggle');
    await expectMapMatchesApi();
  });

  it('a migration started from the form moves the slots and their keys (checked via the API)', async () => {
    const c = clients[0]!;
    const keys = keysInSlots('mig:', 0, 99, 300);
    await c.mset(Object.fromEntries(keys.map((k) => [k, `v-${k}`])));

    await page.fill('#migrateForm input[name=from]', '0');
    await page.fill('#migrateForm input[name=to]', '99');
    await page.fill('#migrateForm input[name=group]', '2');
    await page.click('#migrateForm button[type=submit]');

    const task = await waitFor(async () => {
      const list = (await call('GET', '/api/migrations')).body as Array<{ id: string; slots: number[]; to: number; state: string }>;
      return list.find((t) => t.to === 2 && t.slots[0] === 0 && t.slots.length === 100) ?? null;
    }, { what: 'the task the form created', timeoutMs: 30_000 });
    const done = await waitFor(async () => {
      const t = (await call('GET', `/api/migrations/${task.id}`)).body as { state: string };
      if (t.state === 'failed' || t.state === 'cancelled') throw new Error(`migration ended ${t.state}`);
      return t.state === 'done' ? t : null;
    }, { what: `migration ${task.id} done`, timeoutMs: 60_000, intervalMs: 100 });
    expect(done.state).toBe('done');
    expect((await call('GET', '/api/slots')).body).toEqual([
      { first: 0, last: 99, state: 'online', group: 2 },
      { first: 100, last: 511, state: 'online', group: 1 },
      { first: 512, last: 1023, state: 'online', group: 2 },
    ]);
    // The keys moved with them: all readable through the proxy, held by group 2's master only.
    expect(await c.mget(keys)).toEqual(keys.map((k) => `v-${k}`));
    const [m1, m2] = cluster.groups.map((g) => g.master.client());
    try {
      expect(await m1!.exists(...keys)).toBe(0);
      expect(await m2!.exists(...keys)).toBe(keys.length);
    } finally {
      // Group 2's master is killed later: no client left reconnecting to it.
      m1!.disconnect();
      m2!.disconnect();
    }

    // The page shows the finished task and recolours the moved slots.
    await nextRefresh();
    await nextRefresh();
    expect(await page.textContent('#migrations')).toContain(task.id);
    const perGroup = await expectMapMatchesApi();
    expect([...perGroup.entries()].sort()).toEqual([[1, 412], [2, 612]]);
    expect(await page.getAttribute('#errors', 'class')).toBe('');
    await shot('after-migration');
  });

  it('promote from the groups table switches the master (etcd, and ROLE on the servers)', async () => {
    const g = cluster.groups[0]!;
    const oldMaster = g.master;
    const replica = g.replicas[0]!;
    await page.click(`button[data-promote="${replica.addr}"][data-gid="1"]`);

    const group = await waitFor(async () => {
      const b = (await call('GET', '/api/groups/1')).body as { servers: Array<{ addr: string; role: string }> };
      return b.servers.find((s) => s.role === 'master')?.addr === replica.addr ? b : null;
    }, { what: 'group 1 master switched in etcd', timeoutMs: 30_000 });
    const byAddr = (a: { addr: string }, b: { addr: string }): number => a.addr.localeCompare(b.addr);
    expect([...group.servers].sort(byAddr)).toEqual(
      [{ addr: replica.addr, role: 'master' }, { addr: oldMaster.addr, role: 'replica' }].sort(byAddr),
    );
    const newRole = (await replica.client().call('ROLE')) as unknown[];
    expect(newRole[0]).toBe('master');
    const oldClient = oldMaster.client(); // one client for every poll
    const oldRole = await waitFor(async () => {
      const r = (await oldClient.call('ROLE')) as unknown[];
      return r[0] === 'slave' ? r : null;
    }, { what: 'old master to be a replica', timeoutMs: 20_000 }).finally(() => oldClient.disconnect());
    expect(oldRole.slice(1, 3)).toEqual(['127.0.0.1', replica.port]);

    // The page: the promoted server's row says master, by etcd and by its own INFO.
    await page.waitForFunction(
      (addr) => [...document.querySelectorAll('#groups tr')].some((tr) => {
        const td = [...tr.querySelectorAll('td')].map((x) => x.textContent);
        return td[2] === addr && td[3] === 'master' && td[4] === 'master';
      }),
      replica.addr,
      { timeout: 30_000, polling: 100 },
    );
    expect(await page.getAttribute('#errors', 'class')).toBe('');
    await shot('after-promote');
  });

  it('a failover by reborn-agent --ha appears in the failover events table', async () => {
    agent = await startAgent({ etcd: cluster.etcd.clientUrl, product: cluster.product, id: 'ha-dash', args: ['--ha', '--down-after-ms', '1500'] });
    await waitLeader(agent);
    const g = cluster.groups[1]!;
    const [dead, heir] = [g.master, g.replicas[0]!];
    await dead.kill('SIGKILL');

    const ev = await waitFor(async () => {
      const list = (await call('GET', '/api/events')).body as Array<{ seq: number; kind: string; group?: number; data: Record<string, unknown> }>;
      return list.find((e) => e.kind === 'failover' && e.group === 2) ?? null;
    }, { what: 'the failover event', timeoutMs: 30_000, intervalMs: 100 });
    expect(ev.data).toMatchObject({ oldMaster: dead.addr, newMaster: heir.addr });

    const row = page.locator(`#events tr[data-seq="${ev.seq}"]`);
    await row.waitFor({ timeout: 30_000 });
    const cells = await row.locator('td').allTextContents();
    expect(cells[0]).toBe(String(ev.seq));
    expect(cells[2]).toBe('failover');
    expect(cells[3]).toBe('2');
    expect(cells[5]).toContain(`${dead.addr} → ${heir.addr}`);
    expect(await row.getAttribute('class')).toBe('failover');
    // The dead server is shown down in the groups table.
    await page.waitForFunction(
      (addr) => [...document.querySelectorAll('#groups tr')].some((tr) => {
        const td = [...tr.querySelectorAll('td')].map((x) => x.textContent ?? '');
        return td[2] === addr && td[4].startsWith('down:');
      }),
      dead.addr,
      { timeout: 30_000, polling: 100 },
    );
    await shot('after-failover');
  });
});
