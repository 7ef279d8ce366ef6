/**
 * The Store against a real etcd (testkit). Tests that take etcd down start their own; the
 * rest share one etcd and keep apart by using a product each.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ManagedProcess, startEtcd, waitFor, type EtcdServer } from '@reborn/testkit';
import type { Lease } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from './errors.js';
import {
  SLOT_COUNT,
  SlotState,
  offlineSlot,
  onlineSlot,
  type GroupInfo,
  type ProxyInfo,
  type ProductIdentity,
  type RestoreMarker,
  type SlotInfo,
  type Topology,
  encodeRestoreMarker,
  encodeProxy,
} from './models.js';
import type { ResyncCause } from './watch.js';
import { Barrier } from './barrier.js';
import { Store } from './store.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHILD_REGISTER = `
  import { Store } from '@reborn/coordinator';
  const [url, product] = process.argv.slice(1);
  const store = await Store.open({ endpoints: [url], product });
  await store.registerProxy({ id: 'px-crash', addr: '127.0.0.1:1', adminAddr: '127.0.0.1:2',
    pid: process.pid, host: 'child', startedAt: new Date().toISOString(), state: 'online' }, 2);
  console.log('registered');
  setInterval(() => {}, 60_000);
`;
const product = () => `t${randomBytes(4).toString('hex')}`;
const group = (id: number, port = 6379 + id): GroupInfo => ({
  id,
  servers: [{ addr: `127.0.0.1:${port}`, role: 'master' }],
});
const proxyInfo = (id: string): ProxyInfo => ({
  id,
  addr: '127.0.0.1:19000',
  adminAddr: '127.0.0.1:19001',
  pid: process.pid,
  host: 'test',
  startedAt: new Date().toISOString(),
  state: 'online',
});

/** Records what a topology watch delivers. */
function recorder() {
  const slots: [SlotInfo, string][] = [];
  const groups: [number, GroupInfo | null][] = [];
  const errors: Error[] = [];
  const resyncs: Topology[] = [];
  const causes: ResyncCause[] = [];
  const deleted: number[] = [];
  const identities: (ProductIdentity | null)[] = [];
  const markers: (RestoreMarker | null)[] = [];
  return {
    slots,
    groups,
    errors,
    resyncs,
    causes,
    deleted,
    identities,
    markers,
    handlers: {
      onSlot: (s: SlotInfo, rev: string, wasDeleted: boolean) => {
        slots.push([s, rev]);
        if (wasDeleted) deleted.push(s.id);
      },
      onGroup: (id: number, g: GroupInfo | null) => groups.push([id, g]),
      onIdentity: (i: ProductIdentity | null) => identities.push(i),
      onRestoring: (m: RestoreMarker | null) => markers.push(m),
      onError: (e: Error) => errors.push(e),
      onResync: (t: Topology, cause: ResyncCause) => {
        resyncs.push(t);
        causes.push(cause);
      },
    },
  };
}

async function open(etcd: EtcdServer, p = product()): Promise<Store> {
  return Store.open({ endpoints: [etcd.clientUrl], product: p, callTimeoutMs: 2000, dialTimeoutMs: 2000 });
}

describe('Store (shared etcd)', () => {
  let etcd: EtcdServer;
  const stores: Store[] = [];
  const fresh = async () => {
    const s = await open(etcd);
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await etcd?.stop();
  });

  it('puts, lists, gets and deletes groups', async () => {
    const store = await fresh();
    expect(await store.listGroups()).toEqual([]);
    expect(await store.getGroup(1)).toBeNull();
    for (const id of [10, 2, 1]) await store.putGroup(group(id));
    expect((await store.listGroups()).map((g) => g.id)).toEqual([1, 2, 10]);
    const g2 = { id: 2, servers: [...group(2).servers, { addr: '127.0.0.1:7000', role: 'replica' as const }] };
    await store.putGroup(g2);
    expect(await store.getGroup(2)).toEqual(g2);

    await store.putSlots([onlineSlot(5, 2)]);
    await expect(store.deleteGroup(2)).rejects.toBeInstanceOf(ConflictError);
    await store.putSlots([offlineSlot(5)]);
    await store.deleteGroup(2);
    expect(await store.getGroup(2)).toBeNull();
    await expect(store.deleteGroup(2)).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.putGroup({ id: 3, servers: [{ addr: 'bad', role: 'master' }] })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });

  it('a migration target counts as a use of the group', async () => {
    const store = await fresh();
    await store.putGroup(group(1));
    await store.putGroup(group(2));
    await store.putSlots([{ id: 7, state: SlotState.PreMigrate, group: 1, from: 1, to: 2 }]);
    await expect(store.deleteGroup(2)).rejects.toThrow(/still used by 1 slot/);
  });

  it('writes all 1024 slots across transactions and reads them back', async () => {
    const store = await fresh();
    await store.putGroup(group(1));
    await store.putGroup(group(2));
    const want = Array.from({ length: SLOT_COUNT }, (_, id) => (id % 3 === 0 ? offlineSlot(id) : onlineSlot(id, 1 + (id % 2))));
    await store.putSlots(want);
    expect(await store.listSlots()).toEqual(want);
    expect(await store.getSlot(1023)).toEqual(want[1023]);
  });

  it('reads missing slot keys as offline', async () => {
    const store = await fresh();
    const slots = await store.listSlots();
    expect(slots).toHaveLength(SLOT_COUNT);
    expect(slots.every((s, i) => s.id === i && s.state === 'offline' && s.group === 0)).toBe(true);
    expect(await store.getSlot(17)).toEqual(offlineSlot(17));
  });

  it('refuses slots that point at a missing group, writing nothing of that transaction', async () => {
    const store = await fresh();
    await store.putGroup(group(1));
    await expect(store.putSlots([onlineSlot(1, 1), onlineSlot(2, 9)])).rejects.toThrow(/group\(s\) 9 do not exist/);
    expect(await store.getSlot(1)).toEqual(offlineSlot(1));
    await expect(store.putSlots([onlineSlot(1, 1), onlineSlot(1, 1)])).rejects.toBeInstanceOf(ValidationError);
  });

  it('loadTopology reads slots and groups at one revision', async () => {
    const store = await fresh();
    await store.putGroup(group(1));
    const rev = await store.putSlots([onlineSlot(0, 1), onlineSlot(1, 1)]);
    const t = await store.loadTopology();
    expect(t.revision).toBe(rev);
    expect([...t.groups.keys()]).toEqual([1]);
    expect(t.slots.slice(0, 3)).toEqual([onlineSlot(0, 1), onlineSlot(1, 1), offlineSlot(2)]);
    const rev2 = await store.putGroup(group(2));
    expect(BigInt(rev2)).toBeGreaterThan(BigInt(rev));
    expect((await store.loadTopology()).revision).toBe(rev2);
  });

  it('reports bad data in etcd as ValidationError naming the key', async () => {
    const store = await fresh();
    await store.etcd.put(store.paths.slot(3)).value('{"id":3,"state":"online","group":0}');
    await expect(store.listSlots()).rejects.toThrow(/slots\/0003: an online slot needs a group/);
    await store.etcd.put(store.paths.group(4)).value('not json');
    await expect(store.loadTopology()).rejects.toBeInstanceOf(ValidationError);
  });

  it('watch delivers slot and group changes in revision order', async () => {
    const store = await fresh();
    const rec = recorder();
    const start = await store.loadTopology();
    const w = store.watchTopology(start.revision, rec.handlers);
    await store.putGroup(group(1));
    const r1 = await store.putSlots([onlineSlot(10, 1), onlineSlot(11, 1)]);
    await store.putSlots([offlineSlot(10)]);
    await store.etcd.delete().key(store.paths.slot(11)); // a deleted key reads as offline
    await store.putGroup(group(2));
    await store.deleteGroup(2);
    await waitFor(() => rec.slots.length === 4 && rec.groups.length === 3, { what: 'watch events' });
    expect(rec.slots).toEqual([
      [onlineSlot(10, 1), r1],
      [onlineSlot(11, 1), r1],
      [offlineSlot(10), expect.any(String)],
      [offlineSlot(11), expect.any(String)],
    ]);
    expect(rec.groups).toEqual([
      [1, group(1)],
      [2, group(2)],
      [2, null],
    ]);
    expect(rec.errors).toEqual([]);
    await w.close();
  });

  it('watch replays history after the given revision and skips bad values', async () => {
    const store = await fresh();
    await store.putGroup(group(1));
    const from = await store.putSlots([onlineSlot(1, 1)]);
    await store.putSlots([onlineSlot(2, 1)]);
    await store.etcd.put(store.paths.slot(3)).value('garbage');
    await store.putSlots([onlineSlot(4, 1)]);
    const rec = recorder();
    const w = store.watchTopology(from, rec.handlers);
    await waitFor(() => rec.slots.length === 2, { what: 'replayed events' });
    expect(rec.slots.map(([s]) => s.id)).toEqual([2, 4]);
    expect(rec.errors).toHaveLength(1);
    expect(rec.errors[0]).toBeInstanceOf(ValidationError);
    await w.close();
  });

  it('watch resyncs when its revision was compacted', async () => {
    const store = await fresh();
    await store.putGroup(group(1));
    const old = await store.putSlots([onlineSlot(1, 1)]);
    await store.putSlots([onlineSlot(1, 1)]); // old+1: the first revision the watch needs
    const now = await store.putSlots([onlineSlot(2, 1)]);
    await store.etcd.kv.compact({ revision: now, physical: true });
    const rec = recorder();
    const w = store.watchTopology(old, rec.handlers);
    await waitFor(() => rec.resyncs.length === 1, { what: 'resync' });
    const t = rec.resyncs[0]!;
    expect(BigInt(t.revision)).toBeGreaterThanOrEqual(BigInt(now));
    expect(t.slots[2]).toEqual(onlineSlot(2, 1));
    // ...and it keeps watching from the reloaded revision.
    await store.putSlots([onlineSlot(3, 1)]);
    await waitFor(() => rec.slots.some(([s]) => s.id === 3), { what: 'event after resync' });
    expect(rec.slots.map(([s]) => s.id)).toEqual([3]);
    await w.close();
  });

  it('putGroup and putSlots give a new product its identity, once', async () => {
    const store = await fresh();
    expect(await store.getIdentity()).toBeNull();
    await store.putGroup(group(1));
    const first = await store.getIdentity();
    expect(first).not.toBeNull();
    expect(first!.adopted).toBeUndefined(); // written before the group: a product being created
    await store.putSlots([onlineSlot(1, 1)]);
    await store.putGroup(group(2));
    expect(await store.getIdentity()).toEqual(first);
    const again = await store.ensureIdentity();
    expect(again).toEqual({ identity: first, created: false, restoring: null });
  });

  it('an identity written for a product that already has a topology is marked adopted', async () => {
    const store = await fresh();
    // A product from before identities: its group written behind the Store's back.
    await store.etcd.put(store.paths.group(1)).value(JSON.stringify(group(1)));
    const r = await store.ensureIdentity();
    expect(r.created).toBe(true);
    expect(r.identity?.adopted).toBe(true);
    expect(await store.getIdentity()).toEqual(r.identity);
  });

  it('writes no identity while a restore is in progress', async () => {
    const store = await fresh();
    const marker = { generation: 'g-restore', startedAt: new Date().toISOString(), by: 'test' };
    await store.etcd.put(store.paths.restoring).value(encodeRestoreMarker(marker));
    expect(await store.ensureIdentity()).toEqual({ identity: null, created: false, restoring: marker });
    await store.putGroup(group(1)); // the group is written, the identity is not
    expect(await store.getGroup(1)).toEqual(group(1));
    expect(await store.getIdentity()).toBeNull();
  });

  it('loadTopology reads the identity, a restore marker and which slot keys exist; the head counts them', async () => {
    const store = await fresh();
    const empty = await store.loadTopology();
    expect(empty.identity).toBeNull();
    expect(empty.restoring).toBeNull();
    expect(empty.missingSlotKeys).toHaveLength(SLOT_COUNT);
    await store.putGroup(group(1));
    await store.putSlots([onlineSlot(3, 1), offlineSlot(4)]);
    const t = await store.loadTopology();
    expect(t.identity).toEqual(await store.getIdentity());
    expect(t.missingSlotKeys).toHaveLength(SLOT_COUNT - 2);
    expect(t.missingSlotKeys.includes(3) || t.missingSlotKeys.includes(4)).toBe(false);
    const head = await store.loadTopologyHead();
    expect(head).toEqual({ identity: t.identity, restoring: null, slotKeys: 2, groups: 1, revision: t.revision });
  });

  it('watch delivers identity and restore-marker changes, and tells a deleted slot key from one set offline', async () => {
    const store = await fresh();
    const rec = recorder();
    const w = store.watchTopology((await store.loadTopology()).revision, rec.handlers);
    await store.putGroup(group(1)); // writes the identity first
    const identity = await store.getIdentity();
    await store.putSlots([onlineSlot(1, 1), onlineSlot(2, 1)]);
    await store.putSlots([offlineSlot(1)]);
    await store.etcd.delete().key(store.paths.slot(2)).exec();
    const marker = { generation: 'g', startedAt: new Date().toISOString(), by: 'test' };
    await store.etcd.put(store.paths.restoring).value(encodeRestoreMarker(marker)).exec();
    await store.etcd.delete().key(store.paths.identity).exec();
    await store.etcd.delete().key(store.paths.restoring).exec();
    await waitFor(() => rec.markers.length === 2 && rec.slots.length === 4, { what: 'watch events' });
    expect(rec.identities).toEqual([identity, null]);
    expect(rec.markers).toEqual([marker, null]);
    expect(rec.deleted).toEqual([2]);
    expect(rec.slots.map(([s]) => s.state)).toEqual(['online', 'online', 'offline', 'offline']);
    expect(rec.errors).toEqual([]);
    await w.close();
  });

  it('registers a proxy; the key goes with close()', async () => {
    const store = await fresh();
    const reg = await store.registerProxy(proxyInfo('px-a'), 5);
    expect(await store.listProxies()).toEqual([proxyInfo('px-a')].map((p) => ({ ...p, startedAt: reg.proxy.startedAt })));
    await reg.update({ state: 'fenced' });
    expect((await store.listProxies())[0]?.state).toBe('fenced');
    await reg.close();
    expect(await store.listProxies()).toEqual([]);
  });

  it('refuses a proxy id held by another live process', async () => {
    const store = await fresh();
    const other = await open(etcd, store.product);
    stores.push(other);
    const reg = await other.registerProxy(proxyInfo('px-dup'), 1);
    const t0 = Date.now();
    await expect(store.registerProxy(proxyInfo('px-dup'), 1)).rejects.toBeInstanceOf(ConflictError);
    expect(Date.now() - t0).toBeLessThan(6000);
    await reg.close();
  });

  it('takes over the registration of a crashed predecessor on this host at once; a live pid or another host keeps the id', async () => {
    const store = await fresh();
    // A pid that ran on this host and has exited (reaped: kill(pid, 0) answers ESRCH).
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    // A record under a lease that outlives every wait below (60 s) and is never kept alive,
    // as a process killed with -9 leaves it.
    const plant = async (id: string, over: Partial<ProxyInfo>): Promise<Lease> => {
      const lease = store.etcd.lease(60, { autoKeepAlive: false });
      await lease.put(store.paths.proxy(id)).value(encodeProxy({ ...proxyInfo(id), host: hostname(), ...over }));
      return lease;
    };
    const ours = (id: string): ProxyInfo => ({ ...proxyInfo(id), host: hostname() });

    const deadLease = await plant('px-dead', { pid: deadPid });
    const reg = await store.registerProxy(ours('px-dead'), 1);
    expect(reg.tookOverFrom).toBe(deadPid);
    expect((await store.listProxies()).map((p) => [p.id, p.pid])).toEqual([['px-dead', process.pid]]);
    // Its lease was revoked with it.
    const left = await store.etcd.leaseClient.leaseTimeToLive({ ID: await deadLease.grant() });
    expect(Number(left.TTL)).toBeLessThanOrEqual(0);
    await reg.close();

    // A live process (our parent) holds the id: no take-over, the wait ends in ConflictError.
    const liveLease = await plant('px-live', { pid: process.ppid });
    await expect(store.registerProxy(ours('px-live'), 1)).rejects.toBeInstanceOf(ConflictError);
    expect((await store.listProxies()).map((p) => [p.id, p.pid])).toEqual([['px-live', process.ppid]]);
    await liveLease.revoke();

    // Another host: its pids mean nothing here.
    const farLease = await plant('px-far', { pid: deadPid, host: 'elsewhere' });
    await expect(store.registerProxy(ours('px-far'), 1)).rejects.toBeInstanceOf(ConflictError);
    expect((await store.listProxies()).map((p) => [p.id, p.host])).toEqual([['px-far', 'elsewhere']]);
    await farLease.revoke();
  });

  it('a crashed proxy’s key disappears when its lease expires', async () => {
    const observer = await fresh();
    // The registering process must really die (kill -9): inside this process, etcd3 keeps an
    // open keepalive stream going even after its client is closed.
    const child = new ManagedProcess({
      name: 'registering child',
      command: process.execPath,
      args: ['--input-type=module', '-e', CHILD_REGISTER, etcd.clientUrl, observer.product],
      cwd: REPO_ROOT,
    });
    try {
      await child.waitReady('registration', async () => child.lines.includes('registered'), 15_000);
      expect((await observer.listProxies()).map((p) => p.id)).toEqual(['px-crash']);
    } finally {
      await child.terminate('SIGKILL');
    }
    const t0 = Date.now();
    await waitFor(async () => (await observer.listProxies()).length === 0, {
      timeoutMs: 10_000,
      what: 'the lease to expire',
    });
    expect(Date.now() - t0).toBeGreaterThan(500);
  });

  it('fails fast with UnavailableError when etcd is not there', async () => {
    const t0 = Date.now();
    await expect(
      Store.open({ endpoints: ['http://127.0.0.1:1'], product: 'x', dialTimeoutMs: 1500 }),
    ).rejects.toBeInstanceOf(UnavailableError);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe('Store across etcd outages (own etcd)', () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('calls time out while etcd hangs, and work again after', async () => {
    const store = await open(etcd);
    try {
      await store.listGroups();
      await etcd.pause();
      const t0 = Date.now();
      await expect(store.listGroups()).rejects.toBeInstanceOf(UnavailableError);
      expect(Date.now() - t0).toBeLessThan(4000);
      etcd.resume();
      await waitFor(() => store.listGroups(), { what: 'etcd to answer again' });
    } finally {
      etcd.resume();
      await store.close();
    }
  });

  it('a registration update that fails while etcd is down lands by itself once etcd is back', async () => {
    const store = await open(etcd);
    const observer = await open(etcd, store.product);
    const reg = await store.registerProxy(proxyInfo('px-retry'), 10);
    try {
      // Down, not paused: a paused etcd would still apply the write it received when resumed.
      await etcd.kill('SIGKILL');
      await expect(reg.update({ state: 'fenced' })).rejects.toBeInstanceOf(UnavailableError);
      await etcd.restart();
      await waitFor(async () => (await observer.listProxies().catch(() => []))[0]?.state === 'fenced', { timeoutMs: 20_000, what: 'the retried write' });
    } finally {
      await reg.close();
      await Promise.all([store.close(), observer.close()]);
    }
  });

  it('a barrier whose acks cannot be read at its deadline waits for a read, and keeps the acks it saw', async () => {
    const store = await open(etcd);
    const barrier = new Barrier(store);
    try {
      await barrier.putMember('px-a', { addr: '127.0.0.1:1' });
      await barrier.putMember('px-b', { addr: '127.0.0.1:2' });
      const action = await barrier.createAction([1], (await store.loadTopology()).revision, 'test: acks across an outage');
      expect(action.proxies.sort()).toEqual(['px-a', 'px-b']);
      await barrier.ack(action.seq, 'px-a');
      const waited = barrier.waitForAcks(action, 300);
      await new Promise((r) => setTimeout(r, 100)); // px-a's ack read by now
      await etcd.pause(); // across the deadline, longer than a call's 2 s timeout: reads fail
      await new Promise((r) => setTimeout(r, 3000));
      etcd.resume();
      // px-a acked: only px-b may be reported missing (and so fenced).
      expect(await waited).toEqual({ acked: ['px-a'], missing: ['px-b'] });
    } finally {
      etcd.resume();
      await store.close();
    }
  });

  it('watch keeps delivering after etcd is stopped and restarted', async () => {
    const store = await open(etcd);
    const writer = await open(etcd, store.product);
    try {
      await writer.putGroup(group(1));
      const rec = recorder();
      const w = store.watchTopology((await store.loadTopology()).revision, rec.handlers);
      await writer.putSlots([onlineSlot(1, 1)]);
      await waitFor(() => rec.slots.length === 1, { what: 'first event' });

      await etcd.kill('SIGKILL');
      await waitFor(() => rec.errors.some((e) => e instanceof UnavailableError), { what: 'disconnect report' });
      await etcd.restart();
      // The writer's circuit breaker may still be open for a few seconds: retry until it writes.
      await waitFor(() => writer.putSlots([onlineSlot(2, 1)]), { timeoutMs: 20_000, what: 'a write after restart' });
      await waitFor(() => rec.slots.length === 2, { timeoutMs: 20_000, what: 'an event after restart' });
      expect(rec.slots.map(([s]) => s.id)).toEqual([1, 2]);
      expect(rec.resyncs).toEqual([]);
      expect(rec.errors.filter((e) => e instanceof UnavailableError)).toHaveLength(1); // once per outage
      await w.close();
    } finally {
      await Promise.all([store.close(), writer.close()]);
    }
  });

  it('watch reloads (cause rewound) when etcd comes back with an empty data dir', async () => {
    const own = await startEtcd();
    const store = await open(own);
    const writer = await open(own, store.product);
    try {
      await writer.putGroup(group(1));
      for (let i = 0; i < 20; i++) await writer.putSlots([onlineSlot(i, 1)]); // revisions to lose
      const rec = recorder();
      const w = store.watchTopology((await store.loadTopology()).revision, rec.handlers);
      await own.kill('SIGTERM');
      await rm(own.dir, { recursive: true, force: true });
      await own.restart();
      await waitFor(() => rec.resyncs.length === 1, { timeoutMs: 20_000, what: 'a reload after the rewind' });
      expect(rec.causes).toEqual(['rewound']);
      const t = rec.resyncs[0]!;
      expect(t.identity).toBeNull();
      expect(t.groups.size).toBe(0);
      expect(t.missingSlotKeys).toHaveLength(SLOT_COUNT);
      // ...and it watches the new history from there: a write to the empty etcd arrives.
      await waitFor(() => writer.putGroup(group(2)), { timeoutMs: 20_000, what: 'a write after the restart' });
      await waitFor(() => rec.groups.some(([id]) => id === 2), { timeoutMs: 20_000, what: 'an event of the new history' });
      await w.close();
    } finally {
      await Promise.all([store.close(), writer.close()]);
      await own.stop();
    }
  });

  it('a registration survives an outage longer than its lease: lost, then registered again', async () => {
    const store = await open(etcd);
    const observer = await open(etcd, store.product);
    try {
      const reg = await store.registerProxy(proxyInfo('px-out'), 2);
      const events: string[] = [];
      reg.on('lost', () => events.push('lost'));
      reg.on('registered', () => events.push('registered'));
      const firstLease = reg.leaseId;

      await etcd.kill('SIGKILL');
      await waitFor(() => events.includes('lost'), { timeoutMs: 15_000, what: 'lease loss' });
      await etcd.restart();
      await waitFor(() => events.includes('registered'), { timeoutMs: 20_000, what: 're-registration' });
      expect(events).toEqual(['lost', 'registered']);
      expect(reg.leaseId).not.toBe(firstLease);
      await waitFor(async () => (await observer.listProxies()).map((p) => p.id).join() === 'px-out', {
        timeoutMs: 10_000,
      });
      // The key must now live on the new lease. etcd revived the old one at restart (for one
      // TTL, 2 s); had the key stayed on it, it would be gone after this wait.
      await new Promise((r) => setTimeout(r, 2500));
      expect((await observer.listProxies()).map((p) => p.id)).toEqual(['px-out']);
      await reg.close();
      expect(await observer.listProxies()).toEqual([]);
    } finally {
      await Promise.all([store.close(), observer.close()]);
    }
  });
});
