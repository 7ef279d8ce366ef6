/**
 * The replication guard's pure parts: the verdict on a master (trust, fail over, wait) from
 * the facts, the INFO it reads them from, and the user's ACL rules. The mechanism against
 * real servers is in test/agent-restart-safety.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { judgeMaster, replUserRules, serverFacts, type MasterJudgement } from './repl-guard.js';

const base = (over: Partial<MasterJudgement> = {}): MasterJudgement => ({
  knownRunId: 'run-a',
  hasReplUser: true,
  master: { runId: 'run-a', offset: 1000, keys: 50 },
  inSync: [{ addr: 'r:1', facts: { offset: 1000, keys: 50 } }],
  replicas: [{ addr: 'r:1', facts: { offset: 1000, keys: 50 } }],
  ...over,
});

describe('judgeMaster', () => {
  it('trusts the same process it knew, whatever the offsets (the replicas synced from it)', () => {
    expect(judgeMaster(base())).toMatchObject({ action: 'trust', restarted: false });
    expect(judgeMaster(base({ hasReplUser: false, master: { runId: 'run-a', offset: 10, keys: 0 } }))).toMatchObject({ action: 'trust' });
  });

  it('fails over a restarted master whose offset is below the best in-sync replica', () => {
    const v = judgeMaster(base({ master: { runId: 'run-b', offset: 0, keys: 4000 }, hasReplUser: false }));
    expect(v).toMatchObject({ action: 'fail-over', restarted: true });
    expect(v.reason).toMatch(/run-a → run-b.*offset 0 is below in-sync replica r:1's 1000/);
  });

  it('fails over a restarted master with no keys while a replica (in sync or not) has some', () => {
    const v = judgeMaster(base({
      master: { runId: 'run-b', offset: 5000, keys: 0 },
      inSync: [],
      replicas: [{ addr: 'r:1', facts: { offset: 1000, keys: 7 } }],
    }));
    expect(v).toMatchObject({ action: 'fail-over', reason: expect.stringMatching(/no keys while replica r:1 has 7/) });
  });

  it('trusts a restarted master that holds at least what its in-sync replicas hold', () => {
    expect(judgeMaster(base({ master: { runId: 'run-b', offset: 1000, keys: 50 } }))).toMatchObject({ action: 'trust', restarted: true });
    // Nobody in sync (just failed over) and no replica with keys: nothing to lose.
    expect(judgeMaster(base({ master: { runId: 'run-b', offset: 0, keys: 0 }, inSync: [], replicas: [{ addr: 'r:1', facts: { offset: 9, keys: 0 } }] }))).toMatchObject({ action: 'trust' });
  });

  it('waits while an in-sync replica does not answer: it may hold what the master lost', () => {
    const v = judgeMaster(base({ master: { runId: 'run-b', offset: 5000, keys: 50 }, inSync: [{ addr: 'r:1', facts: null }] }));
    expect(v).toMatchObject({ action: 'wait', reason: expect.stringMatching(/r:1 did not answer/) });
  });

  it('a master met for the first time without the user is judged on the facts (a new leader, a first rollout)', () => {
    const first = { knownRunId: null, hasReplUser: false };
    expect(judgeMaster(base({ ...first, master: { runId: 'x', offset: 1200, keys: 50 } }))).toMatchObject({ action: 'trust', restarted: false });
    expect(judgeMaster(base({ ...first, master: { runId: 'x', offset: 3, keys: 1 } }))).toMatchObject({ action: 'fail-over', reason: expect.stringMatching(/^met without the replication user/) });
    // …and with the user already there (a previous leader provisioned this process): trusted.
    expect(judgeMaster(base({ knownRunId: null, hasReplUser: true, master: { runId: 'x', offset: 3, keys: 1 } }))).toMatchObject({ action: 'trust' });
  });

  it('a restart is a restart even when the user came back (someone persisted it)', () => {
    expect(judgeMaster(base({ hasReplUser: true, master: { runId: 'run-b', offset: 0, keys: 0 } }))).toMatchObject({ action: 'fail-over', restarted: true });
  });
});

describe('serverFacts', () => {
  it('reads run_id, role, offset, link and the keys of every db', () => {
    const text = [
      '# Server', 'redis_version:7.0.15', 'run_id:abc123', '',
      '# Replication', 'role:slave', 'master_host:10.0.0.1', 'master_port:7000', 'master_link_status:down', 'slave_repl_offset:4242', 'master_repl_offset:4242', '',
      '# Keyspace', 'db0:keys=10,expires=1,avg_ttl=0', 'db3:keys=5,expires=0,avg_ttl=0', '',
    ].join('\r\n');
    expect(serverFacts(text)).toEqual({ runId: 'abc123', role: 'slave', offset: 4242, keys: 15, linkUp: false, masterHost: '10.0.0.1', masterPort: 7000 });
    expect(serverFacts('# Server\r\nrun_id:z\r\n# Replication\r\nrole:master\r\nmaster_repl_offset:0\r\n# Keyspace\r\n')).toMatchObject({ role: 'master', offset: 0, keys: 0 });
  });
});

describe('replUserRules', () => {
  it('replication commands only, no keys, whatever the user had before', () => {
    expect(replUserRules('s3cr3t')).toEqual(['reset', 'on', '>s3cr3t', '+psync', '+replconf', '+ping']);
  });
});
