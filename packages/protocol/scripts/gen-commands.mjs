#!/usr/bin/env node
/**
 * Regenerates packages/protocol/src/commands/generated.ts from a real redis-server.
 *
 *   npm run gen:commands            (uses `redis-server` from PATH)
 *   REDIS_SERVER=/path/to/redis-server npm run gen:commands
 *
 * It starts its own redis-server on a free loopback port with a throw-away directory and no
 * persistence, asks `COMMAND INFO` (every command, with subcommands and key specs) and
 * `COMMAND DOCS` (group, since, summary), stops exactly that server and writes the table.
 * The generated file is committed: it is the source of truth, this script only refreshes it
 * when we move to a newer Redis.
 *
 * Plain Node ESM with no dependencies: a tiny RESP2 reader is enough for two commands.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const OUT = resolve(here, '../src/commands/generated.ts');
const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
const START_TIMEOUT_MS = 10_000;
const REPLY_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------
// A minimal RESP2 client: one request at a time, replies as JS values (errors as Error).

function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return out;
}

/** Parses one RESP2 value at `pos`; returns [value, nextPos] or undefined when incomplete. */
function parse(buf, pos) {
  if (pos >= buf.length) return undefined;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('latin1', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new Error(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return undefined;
      return [buf.toString('utf8', next, next + len), next + len + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (r === undefined) return undefined;
        items.push(r[0]);
        p = r[1];
      }
      return [items, p];
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

function connect(port) {
  return new Promise((resolvePromise, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.removeListener('error', reject);
      resolvePromise(sock);
    });
    sock.once('error', reject);
  });
}

function request(sock, args) {
  return new Promise((resolvePromise, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no reply to ${args[0]} within ${REPLY_TIMEOUT_MS} ms`)), REPLY_TIMEOUT_MS);
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let r;
      try {
        r = parse(buf, 0);
      } catch (err) {
        done(err);
        return;
      }
      if (r === undefined) return;
      if (r[0] instanceof Error) done(r[0]);
      else done(undefined, r[0]);
    };
    const onError = (err) => done(err);
    function done(err, value) {
      clearTimeout(timer);
      sock.removeListener('data', onData);
      sock.removeListener('error', onError);
      if (err) reject(err);
      else resolvePromise(value);
    }
    sock.on('data', onData);
    sock.on('error', onError);
    sock.write(encode(args));
  });
}

// ---------------------------------------------------------------------------------------
// Our own redis-server.

function freePort() {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePromise(port));
    });
  });
}

async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'reborn-gen-commands-'));
  const port = await freePort();
  const child = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = false;
  child.once('exit', () => (exited = true));
  const spawnError = new Promise((_, reject) => child.once('error', reject));
  spawnError.catch(() => {});

  // Readiness: keep connecting until PING answers (no fixed sleeps).
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited) throw new Error(`redis-server exited during start-up:\n${output}`);
    try {
      const sock = await Promise.race([connect(port), spawnError]);
      const pong = await request(sock, ['PING']);
      if (pong === 'PONG') return { child, dir, port, sock };
      sock.destroy();
    } catch (err) {
      if (err && err.code === 'ENOENT') throw new Error(`cannot run ${REDIS_SERVER}: not found`);
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} not ready: ${err}\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function stopRedis({ child, dir, sock }) {
  sock.destroy();
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------
// Conversion to our CommandSpec shape (src/commands/types.ts).

/** RESP2 renders maps as flat [k, v, k, v, …] arrays. */
function flatToObject(arr) {
  const obj = {};
  if (!Array.isArray(arr)) return obj;
  for (let i = 0; i + 1 < arr.length; i += 2) obj[arr[i]] = arr[i + 1];
  return obj;
}

function convertKeySpec(raw) {
  const ks = flatToObject(raw);
  const bs = flatToObject(ks.begin_search);
  const bsSpec = flatToObject(bs.spec);
  const fk = flatToObject(ks.find_keys);
  const fkSpec = flatToObject(fk.spec);
  let begin;
  if (bs.type === 'index') begin = { index: Number(bsSpec.index) };
  else if (bs.type === 'keyword') begin = { keyword: String(bsSpec.keyword), startFrom: Number(bsSpec.startfrom) };
  else if (bs.type === 'unknown') begin = { unknown: true };
  else throw new Error(`unexpected begin_search type ${bs.type}`);
  let find;
  if (fk.type === 'range') {
    find = { range: { lastKey: Number(fkSpec.lastkey), step: Number(fkSpec.keystep), limit: Number(fkSpec.limit) } };
  } else if (fk.type === 'keynum') {
    find = {
      keynum: { keynumIdx: Number(fkSpec.keynumidx), firstKey: Number(fkSpec.firstkey), step: Number(fkSpec.keystep) },
    };
  } else if (fk.type === 'unknown') find = { unknown: true };
  else throw new Error(`unexpected find_keys type ${fk.type}`);
  return { begin, find, flags: Array.isArray(ks.flags) ? ks.flags.map(String) : [] };
}

function convertCommand(info, docsByName) {
  // COMMAND INFO entry: [name, arity, flags, first, last, step, acl, tips, keyspecs, subcommands]
  const [name, arity, flags, , , , , , keySpecs, subcommands] = info;
  const lname = String(name).toLowerCase();
  const doc = docsByName.get(lname) ?? {};
  const spec = {
    name: lname,
    arity: Number(arity),
    flags: (flags ?? []).map((f) => String(f)),
    keySpecs: (keySpecs ?? []).map(convertKeySpec),
    group: String(doc.group ?? 'unknown'),
    since: String(doc.since ?? ''),
    summary: String(doc.summary ?? ''),
  };
  if (Array.isArray(subcommands) && subcommands.length > 0) {
    const subDocs = new Map();
    for (const [k, v] of Object.entries(flatToObject(doc.subcommands))) subDocs.set(k.toLowerCase(), flatToObject(v));
    spec.subcommands = subcommands.map((s) => convertCommand(s, subDocs)).sort(byName);
  }
  return spec;
}

function byName(a, b) {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

// ---------------------------------------------------------------------------------------
// Rendering: stable, diff-friendly TypeScript (one key spec per line).

/** A single-quoted TS string literal. */
const q = (s) =>
  `'${String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n').replace(/\r/g, '\\r')}'`;
const list = (xs) => `[${xs.map(q).join(', ')}]`;

function renderBegin(b) {
  if ('index' in b) return `{ index: ${b.index} }`;
  if ('keyword' in b) return `{ keyword: ${q(b.keyword)}, startFrom: ${b.startFrom} }`;
  return '{ unknown: true }';
}

function renderFind(f) {
  if ('range' in f) return `{ range: { lastKey: ${f.range.lastKey}, step: ${f.range.step}, limit: ${f.range.limit} } }`;
  if ('keynum' in f) {
    const k = f.keynum;
    return `{ keynum: { keynumIdx: ${k.keynumIdx}, firstKey: ${k.firstKey}, step: ${k.step} } }`;
  }
  return '{ unknown: true }';
}

function renderSpec(s, indent) {
  const pad = ' '.repeat(indent);
  const lines = [`${pad}{`];
  lines.push(`${pad}  name: ${q(s.name)},`);
  lines.push(`${pad}  arity: ${s.arity},`);
  lines.push(`${pad}  flags: ${list(s.flags)},`);
  if (s.keySpecs.length === 0) lines.push(`${pad}  keySpecs: [],`);
  else {
    lines.push(`${pad}  keySpecs: [`);
    for (const k of s.keySpecs) {
      lines.push(`${pad}    { begin: ${renderBegin(k.begin)}, find: ${renderFind(k.find)}, flags: ${list(k.flags)} },`);
    }
    lines.push(`${pad}  ],`);
  }
  lines.push(`${pad}  group: ${q(s.group)},`);
  lines.push(`${pad}  since: ${q(s.since)},`);
  lines.push(`${pad}  summary: ${q(s.summary)},`);
  if (s.subcommands) {
    lines.push(`${pad}  subcommands: [`);
    for (const sub of s.subcommands) lines.push(renderSpec(sub, indent + 4));
    lines.push(`${pad}  ],`);
  }
  lines.push(`${pad}},`);
  return lines.join('\n');
}

function render(specs, version) {
  const subCount = specs.reduce((n, s) => n + (s.subcommands?.length ?? 0), 0);
  return `/**
 * GENERATED FILE — DO NOT EDIT.
 *
 * The Redis command table (arity, flags, key specs, group, summary) as reported by
 * redis-server ${version} through \`COMMAND INFO\` and \`COMMAND DOCS\`:
 * ${specs.length} commands and ${subCount} subcommands, sorted by name.
 *
 * Regenerate with \`npm run gen:commands\` (packages/protocol/scripts/gen-commands.mjs; it
 * starts a throw-away redis-server, set REDIS_SERVER to choose the binary). How the proxy
 * treats each command is written by hand in policy.ts.
 */
import type { CommandSpec } from './types.js';

export const REDIS_VERSION = ${q(version)};

export const REDIS_COMMANDS: readonly CommandSpec[] = [
${specs.map((s) => renderSpec(s, 2)).join('\n')}
];
`;
}

// ---------------------------------------------------------------------------------------

async function main() {
  const redis = await startRedis();
  let info, docs, serverInfo;
  try {
    info = await request(redis.sock, ['COMMAND', 'INFO']);
    docs = await request(redis.sock, ['COMMAND', 'DOCS']);
    serverInfo = await request(redis.sock, ['INFO', 'server']);
  } finally {
    await stopRedis(redis);
  }
  const version = /redis_version:([^\r\n]+)/.exec(serverInfo)?.[1] ?? 'unknown';
  const docsByName = new Map();
  for (const [k, v] of Object.entries(flatToObject(docs))) docsByName.set(k.toLowerCase(), flatToObject(v));
  const specs = info
    .filter((c) => Array.isArray(c))
    .map((c) => convertCommand(c, docsByName))
    .sort(byName);
  writeFileSync(OUT, render(specs, version));
  const subCount = specs.reduce((n, s) => n + (s.subcommands?.length ?? 0), 0);
  console.log(`wrote ${OUT}: ${specs.length} commands, ${subCount} subcommands (redis ${version})`);
}

main().catch((err) => {
  console.error(`gen-commands: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
