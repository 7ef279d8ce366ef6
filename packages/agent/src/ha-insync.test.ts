import { describe, expect, it } from 'vitest';
import { parseInfo, parseReplicationInfo } from '@reborn/coordinator/admin';
import { joinReason, lagAboveBound, nearlyJoins, nextInSyncSet, removalReason, type MasterView, type ReplicaView } from './ha-insync.js';
import { pickCandidate } from './ha-choice.js';
import { replicationDetails, sameHistory, type ReplicationDetails } from './ha-probe.js';

const H1 = 'a'.repeat(40);
const H2 = 'b'.repeat(40);
const NONE = '0'.repeat(40);

function masterView(offset: number, lines: string[]): MasterView {
  const text = `role:master\r\nconnected_slaves:${lines.length}\r\n${lines.map((l, i) => `slave${i}:${l}\r\n`).join('')}master_replid:${H1}\r\nmaster_replid2:${NONE}\r\nmaster_repl_offset:${offset}\r\n`;
  return { addr: '127.0.0.1:7000', offset, details: replicationDetails(parseInfo(text)) };
}

function replica(port: number, offset: number, o: { link?: string; master?: number; replid?: string; down?: boolean } = {}): ReplicaView {
  const text =
    `role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:${o.master ?? 7000}\r\nmaster_link_status:${o.link ?? 'up'}\r\n` +
    `slave_repl_offset:${offset}\r\nmaster_replid:${o.replid ?? H1}\r\nmaster_replid2:${NONE}\r\nmaster_repl_offset:${offset}\r\n`;
  return { addr: `127.0.0.1:${port}`, down: o.down ?? false, info: parseReplicationInfo(text), details: replicationDetails(parseInfo(text)) };
}

const group = (inSync?: string[]) => ({
  id: 1,
  servers: [
    { addr: '127.0.0.1:7000', role: 'master' as const },
    { addr: '127.0.0.1:7001', role: 'replica' as const },
    { addr: '127.0.0.1:7002', role: 'replica' as const },
  ],
  ...(inSync === undefined ? {} : { inSync }),
});

describe('INFO replication details', () => {
  it('reads replica lines (IPv6 in brackets), replication ids, and skips what it cannot read', () => {
    const d = replicationDetails(
      parseInfo(
        'role:master\r\nslave0:ip=127.0.0.1,port=7001,state=online,offset=120,lag=0\r\nslave1:ip=::1,port=7002,state=wait_bgsave,offset=0,lag=3\r\n' +
          `slave2:garbage\r\nmaster_replid:${H1}\r\nmaster_replid2:${NONE}\r\n`,
      ),
    );
    expect(d).toEqual({
      replid: H1,
      replid2: null,
      attached: [
        { addr: '127.0.0.1:7001', state: 'online', offset: 120, lagSeconds: 0 },
        { addr: '[::1]:7002', state: 'wait_bgsave', offset: 0, lagSeconds: 3 },
      ],
    });
  });

  it('offsets compare only on one history (a promoted server keeps its old one as replid2)', () => {
    const d = (replid: string, replid2: string | null): ReplicationDetails => ({ replid, replid2, attached: [] });
    expect(sameHistory(d(H1, null), d(H1, null))).toBe(true);
    expect(sameHistory(d(H2, H1), d(H1, null))).toBe(true);
    expect(sameHistory(d(H1, null), d(H2, null))).toBe(false);
  });
});

describe('in-sync rules', () => {
  it('lag is whole seconds: a member leaves once the real lag may exceed the bound', () => {
    expect(lagAboveBound(0, 2000)).toBe(false);
    expect(lagAboveBound(1, 2000)).toBe(false); // real lag < 2 s
    expect(lagAboveBound(2, 2000)).toBe(true); // real lag may be up to 3 s
    expect(lagAboveBound(2, 2500)).toBe(true);
    expect(lagAboveBound(2, 3000)).toBe(false);
  });

  it('removes a member that is down, detached, not online, or lagging — with the reason', () => {
    const m = masterView(500, ['ip=127.0.0.1,port=7001,state=online,offset=500,lag=0', 'ip=127.0.0.1,port=7002,state=online,offset=400,lag=2']);
    expect(removalReason(replica(7001, 500), m, 2000)).toBeNull();
    expect(removalReason(replica(7001, 500, { down: true }), m, 2000)).toBe('down');
    expect(removalReason(replica(7002, 400), m, 2000)).toMatch(/^lag 2 s/);
    expect(removalReason(replica(7003, 500), m, 2000)).toMatch(/not attached to the master/);
    const syncing = masterView(500, ['ip=127.0.0.1,port=7001,state=send_bulk,offset=0,lag=0']);
    expect(removalReason(replica(7001, 0), syncing, 2000)).toMatch(/not online on the master \(state=send_bulk\)/);
  });

  it('adds a replica only once it replicates from the master, on its history, caught up with its offset', () => {
    const m = masterView(500, ['ip=127.0.0.1,port=7001,state=online,offset=500,lag=1']);
    expect(joinReason(replica(7001, 500), m)).toMatch(/caught up/);
    expect(joinReason(replica(7001, 499), m)).toBeNull(); // moving, not there yet
    expect(joinReason(replica(7001, 500, { link: 'down' }), m)).toBeNull();
    expect(joinReason(replica(7001, 500, { master: 7009 }), m)).toBeNull();
    expect(joinReason(replica(7001, 500, { replid: H2 }), m)).toBeNull();
    expect(joinReason({ ...replica(7001, 500), info: null, details: null }, m)).toBeNull(); // did not answer
    const lagging = masterView(500, ['ip=127.0.0.1,port=7001,state=online,offset=500,lag=2']);
    expect(joinReason(replica(7001, 500), lagging)).toBeNull();
  });

  it('a replica a few bytes behind (read in parallel with its master) is a candidate for the ordered read; a stale or detached one is not', () => {
    const m = masterView(500, ['ip=127.0.0.1,port=7001,state=online,offset=490,lag=0']);
    expect(nearlyJoins(replica(7001, 499), m)).toBe(true);
    expect(nearlyJoins(replica(7001, 499, { link: 'down' }), m)).toBe(false);
    expect(nearlyJoins(replica(7001, 499, { replid: H2 }), m)).toBe(false);
    expect(nearlyJoins(replica(7001, 499), masterView(500, ['ip=127.0.0.1,port=7001,state=online,offset=490,lag=2']))).toBe(false);
    expect(nearlyJoins(replica(7003, 499), m)).toBe(false); // not attached
  });

  it('a group never managed starts from every replica; the result keeps the group order', () => {
    const m = masterView(500, ['ip=127.0.0.1,port=7002,state=online,offset=500,lag=0', 'ip=127.0.0.1,port=7001,state=online,offset=500,lag=9']);
    const r = nextInSyncSet(group(), [replica(7001, 500), replica(7002, 500)], m, 2000);
    expect(r.set).toEqual(['127.0.0.1:7002']);
    expect(r.changes).toEqual([{ addr: '127.0.0.1:7001', change: 'removed', reason: expect.stringMatching(/^lag 9 s/) }]);
    // An explicit empty set: both may join once caught up.
    const fresh = masterView(500, ['ip=127.0.0.1,port=7002,state=online,offset=500,lag=0', 'ip=127.0.0.1,port=7001,state=online,offset=500,lag=0']);
    expect(nextInSyncSet(group([]), [replica(7001, 500), replica(7002, 500)], fresh, 2000).set).toEqual(['127.0.0.1:7001', '127.0.0.1:7002']);
    // A replica without a view (no probe yet) is neither removed for it nor added.
    expect(nextInSyncSet(group(['127.0.0.1:7001']), [], fresh, 2000)).toEqual({ set: ['127.0.0.1:7001'], changes: [] });
  });
});

describe('failover candidate with an in-sync set', () => {
  const cand = (port: number, offset: number, replid = H1) => {
    const v = replica(port, offset, { link: 'down', replid });
    return { addr: v.addr, info: v.info, details: v.details };
  };

  it('takes the best member, not a non-member behind it', () => {
    const pick = pickCandidate([cand(7001, 900), cand(7002, 700), cand(7003, 800)], ['127.0.0.1:7002', '127.0.0.1:7003'], H1);
    expect(pick).toMatchObject({ kind: 'promote', candidate: { addr: '127.0.0.1:7001' } }); // ahead of every member
    const behind = pickCandidate([cand(7001, 750), cand(7002, 700), cand(7003, 800)], ['127.0.0.1:7002', '127.0.0.1:7003'], H1);
    expect(behind).toMatchObject({ kind: 'promote', candidate: { addr: '127.0.0.1:7003' }, why: 'the in-sync member with the highest offset' });
  });

  it('a non-member ahead on another history does not count', () => {
    const pick = pickCandidate([cand(7001, 9999, H2), cand(7002, 700)], ['127.0.0.1:7002'], null);
    expect(pick).toMatchObject({ kind: 'promote', candidate: { addr: '127.0.0.1:7002' } });
  });

  it('is blocked when no member answers on the group history: a stale replica is never promoted', () => {
    const members = ['127.0.0.1:7002'];
    expect(pickCandidate([cand(7001, 500), { addr: '127.0.0.1:7002', info: null, error: 'refused' }], members, H1)).toEqual({ kind: 'blocked', members });
    // The member answers, but restarted empty: on a history of its own.
    expect(pickCandidate([cand(7001, 500), cand(7002, 0, H2)], members, H1)).toEqual({ kind: 'blocked', members });
    expect(pickCandidate([{ addr: '127.0.0.1:7002', info: null }], members, H1)).toEqual({ kind: 'blocked', members });
  });

  it('degraded (empty set): the highest offset, preferring the group history', () => {
    expect(pickCandidate([cand(7001, 9999, H2), cand(7002, 700)], [], H1)).toMatchObject({ kind: 'promote', candidate: { addr: '127.0.0.1:7002' } });
    expect(pickCandidate([cand(7001, 9999, H2)], [], H1)).toMatchObject({ kind: 'promote', candidate: { addr: '127.0.0.1:7001' } });
  });
});
