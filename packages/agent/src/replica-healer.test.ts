/** The healer's pure decisions: when a group gets a new replica, when a lost one is retired, which agent is asked. */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { AgentInfo, GroupInfo } from '@reborn/coordinator';
import { firstBindablePort } from './redis-ports.js';
import { nextHealStep, pickAgent } from './replica-healer.js';

const GRACE = 10_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();

const group = (servers: [string, 'master' | 'replica'][], wantReplicas?: number): GroupInfo => ({
  id: 1,
  servers: servers.map(([addr, role]) => ({ addr, role })),
  ...(wantReplicas === undefined ? {} : { wantReplicas }),
});

type St = { up: boolean; lastOkAt: string };
const status = (entries: Record<string, St>): Map<string, St> => new Map(Object.entries(entries));
const up = { up: true, lastOkAt: at(0) };

describe('nextHealStep', () => {
  const g = group([['m:1', 'master'], ['r:1', 'replica']], 1);

  it('does nothing for a group without wantReplicas, or one that has enough', () => {
    expect(nextHealStep(group([['m:1', 'master']]), status({ 'm:1': up }), T0, null, GRACE).step).toEqual({ kind: 'none' });
    expect(nextHealStep(g, status({ 'm:1': up, 'r:1': up }), T0, null, GRACE)).toEqual({ step: { kind: 'none' }, shortSince: null });
  });

  it('waits the grace period from the first look at a shortage, then creates', () => {
    const st = status({ 'm:1': up, 'r:1': { up: false, lastOkAt: at(-60_000) } });
    const first = nextHealStep(g, st, T0, null, GRACE);
    expect(first).toMatchObject({ step: { kind: 'wait' }, shortSince: T0 });
    expect(nextHealStep(g, st, T0 + GRACE - 1, first.shortSince, GRACE).step.kind).toBe('wait');
    expect(nextHealStep(g, st, T0 + GRACE, first.shortSince, GRACE)).toEqual({ step: { kind: 'create' }, shortSince: T0 });
  });

  it('a replica back within the grace period ends the shortage', () => {
    expect(nextHealStep(g, status({ 'm:1': up, 'r:1': up }), T0 + 5000, T0, GRACE).shortSince).toBeNull();
  });

  it('retires a replica down past the grace period once enough others are up, not before', () => {
    const healed = group([['m:1', 'master'], ['r:1', 'replica'], ['r:2', 'replica']], 1);
    const lost = { up: false, lastOkAt: at(0) };
    expect(nextHealStep(healed, status({ 'm:1': up, 'r:1': lost, 'r:2': up }), T0 + GRACE - 1, null, GRACE).step).toEqual({ kind: 'none' });
    expect(nextHealStep(healed, status({ 'm:1': up, 'r:1': lost, 'r:2': up }), T0 + GRACE, null, GRACE).step).toEqual({ kind: 'retire', addr: 'r:1' });
    // Short: create first, the dead one stays in the record until then.
    expect(nextHealStep(g, status({ 'm:1': up, 'r:1': lost }), T0 + GRACE, T0, GRACE).step).toEqual({ kind: 'create' });
  });

  it('leaves a group alone while its master does not answer, or a server was not checked yet', () => {
    expect(nextHealStep(g, status({ 'm:1': { up: false, lastOkAt: at(0) }, 'r:1': up }), T0, T0 - GRACE, GRACE)).toMatchObject({ step: { kind: 'wait' }, shortSince: null });
    expect(nextHealStep(g, status({ 'm:1': up }), T0, null, GRACE).step.kind).toBe('wait');
  });
});

describe('pickAgent', () => {
  const agent = (id: string): AgentInfo => ({ id, httpAddr: '127.0.0.1:1', pid: 1, host: 'h', startedAt: at(0), ha: false, redisPorts: '7000-7001' });

  it('takes the agent running the fewest redis-servers, then the lowest id; none without candidates', () => {
    expect(pickAgent([{ agent: agent('b'), redisApps: 3 }, { agent: agent('c'), redisApps: 1 }, { agent: agent('a'), redisApps: 1 }])?.id).toBe('a');
    expect(pickAgent([])).toBeNull();
  });
});

describe('firstBindablePort', () => {
  it('skips taken ports and ports another process holds; null when none is left', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const held = (holder.address() as { port: number }).port;
    try {
      expect(await firstBindablePort({ first: held, last: held }, '127.0.0.1', new Set())).toBeNull();
      const next = await firstBindablePort({ first: held, last: Math.min(65535, held + 20) }, '127.0.0.1', new Set([held + 1]));
      expect(next).not.toBeNull();
      expect(next).not.toBe(held);
      expect(next).not.toBe(held + 1);
    } finally {
      holder.close();
    }
  });
});
