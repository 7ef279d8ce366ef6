#!/usr/bin/env node
// What client-side caching costs the proxy: redis-benchmark SETs over a 100k keyspace through
// one proxy (two groups), in three states, alternated for two rounds:
//   off      no client tracks: no invalidation listener
//   idle     one RESP3 client has CLIENT TRACKING ON and read nothing: every master pushes an
//            invalidation per write to the proxy's listener, which finds no reader
//   tracked  that client read every key first: each write invalidates a key it holds, and
//            the proxy pushes it to the client (which reads and drops the pushes)
// redis-benchmark pinned to CPU 1; the proxy's CPU time is read from /proc.
//   node bench/tracking.mjs [--requests N]      (default 200000)
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { encodeCommand, ReplyScanner } from '@reborn/protocol';
import { startCluster, stopAll } from '@reborn/testkit';

const i = process.argv.indexOf('--requests');
const n = i > 0 ? Number(process.argv[i + 1]) : 200_000;
if (!Number.isSafeInteger(n) || n < 1000) {
  console.error('usage: node bench/tracking.mjs [--requests N ≥ 1000]');
  process.exit(2);
}
const KEYS = 100_000;
/** utime + stime of a process in µs (clock ticks of 10 ms). */
const cpuUs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
};

/** A RESP3 client with tracking on; counts the keys invalidated in the pushes it receives. `read` GETs every key first. */
async function trackingClient(port, read) {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise((r) => socket.once('connect', r));
  const scanner = new ReplyScanner();
  let replies = 0;
  let pushes = 0;
  let waiting = null;
  socket.on('data', (chunk) =>
    scanner.feed(chunk, (reply) => {
      // `>2 $10 invalidate *<n> …`: count the keys, n.
      if (reply[0] === 0x3e) pushes += Number(/\*(\d+)\r\n/.exec(reply.toString('latin1', 0, 40))?.[1] ?? 0);
      else if (--replies === 0) waiting?.();
    }),
  );
  const run = (commands) => {
    replies += commands.length;
    socket.write(Buffer.concat(commands.map((c) => encodeCommand(c))));
    return new Promise((r) => (waiting = r));
  };
  await run([['HELLO', '3'], ['CLIENT', 'TRACKING', 'ON']]);
  if (read) for (let k = 0; k < KEYS; k += 1000) await run(Array.from({ length: 1000 }, (_, j) => ['GET', `key:${String(k + j).padStart(12, '0')}`]));
  // Counted up to a PING sent once the benchmark is done.
  return { close: () => socket.destroy(), pushes: async () => (await run([['PING']]), pushes) };
}

const cluster = await startCluster({ groups: 2, proxies: 1 });
try {
  const p = cluster.proxies[0];
  console.log('| round | tracking | proxy CPU µs/request | requests/s | keys invalidated at the client |');
  console.log('|---:|---|---:|---:|---:|');
  for (const round of [1, 2]) {
    for (const mode of ['off', 'idle', 'tracked']) {
      const client = mode === 'off' ? null : await trackingClient(p.port, mode === 'tracked');
      const c0 = cpuUs(p.pid);
      const t0 = Date.now();
      // redis-benchmark's -r keys are key:<12 digits>, the ones the client read.
      // Not execFileSync: the tracking client must keep reading its pushes meanwhile.
      await promisify(execFile)('taskset', ['-c', '1', 'redis-benchmark', '-p', String(p.port), '-t', 'set', '-n', String(n), '-r', String(KEYS), '-c', '50', '-q']);
      const seconds = (Date.now() - t0) / 1000;
      console.log(`| ${round} | ${mode} | ${((cpuUs(p.pid) - c0) / n).toFixed(1)} | ${Math.round(n / seconds)} | ${client === null ? 0 : await client.pushes()} |`);
      client?.close();
      // Past the listeners' linger: the next "off" run has none.
      if (mode === 'tracked') await new Promise((r) => setTimeout(r, 11_000));
    }
  }
} finally {
  await stopAll();
}
