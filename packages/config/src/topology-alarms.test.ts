/**
 * topologyAlarms() against a real etcd and small HTTP servers standing in for the proxies'
 * /healthz (what each reports is its own business: tested end to end in
 * test/topology-identity.test.ts), and the dashboard banner that shows it, escaped.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store, encodeRestoreMarker, onlineSlot, type ProxyInfo } from '@reborn/coordinator';
import { freePort, startEtcd, type EtcdServer } from '@reborn/testkit';
import { DASHBOARD_HTML } from './dashboard/page.js';
import { topologyAlarms } from './topology-alarms.js';

let etcd: EtcdServer;
const stores: Store[] = [];
const servers: Server[] = [];

async function product(): Promise<Store> {
  const s = await Store.open({ endpoints: [etcd.clientUrl], product: `t${randomBytes(4).toString('hex')}` });
  stores.push(s);
  return s;
}

/** An HTTP server answering /healthz with `body`; returns its host:port. */
async function fakeHealthz(body: unknown): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const proxy = (id: string, adminAddr: string): ProxyInfo => ({
  id,
  addr: '127.0.0.1:1',
  adminAddr,
  pid: process.pid,
  host: 'test',
  startedAt: new Date().toISOString(),
  state: 'online',
});

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  for (const s of servers) s.close();
  await Promise.all(stores.map((s) => s.close()));
  await etcd?.stop();
});

describe('topologyAlarms', () => {
  it('is quiet for a healthy product', async () => {
    const store = await product();
    await store.putGroup({ id: 1, servers: [{ addr: '127.0.0.1:7001', role: 'master' }] });
    await store.putSlots([onlineSlot(0, 1)]);
    const reg = await store.registerProxy(proxy('px-ok', await fakeHealthz({ ready: true, topologyAlarm: null })));
    const t = await topologyAlarms(store);
    expect(t).toMatchObject({ alarmed: false, etcd: null, processes: [], unreachable: [], restoring: null });
    expect(t.identity).toEqual(await store.getIdentity());
    await reg.close();
  });

  it('lists what each process reports, what etcd alone shows, and who did not answer', async () => {
    const store = await product();
    const alarm = { reason: 'identity_vanished', message: 'gone', since: '2024-01-01T00:00:00.000Z', effect: 'serving the last slot table' };
    const regs = [
      await store.registerProxy(proxy('px-a', await fakeHealthz({ ready: true, degraded: true, topologyAlarm: alarm }))),
      await store.registerProxy(proxy('px-dead', `127.0.0.1:${await freePort()}`)),
    ];
    const t = await topologyAlarms(store, 500);
    expect(t.alarmed).toBe(true);
    expect(t.etcd).toMatch(/no slots, no groups and no identity while 2 proxies are registered/);
    expect(t.processes).toEqual([{ kind: 'proxy', id: 'px-a', ...alarm }]);
    expect(t.unreachable).toEqual(['proxy px-dead']);

    const marker = { generation: 'g-1', startedAt: 'now', by: 'ops 7' };
    await store.etcd.put(store.paths.restoring).value(encodeRestoreMarker(marker)).exec();
    const during = await topologyAlarms(store, 500);
    expect(during.restoring).toEqual(marker);
    expect(during.etcd).toMatch(/a topology restore of generation g-1 is in progress \(started now by ops 7\)/);
    await Promise.all(regs.map((r) => r.close()));
  });
});

describe('dashboard banner', () => {
  /** The page's script in a sandbox with just enough DOM to call its render function. */
  function pageScript() {
    type El = { innerHTML: string; className: string; textContent: string; style: object; dataset: object; appendChild(): void; addEventListener(): void };
    const fake = (): El => ({ innerHTML: '', className: '', textContent: '', style: {}, dataset: {}, appendChild: () => undefined, addEventListener: () => undefined });
    const els = new Map<string, El>();
    const ctx: Record<string, unknown> = {
      document: {
        getElementById: (id: string) => {
          if (!els.has(id)) els.set(id, fake());
          return els.get(id);
        },
        createDocumentFragment: fake,
        createElement: fake,
        addEventListener: () => undefined,
      },
      sessionStorage: { getItem: () => null, setItem: () => undefined, removeItem: () => undefined },
      window: { confirm: () => true },
      fetch: () => new Promise(() => undefined), // the page's own polling never answers
      setInterval: () => 0,
    };
    const js = DASHBOARD_HTML.slice(DASHBOARD_HTML.indexOf('<script>') + '<script>'.length, DASHBOARD_HTML.indexOf('</script>'));
    runInNewContext(js, ctx);
    return { ctx, el: (id: string) => els.get(id)! };
  }

  it('shows every alarm, escaped, and hides when there is none', () => {
    expect(DASHBOARD_HTML).toContain('<div id="topologyAlarm" role="alert"></div>');
    const { ctx, el } = pageScript();
    const render = ctx['renderTopologyAlarm'] as (t: unknown) => void;
    const evil = '<img src=x onerror=alert(1)>';
    render({
      alarmed: true,
      etcd: `etcd lost it ${evil}`,
      processes: [{ kind: 'proxy', id: `px${evil}`, reason: `identity_vanished${evil}`, since: evil, message: `gone ${evil}`, effect: evil }],
      unreachable: [`agent ${evil}`],
    });
    const box = el('topologyAlarm');
    expect(box.className).toBe('show');
    expect(box.innerHTML).toContain('Topology alarm');
    expect(box.innerHTML).toContain('etcd lost it &lt;img src=x onerror=alert(1)&gt;');
    expect(box.innerHTML).not.toContain('<img');
    expect(box.innerHTML).toContain('not answering: agent &lt;img');
    render({ alarmed: false, etcd: null, processes: [], unreachable: [] });
    expect(box.className).toBe('');
    expect(box.innerHTML).toBe('');
  });
});
