/**
 * startProxy against a stand-in binary that honours the reborn-proxy contract (flags,
 * /healthz, /metrics, pino JSON on stdout, SIGTERM), so the launcher is tested on its own.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopAll, tempDir } from './cleanup.js';
import { ExitedEarlyError } from './process.js';
import { PROXY_BIN, startProxy } from './proxy.js';

const FAKE = `
import http from 'node:http';
import net from 'node:net';
const args = process.argv.slice(2);
const flag = (f) => args[args.indexOf(f) + 1];
const log = (msg, extra = {}) => console.log(JSON.stringify({ level: 30, time: Date.now(), msg, ...extra }));
if (args.includes('--fail')) { console.error('fatal: bad flag --fail'); process.exit(2); }
const [host, port] = flag('--addr').split(':');
const [ahost, aport] = flag('--admin-addr').split(':');
net.createServer((s) => s.on('data', () => s.write('+PONG\\r\\n'))).listen(+port, host);
http.createServer((req, res) => {
  // --foreign: answer like a proxy that is not the process the launcher started.
  if (req.url === '/healthz') return res.end(JSON.stringify({ ready: true, pid: args.includes('--foreign') ? 1 : process.pid }));
  if (req.url === '/metrics') return res.end('reborn_up 1\\n');
  res.statusCode = 404; res.end();
}).listen(+aport, ahost, () => log('proxy started', { etcd: flag('--etcd'), product: flag('--product'), id: flag('--id'), args }));
setTimeout(() => log('later'), 200);
process.on('SIGTERM', () => { log('shutting down'); process.exit(0); });
`;

let bin: string;
let removeDir: () => Promise<void>;
beforeAll(async () => {
  const tmp = await tempDir('reborn-fake-proxy-');
  removeDir = tmp.remove;
  bin = join(tmp.dir, 'fake-proxy.mjs');
  await writeFile(bin, FAKE);
});
afterAll(async () => {
  await stopAll();
  await removeDir();
});

describe('startProxy', () => {
  it('points at the real binary of this repo', () => {
    expect(PROXY_BIN).toMatch(/packages\/proxy\/bin\/reborn-proxy\.js$/);
    expect(existsSync(PROXY_BIN)).toBe(true);
  });

  it('passes the contract flags, waits for /healthz, captures JSON logs', async () => {
    const p = await startProxy({ etcd: 'http://127.0.0.1:2379', product: 'demo', id: 'px-7', args: ['--durable'], bin });
    expect(p.addr).toBe(`127.0.0.1:${p.port}`);
    expect(p.adminAddr).toBe(`127.0.0.1:${p.adminPort}`);
    const started = await p.waitForLog((r) => r['msg'] === 'proxy started');
    expect(started).toMatchObject({ etcd: 'http://127.0.0.1:2379', product: 'demo', id: 'px-7' });
    expect(started['args']).toEqual(expect.arrayContaining(['--addr', p.addr, '--admin-addr', p.adminAddr, '--durable']));
    await p.waitForLog((r) => r['msg'] === 'later');
    expect(await p.metrics()).toContain('reborn_up 1');
    await expect(p.adminGet('/nope')).rejects.toThrow(/404/);
    expect(await p.client().ping()).toBe('PONG');
    await p.stop();
    expect(p.running).toBe(false);
    expect(p.logRecords().at(-1)?.['msg']).toBe('shutting down');
  });

  it('rejects at once, with the output, when the proxy exits during startup', async () => {
    const t0 = Date.now();
    const err = await startProxy({ etcd: 'x', product: 'p', args: ['--fail'], bin }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitedEarlyError);
    expect((err as Error).message).toMatch(/exited \(code 2.*fatal: bad flag --fail/s);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a /healthz answered by another process is not taken for its own', async () => {
    const err = await startProxy({ etcd: 'x', product: 'p', args: ['--foreign'], bin, startTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/no healthy \/healthz after 1000 ms/);
  });

  it('waitForLog rejects with the log tail after its deadline', async () => {
    const p = await startProxy({ etcd: 'x', product: 'p', bin });
    await expect(p.waitForLog((r) => r['msg'] === 'never', 200)).rejects.toThrow(/no matching log line.*proxy started/s);
    await p.kill();
    expect(p.running).toBe(false);
  });
});
