import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { groupsInMigration, masterDownAfterMs, noteFailedCheck, probeConnect } from './ha-stall.js';
import type { MigrationTask } from '@reborn/coordinator';

const windows = { downAfterMs: 3000, stallDownAfterMs: 15000, migrationStallDownAfterMs: 60000, deadDownAfterMs: 1500 };

describe('stall versus death', () => {
  it('an accepted connect starts a stall; only a refusal ends it; an unanswered one keeps it', () => {
    const p = { stalledSince: null as number | null, lastConnect: null as 'accepted' | 'refused' | 'unanswered' | null };
    expect(noteFailedCheck(p, 'unanswered', 1000)).toBe(false);
    expect(masterDownAfterMs(p, false, windows)).toBe(3000); // never seen alive: a death
    expect(noteFailedCheck(p, 'accepted', 2000)).toBe(true);
    expect(noteFailedCheck(p, 'accepted', 2500)).toBe(false); // the same stall
    expect(p.stalledSince).toBe(2000);
    expect(masterDownAfterMs(p, false, windows)).toBe(15000);
    noteFailedCheck(p, 'unanswered', 3000); // backlog full, say: still the stall
    expect(masterDownAfterMs(p, false, windows)).toBe(15000);
    noteFailedCheck(p, 'refused', 4000); // killed meanwhile
    expect(p.stalledSince).toBeNull();
    expect(masterDownAfterMs(p, false, windows)).toBe(1500); // the process is gone: the short window
    // The dead window never lengthens a shorter --down-after-ms.
    expect(masterDownAfterMs(p, false, { ...windows, downAfterMs: 1000 })).toBe(1000);
  });

  it('during a migration only a refused connect is a death', () => {
    expect(masterDownAfterMs({ stalledSince: null, lastConnect: 'unanswered' }, true, windows)).toBe(60000);
    expect(masterDownAfterMs({ stalledSince: 1000, lastConnect: 'accepted' }, true, windows)).toBe(60000);
    expect(masterDownAfterMs({ stalledSince: null, lastConnect: 'refused' }, true, windows)).toBe(1500);
  });

  it('groups a key move involves: moving tasks and slots in migration', () => {
    const task = (state: MigrationTask['state'], from: number[], to: number) => ({ state, from, to }) as MigrationTask;
    const slots = [{ id: 1, state: 'migrating' as const, group: 5, from: 4, to: 5 }, { id: 2, state: 'online' as const, group: 1 }];
    expect([...groupsInMigration([task('running', [1, 2], 3), task('done', [7], 8), task('paused', [9], 10)], slots)].sort()).toEqual([1, 2, 3, 4, 5]);
    expect([...groupsInMigration([task('cancelling', [6], 7)], [])].sort()).toEqual([6, 7]);
  });
});

describe('probeConnect', () => {
  let server: Server | null = null;
  afterEach(() => {
    server?.close();
    server = null;
  });

  it('tells a listening port from a closed one', async () => {
    server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    expect(await probeConnect(`127.0.0.1:${port}`, 2000)).toBe('accepted');
    await new Promise<void>((r) => server!.close(() => r()));
    server = null;
    expect(await probeConnect(`127.0.0.1:${port}`, 2000)).toBe('refused');
  });
});
