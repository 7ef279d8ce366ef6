import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { stopAll } from './cleanup.js';
import { startRedis } from './redis.js';
import { waitFor } from './wait.js';

afterAll(stopAll);

describe('startRedis', () => {
  it('starts servers on distinct free ports, each with its own dir, ready for commands', async () => {
    const [a, b] = await Promise.all([startRedis(), startRedis()]);
    expect(a.port).not.toBe(b.port);
    expect(a.dir).not.toBe(b.dir);
    expect(a.addr).toBe(`127.0.0.1:${a.port}`);
    const c = a.client();
    await c.set('k', 'v');
    expect(await c.get('k')).toBe('v');
    expect(await b.client().get('k')).toBeNull();
    await Promise.all([a.stop(), b.stop()]);
  });

  it('stop() ends the process and removes its temp dir', async () => {
    const r = await startRedis();
    const { pid, dir } = r;
    expect(existsSync(dir)).toBe(true);
    await r.stop();
    expect(r.running).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('restart() comes back on the same port and dir (data kept with AOF on)', async () => {
    const r = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    const c = r.client({ maxRetriesPerRequest: null });
    await c.set('k', 'kept');
    const pid = r.pid;
    await r.kill();
    expect(r.running).toBe(false);
    await r.restart();
    expect(r.pid).not.toBe(pid);
    expect(await c.get('k')).toBe('kept'); // the same client reconnects to the same port
    await r.stop();
  });

  it('pause() makes it hang, resume() brings it back', async () => {
    const r = await startRedis();
    const c = r.client({ commandTimeout: 300, maxRetriesPerRequest: 0 });
    await c.ping();
    await r.pause();
    await expect(c.ping()).rejects.toThrow(/timed out/i);
    r.resume();
    await waitFor(() => c.ping(), { what: 'PONG after resume' });
    await r.stop(); // stop() also works on a paused server (SIGCONT first)
  });

  it('stop() works on a paused server', async () => {
    const r = await startRedis();
    await r.pause();
    await r.stop();
    expect(r.running).toBe(false);
  });

  it('a port another redis already serves is not taken for a started server', async () => {
    // The other server answers PING on that port at once; only our own process's
    // "Ready to accept connections" may count, and ours exits on the taken port instead.
    const a = await startRedis();
    await expect(startRedis({ port: a.port })).rejects.toThrow(/exited .*before "Ready to accept connections"[\s\S]*(Address already in use|Could not create server TCP)/);
    expect(await a.client().ping()).toBe('PONG');
    await a.stop();
  });

  it('rejects with the server log when redis cannot start', async () => {
    await expect(startRedis({ args: ['--no-such-option', 'x'] })).rejects.toThrow(/Bad directive|no-such-option/);
  });
});
