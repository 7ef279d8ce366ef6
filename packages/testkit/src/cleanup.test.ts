/**
 * A test process that dies without stopping its servers must not leave them running: run
 * such a process for real and look for its children afterwards.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ManagedProcess } from './process.js';
import { waitFor } from './wait.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHILD = `
  import { startEtcd, startRedis } from '@reborn/testkit';
  const [redis, etcd] = await Promise.all([startRedis(), startEtcd()]);
  console.log(JSON.stringify({ pids: [redis.pid, etcd.pid], dirs: [redis.dir, etcd.dir] }));
  const how = process.argv[1];
  if (how === 'exit') process.exit(3);
  if (how === 'throw') throw new Error('the test crashed');
  setInterval(() => {}, 60_000); // 'signal': wait to be killed
`;

/** Running, as opposed to gone or a zombie (a dead child that PID 1 has not reaped yet). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..." — S is the state letter.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('cleanup', () => {
  for (const how of ['exit', 'throw', 'signal'] as const) {
    it(`kills servers and removes dirs when the test process ends by ${how}`, async () => {
      const child = new ManagedProcess({
        name: `dying test (${how})`,
        command: process.execPath,
        args: ['--input-type=module', '-e', CHILD, how],
        cwd: REPO_ROOT,
      });
      let started: { pids: number[]; dirs: string[] } | undefined;
      await child.waitReady('servers started', async () => {
        const line = child.lines.find((l) => l.startsWith('{"pids"'));
        if (line) started = JSON.parse(line) as typeof started;
        return started !== undefined;
      }, 30_000).catch((err: unknown) => {
        // 'exit' and 'throw' end the child right after printing; that is the point.
        if (started === undefined) throw err;
      });
      if (how === 'signal') child.signal('SIGTERM');
      const exit = await child.exited;
      if (how === 'signal') expect(exit.signal).toBe('SIGTERM');
      else expect(exit.code).not.toBe(0);
      for (const pid of started?.pids ?? []) await waitFor(() => !alive(pid), { what: `pid ${pid} to die` });
      for (const dir of started?.dirs ?? []) expect(existsSync(dir)).toBe(false);
    });
  }
});
