import { describe, expect, it } from 'vitest';
import { ValidationError } from './errors.js';
import {
  NO_GROUP,
  SlotState,
  decodeJson,
  encodeGroup,
  encodeProxy,
  encodeSlot,
  groupMaster,
  isValidAddr,
  offlineSlot,
  onlineSlot,
  parseGroup,
  inSyncMembers,
  withServers,
  parseProxy,
  parseSlot,
  assignedSlotCount,
  encodeIdentity,
  encodeRestoreMarker,
  newIdentity,
  parseIdentity,
  parseRestoreMarker,
  type ProxyInfo,
} from './models.js';

const bad = (fn: () => unknown, pattern: RegExp) => {
  expect(fn).toThrow(ValidationError);
  expect(fn).toThrow(pattern);
};

describe('slots', () => {
  it('parses each state', () => {
    expect(parseSlot({ id: 3, state: 'offline', group: 0 })).toEqual(offlineSlot(3));
    expect(parseSlot({ id: 3, state: 'online', group: 2 })).toEqual(onlineSlot(3, 2));
    expect(parseSlot({ id: 3, state: 'migrating', group: 2, from: 1, to: 2 })).toEqual({
      id: 3,
      state: SlotState.Migrating,
      group: 2,
      from: 1,
      to: 2,
    });
    // null from/to (other writers) means absent
    expect(parseSlot({ id: 3, state: 'online', group: 2, from: null, to: null })).toEqual(onlineSlot(3, 2));
  });

  it('enforces the state invariants', () => {
    bad(() => parseSlot({ id: 1, state: 'offline', group: 2 }), /offline slot has group 0/);
    bad(() => parseSlot({ id: 1, state: 'online', group: NO_GROUP }), /online slot needs a group/);
    bad(() => parseSlot({ id: 1, state: 'online', group: 1, to: 2 }), /no from\/to/);
    bad(() => parseSlot({ id: 1, state: 'pre_migrate', group: 1, from: 1 }), /needs from and to/);
    bad(() => parseSlot({ id: 1, state: 'migrating', group: 1, from: 1, to: 1 }), /from ≠ to/);
    bad(() => parseSlot({ id: 1, state: 'migrating', group: 1, from: 1, to: 2 }), /owned by to/);
    bad(() => parseSlot({ id: 1, state: 'pre_migrate', group: 2, from: 1, to: 2 }), /still owned by from/);
    bad(() => parseSlot({ id: 1, state: 'moving', group: 1 }), /state must be one of/);
    bad(() => parseSlot({ id: 1024, state: 'offline', group: 0 }), /id must be 0..1023/);
    bad(() => parseSlot({ id: '1', state: 'offline', group: 0 }), /id must be an integer/);
    bad(() => parseSlot([1], undefined, 'k'), /^k: want a JSON object/);
    bad(() => parseSlot({ id: 1, state: 'offline', group: 0 }, 2), /does not match the key/);
  });

  it('encodes with a fixed field order and round-trips', () => {
    const s = { id: 9, state: SlotState.PreMigrate, group: 1, from: 1, to: 4 } as const;
    expect(encodeSlot(s)).toBe('{"id":9,"state":"pre_migrate","group":1,"from":1,"to":4}');
    expect(encodeSlot(onlineSlot(9, 2))).toBe('{"id":9,"state":"online","group":2}');
    expect(parseSlot(decodeJson(encodeSlot(s), 'k'))).toEqual(s);
    expect(() => encodeSlot({ id: 1, state: SlotState.Online, group: 0 })).toThrow(ValidationError);
  });

  it('reports JSON that does not parse, naming the key', () => {
    bad(() => decodeJson(Buffer.from('{nope'), '/reborn/p/slots/0001'), /^\/reborn\/p\/slots\/0001: value is not JSON/);
  });
});

describe('groups', () => {
  const g = {
    id: 2,
    servers: [
      { addr: '127.0.0.1:6380', role: 'replica' as const },
      { addr: '127.0.0.1:6379', role: 'master' as const },
    ],
  };

  it('parses, finds the master, round-trips', () => {
    expect(parseGroup(g)).toEqual(g);
    expect(groupMaster(g)?.addr).toBe('127.0.0.1:6379');
    expect(groupMaster({ id: 1, servers: [] })).toBeUndefined();
    expect(parseGroup(JSON.parse(encodeGroup(g)))).toEqual(g);
  });

  it('rejects bad groups', () => {
    bad(() => parseGroup({ id: 0, servers: [] }), /id must be 1..9999/);
    bad(() => parseGroup({ id: 1 }), /servers must be an array/);
    bad(() => parseGroup({ id: 1, servers: [{ addr: 'nohost', role: 'master' }] }), /servers\[0\]: addr must be host:port/);
    bad(() => parseGroup({ id: 1, servers: [{ addr: 'h:1', role: 'boss' }] }), /role must be master or replica/);
    bad(
      () => parseGroup({ id: 1, servers: [{ addr: 'h:1', role: 'master' }, { addr: 'h:1', role: 'replica' }] }),
      /duplicate server h:1/,
    );
    bad(
      () => parseGroup({ id: 1, servers: [{ addr: 'h:1', role: 'master' }, { addr: 'h:2', role: 'master' }] }),
      /at most one master/,
    );
  });

  it('keeps the in-sync set and the replica settings; absent means every replica', () => {
    const full = { ...g, inSync: ['127.0.0.1:6380'], minInSync: 1, wantReplicas: 2 };
    expect(parseGroup(JSON.parse(encodeGroup(full)))).toEqual(full);
    expect(inSyncMembers(g)).toEqual(['127.0.0.1:6380']);
    expect(inSyncMembers({ ...g, inSync: [] })).toEqual([]);
    // A promoted member leaves the set; the settings stay.
    const promoted = withServers(full, [
      { addr: '127.0.0.1:6380', role: 'master' },
      { addr: '127.0.0.1:6379', role: 'replica' },
    ]);
    expect(promoted.inSync).toEqual([]);
    expect(promoted.minInSync).toBe(1);
    expect(withServers(g, g.servers).inSync).toBeUndefined();
  });

  it('rejects an in-sync set that names a non-replica, or bad settings', () => {
    bad(() => parseGroup({ ...g, inSync: ['127.0.0.1:6379'] }), /inSync names "127.0.0.1:6379", which is not a replica/);
    bad(() => parseGroup({ ...g, inSync: ['127.0.0.1:6380', '127.0.0.1:6380'] }), /inSync names 127.0.0.1:6380 twice/);
    bad(() => parseGroup({ ...g, inSync: '127.0.0.1:6380' }), /inSync must be an array/);
    bad(() => parseGroup({ ...g, minInSync: -1 }), /minInSync must be 0..16/);
    bad(() => parseGroup({ ...g, wantReplicas: 1.5 }), /wantReplicas must be an integer/);
  });

  it('validates addresses', () => {
    for (const ok of ['127.0.0.1:6379', 'redis-1.local:1', '[::1]:6379']) expect(isValidAddr(ok)).toBe(true);
    for (const no of ['127.0.0.1', ':6379', 'h:0', 'h:65536', 'h:63a', 'a b:1']) expect(isValidAddr(no)).toBe(false);
  });
});

describe('proxies', () => {
  const p: ProxyInfo = {
    id: 'px-1',
    addr: '127.0.0.1:19000',
    adminAddr: '127.0.0.1:19001',
    pid: 123,
    host: 'box',
    startedAt: '2024-01-01T00:00:00.000Z',
    state: 'online',
  };

  it('parses and round-trips', () => {
    expect(parseProxy(JSON.parse(encodeProxy(p)), 'px-1')).toEqual(p);
  });

  it('carries an optional cluster address: absent (or null) stays absent, a bad one is refused', () => {
    const withFace: ProxyInfo = { ...p, clusterAddr: '10.0.0.5:7000' };
    expect(parseProxy(JSON.parse(encodeProxy(withFace)), 'px-1')).toStrictEqual(withFace);
    expect(encodeProxy(p)).not.toContain('clusterAddr');
    expect(parseProxy(JSON.parse(encodeProxy(p)))).not.toHaveProperty('clusterAddr');
    expect(parseProxy({ ...p, clusterAddr: null })).not.toHaveProperty('clusterAddr');
    bad(() => parseProxy({ ...p, clusterAddr: '10.0.0.5' }), /clusterAddr must be host:port, got "10.0.0.5"/);
    bad(() => parseProxy({ ...p, clusterAddr: 7000 }), /clusterAddr must be host:port, got 7000/);
  });

  it('rejects bad proxies', () => {
    bad(() => parseProxy({ ...p, id: 'a/b' }), /id must match/);
    bad(() => parseProxy({ ...p, pid: 0 }), /pid must be positive/);
    bad(() => parseProxy({ ...p, adminAddr: 'x' }), /adminAddr must be host:port/);
    bad(() => parseProxy({ ...p, state: 'weird' }), /state must be one of/);
    bad(() => parseProxy(p, 'px-2'), /does not match the key/);
  });
});

describe('product identity and restore marker', () => {
  it('makes a new random generation each time, and round-trips', () => {
    const a = newIdentity();
    const b = newIdentity({ adopted: true });
    expect(a.generation).not.toBe(b.generation);
    expect(a.adopted).toBeUndefined();
    expect(b.adopted).toBe(true);
    expect(Number.isNaN(Date.parse(a.createdAt))).toBe(false);
    expect(parseIdentity(JSON.parse(encodeIdentity(a)))).toEqual(a);
    expect(parseIdentity(JSON.parse(encodeIdentity(b)))).toEqual(b);
    // null from another writer means "not adopted"
    expect(parseIdentity({ generation: 'g-1', createdAt: 'now', adopted: null })).toEqual({ generation: 'g-1', createdAt: 'now' });
  });

  it('rejects bad identities and markers, naming the field', () => {
    bad(() => parseIdentity({ createdAt: 'now' }), /generation must be a non-empty string/);
    bad(() => parseIdentity({ generation: 'a/b', createdAt: 'now' }), /generation must match/);
    bad(() => parseIdentity({ generation: 'g', createdAt: '' }), /createdAt must be a non-empty string/);
    bad(() => parseIdentity({ generation: 'g', createdAt: 'now', adopted: 'yes' }), /adopted must be a boolean/);
    bad(() => parseIdentity([]), /want a JSON object/);
    const m = { generation: 'g-1', startedAt: '2024-01-01T00:00:00.000Z', by: 'host 12' };
    expect(parseRestoreMarker(JSON.parse(encodeRestoreMarker(m)))).toEqual(m);
    bad(() => parseRestoreMarker({ ...m, by: '' }), /by must be a non-empty string/);
  });

  it('counts the slots some group serves', () => {
    expect(assignedSlotCount([offlineSlot(0), onlineSlot(1, 2), { id: 2, state: 'migrating', group: 2, from: 1, to: 2 }])).toBe(2);
  });
});
