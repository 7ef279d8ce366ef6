import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentApi, AgentApiError, appsLeftInStateFile, stillRunsApp, type StateFileApp } from './agent-api.js';
import { stopAll, tempDir } from './cleanup.js';
import { freePort } from './ports.js';
import { startRedis } from './redis.js';

afterAll(stopAll);

describe('AgentApi', () => {
  it('an agent that does not answer is an AgentApiError EUNREACHABLE naming the address and the call', async () => {
    const port = await freePort();
    const err = await new AgentApi(`http://127.0.0.1:${port}`).apps().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentApiError);
    expect(err).toMatchObject({ status: 0, code: 'EUNREACHABLE' });
    expect((err as Error).message).toContain(`127.0.0.1:${port}: GET /api/apps`);
  });
});

describe('apps left in the agent state file', () => {
  it('lists the apps not stopped that have a pid, and nothing for a missing or torn file', async () => {
    const { dir } = await tempDir('reborn-agent-state-');
    expect(appsLeftInStateFile(dir)).toEqual([]);
    const apps = [
      { id: 'redis-1', pid: 11, state: 'running', spec: { kind: 'redis', port: 1 } },
      { id: 'redis-2', pid: 12, state: 'stopped', spec: { kind: 'redis', port: 2 } },
      { id: 'redis-3', pid: null, state: 'restarting', spec: { kind: 'redis', port: 3 } },
      { id: 'proxy-4', pid: 14, state: 'restarting', spec: { kind: 'proxy', addr: '127.0.0.1:4' } },
    ];
    fs.writeFileSync(path.join(dir, 'agent-state.json'), JSON.stringify({ version: 1, apps }));
    expect(appsLeftInStateFile(dir).map((a) => a.id)).toEqual(['redis-1', 'proxy-4']);
    fs.writeFileSync(path.join(dir, 'agent-state.json'), '{"apps": [');
    expect(appsLeftInStateFile(dir)).toEqual([]);
  });

  it('stillRunsApp holds only for a pid that runs that very server (program and port)', async () => {
    const r = await startRedis();
    const app = (port: number): StateFileApp => ({ id: `redis-${port}`, pid: r.pid, state: 'running', spec: { kind: 'redis', port } });
    expect(stillRunsApp(r.pid, app(r.port))).toBe(true);
    expect(stillRunsApp(r.pid, app(r.port + 1))).toBe(false);
    expect(stillRunsApp(process.pid, app(r.port))).toBe(false);
    expect(stillRunsApp(r.pid, { id: 'proxy-1', pid: r.pid, state: 'running', spec: { kind: 'proxy', addr: r.addr } })).toBe(false);
    const pid = r.pid;
    await r.stop();
    expect(stillRunsApp(pid, app(r.port))).toBe(false);
  });
});
