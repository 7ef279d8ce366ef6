/**
 * The body of the source latency probe (source-pace.ts LatencyProbe), run in a worker thread
 * of its own: in the runner's main thread a round trip would also count the time the runner
 * itself spends on large replies, which no client of the source waits for.
 *
 * It PINGs the server every `everyMs` over a raw socket (AUTH first when there is a password)
 * and keeps the round trips of the last `windowMs`; after each answer it writes the
 * second-longest of them into `shared[0]` (one outlier — a pause of this process — does not
 * count). Every CLIENTS_EVERY_MS it reads CLIENT LIST instead and writes into `shared[1]`
 * whether any connection but the runner's own (named `runnerName`) sent a command within the
 * last second (idle=0): 1 when clients are active, 0 when none is. It never throws: a failing server simply stops the numbers from changing, and the
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
  runnerName: string;
  shared: SharedArrayBuffer;
}

const CLIENTS_EVERY_MS = 500;
const { host, port, password, everyMs, windowMs, runnerName, shared } = workerData as ProbeData;
const out = new Float64Array(shared);
const samples: Array<[at: number, ms: number]> = [];
const PING = Buffer.from('*1\r\n$4\r\nPING\r\n');
const CLIENT_LIST = Buffer.from('*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n');
let sentAt = 0;
let pending = '';
let authed = password === null;
let timer: NodeJS.Timeout | null = null;
/** What the request in flight is: a PING, or CLIENT LIST (a bulk reply). */
let asked: 'ping' | 'clients' = 'ping';
let lastClients = 0;
out[1] = 1; // until the first look: assume clients

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
  for (;;) {
    const eol = pending.indexOf('\r\n');
    if (eol < 0) return;
    if (!authed) {
      pending = pending.slice(eol + 2);
      authed = true;
      sock.write(`*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$${runnerName.length + 6}\r\n${runnerName}-probe\r\n`);
      asked = 'ping'; // the SETNAME answer is read as a (meaningless) round trip
      sentAt = performance.now();
      continue;
    }
    if (asked === 'clients' && pending[0] === '$') {
      const len = Number(pending.slice(1, eol));
      if (pending.length < eol + 2 + len + 2) return; // the rest of the list is still coming
      clientsActive(pending.slice(eol + 2, eol + 2 + len));
      pending = pending.slice(eol + 2 + len + 2);
    } else {
      pending = pending.slice(eol + 2);
      if (asked === 'ping') record(performance.now() - sentAt);
    }
    timer = setTimeout(send, everyMs);
  }
});
parentPort?.on('message', (m: unknown) => {
  if (m === 'stop') sock.destroy();
});

function send(): void {
  sentAt = performance.now();
  if (sentAt - lastClients >= CLIENTS_EVERY_MS) {
    lastClients = sentAt;
    asked = 'clients';
    sock.write(CLIENT_LIST);
  } else {
    asked = 'ping';
    sock.write(PING);
  }
}

/** Whether a connection that is not the runner's sent a command within the last second. */
function clientsActive(list: string): void {
  let active = 0;
  for (const line of list.split('\n')) {
    if (line === '' || line.includes(` name=${runnerName}`)) continue;
    if (/ idle=0 /.test(line) && !/ cmd=client\|list /.test(line)) active = 1;
  }
  out[1] = active;
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
