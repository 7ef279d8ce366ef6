import { describe, expect, it } from 'vitest';
import { isDown, pickCandidate, promotedGroup, unaccountedReplicas } from './ha.js';
import { replicasHistory } from './ha-choice.js';
import { parseReplicationInfo, replicatesFrom, replicationOffset } from '@reborn/coordinator/admin';

const replicaInfo = (offset: number, link = 'down') =>
  parseReplicationInfo(
    `# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:7001\r\nmaster_link_status:${link}\r\n` +
      `master_last_io_seconds_ago:-1\r\nslave_repl_offset:${offset}\r\nmaster_repl_offset:${offset}\r\nconnected_slaves:0\r\n`,
  );

describe('failure confirmation', () => {
  it('needs the whole window and two failures in a row', () => {
    expect(isDown({ failures: 1, lastOkAt: 0 }, 10_000, 3000)).toBe(false); // one lost ping never counts
    expect(isDown({ failures: 5, lastOkAt: 8000 }, 10_000, 3000)).toBe(false); // window not over
    expect(isDown({ failures: 2, lastOkAt: 7000 }, 10_000, 3000)).toBe(true);
  });
});

describe('candidate choice', () => {
  it('with an empty in-sync set: the highest offset among replicas that answered; ties go to the first', () => {
    const pick = pickCandidate([
      { addr: 'a:1', info: replicaInfo(100) },
      { addr: 'b:1', info: null, error: 'timeout' },
      { addr: 'c:1', info: replicaInfo(250) },
      { addr: 'd:1', info: replicaInfo(250) },
    ]);
    expect(pick.kind === 'promote' && pick.candidate.addr).toBe('c:1');
    expect(pickCandidate([{ addr: 'b:1', info: null }])).toEqual({ kind: 'none' });
    expect(pickCandidate([])).toEqual({ kind: 'none' });
  });

  it('a replica that does not answer and is not known down holds the choice back', () => {
    const cands = [
      { addr: 'a:1', info: replicaInfo(100) },
      { addr: 'b:1', info: null, error: 'timeout' },
      { addr: 'c:1', info: null, error: 'refused' },
    ];
    const probes: Record<string, { failures: number; lastOkAt: number; lastConnect: 'accepted' | 'refused' | 'unanswered' | null }> = {
      'b:1': { failures: 1, lastOkAt: 9_500, lastConnect: 'unanswered' }, // one slow answer: maybe the one with the newest writes
      'c:1': { failures: 4, lastOkAt: 2_000, lastConnect: 'unanswered' }, // down for longer than the window
    };
    expect(unaccountedReplicas(cands, (addr) => probes[addr], 10_000, 3000)).toEqual(['b:1']);
    // Its port refuses: the process is gone, nothing to wait for.
    probes['b:1'] = { failures: 1, lastOkAt: 9_500, lastConnect: 'refused' };
    expect(unaccountedReplicas(cands, (addr) => probes[addr], 10_000, 3000)).toEqual([]);
    probes['b:1'] = { failures: 3, lastOkAt: 6_000, lastConnect: 'accepted' };
    expect(unaccountedReplicas(cands, (addr) => probes[addr], 10_000, 3000)).toEqual([]);
    // A replica never probed yet is not known down either.
    expect(unaccountedReplicas([{ addr: 'z:1', info: null }], () => undefined, 10_000, 3000)).toEqual(['z:1']);
  });

  it('reads INFO replication', () => {
    const i = replicaInfo(4242, 'up');
    expect(i).toMatchObject({ role: 'slave', masterHost: '127.0.0.1', masterPort: 7001, linkUp: true, slaveReplOffset: 4242 });
    expect(replicationOffset(i)).toBe(4242);
    expect(replicatesFrom(i, '127.0.0.1:7001')).toBe(true);
    expect(replicatesFrom(i, '127.0.0.1:7002')).toBe(false);
    const m = parseReplicationInfo('role:master\nconnected_slaves:1\nmaster_repl_offset:99\n');
    expect(replicationOffset(m)).toBe(99);
    expect(replicatesFrom(m, '127.0.0.1:7001')).toBe(false);
  });
});

describe('the group after a failover', () => {
  it('puts the new master first, the old master as a replica, the rest after; the in-sync set starts empty', () => {
    const g = {
      id: 3,
      servers: [{ addr: 'm:1', role: 'master' as const }, { addr: 'r:1', role: 'replica' as const }, { addr: 'r:2', role: 'replica' as const }],
      inSync: ['r:1', 'r:2'],
      minInSync: 1,
    };
    expect(promotedGroup(g, 'r:2')).toEqual({
      id: 3,
      servers: [{ addr: 'r:2', role: 'master' }, { addr: 'm:1', role: 'replica' }, { addr: 'r:1', role: 'replica' }],
      inSync: [],
      minInSync: 1,
    });
  });
});

describe('the history of a group whose master restarted', () => {
  const OLD = 'a'.repeat(40);
  const NEW = 'b'.repeat(40);
  const on = (replid: string) => ({ replid, replid2: null, attached: [] });

  it("is the one its in-sync replicas kept, never the restarted master's new one", () => {
    const cands = [
      { addr: 'r:1', info: replicaInfo(500), details: on(OLD) },
      { addr: 'r:2', info: replicaInfo(900), details: on(OLD) },
      { addr: 'x:1', info: replicaInfo(10), details: on(NEW) }, // not a member: does not count
    ];
    const h = replicasHistory(cands, ['r:1', 'r:2']);
    expect(h).toEqual({ kind: 'shared', replid: OLD });
    // With it, the member with the highest offset is promoted…
    const pick = pickCandidate(cands, ['r:1', 'r:2'], h.kind === 'shared' ? h.replid : null);
    expect(pick.kind === 'promote' && pick.candidate.addr).toBe('r:2');
    // …while the restarted master's new replid, which no member is on, would block the failover.
    expect(pickCandidate(cands, ['r:1', 'r:2'], NEW)).toEqual({ kind: 'blocked', members: ['r:1', 'r:2'] });
  });

  it('is split when members answer on different histories, unknown when none answers', () => {
    const cands = [
      { addr: 'r:1', info: replicaInfo(500), details: on(OLD) },
      { addr: 'r:2', info: replicaInfo(900), details: on(NEW) },
      { addr: 'r:3', info: null, error: 'timeout' },
    ];
    expect(replicasHistory(cands, ['r:1', 'r:2'])).toEqual({ kind: 'split', replids: [OLD, NEW] });
    expect(replicasHistory(cands, ['r:3'])).toEqual({ kind: 'unknown' });
    expect(replicasHistory(cands, [])).toEqual({ kind: 'unknown' });
  });
});
