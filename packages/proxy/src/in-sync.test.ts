/**
 * The in-sync set as the proxy reads it: the judgement of a group record, the write policy
 * objects updated in place (the ones connections hold), the refusal texts, and the log line
 * once per change of state. No servers needed: this is the table-to-policy step alone.
 */
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import type { GroupInfo } from '@reborn/coordinator';
import { judgeGroup, noReplicasError, WritePolicies } from './in-sync.js';

const M = '127.0.0.1:7000';
const R1 = '127.0.0.1:7001';
const R2 = '127.0.0.1:7002';

function group(extra: Partial<GroupInfo> = {}, replicas = [R1, R2]): GroupInfo {
  return {
    id: 1,
    servers: [{ addr: M, role: 'master' }, ...replicas.map((addr) => ({ addr, role: 'replica' as const }))],
    ...extra,
  };
}

function logged(): { logger: Logger; lines: Array<{ level: number; msg: string; group: number }> } {
  const lines: Array<{ level: number; msg: string; group: number }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

describe('judgeGroup', () => {
  it('an absent set counts every replica; an explicit one counts its members', () => {
    expect(judgeGroup(group(), true)).toEqual({ members: [R1, R2], minInSync: 0, state: 'ok', waitFor: 2 });
    expect(judgeGroup(group({ inSync: [R2] }), true)).toEqual({ members: [R2], minInSync: 0, state: 'ok', waitFor: 1 });
  });

  it('durable with an empty set (or no replica at all) is degraded and waits for nobody', () => {
    expect(judgeGroup(group({ inSync: [] }), true)).toMatchObject({ state: 'degraded', waitFor: 0 });
    expect(judgeGroup(group({}, []), true)).toMatchObject({ state: 'degraded', waitFor: 0 });
  });

  it('without --durable nothing waits, and an empty set is no degradation', () => {
    expect(judgeGroup(group(), false)).toMatchObject({ state: 'ok', waitFor: 0 });
    expect(judgeGroup(group({ inSync: [] }), false)).toMatchObject({ state: 'ok', waitFor: 0 });
  });

  it('a set smaller than minInSync refuses, durable or not', () => {
    expect(judgeGroup(group({ inSync: [R1], minInSync: 2 }), false)).toMatchObject({ state: 'refusing' });
    expect(judgeGroup(group({ inSync: [], minInSync: 1 }), true)).toMatchObject({ state: 'refusing', waitFor: 0 });
    expect(judgeGroup(group({ inSync: [R1], minInSync: 1 }), true)).toMatchObject({ state: 'ok', waitFor: 1 });
  });
});

describe('WritePolicies', () => {
  it('updates the very object a pool was given, so its connections follow without a lookup', () => {
    const { logger } = logged();
    const policies = new WritePolicies(500, logger);
    const held = policies.of(M);
    policies.update([group({ inSync: [R1] })]);
    expect(held).toMatchObject({ group: 1, replicas: 1, members: R1, timeoutMs: 500, refusal: null, execRefusal: null });
    policies.update([group({ inSync: [R1, R2], minInSync: 3 })]);
    expect(policies.of(M)).toBe(held);
    expect(held.replicas).toBe(2);
    expect(held.members).toBe(`${R1}, ${R2}`);
    expect(held.refusal?.toString()).toBe(`-${noReplicasError(1, 2, 3)}\r\n`);
    expect(held.execRefusal?.toString()).toBe(`-EXECABORT Transaction discarded because of: ${noReplicasError(1, 2, 3)}\r\n`);
    policies.update([group({ inSync: [R1, R2], minInSync: 2 })]);
    expect(held.refusal).toBeNull();
  });

  it('the refusal starts with redis\' own NOREPLICAS sentence', () => {
    expect(noReplicasError(4, 0, 1)).toBe('NOREPLICAS Not enough good replicas to write. Group 4 has 0 in-sync replicas, its minInSync is 1.');
  });

  it('without --durable a policy never asks for a WAIT', () => {
    const { logger } = logged();
    const policies = new WritePolicies(null, logger);
    policies.update([group()]);
    expect(policies.of(M).replicas).toBe(0);
  });

  it('logs once per change of state, not per update', () => {
    const { logger, lines } = logged();
    const policies = new WritePolicies(500, logger);
    policies.update([group()]);
    expect(lines).toEqual([]);
    for (let i = 0; i < 3; i++) policies.update([group({ inSync: [] })]);
    for (let i = 0; i < 3; i++) policies.update([group({ inSync: [], minInSync: 1 })]);
    for (let i = 0; i < 3; i++) policies.update([group({ inSync: [R1], minInSync: 1 })]);
    expect(lines.map((l) => [l.level, l.group, l.msg.split(':')[0]])).toEqual([
      [40, 1, 'group degraded'],
      [40, 1, 'group refuses writes'],
      [30, 1, 'group no longer refuses writes'],
    ]);
  });

  it('lists groups with a master only, and forgets a master that was replaced', () => {
    const { logger } = logged();
    const policies = new WritePolicies(500, logger);
    const old = policies.of(M);
    policies.update([group({ inSync: [] }), { id: 2, servers: [] }]);
    expect(policies.view().map((v) => [v.group, v.master, v.state])).toEqual([[1, M, 'degraded']]);
    policies.update([{ id: 1, servers: [{ addr: R1, role: 'master' }, { addr: M, role: 'replica' }], inSync: [] }]);
    expect(policies.of(M)).not.toBe(old);
    // The old master's object keeps its group: the pool closed with it names the group.
    expect(old.group).toBe(1);
    expect(policies.view().map((v) => [v.group, v.master])).toEqual([[1, R1]]);
  });
});
