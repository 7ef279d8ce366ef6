/**
 * The body of the source latency probe (source-pace.ts LatencyProbe), run in a worker thread
 * of its own: in the runner's main thread a round trip would also count the time the runner
 * itself spends on large replies, which no client of the source waits for.
 *
 * It PINGs the server every `everyMs` over a raw socket (AUTH first when there is a password)
 * and keeps the round trips of the last `windowMs`; after each answer it writes the
 * second-longest of them into `shared[0]` (one outlier — a pause of this process — does not
 * count). It never throws: a failing server simply stops the numbers from changing, and the
 * task itself reports the failure.
 */
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

interface ProbeData {
  host: string;
  port: number;
  password: string | null;
  everyMs: number;
  windowMs: number;
  shared: SharedArrayBuffer;
}

const { host, port, password, everyMs, windowMs, shared } = workerData as ProbeData;
const out = new Float64Array(shared);
const samples: Array<[at: number, ms: number]> = [];
const PING = Buffer.from('*1\r\n$4\r\nPING\r\n');
let sentAt = 0;
let pending = '';
let authed = password === null;
let timer: NodeJS.Timeout | null = null;

const sock = net.connect({ host, port });
sock.setNoDelay(true);
sock.on('error', () => undefined);
sock.on('close', () => {
  if (timer) clearTimeout(timer);
  parentPort?.close();
});
sock.on('connect', () => {
  if (password !== null) sock.write(`*2\r\n$4\r\nAUTH\r\n$${Buffer.byteLength(password)}\r\n${password}\r\n`);
  else send();
});
sock.setEncoding('latin1').on('data', (chunk: string) => {
  pending += chunk;
  for (let eol = pending.indexOf('\r\n'); eol >= 0; eol = pending.indexOf('\r\n')) {
    pending = pending.slice(eol + 2);
    if (!authed) {
      authed = true;
      send();
      continue;
    }
    record(performance.now() - sentAt);
    timer = setTimeout(send, everyMs);
  }
});
parentPort?.on('message', (m: unknown) => {
  if (m === 'stop') sock.destroy();
});

function send(): void {
  sentAt = performance.now();
  sock.write(PING);
}

function record(ms: number): void {
  const now = performance.now();
  samples.push([now, ms]);
  while (samples.length > 0 && now - samples[0]![0] > windowMs) samples.shift();
  let first = 0;
  let second = 0;
  for (const [, x] of samples) {
    if (x > first) [first, second] = [x, first];
    else if (x > second) second = x;
  }
  out[0] = second;
}
