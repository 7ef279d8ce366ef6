#!/usr/bin/env node
// What `reborn-proxy --watch-strays` costs in the worst case: every request creates a new key
// (SET over a 100M keyspace), so every master publishes one new-key event per request to the
// watching proxy. Two groups, one proxy at a time, with and without the watch, alternated for
// two rounds; redis-benchmark pinned to CPU 1; the proxy's CPU time is read from /proc.
//   node bench/watch-strays.mjs [--requests N]      (default 200000)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startCluster, stopAll } from '@reborn/testkit';

const i = process.argv.indexOf('--requests');
const n = i > 0 ? Number(process.argv[i + 1]) : 200_000;
if (!Number.isSafeInteger(n) || n < 1000) {
  console.error('usage: node bench/watch-strays.mjs [--requests N ≥ 1000]');
  process.exit(2);
}
/** utime + stime of a process in µs (clock ticks of 10 ms). */
const cpuUs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
};

const cluster = await startCluster({ groups: 2, proxies: 0 });
try {
  console.log('| round | --watch-strays | proxy CPU µs/request | requests/s |');
  console.log('|---:|---|---:|---:|');
  for (const round of [1, 2]) {
    for (const watch of [false, true]) {
      const p = await cluster.addProxy(watch ? ['--watch-strays'] : []);
      for (const g of cluster.groups) await g.master.client().flushall();
      const c0 = cpuUs(p.pid);
      const t0 = Date.now();
      execFileSync('taskset', ['-c', '1', 'redis-benchmark', '-p', String(p.port), '-t', 'set', '-n', String(n), '-r', '100000000', '-c', '50', '-q'], { stdio: 'ignore' });
      const seconds = (Date.now() - t0) / 1000;
      console.log(`| ${round} | ${watch ? 'on' : 'off'} | ${((cpuUs(p.pid) - c0) / n).toFixed(1)} | ${Math.round(n / seconds)} |`);
      await p.stop();
    }
  }
} finally {
  await stopAll();
}
