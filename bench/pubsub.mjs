#!/usr/bin/env node
// Pub/sub throughput: redis-benchmark publishes to one channel while S subscribers (raw
// sockets in this process, counting bytes) listen, against a redis master directly and
// through reborn-proxy, interleaved, in one run. Each cell: PUBLISH requests/s as
// redis-benchmark reports them, and whether every subscriber received every message.
//
//   node bench/pubsub.mjs [--requests N] [--rounds N] [--subscribers 1,50] [--out FILE]
//
// The cluster (etcd, 2 groups, 1 proxy) comes from @reborn/testkit (run `npm run build`
// first); everything it started is stopped at the end.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: flags } = parseArgs({
  options: {
    requests: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '3' },
    subscribers: { type: 'string', default: '1,50' },
    out: { type: 'string', default: path.join(root, 'bench/results/pubsub.md') },
  },
  strict: true,
});
const requests = Number(flags.requests);
const rounds = Number(flags.rounds);
const subscriberCounts = flags.subscribers.split(',').map(Number);
if (![requests, rounds, ...subscriberCounts].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('--requests, --rounds and --subscribers take positive integers');
  process.exit(2);
}

const CHANNEL = 'bench:pubsub';
const PAYLOAD = 'x'.repeat(32);
// What each subscriber receives per message, byte for byte.
const MESSAGE_BYTES = Buffer.byteLength(`*3\r\n$7\r\nmessage\r\n$${CHANNEL.length}\r\n${CHANNEL}\r\n$${PAYLOAD.length}\r\n${PAYLOAD}\r\n`);

const { startCluster } = await import('@reborn/testkit');

/** A subscriber that counts the bytes it receives after its SUBSCRIBE confirmation. */
async function subscriber(port) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const confirmation = Buffer.byteLength(`*3\r\n$9\r\nsubscribe\r\n$${CHANNEL.length}\r\n${CHANNEL}\r\n:1\r\n`);
  const s = { socket, bytes: -confirmation };
  socket.on('data', (d) => (s.bytes += d.length));
  socket.on('error', () => undefined);
  socket.write(`SUBSCRIBE ${CHANNEL}\r\n`);
  const deadline = Date.now() + 10_000;
  while (s.bytes < 0) {
    if (Date.now() > deadline) throw new Error(`no SUBSCRIBE confirmation from port ${port} within 10 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return s;
}

/**
 * redis-benchmark in a child process, awaited without blocking this process: the subscribers
 * live here and must keep reading while it publishes.
 */
function publish(port) {
  const args = ['-p', String(port), '-n', String(requests), '-c', '4', '-P', '16', '-q', '--csv', 'PUBLISH', CHANNEL, PAYLOAD];
  return new Promise((resolve, reject) => {
    const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').find((l) => l.startsWith('"PUBLISH'));
      if (code !== 0 || line === undefined || /Error from server/.test(out)) reject(new Error(`redis-benchmark failed (${code}): ${out.trim()}`));
      else resolve(Number(line.split(',')[1].replace(/"/g, '')));
    });
  });
}

async function runCell(port, count) {
  const subs = await Promise.all(Array.from({ length: count }, () => subscriber(port)));
  try {
    const rps = await publish(port);
    const want = requests * MESSAGE_BYTES;
    const deadline = Date.now() + 30_000;
    while (subs.some((s) => s.bytes < want) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    return { rps, complete: subs.every((s) => s.bytes === want) };
  } finally {
    subs.forEach((s) => s.socket.destroy());
  }
}

/** The middle value; the mean of the two middle ones for an even count. */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const cluster = await startCluster({ groups: 2, proxies: 1 });
try {
  const targets = { redis: cluster.groups[0].master.port, reborn: cluster.proxies[0].port };
  const results = new Map();
  // Unrecorded warm-up: the proxy's JIT and both targets' connections.
  for (const port of Object.values(targets)) await runCell(port, 1);
  for (let round = 0; round < rounds; round++) {
    for (const count of subscriberCounts) {
      for (const [name, port] of Object.entries(targets)) {
        const cell = await runCell(port, count);
        const key = `${name}/${count}`;
        if (!results.has(key)) results.set(key, []);
        results.get(key).push(cell);
        console.log(`round ${round + 1} ${name} subscribers=${count}: ${cell.rps} publish/s, all delivered: ${cell.complete}`);
      }
    }
  }
  const lines = [
    `# pub/sub throughput (${new Date().toISOString()})`,
    '',
    `redis-benchmark -n ${requests} -c 4 -P 16 PUBLISH ${CHANNEL} <32 bytes>; median of ${rounds} rounds; S subscribers on the channel.`,
    '',
    '| subscribers | redis publish/s | reborn publish/s | reborn / redis | every message delivered to every subscriber |',
    '|---:|---:|---:|---:|---|',
  ];
  for (const count of subscriberCounts) {
    const redis = results.get(`redis/${count}`);
    const reborn = results.get(`reborn/${count}`);
    const a = median(redis.map((c) => c.rps));
    const b = median(reborn.map((c) => c.rps));
    const complete = [...redis, ...reborn].every((c) => c.complete);
    lines.push(`| ${count} | ${Math.round(a)} | ${Math.round(b)} | ${(b / a).toFixed(2)}× | ${complete ? 'yes' : 'NO'} |`);
  }
  fs.mkdirSync(path.dirname(flags.out), { recursive: true });
  fs.writeFileSync(flags.out, lines.join('\n') + '\n');
  console.log(lines.join('\n'));
} finally {
  await cluster.stop();
}
