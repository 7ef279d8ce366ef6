/**
 * DaemonSet and LauncherLock, the launcher parts bench/ and `npm start` use: output goes to the
 * log file, readiness fails fast when the daemon dies, stopAll() stops exactly its daemons
 * (SIGKILL for one that ignores SIGTERM), and the lock never signals a recycled pid.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdArgs, proxyArgs, redisArgs } from './daemon-args.js';
import { DaemonSet, DaemonStartupExit, type Daemon } from './daemons.js';
import { LauncherBusyError, LauncherLock, startTimeOf } from './launcher-lock.js';
import { waitFor } from './wait.js';

const dir = mkdtempSync(join(tmpdir(), 'reborn-daemons-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A node daemon running `code`; it prints `ready` once its handlers are installed. */
function nodeDaemon(set: DaemonSet, name: string, code: string): Daemon {
  return set.start({ name, command: process.execPath, args: ['-e', `${code}; console.log('ready'); setInterval(() => {}, 60_000)`], logFile: join(dir, `${name}.log`) });
}

const logged = (d: Daemon) => (): boolean => readFileSync(d.logFile, 'utf8').includes('ready');

describe('DaemonSet', () => {
  it('logs to the file, reports an unexpected exit, and stops only its own daemons, newest first', { timeout: 30_000 }, async () => {
    const exits: string[] = [];
    const set = new DaemonSet({ onUnexpectedExit: (d, why) => exits.push(`${d.name}:${why}`) });
    // On SIGTERM, each appends its name to one file: the order they were stopped in.
    const order = join(dir, 'order');
    const polite = (name: string) => `process.on('SIGTERM', () => { require('fs').appendFileSync(${JSON.stringify(order)}, '${name} '); process.exit(0); })`;
    const a = nodeDaemon(set, 'a', polite('a'));
    const b = nodeDaemon(set, 'b', '');
    const c = nodeDaemon(set, 'c', polite('c'));
    for (const d of [a, b, c]) await set.waitReady(d.name, logged(d), { daemon: d });

    b.proc.signal('SIGKILL');
    await waitFor(() => exits.length > 0, { what: 'the exit report' });
    expect(exits).toEqual(['b:SIGKILL']);

    // A process not started by the set is never touched.
    const outsider = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      await set.stopAll({ oneAtATime: true });
      expect(a.proc.running).toBe(false);
      expect(c.proc.running).toBe(false);
      expect(readFileSync(order, 'utf8')).toBe('c a ');
      expect(exits).toEqual(['b:SIGKILL']); // stopping is not unexpected
      expect(outsider.exitCode).toBe(null);
      expect(outsider.signalCode).toBe(null);
    } finally {
      outsider.kill('SIGKILL');
    }
  });

  it('quietStartup: an exit while starting is the error of waitReady (to retry), an exit once ready is unexpected', { timeout: 30_000 }, async () => {
    const exits: string[] = [];
    const changes: number[] = [];
    const set = new DaemonSet({ onUnexpectedExit: (d, why) => exits.push(`${d.name}:${why}`), onChange: () => changes.push(set.daemons.length) });
    const failing = set.start({
      name: 'taken',
      command: process.execPath,
      args: ['-e', `console.error('listen EADDRINUSE: address already in use 127.0.0.1:1'); process.exit(3)`],
      logFile: join(dir, 'taken.log'),
      quietStartup: true,
    });
    const err = await set.waitReady('taken', () => false, { daemon: failing }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DaemonStartupExit);
    expect((err as DaemonStartupExit).output).toMatch(/address already in use/);
    set.forget(failing);
    expect(set.daemons).toEqual([]);
    expect(changes).toEqual([1, 0]);

    const d = set.start({ name: 'ok', logFile: join(dir, 'ok.log'), command: process.execPath, args: ['-e', `console.log('ready'); setInterval(() => {}, 60_000)`], quietStartup: true });
    await set.waitReady('ok', logged(d), { daemon: d });
    d.proc.signal('SIGKILL');
    await waitFor(() => exits.length > 0, { what: 'the exit report' });
    expect(exits).toEqual(['ok:SIGKILL']); // the failed start was never reported
  });

  it('SIGKILLs a daemon that ignores SIGTERM after the grace period', { timeout: 30_000 }, async () => {
    const forced: string[] = [];
    const set = new DaemonSet();
    const stubborn = nodeDaemon(set, 'stubborn', `process.on('SIGTERM', () => console.log('ignored'))`);
    await set.waitReady('stubborn', logged(stubborn));
    await set.stopAll({ oneAtATime: false, graceMs: 200, onForceKill: (d) => forced.push(d.name) });
    expect(forced).toEqual(['stubborn']);
    expect((await stubborn.proc.exited).signal).toBe('SIGKILL');
  });

  it('waitReady fails at once with the log tail when the daemon dies, and names a timeout', { timeout: 30_000 }, async () => {
    const set = new DaemonSet();
    const dying = set.start({ name: 'dying', command: process.execPath, args: ['-e', "console.log('the reason'); process.exit(7)"], logFile: join(dir, 'dying.log') });
    const err = await set.waitReady('dying', () => false, { daemon: dying, timeoutMs: 60_000 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(`dying exited (7) before becoming ready; see ${dying.logFile}\nthe reason`);
    await expect(set.waitReady('never', () => false, { timeoutMs: 50, intervalMs: 10 })).rejects.toThrow('never did not become ready within 0.05 s');
    await expect(
      set.waitReady('never', () => false, { timeoutMs: 50, intervalMs: 10, timeoutMessage: (w) => `${w} did not come up` }),
    ).rejects.toThrow('never did not come up');
    await set.stopAll({ oneAtATime: true });
  });

  it('reports a command that cannot be spawned', { timeout: 30_000 }, async () => {
    const reports: string[] = [];
    const set = new DaemonSet({ onUnexpectedExit: (d, _why, err) => reports.push(`${d.name}: ${err?.message}`) });
    set.start({ name: 'missing', command: join(dir, 'no-such-binary'), args: [], logFile: join(dir, 'missing.log') });
    await waitFor(() => reports.length > 0, { what: 'the spawn failure' });
    expect(reports[0]).toMatch(/^missing: spawn .*no-such-binary ENOENT/);
  });
});

describe('LauncherLock', () => {
  it('refuses while the recorded launcher lives, and SIGKILLs only left-over processes whose start time matches', { timeout: 30_000 }, async () => {
    const file = join(dir, 'launcher.json');
    const lock = new LauncherLock(file);
    lock.write([]);
    expect(() => lock.take(() => {})).toThrow(LauncherBusyError);

    const left = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60_000)'], { stdio: 'ignore' });
    const recycled = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      await waitFor(() => startTimeOf(left.pid) !== null && startTimeOf(recycled.pid) !== null, { what: 'both children in /proc' });
      const procs = [
        { name: 'left', pid: left.pid, start: startTimeOf(left.pid) },
        // Same pid, other start time: the pid now belongs to another program.
        { name: 'recycled', pid: recycled.pid, start: 'not-its-start-time' },
      ];
      // A launcher that is gone: a pid with no /proc entry (ours, with a start time that is not).
      writeFileSync(file, JSON.stringify({ pid: process.pid, start: 'gone', procs }));
      const stale: string[] = [];
      lock.take((p) => stale.push(p.name));
      expect(stale).toEqual(['left']);
      await waitFor(() => left.signalCode === 'SIGKILL', { what: 'the left-over process to be killed' });
      expect(recycled.exitCode).toBe(null);
      expect(recycled.signalCode).toBe(null);
    } finally {
      left.kill('SIGKILL');
      recycled.kill('SIGKILL');
      lock.remove();
    }
  });
});

describe('daemon argv builders', () => {
  it('build the command lines the launchers share', () => {
    expect(etcdArgs({ name: 'n', dataDir: '/d', clientUrl: 'http://h:1', peerUrl: 'http://h:2' })).toEqual([
      '--name', 'n', '--data-dir', '/d', '--listen-client-urls', 'http://h:1', '--advertise-client-urls', 'http://h:1',
      '--listen-peer-urls', 'http://h:2', '--initial-advertise-peer-urls', 'http://h:2', '--initial-cluster', 'n=http://h:2',
    ]);
    expect(redisArgs({ port: 7, dir: '/r', persistence: 'aof', configFile: '/r/c.conf', replicaOf: { host: 'h', port: 6 } })).toEqual([
      '/r/c.conf', '--port', '7', '--bind', '127.0.0.1', '--dir', '/r', '--save', '', '--appendonly', 'yes', '--replicaof', 'h', '6',
    ]);
    expect(redisArgs({ port: 7, dir: '/r', persistence: 'none', unprotected: true })).toEqual([
      '--port', '7', '--bind', '127.0.0.1', '--dir', '/r', '--save', '', '--appendonly', 'no', '--protected-mode', 'no',
    ]);
    expect(proxyArgs({ addr: 'a:1', adminAddr: 'a:2', etcd: 'http://e', product: 'p' })).toEqual([
      '--addr', 'a:1', '--admin-addr', 'a:2', '--etcd', 'http://e', '--product', 'p',
    ]);
  });
});
