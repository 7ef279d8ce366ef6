// A steady client for the benchmarks: one connection sending one small command at a time
// (a new one GAP_MS after each answer: steady, without eating a core of this 2-core machine)
// and recording how long each waited.
// The longest wait is the "stall" a client of that server (or of that group, through the proxy)
// saw: a MIGRATE of a big key blocks the source's only thread, and this client waits it out.
//
//   const probe = startStallProbe(port, ['GET', 'key:…']);
//   probe.mark('during');          // later samples count for 'during'
//   const { before, during } = await probe.stop();   // per label: { count, max, p99 } in ms
//
// The client runs in a child process of its own (this file, run as a script): in the
// benchmark's process its timings would include that process's own work (the migration runner
// lives there), which no real client of the group suffers. The parent sends labels on the
// child's stdin, one per line; closing stdin makes the child print its summary as JSON.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const GAP_MS = 1;

function encode(args) {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** Ends of complete RESP replies in `buf` (bulk, simple, error, integer; no aggregates needed here). */
function replyEnd(buf) {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return -1;
  if (buf[0] !== 0x24 /* $ */) return eol + 2;
  const len = Number(buf.subarray(1, eol).toString('latin1'));
  if (len < 0) return eol + 2;
  const end = eol + 2 + len + 2;
  return buf.length >= end ? end : -1;
}

function probeHere(port, command, label = 'before') {
  const samples = new Map(); // label → number[] (ms)
  let current = label;
  let stopped = false;
  let sentAt = 0;
  let pending = Buffer.alloc(0);
  const payload = encode(command);
  const sock = net.connect({ host: '127.0.0.1', port });
  sock.setNoDelay(true);
  let errors = 0;
  const send = () => {
    if (stopped) return;
    sentAt = performance.now();
    sock.write(payload);
  };
  sock.on('connect', send);
  sock.on('error', () => (errors++));
  sock.on('data', (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const end = replyEnd(pending);
    if (end < 0) return;
    if (pending[0] === 0x2d /* - */) errors++;
    pending = pending.subarray(end);
    const ms = performance.now() - sentAt;
    let list = samples.get(current);
    if (list === undefined) samples.set(current, (list = []));
    list.push(ms);
    setTimeout(send, GAP_MS);
  });
  const summary = (list) => {
    const sorted = [...list].sort((a, b) => a - b);
    return { count: sorted.length, max: sorted.at(-1) ?? 0, p99: sorted[Math.floor(sorted.length * 0.99)] ?? 0 };
  };
  return {
    mark(next) {
      current = next;
    },
    async stop() {
      stopped = true;
      sock.destroy();
      const out = { errors };
      for (const [k, list] of samples) out[k] = summary(list);
      return out;
    },
  };
}

/** Starts the probe in a child process (see the header). */
export function startStallProbe(port, command) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), String(port), ...command], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stdin.on('error', () => {});
  const done = new Promise((resolve) => child.on('close', resolve));
  return {
    mark(label) {
      child.stdin.write(`${label}\n`);
    },
    async stop() {
      child.stdin.end();
      await done;
      try {
        return JSON.parse(out);
      } catch {
        return { errors: 1 };
      }
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [port, ...command] = process.argv.slice(2);
  const probe = probeHere(Number(port), command);
  let buf = '';
  process.stdin.setEncoding('utf8').on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      probe.mark(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  process.stdin.on('end', async () => {
    process.stdout.write(JSON.stringify(await probe.stop()));
    process.exit(0);
  });
}
