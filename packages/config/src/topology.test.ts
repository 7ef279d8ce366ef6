/**
 * saveTopology / restoreTopology against a real etcd (testkit): what is saved, what a restore
 * refuses without --force, what it writes, and in which order readers see it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConflictError,
  SLOT_COUNT,
  Store,
  ValidationError,
  encodeRestoreMarker,
  onlineSlot,
  type GroupInfo,
  type SlotInfo,
} from '@reborn/coordinator';
import { startEtcd, waitFor, type EtcdServer } from '@reborn/testkit';
import { parseSavedTopology, restoreTopology, saveTopology, type SavedTopology } from './topology.js';

const group = (id: number): GroupInfo => ({
  id,
  servers: [
    { addr: `127.0.0.1:${7000 + id}`, role: 'master' },
    { addr: `127.0.0.1:${7100 + id}`, role: 'replica' },
  ],
});

let etcd: EtcdServer;
const stores: Store[] = [];

async function product(): Promise<Store> {
  const store = await Store.open({ endpoints: [etcd.clientUrl], product: `t${randomBytes(4).toString('hex')}` });
  stores.push(store);
  return store;
}

/** A product with two groups, slots 0..511 in group 1 and 512..1023 in group 2. */
async function populated(): Promise<Store> {
  const store = await product();
  await store.putGroup(group(1));
  await store.putGroup(group(2));
  const slots = Array.from({ length: SLOT_COUNT }, (_, id) => onlineSlot(id, id < 512 ? 1 : 2));
  await store.putSlots(slots);
  return store;
}

/** Everything of the product gone, as after etcd lost its data. */
async function wipe(store: Store): Promise<void> {
  await store.etcd.delete().prefix(store.paths.root).exec();
}

/** The saved document as it travels: through JSON. */
const viaJson = (s: SavedTopology): unknown => JSON.parse(JSON.stringify(s));

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await etcd?.stop();
});

describe('saveTopology', () => {
  it('saves identity, groups and all slots as ranges', async () => {
    const store = await populated();
    const saved = await saveTopology(store);
    expect(saved.format).toBe('reborn-topology/1');
    expect(saved.product).toBe(store.product);
    expect(saved.identity).toEqual(await store.getIdentity());
    expect(saved.groups).toEqual([group(1), group(2)]);
    expect(saved.slots).toEqual([
      { first: 0, last: 511, state: 'online', group: 1 },
      { first: 512, last: 1023, state: 'online', group: 2 },
    ]);
    expect(saved.settings).toEqual({});
    expect(parseSavedTopology(viaJson(saved)).slotList).toHaveLength(SLOT_COUNT);
  });

  it('gives a product from before identities one; refuses a product that holds nothing', async () => {
    const legacy = await product();
    await legacy.etcd.put(legacy.paths.group(1)).value(JSON.stringify(group(1))).exec();
    const saved = await saveTopology(legacy);
    expect(saved.identity.adopted).toBe(true);
    expect(await legacy.getIdentity()).toEqual(saved.identity);

    const empty = await product();
    await expect(saveTopology(empty)).rejects.toThrow(/holds no topology to save/);
    expect(await empty.getIdentity()).toBeNull(); // and did not create one
  });
});

describe('restoreTopology', () => {
  it('writes a lost product back: groups, slots, then the identity', async () => {
    const store = await populated();
    const saved = await saveTopology(store);
    const before = await store.loadTopology();
    await wipe(store);

    const watched = await store.loadTopology();
    const events: Array<{ what: string; rev: bigint }> = [];
    const w = store.watchTopology(watched.revision, {
      onSlot: (s: SlotInfo, rev: string) => events.push({ what: `slot`, rev: BigInt(rev) }),
      onGroup: (id: number, _g: GroupInfo | null, rev: string) => events.push({ what: `group ${id}`, rev: BigInt(rev) }),
      onIdentity: (i, rev) => events.push({ what: i ? 'identity' : 'identity deleted', rev: BigInt(rev) }),
      onRestoring: (m, rev) => events.push({ what: m ? 'marker' : 'marker deleted', rev: BigInt(rev) }),
    });
    const report = await restoreTopology(store, viaJson(saved));
    expect(report).toMatchObject({
      product: store.product,
      generation: saved.identity.generation,
      replacedGeneration: null,
      unchanged: false,
      forced: false,
      groupsWritten: [1, 2],
      groupsDeleted: [],
      slotsWritten: SLOT_COUNT,
      assignedSlots: SLOT_COUNT,
      warnings: [],
    });
    const after = await store.loadTopology();
    expect(after.identity).toEqual(saved.identity);
    expect(after.groups).toEqual(before.groups);
    expect(after.slots).toEqual(before.slots);
    expect(after.restoring).toBeNull();

    await waitFor(() => events.some((e) => e.what === 'marker deleted'), { what: 'the end of the restore in the watch' });
    await w.close();
    const at = (what: string) => events.find((e) => e.what === what)!.rev;
    const lastData = events.filter((e) => e.what === 'slot' || e.what.startsWith('group')).reduce((m, e) => (e.rev > m ? e.rev : m), 0n);
    const firstData = events.filter((e) => e.what === 'slot' || e.what.startsWith('group')).reduce((m, e) => (e.rev < m ? e.rev : m), lastData);
    expect(at('marker')).toBeLessThan(firstData);
    expect(at('identity')).toBeGreaterThan(lastData);
    expect(at('marker deleted')).toBe(at('identity')); // one transaction
  });

  it('writes nothing when etcd already holds the saved topology', async () => {
    const store = await populated();
    const saved = await saveTopology(store);
    const rev = (await store.loadTopology()).revision;
    const report = await restoreTopology(store, viaJson(saved));
    expect(report.unchanged).toBe(true);
    expect(report.slotsWritten).toBe(0);
    expect((await store.loadTopology()).revision).toBe(rev);
  });

  it('never saves or restores the in-sync set: a live group keeps its own, a lost one counts every replica', async () => {
    const store = await populated();
    await store.putGroup({ ...group(1), inSync: ['127.0.0.1:7101'], minInSync: 1 });
    const saved = await saveTopology(store);
    expect(saved.groups.find((g) => g.id === 1)).toEqual({ ...group(1), minInSync: 1 });
    // The HA leader has since emptied the set: a restore must not bring the old one back.
    await store.putGroup({ ...group(1), inSync: [], minInSync: 1 });
    expect((await restoreTopology(store, viaJson(saved))).unchanged).toBe(true);
    expect((await store.getGroup(1))?.inSync).toEqual([]);
    await wipe(store);
    await restoreTopology(store, viaJson(saved));
    expect(await store.getGroup(1)).toEqual({ ...group(1), minInSync: 1 });
  });

  it('refuses another identity or a different topology unless forced, writing nothing', async () => {
    const a = await populated();
    const savedA = await saveTopology(a);
    const b = await populated();
    const revB = (await b.loadTopology()).revision;
    const identityB = await b.getIdentity();
    const refused = restoreTopology(b, viaJson(savedA));
    await expect(refused).rejects.toBeInstanceOf(ConflictError);
    await expect(restoreTopology(b, viaJson(savedA))).rejects.toThrow(/saved from product .* holds identity .*Use --force/s);
    expect((await b.loadTopology()).revision).toBe(revB);

    // The same product, changed since the save: a rollback needs --force too.
    await b.putSlots([onlineSlot(0, 2)]);
    const savedB = await saveTopology(b);
    await b.putSlots([onlineSlot(0, 1), onlineSlot(1, 2)]);
    await expect(restoreTopology(b, viaJson(savedB))).rejects.toThrow(/already holds a topology that differs from the saved one \(2 slot\(s\)/);
    const rolledBack = await restoreTopology(b, viaJson(savedB), { force: true });
    expect(rolledBack).toMatchObject({ forced: true, slotsWritten: 2, replacedGeneration: null, generation: identityB!.generation });
    expect((await b.getSlot(0)).group).toBe(2);
    expect((await b.getSlot(1)).group).toBe(1);

    const forced = await restoreTopology(b, viaJson(savedA), { force: true });
    expect(forced).toMatchObject({ forced: true, generation: savedA.identity.generation, replacedGeneration: identityB!.generation });
    expect(await b.getIdentity()).toEqual(savedA.identity);
  });

  it('refuses while another restore is in progress; --force takes over a restore that died', async () => {
    const store = await populated();
    const saved = await saveTopology(store);
    await wipe(store);
    const marker = { generation: saved.identity.generation, startedAt: new Date().toISOString(), by: 'a crashed restore' };
    await store.etcd.put(store.paths.restoring).value(encodeRestoreMarker(marker)).exec();
    await expect(restoreTopology(store, viaJson(saved))).rejects.toThrow(/a restore of generation .* is in progress .*a crashed restore/);
    const report = await restoreTopology(store, viaJson(saved), { force: true });
    expect(report.forced).toBe(true);
    const t = await store.loadTopology();
    expect(t.restoring).toBeNull();
    expect(t.identity).toEqual(saved.identity);
  });

  it('deletes groups the saved topology does not have', async () => {
    const store = await populated();
    const saved = await saveTopology(store);
    await store.putGroup(group(3));
    const report = await restoreTopology(store, viaJson(saved), { force: true });
    expect(report.groupsDeleted).toEqual([3]);
    expect(await store.getGroup(3)).toBeNull();
  });
});

describe('parseSavedTopology', () => {
  const good = (): Record<string, unknown> => ({
    format: 'reborn-topology/1',
    product: 'shop',
    savedAt: '2024-01-01T00:00:00.000Z',
    revision: '9',
    identity: { generation: 'g-1', createdAt: '2024-01-01T00:00:00.000Z' },
    groups: [group(1)],
    slots: [
      { first: 0, last: 99, state: 'online', group: 1 },
      { first: 100, last: 1023, state: 'offline', group: 0 },
    ],
    settings: {},
  });
  const bad = (doc: unknown, pattern: RegExp) => {
    expect(() => parseSavedTopology(doc)).toThrow(ValidationError);
    expect(() => parseSavedTopology(doc)).toThrow(pattern);
  };

  it('takes a good document and names what is wrong in a bad one', () => {
    expect(parseSavedTopology(good()).slotList[99]).toEqual(onlineSlot(99, 1));
    bad([], /want a JSON object/);
    bad({ ...good(), format: 'x' }, /format must be "reborn-topology\/1"/);
    bad({ ...good(), product: 'a/b' }, /product must be a product name/);
    bad({ ...good(), identity: { createdAt: 'x' } }, /identity: generation must be a non-empty string/);
    bad({ ...good(), groups: [group(1), group(1)] }, /group 1 appears twice/);
    bad({ ...good(), groups: [group(1), { id: 2, servers: [group(1).servers[0]] }] }, /server 127.0.0.1:7001 is in group 1 and in group 2/);
    bad({ ...good(), slots: [{ first: 0, last: 1023, state: 'online', group: 2 }] }, /slot 0 refers to group 2/);
    bad({ ...good(), slots: [{ first: 0, last: 1022, state: 'offline', group: 0 }] }, /slot 1023 is missing/);
    bad({ ...good(), slots: [{ first: 0, last: 1023, state: 'offline', group: 0 }, { first: 5, last: 5, state: 'offline', group: 0 }] }, /slot 5 appears twice/);
    bad({ ...good(), slots: [{ first: 5, last: 2, state: 'offline', group: 0 }] }, /first ≤ last/);
    bad({ ...good(), slots: [{ first: 0, last: 1023, state: 'weird', group: 0 }] }, /state must be one of/);
    bad({ ...good(), settings: { x: 1 } }, /unknown setting\(s\) x/);
  });
});
