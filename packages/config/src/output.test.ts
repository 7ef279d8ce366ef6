import { describe, expect, it } from 'vitest';
import { newProgress, type MigrationTask } from '@reborn/coordinator';
import {
  formatDuration,
  formatGroupSettings,
  formatGroups,
  formatMigrations,
  formatPlan,
  formatProgress,
  formatProxies,
  formatSlotInfo,
  formatSlotRange,
  formatSlotRanges,
  json,
  table,
} from './output.js';
import { compactSlots, groupView, type ProxyView } from './servers.js';

function task(over: Partial<MigrationTask> = {}): MigrationTask {
  return {
    id: 'm-1',
    slots: [0, 1, 2, 3, 10],
    from: [1],
    to: 2,
    state: 'running',
    throttle: 0,
    batchSlots: 128,
    maxSourceLatencyMs: 10,
    progress: { ...newProgress(5), slotsDone: 2, keysMoved: 1234, rate: 450.4, etaSeconds: 75, phase: 'moving 2-3' },
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:01.000Z',
    error: null,
    ...over,
  };
}

describe('slot ranges', () => {
  it('print as compact lines with migrations shown from→to', () => {
    const slots = [
      { id: 0, state: 'online' as const, group: 1 },
      { id: 1, state: 'online' as const, group: 1 },
      { id: 2, state: 'migrating' as const, group: 2, from: 1, to: 2 },
      { id: 3, state: 'pre_migrate' as const, group: 1, from: 1, to: 2 },
      { id: 4, state: 'offline' as const, group: 0 },
      { id: 5, state: 'offline' as const, group: 0 },
    ];
    expect(formatSlotRanges(compactSlots(slots))).toBe(
      '0-1 online group 1\n2 migrating group 1→2\n3 pre_migrate group 1→2\n4-5 offline\n',
    );
    expect(formatSlotRange({ first: 0, last: 511, state: 'online', group: 1 })).toBe('0-511 online group 1');
  });

  it('slot info', () => {
    expect(formatSlotInfo({ id: 5, state: 'online', group: 1, master: '127.0.0.1:6379', migration: null })).toBe(
      'slot 5: online in group 1, master 127.0.0.1:6379\n',
    );
    expect(formatSlotInfo({ id: 5, state: 'migrating', group: 2, from: 1, to: 2, master: 'h:2', migration: 'm-1' })).toBe(
      'slot 5: migrating from group 1 to group 2, master h:2 (migration m-1)\n',
    );
    expect(formatSlotInfo({ id: 9, state: 'offline', group: 0, master: null, migration: null })).toBe('slot 9: offline\n');
  });
});

describe('tables', () => {
  it('align columns and do not pad the last one', () => {
    expect(table(['A', 'LONGER'], [['xxxx', 'y'], ['z', '']])).toBe('A     LONGER\nxxxx  y\nz\n');
  });

  it('groups, with the in-sync set, the settings and the durability marker', () => {
    expect(formatGroups([])).toBe('no groups\n');
    const [a, b, c] = [{ addr: 'a:1', role: 'master' as const }, { addr: 'b:2', role: 'replica' as const }, { addr: 'c:3', role: 'replica' as const }];
    expect(
      formatGroups([
        groupView({ id: 1, servers: [a, b, c] }, 512),
        groupView({ id: 2, servers: [] }, 0),
        groupView({ id: 3, servers: [a, b, c], inSync: ['c:3'], minInSync: 1, wantReplicas: 2 }, 0),
        groupView({ id: 4, servers: [a, b], inSync: [] }, 0),
        groupView({ id: 5, servers: [a, b], inSync: [], minInSync: 1 }, 0),
      ]),
    ).toBe(
      [
        'GROUP  SLOTS  MASTER  REPLICAS              IN-SYNC  MIN-IN-SYNC  WANT-REPLICAS  DURABLE-WRITES',
        '1      512    a:1     b:2,c:3               2/2      -            -',
        '2      0      -       -                     -        -            -',
        '3      0      a:1     b:2(not in sync),c:3  1/2      1            2',
        '4      0      a:1     b:2(not in sync)      0/1      -            -              DEGRADED',
        '5      0      a:1     b:2(not in sync)      0/1      1            -              REFUSING',
        '',
      ].join('\n'),
    );
  });

  it('group set', () => {
    const [a, b] = [{ addr: 'a:1', role: 'master' as const }, { addr: 'b:2', role: 'replica' as const }];
    expect(formatGroupSettings(groupView({ id: 1, servers: [a, b], minInSync: 1, wantReplicas: 2 }, 0))).toBe(
      'group 1: min-in-sync 1, want-replicas 2, in-sync 1/1\n',
    );
    expect(formatGroupSettings(groupView({ id: 1, servers: [a, b], inSync: [] }, 0))).toBe(
      'group 1: min-in-sync none, want-replicas none, in-sync 0/1 (DEGRADED: the master alone acknowledges durable writes)\n',
    );
    expect(formatGroupSettings(groupView({ id: 1, servers: [a, b], inSync: [], minInSync: 1 }, 0))).toBe(
      'group 1: min-in-sync 1, want-replicas none, in-sync 0/1 (REFUSING durable writes: 0 in sync, min-in-sync 1)\n',
    );
  });

  it('migrations', () => {
    expect(formatMigrations([])).toBe('no migrations\n');
    expect(formatMigrations([task()])).toBe(
      'ID   STATE    SLOTS   FROM  TO  PROGRESS                    PACE  WAITING  ERROR\n' + 'm-1  running  0-3,10  1     2   2/5 slots, 1234 keys moved\n',
    );
    const waiting = task();
    waiting.progress.waiting = 'waiting for group 2 to have a reachable master (h:7001: connect ECONNREFUSED; since 12 s)';
    expect(formatMigrations([waiting])).toBe(
      'ID   STATE    SLOTS   FROM  TO  PROGRESS                    PACE  WAITING                                                                                    ERROR\n' +
        'm-1  running  0-3,10  1     2   2/5 slots, 1234 keys moved        waiting for group 2 to have a reachable master (h:7001: connect ECONNREFUSED; since 12 s)\n',
    );
    const moving = task();
    Object.assign(moving.progress, { bytesMoved: 5 * 1024 * 1024, batchKeys: 800, sourceLatencyMs: 3.5, bigKey: { key: 'h', type: 'hash', done: 10, total: 40 } });
    expect(formatMigrations([moving]).split('\n')[1]).toBe(
      'm-1  running  0-3,10  1     2   2/5 slots, 1234 keys moved (5.0 MB)  800 keys/chunk, source 3.5 ms (target 10), big hash h: 10/40',
    );
  });

  it('proxies, fenced ones and stalled barriers', () => {
    const p: ProxyView[] = [
      { id: 'p1', state: 'online', addr: 'h:1', adminAddr: 'h:2', clusterAddr: null, pid: 10, host: 'h', startedAt: 'T', registered: true, member: true, fence: null },
      {
        id: 'p2',
        state: 'fenced',
        addr: null,
        adminAddr: null,
        clusterAddr: null,
        pid: null,
        host: null,
        startedAt: null,
        registered: false,
        member: false,
        fence: { proxyId: 'p2', at: 'T2', reason: 'operator: proxy offline', action: null, servers: ['a:1'] },
      },
    ];
    const text = formatProxies(p, [{ seq: 7, slots: [1, 2, 3], createdAt: 'T', note: '', waitingFor: ['p3'] }]);
    expect(text.split('\n')).toEqual([
      'ID  STATE   ADDR  ADMIN  PID  HOST  STARTED  FENCE',
      'p1  online  h:1   h:2    10   h     T',
      'p2  fenced  -     -      -    -     -        operator: proxy offline at T2',
      'barrier 7 (slots 1-3) is waiting for acks from: p3',
      '',
    ]);
    expect(formatProxies([])).toBe('no proxies\n');
  });

  it('a CLUSTER column when some proxy has a Redis Cluster face', () => {
    const base: ProxyView = { id: 'p1', state: 'online', addr: 'h:1', adminAddr: 'h:2', clusterAddr: 'h:7000', pid: 10, host: 'h', startedAt: 'T', registered: true, member: true, fence: null };
    expect(formatProxies([base, { ...base, id: 'p2', clusterAddr: null }]).split('\n')).toEqual([
      'ID  STATE   ADDR  ADMIN  CLUSTER  PID  HOST  STARTED  FENCE',
      'p1  online  h:1   h:2    h:7000   10   h     T',
      'p2  online  h:1   h:2    -        10   h     T',
      '',
    ]);
  });
});

describe('progress', () => {
  it('one line with slots, keys, rate, ETA and phase', () => {
    expect(formatProgress(task())).toBe('migration m-1 running: 2/5 slots, 1234 keys moved, 450 keys/s, ETA 1m15s (moving 2-3)');
    expect(formatProgress(task({ state: 'paused', progress: { ...newProgress(5), phase: '' } }))).toBe(
      'migration m-1 paused: 0/5 slots, 0 keys moved, 0 keys/s',
    );
  });

  it('durations', () => {
    expect(formatDuration(null)).toBe('?');
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(59.6)).toBe('1m00s');
    expect(formatDuration(3725)).toBe('1h02m');
  });
});

describe('rebalance plan', () => {
  it('dry run says nothing moved; balanced says so', () => {
    const plan = { moves: [{ first: 0, last: 9, from: 1, to: 2, kind: 'migrate' as const }], summary: ['migrate 0-9 (10) from group 1 to group 2'] };
    expect(formatPlan(plan, false)).toBe(
      'migrate 0-9 (10) from group 1 to group 2\ndry run: nothing was moved; run "slot rebalance --confirm" to carry out this plan\n',
    );
    expect(formatPlan(plan, true)).toBe('migrate 0-9 (10) from group 1 to group 2\n');
    expect(formatPlan({ moves: [], summary: [] }, false)).toBe('slots are balanced: nothing to move\n');
  });
});

it('json is indented with one trailing newline and parses back', () => {
  const v = [{ a: 1 }];
  expect(JSON.parse(json(v))).toEqual(v);
  expect(json(v).endsWith('}\n]\n')).toBe(true);
});
