#!/usr/bin/env node
/**
 * Runs Redis' own test suite (tests/unit/*.tcl of the Redis source that matches the installed
 * redis-server, 7.0.x) against a real reborn cluster — etcd, 2 groups (one redis master each),
 * slots spread over both, one reborn-proxy — and, as a baseline, against one plain
 * redis-server with the very same runtest flags. Prints a per-unit table of
 * ok / err / exception / skip counts for both, and writes it to compat/RESULTS.md (only the
 * part between the GENERATED markers; the hand-written classification around it is kept).
 *
 *   node compat/redis-suite.mjs [--tarball PATH | --src DIR] [--units unit/type/list,...]
 *                               [--no-direct] [--no-optional] [--slow] [--tags "..."] [--resp3]
 *                               [--only "test name" | --only /regexp]...
 *                               [--skiptest "test name" | --skiptest /regexp]...
 *                               [--unit-timeout SEC] [--out FILE] [--no-build] [--no-write] [--strict]
 *
 * --resp3 runs the RESP3 tests: `resp3` is no longer denied (so the RESP3 passes of the
 * `foreach resp {3 2}` loops run), only the units that have RESP3 tests run (unless --units),
 * and a harness probe names every test that ran with a client in RESP3. The report goes into
 * its own GENERATED RESP3 part of compat/RESULTS.md; the normal run's part is left as it is.
 *
 * The tests' own `r config ...` calls go straight to both backend masters (the proxy refuses
 * CONFIG by design; an operator tunes the backends directly); --strict sends them through the
 * proxy like everything else, so every test that touches CONFIG fails.
 *
 * See compat/README.md. Nothing it downloads or extracts is committed (compat/.cache/).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');

// --- options ------------------------------------------------------------------------------

/** The families the proxy supports (one runtest unit each), in report order. */
const CORE_UNITS = [
  'unit/type/string',
  'unit/type/incr',
  'unit/type/list',
  'unit/type/list-2',
  'unit/type/list-3',
  'unit/type/hash',
  'unit/type/set',
  'unit/type/zset',
  'unit/type/stream',
  'unit/type/stream-cgroups',
  'unit/keyspace',
  'unit/expire',
  'unit/multi',
  'unit/scan',
  'unit/bitops',
  'unit/bitfield',
  'unit/hyperloglog',
  'unit/geo',
  'unit/sort',
  'unit/dump',
  'unit/info-command',
  'unit/introspection-2',
  'unit/protocol',
  'unit/quit',
  'unit/scripting',
];
/** Pub/sub: reported separately, not in the core totals (PUBLISH counts differ by design). */
const OPTIONAL_UNITS = ['unit/pubsub', 'unit/pubsubshard'];

/**
 * Tests tagged with these need something the proxy refuses by design (DEBUG, replication,
 * SAVE, CONFIG SET of maxmemory / RESETSTAT, LATENCY, RESET, a local process). A stock
 * redis-server (enable-debug-command no) fails the needs:debug ones too. `slow` keeps a run
 * short (add --slow to include them); `large-memory` is off in runtest anyway.
 */
const DEFAULT_DENY_TAGS = [
  'needs:debug',
  'needs:repl',
  'needs:save',
  'needs:config-maxmemory',
  'needs:config-resetstat',
  'needs:latency',
  'needs:local-process',
  'needs:pfdebug',
  'needs:reset',
  // The normal run stays the RESP2 run it has always been, comparable from run to run: this
  // tag (a test tag, and the harness' own switch for the RESP3 passes of the units that loop
  // over `foreach resp {3 2}`) is denied unless --resp3, which reports the RESP3 tests apart.
  'resp3',
];

/**
 * Picks, for --resp3, the units that have RESP3 tests: the source mentions the `resp3` tag or
 * switches a client with `HELLO 3` / `hello $resp`. Units with neither are skipped (wall time).
 */
const RESP3_SOURCE = /\bresp3\b|\bhello\s+(3|\$resp)\b/i;
function unitsWithResp3(srcDir, units) {
  return units.filter((u) => {
    const f = join(srcDir, 'tests', `${u}.tcl`);
    return existsSync(f) && RESP3_SOURCE.test(readFileSync(f, 'utf8'));
  });
}

function parseArgs(argv) {
  const o = {
    tarball: process.env.REDIS_SRC_TARBALL ?? null,
    src: process.env.REDIS_SRC_DIR ?? null,
    cache: process.env.REBORN_COMPAT_CACHE ?? join(HERE, '.cache'),
    units: null,
    direct: true,
    optional: true,
    slow: false,
    extraTags: '',
    unitTimeout: 900,
    out: join(HERE, 'RESULTS.md'),
    build: true,
    strict: false,
    write: true,
    resp3: false,
    only: [],
    skip: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--tarball': o.tarball = next(); break;
      case '--src': o.src = next(); break;
      case '--cache': o.cache = resolve(next()); break;
      case '--units': o.units = next().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--no-direct': o.direct = false; break;
      case '--no-optional': o.optional = false; break;
      case '--slow': o.slow = true; break;
      case '--tags': o.extraTags = next(); break;
      case '--unit-timeout': {
        // Validated here: Number('abc') is NaN, which the harness would take as "no timeout".
        const v = next();
        o.unitTimeout = Number(v);
        if (!/^\d+$/.test(v) || o.unitTimeout <= 0) {
          console.error(`redis-suite: --unit-timeout wants a positive integer (seconds), got ${JSON.stringify(v)}`);
          process.exit(2);
        }
        break;
      }
      case '--out': o.out = resolve(next()); break;
      case '--no-build': o.build = false; break;
      case '--strict': o.strict = true; break;
      case '--resp3': o.resp3 = true; break;
      case '--only': o.only.push(next()); break; // runtest's own --only, repeatable
      case '--skiptest': o.skip.push(next()); break; // runtest's own --skiptest, repeatable
      case '--no-write': o.write = false; break;
      case '-h': case '--help':
        console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
        process.exit(0);
      default: throw new Error(`unknown option ${a}`);
    }
  }
  return o;
}

// --- the Redis source ---------------------------------------------------------------------

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  }
  return r.stdout;
}

function installedRedisVersion() {
  const out = sh('redis-server', ['--version']);
  const m = /v=(\d+\.\d+\.\d+)/.exec(out);
  if (!m) throw new Error(`cannot read the version of redis-server: ${out}`);
  return m[1];
}

/** A directory holding the Redis source tree (runtest, tests/), extracted into the cache. */
function redisSource(o, version) {
  if (o.src) {
    if (!existsSync(join(o.src, 'runtest'))) throw new Error(`--src ${o.src}: no runtest there`);
    return resolve(o.src);
  }
  mkdirSync(o.cache, { recursive: true });
  const dir = join(o.cache, `redis-${version}`);
  if (existsSync(join(dir, 'runtest'))) return dir;
  let tarball = o.tarball;
  if (!tarball) {
    const dl = join(o.cache, 'apt');
    mkdirSync(dl, { recursive: true });
    const find = () => readdirSync(dl).find((f) => /^redis_.*\.orig\.tar\.(gz|xz)$/.test(f));
    if (!find()) {
      console.log(`fetching the Redis source with apt-get source --download-only redis (into ${dl}) ...`);
      // Needs a deb-src entry (e.g. /etc/apt/sources.list.d/debsrc.sources) and apt-get update.
      sh('apt-get', ['source', '--download-only', 'redis'], { cwd: dl });
    }
    const f = find();
    if (!f) throw new Error(`apt-get source left no redis_*.orig.tar.* in ${dl}`);
    tarball = join(dl, f);
  }
  console.log(`extracting ${tarball} ...`);
  const tmp = join(o.cache, `extract-${process.pid}`);
  mkdirSync(tmp, { recursive: true });
  sh('tar', ['xf', resolve(tarball), '-C', tmp]);
  const top = readdirSync(tmp).find((f) => existsSync(join(tmp, f, 'runtest')));
  if (!top) throw new Error(`${tarball}: no top directory with runtest`);
  const m = /redis-(\d+\.\d+\.\d+)/.exec(top);
  if (m && m[1] !== version) {
    console.warn(`warning: source ${top} is not the installed redis-server ${version}; results may differ`);
  }
  sh('mv', [join(tmp, top), dir]);
  sh('rm', ['-rf', tmp]);
  return dir;
}

/**
 * External mode of runtest sends, before every start_server block, FLUSHALL, FUNCTION FLUSH
 * and one CONFIG SET per override (e.g. `save ""`), outside any test: an error there is an
 * exception that ends the whole unit. The proxy refuses FUNCTION and CONFIG by design, so the
 * harness (not the tests) is patched to tolerate those errors. Idempotent; the same harness
 * runs the direct baseline, where the patched calls succeed as before.
 */
const PATCH_MARK = '# reborn-compat: tolerate refused setup commands';
function patchHarness(srcDir) {
  const f = join(srcDir, 'tests/support/server.tcl');
  let s = readFileSync(f, 'utf8');
  const reps = [
    ['    r flushall\n    r function flush\n', `    ${PATCH_MARK}\n    r flushall\n    catch {r function flush}\n`],
    [
      '        dict set saved_config $param [lindex [r config get $param] 1]\n        r config set $param $val\n',
      '        if {[catch {dict set saved_config $param [lindex [r config get $param] 1]}]} continue\n        if {[catch {r config set $param $val}]} continue\n',
    ],
  ];
  for (const [from, to] of s.includes(PATCH_MARK) ? [] : reps) {
    if (!s.includes(from)) throw new Error(`cannot patch ${f}: expected text not found:\n${from}`);
    s = s.replace(from, to);
  }
  writeFileSync(f, s);

  // `r config ...` goes straight to every server named in REBORN_COMPAT_CONFIG_SERVERS when
  // it is set (the proxy run, unless --strict): many units tune encodings with CONFIG SET
  // outside any test, and an operator sets those on the backends, not through the proxy.
  const h = join(srcDir, 'tests/test_helper.tcl');
  const t = readFileSync(h, 'utf8');
  const rFrom = '        set args [lrange $args 1 end]\n    }\n    [srv $level "client"] {*}$args\n}\n';
  const rTo = [
    '        set args [lrange $args 1 end]',
    '    }',
    `    ${PATCH_MARK}`,
    '    if {[info exists ::env(REBORN_COMPAT_CONFIG_SERVERS)] && [string equal -nocase [lindex $args 0] config]} {',
    '        set res {}',
    '        foreach addr $::env(REBORN_COMPAT_CONFIG_SERVERS) {',
    '            lassign [split $addr :] h p',
    '            set c [redis $h $p 0 $::tls]',
    '            set failed [catch {set res [$c {*}$args]} e opts]',
    '            $c close',
    '            if {$failed} { return -options $opts $e }',
    '        }',
    '        return $res',
    '    }',
    '    [srv $level "client"] {*}$args',
    '}',
    '',
  ].join('\n');
  // `s blocked_clients` (INFO, how wait_for_blocked_client(s) knows a deferred client is
  // blocked before it goes on) is summed over the same servers: the proxy's INFO has no
  // blocked_clients field, so without this every such wait times out (or, for
  // wait_for_blocked_client, passes at once and races the blocking command).
  const sFrom = '        set args [lrange $args 1 end]\n    }\n    status [srv $level "client"] [lindex $args 0]\n}\n';
  const sTo = [
    '        set args [lrange $args 1 end]',
    '    }',
    `    ${PATCH_MARK}`,
    '    if {[info exists ::env(REBORN_COMPAT_CONFIG_SERVERS)] && [lindex $args 0] eq "blocked_clients"} {',
    '        set sum 0',
    '        foreach addr $::env(REBORN_COMPAT_CONFIG_SERVERS) {',
    '            lassign [split $addr :] h p',
    '            set c [redis $h $p 0 $::tls]',
    '            incr sum [status $c blocked_clients]',
    '            $c close',
    '        }',
    '        return $sum',
    '    }',
    '    status [srv $level "client"] [lindex $args 0]',
    '}',
    '',
  ].join('\n');
  let u = t;
  for (const [from, to, what] of [[rFrom, rTo, 'proc r'], [sFrom, sTo, 'proc s']]) {
    if (u.includes(to)) continue;
    if (!u.includes(from)) throw new Error(`cannot patch ${h}: ${what} not found`);
    u = u.replace(from, to);
  }
  if (u !== t) writeFileSync(h, u);
  patchResp3Probe(srcDir);
}

/**
 * The RESP3 probe: when REBORN_COMPAT_RESP3_LOG names a file, `proc test` appends one line
 * `<kind>\t<run>\t<test name>` for every RESP3 test (run: the how-many-th test of that name), kind
 * being `tag` (tagged resp3), `already` (a client was already in RESP3 when the test began: the
 * RESP3 pass of a `foreach resp {3 2}` loop, or a client an earlier test left in RESP3) or
 * `hello` (the test sends HELLO 3 itself); `tag-ignored` for a resp3-tagged test that another
 * tag kept from running. The redis client remembers the protocol each connection asked for
 * with HELLO. The harness output has only names, so this is how the report tells which tests
 * exercise RESP3. Without the variable the probe writes nothing; the tests are not touched.
 */
const PROBE_MARK = '# reborn-compat: RESP3 probe v3';
function patchResp3Probe(srcDir) {
  const edits = [
    [
      'tests/support/redis.tcl',
      '    if {[info command ::redis::__method__$method] eq {}} {\n        catch {unset ::redis::attributes($id)}\n',
      [
        '    if {[info command ::redis::__method__$method] eq {}} {',
        '        catch {unset ::redis::attributes($id)}',
        `        ${PROBE_MARK}`,
        '        if {[string equal -nocase $method hello] && [llength $argv] > 0} {',
        '            set ::redis::reborn_proto($id) [lindex $argv 0]',
        '            if {[lindex $argv 0] eq "3"} {set ::reborn_resp3_used 1}',
        '        }',
        '',
      ].join('\n'),
    ],
    [
      'tests/support/redis.tcl',
      '    catch {unset ::redis::callback($id)}\n',
      `    catch {unset ::redis::callback($id)}\n    catch {unset ::redis::reborn_proto($id)} ;${PROBE_MARK}\n`,
    ],
    [
      'tests/support/test.tcl',
      '        send_data_packet $::test_server_fd ignore "$name: $err"\n        return\n',
      `        send_data_packet $::test_server_fd ignore "$name: $err"\n        if {[lsearch $tags resp3] >= 0} {reborn_resp3_note tag-ignored $name} ;${PROBE_MARK}\n        return\n`,
    ],
    [
      'tests/support/test.tcl',
      '    send_data_packet $::test_server_fd testing $name\n',
      [
        '    send_data_packet $::test_server_fd testing $name',
        `    ${PROBE_MARK}`,
        '    set ::reborn_resp3_used 0',
        '    incr ::reborn_runs($name)',
        '    set reborn_resp3_kind {}',
        '    if {[lsearch $tags resp3] >= 0} {set reborn_resp3_kind tag}',
        '    foreach {reborn_id reborn_proto} [array get ::redis::reborn_proto] {',
        '        if {$reborn_resp3_kind eq {} && $reborn_proto eq "3"} {set reborn_resp3_kind already}',
        '    }',
        '',
      ].join('\n'),
    ],
    [
      'tests/support/test.tcl',
      '    if {$::traceleaks} {\n',
      [
        `    ${PROBE_MARK}`,
        '    if {$reborn_resp3_kind eq {} && $::reborn_resp3_used} {set reborn_resp3_kind hello}',
        '    if {$reborn_resp3_kind ne {}} {reborn_resp3_note $reborn_resp3_kind $name $::reborn_runs($name)}',
        '',
        '    if {$::traceleaks} {',
        '',
      ].join('\n'),
    ],
    [
      'tests/support/test.tcl',
      'proc test {name code {okpattern undefined} {tags {}}} {\n',
      [
        `${PROBE_MARK}`,
        'proc reborn_resp3_note {kind name {run 0}} {',
        '    if {![info exists ::env(REBORN_COMPAT_RESP3_LOG)]} return',
        '    set fd [open $::env(REBORN_COMPAT_RESP3_LOG) a]',
        '    puts $fd "$kind\\t$run\\t[string map {"\\n" " "} $name]"',
        '    close $fd',
        '}',
        '',
        'proc test {name code {okpattern undefined} {tags {}}} {',
        '',
      ].join('\n'),
    ],
  ];
  // All edits of a file are written at once, so a file with the mark has them all.
  const byFile = new Map();
  for (const e of edits) {
    const f = join(srcDir, e[0]);
    byFile.set(f, [...(byFile.get(f) ?? []), e]);
  }
  for (const [f, fileEdits] of byFile) {
    let text = readFileSync(f, 'utf8');
    if (text.includes(PROBE_MARK)) continue;
    if (text.includes('reborn-compat: RESP3 probe')) {
      throw new Error(`${f} has an older RESP3 probe: remove ${srcDir} (it is extracted again from the tarball) and run again`);
    }
    for (const [, from, to] of fileEdits) {
      if (!text.includes(from)) throw new Error(`cannot patch ${f} for the RESP3 probe: expected text not found:\n${from}`);
      text = text.replace(from, to);
    }
    writeFileSync(f, text);
  }
}

// --- running one unit ---------------------------------------------------------------------

const ANSI = /\x1b\[[0-9;]*m/g;
const live = new Set();

function killGroup(child, sig = 'SIGKILL') {
  try {
    process.kill(-child.pid, sig);
  } catch {
    // Already gone.
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of live) killGroup(c);
    // The testkit's exit hook SIGKILLs etcd, redis and the proxy it started.
    process.exit(130);
  });
}

/** Runs `./runtest --single <unit>` against host:port; resolves with the parsed counts. */
function runUnit({ srcDir, unit, port, baseport, tags, only = [], skip = [], timeoutSec, logFile, env }) {
  const args = [
    'runtest',
    '--host', '127.0.0.1', '--port', String(port),
    '--single', unit,
    '--cluster-mode', // single db (no SELECT 9), skip cluster:skip tests (cross-slot ones)
    '--durable', // an error inside a test fails that test, not the whole unit
    '--ignore-encoding', // OBJECT ENCODING and DEBUG based checks depend on backend config
    '--ignore-digest',
    '--clients', '1',
    '--timeout', '180', // no progress for this long ends the unit
    '--baseport', String(baseport), '--portcount', '100',
    '--tags', tags,
    ...only.flatMap((t) => ['--only', t]),
    ...skip.flatMap((t) => ['--skiptest', t]),
  ];
  return new Promise((res) => {
    const started = Date.now();
    const child = spawn('sh', args, { cwd: srcDir, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    live.add(child);
    const log = createWriteStream(logFile);
    let out = '';
    child.stdout.on('data', (d) => { out += d; log.write(d); });
    child.stderr.on('data', (d) => { out += d; log.write(d); });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, timeoutSec * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      killGroup(child); // the test client tclsh, should one outlive the server
      log.end();
      const r = parseOutput(out);
      r.exitCode = code ?? signal;
      r.timedOut = timedOut || /\[TIMEOUT\]/.test(out);
      r.seconds = Math.round((Date.now() - started) / 1000);
      res(r);
    });
  });
}

/**
 * How a test is named in the report: its name, and for the n-th run of a name a unit runs more
 * than once (unit/scripting runs most of its tests once for FUNCTION and once for EVAL) ` (run n)`,
 * so that a second run that did not happen shows as "not run" instead of hiding behind the first.
 */
function testKey(name, run) {
  return run > 1 ? `${name} (run ${run})` : name;
}

/** Counts the harness' `[ok]:`, `[err]:`, `[exception]:`, `[skip]:`, `[ignore]:` lines. */
function parseOutput(text) {
  const lines = text.replace(ANSI, '').split('\n');
  const r = { ok: 0, err: 0, exception: 0, skip: 0, ignore: 0, tests: new Map(), errors: new Map(), exceptions: [] };
  const runs = new Map();
  const keyOf = (name) => {
    const n = (runs.get(name) ?? 0) + 1;
    runs.set(name, n);
    return testKey(name, n);
  };
  for (let i = 0; i < lines.length; i++) {
    const m = /^\[(ok|err|exception|skip|ignore)\]: (.*)$/.exec(lines[i]);
    if (!m) continue;
    const [, kind, rest] = m;
    r[kind]++;
    if (kind === 'ok') {
      r.tests.set(keyOf(rest.replace(/ \(\d+ ms\)$/, '')), 'ok');
    } else if (kind === 'err') {
      const name = keyOf(rest.replace(/ in tests\/unit\/\S+\.tcl$/, ''));
      // The failure message: the next lines up to the next harness line.
      const detail = [];
      for (let j = i + 1; j < lines.length && !/^\[[a-z0-9/ ]+\]:|^\[\d+\/\d+/.test(lines[j]) && detail.length < 8; j++) {
        if (lines[j].trim()) detail.push(lines[j].trim());
      }
      r.tests.set(name, 'err');
      r.errors.set(name, detail.join(' | '));
    } else if (kind === 'exception') {
      const detail = lines.slice(i, i + 12).join('\n');
      r.exceptions.push(detail);
    }
  }
  return r;
}

// --- the targets --------------------------------------------------------------------------

async function loadTestkit(build) {
  if (build || !existsSync(join(REPO, 'packages/testkit/dist/index.js'))) {
    const r = spawnSync('npx', ['tsc', '-b'], { cwd: REPO, stdio: 'inherit' });
    if (r.status !== 0) {
      if (!existsSync(join(REPO, 'packages/proxy/dist/main.js'))) throw new Error('npx tsc -b failed');
      console.warn('warning: npx tsc -b failed; using the dist/ already built');
    }
  }
  return import('@reborn/testkit');
}

/**
 * In external mode runtest never restarts the server, and some units leave config behind
 * (unit/type/list sets proto-max-bulk-len to 10gb, which then hangs unit/protocol): every
 * parameter a unit changed is set back on `servers` after it. A unit can also leave a backend
 * spinning in a Lua script (unit/multi's script timeout tests end with SCRIPT KILL, which the
 * proxy refuses): that is killed on the server directly, so the next unit starts clean.
 */
/** One command on a fresh plain connection (ioredis' connect-time checks fail on a BUSY server). */
function rawCommand(srv, ...args) {
  return new Promise((res) => {
    const sock = connect(srv.port, srv.host);
    const done = (v) => {
      sock.destroy();
      res(v);
    };
    sock.setTimeout(2000, () => done(null));
    sock.on('error', () => done(null));
    sock.on('data', (d) => done(d.toString()));
    sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

async function configSnapshot(servers) {
  const snaps = [];
  for (const srv of servers) {
    const c = srv.client({ maxRetriesPerRequest: 1 });
    try {
      const flat = await c.config('GET', '*');
      const m = new Map();
      for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i], flat[i + 1]);
      snaps.push({ srv, m });
    } finally {
      c.disconnect();
    }
  }
  return async () => {
    for (const { srv, m } of snaps) {
      const c = srv.client({ maxRetriesPerRequest: 1 });
      c.on('error', () => {});
      try {
        for (let i = 0; i < 50; i++) {
          const busy = await c.ping().then(() => false, (e) => /^BUSY/.test(e.message));
          if (!busy) break;
          console.warn(`${srv.addr} is BUSY running a script after the unit: SCRIPT KILL / FUNCTION KILL on it directly`);
          await rawCommand(srv, 'SCRIPT', 'KILL');
          await rawCommand(srv, 'FUNCTION', 'KILL');
          await new Promise((r) => setTimeout(r, 100));
        }
        const flat = await c.config('GET', '*');
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const want = m.get(flat[i]);
          if (want !== undefined && want !== flat[i + 1]) {
            // Not fatal (some parameters can't be set back at runtime), but said: a setting a
            // unit left behind can change the results of the units after it.
            await c.config('SET', flat[i], want).catch((err) => {
              console.warn(`warning: could not restore ${flat[i]} on ${srv.addr} (CONFIG SET: ${err.message})`);
            });
          }
        }
      } catch (err) {
        console.warn(`warning: could not restore the config of ${srv.addr}: ${err.message}`);
      } finally {
        c.disconnect();
      }
    }
  };
}

/** The `-tag` list runtest gets: the deny list (less `resp3` with --resp3), `slow`, --tags. */
function runtestTags(o) {
  const deny = [...DEFAULT_DENY_TAGS.filter((t) => !(o.resp3 && t === 'resp3')), ...(o.slow ? [] : ['slow'])];
  return deny.map((t) => `-${t}`).join(' ') + (o.extraTags ? ` ${o.extraTags}` : '');
}

/** The probe's file (see patchResp3Probe) as a Map test key -> kind; empty if none was written. */
function readResp3Probe(file) {
  const m = new Map();
  if (!existsSync(file)) return m;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [kind, run, ...name] = line.split('\t');
    if (name.length) m.set(testKey(name.join('\t'), Number(run) || 1), kind);
  }
  return m;
}

async function runTarget(name, port, baseport, units, o, srcDir, logDir, env, servers) {
  const tags = runtestTags(o);
  const results = new Map();
  const restore = await configSnapshot(servers);
  for (const unit of units) {
    const logFile = join(logDir, `${name}-${unit.replaceAll('/', '_')}.log`);
    const probeFile = join(logDir, `${name}-${unit.replaceAll('/', '_')}.resp3`);
    rmSync(probeFile, { force: true });
    const unitEnv = o.resp3 ? { ...env, REBORN_COMPAT_RESP3_LOG: probeFile } : env;
    const r = await runUnit({ srcDir, unit, port, baseport, tags, only: o.only, skip: o.skip, timeoutSec: o.unitTimeout, logFile, env: unitEnv });
    r.resp3 = readResp3Probe(probeFile);
    results.set(unit, r);
    await restore();
    console.log(
      `${name.padEnd(6)} ${unit.padEnd(26)} ok ${String(r.ok).padStart(3)}  err ${String(r.err).padStart(3)}  exc ${r.exceptions.length}` +
        `  skip ${r.skip + r.ignore}${r.timedOut ? '  TIMEOUT' : ''}  (${r.seconds}s)`,
    );
  }
  return { tags, results };
}

// --- the report ---------------------------------------------------------------------------

function table(units, proxy, direct) {
  const rows = [];
  const head = direct
    ? '| unit | proxy ok | proxy err | proxy exc | proxy skip | direct ok | direct err | direct exc | direct skip |'
    : '| unit | proxy ok | proxy err | proxy exc | proxy skip |';
  rows.push(head, head.replace(/[^|]+/g, (c) => (c.trim() === 'unit' ? '---' : '---:')));
  const tot = { p: [0, 0, 0, 0], d: [0, 0, 0, 0] };
  const cells = (r, acc) => {
    if (!r) return ['–', '–', '–', '–'];
    const v = [r.ok, r.err, r.exceptions.length, r.skip + r.ignore];
    v.forEach((x, i) => (acc[i] += x));
    return v.map((x, i) => (i === 2 && r.timedOut ? `${x} (timeout)` : String(x)));
  };
  for (const u of units) {
    const p = cells(proxy.get(u), tot.p);
    const d = direct ? cells(direct.get(u), tot.d) : [];
    rows.push(`| ${u} | ${[...p, ...d].join(' | ')} |`);
  }
  rows.push(`| **total** | ${[...tot.p, ...(direct ? tot.d : [])].map((x) => `**${x}**`).join(' | ')} |`);
  return { text: rows.join('\n'), tot };
}

/** Tests that pass against redis-server but not through the proxy (or did not run there). */
function differences(units, proxy, direct) {
  const out = [];
  for (const u of units) {
    const p = proxy.get(u);
    const d = direct?.get(u);
    if (!p || !d) continue;
    for (const [name, st] of d.tests) {
      if (st !== 'ok') continue;
      const ps = p.tests.get(name);
      if (ps === 'ok') continue;
      out.push({ unit: u, name, status: ps ?? 'not run', detail: p.errors.get(name) ?? '' });
    }
    for (const [name, st] of p.tests) {
      if (st === 'ok' && d.tests.get(name) === 'err') out.push({ unit: u, name, status: 'ok (direct: err)', detail: d.errors.get(name) ?? '' });
    }
  }
  return out;
}

const BEGIN = '<!-- BEGIN GENERATED by compat/redis-suite.mjs -->';
const END = '<!-- END GENERATED -->';

/** runtest's --only flags of the run, as they appear in the report's flags line. */
function onlyFlags(meta) {
  return meta.only.map((t) => ` --only ${JSON.stringify(t)}`).join('');
}

function md(s) {
  return s.replaceAll('|', '\\|').replace(/\s+/g, ' ').slice(0, 400);
}

function report(o, meta, core, optional) {
  const parts = [];
  parts.push(BEGIN, '');
  parts.push(
    `Run ${meta.date} · Redis test suite ${meta.version} (\`tests/unit\`) · runtest flags: ` +
      `\`--host 127.0.0.1 --port <port> --single <unit> --cluster-mode --durable --ignore-encoding --ignore-digest --clients 1 --tags "${meta.tags}"${onlyFlags(meta)}\` · ` +
      `proxy: reborn-proxy at ${meta.commit} over 2 groups (1 redis-server master each, slots 0-511 / 512-1023) · ` +
      `direct: one redis-server ${meta.version}, same flags. ` +
      (meta.strict ? 'CONFIG calls of the tests went through the proxy (--strict).' : 'CONFIG calls of the tests (`r config ...`) went straight to both backend masters, everything else through the proxy.'),
    '',
    'Counts are test cases as printed by the harness: **ok** passed, **err** failed (an exception inside a',
    'test counts as a failure thanks to `--durable`), **exc** an exception outside any test that ended the',
    'unit early, **skip** tests not run because of their tags (`external:skip`, `cluster:skip`, the denied',
    '`needs:*` tags, `slow`).',
    '',
    '### Core families',
    '',
    table(core.units, core.proxy, core.direct).text,
    '',
  );
  if (optional) {
    parts.push('### Optional: pub/sub (not in the totals above)', '', table(optional.units, optional.proxy, optional.direct).text, '');
  }
  const diffs = [...differences(core.units, core.proxy, core.direct), ...(optional ? differences(optional.units, optional.proxy, optional.direct) : [])];
  if (core.direct) {
    parts.push(`### Tests that pass against redis-server but not through the proxy (${diffs.length})`, '');
    parts.push('| unit | test | proxy | first lines of the failure |', '|---|---|---|---|');
    for (const d of diffs) parts.push(`| ${d.unit} | ${md(d.name)} | ${d.status} | ${md(d.detail)} |`);
    parts.push('');
  }
  const exc = [];
  for (const [label, set] of [['proxy', core.proxy], ['direct', core.direct], ['proxy', optional?.proxy], ['direct', optional?.direct]]) {
    if (!set) continue;
    for (const [u, r] of set) for (const e of r.exceptions) exc.push(`${label} ${u}:\n${e}`);
  }
  if (exc.length) parts.push('### Exceptions (unit ended early)', '', '```', ...exc, '```', '');
  parts.push(END);
  const gen = parts.join('\n');

  return splice(o.out, BEGIN, END, gen);
}

const DOC_HEAD = "# Redis' own test suite against reborn-proxy\n\nGenerated by `node compat/redis-suite.mjs` (see compat/README.md).\n\n";

/**
 * The file `out` with the part between `begin` and `end` replaced by `gen` (markers included);
 * every other part, the other run's generated part too, is kept. A part not there yet goes
 * after the normal run's part, or at the top of a new file.
 */
function splice(out, begin, end, gen) {
  const doc = existsSync(out) ? readFileSync(out, 'utf8') : '';
  if (doc.includes(begin) && doc.includes(end)) {
    return doc.slice(0, doc.indexOf(begin)) + gen + doc.slice(doc.indexOf(end) + end.length);
  }
  if (doc.includes(END)) {
    const at = doc.indexOf(END) + END.length;
    return `${doc.slice(0, at)}\n\n${gen}${doc.slice(at)}`;
  }
  return doc ? `${DOC_HEAD}${gen}\n${doc}` : `${DOC_HEAD}${gen}\n`;
}

// --- the RESP3 report (--resp3) -----------------------------------------------------------

const BEGIN_RESP3 = '<!-- BEGIN GENERATED RESP3 by compat/redis-suite.mjs --resp3 -->';
const END_RESP3 = '<!-- END GENERATED RESP3 -->';

const KIND_TEXT = {
  tag: 'tagged `resp3`',
  already: 'a client already in RESP3 when it begins',
  hello: 'sends HELLO 3 itself',
  'tag-ignored': 'tagged `resp3`, skipped by another tag',
};

/**
 * The RESP3 tests of a --resp3 run, one row each. The set is what the probe saw on the direct
 * run (on the proxy run when there is none): through the proxy, a test that fails half-way can
 * leave its client in RESP3 and make the tests after it look like RESP3 tests.
 */
function resp3Rows(units, proxy, direct) {
  const rows = [];
  for (const u of units) {
    const p = proxy.get(u);
    const d = direct?.get(u);
    const canon = (d ?? p).resp3;
    // A test the proxy run never reached: say why when the unit ended early.
    const ended = p.exceptions.length ? `not reached: the unit ended early (${p.exceptions[0].split('\n')[0]})` : '';
    for (const [name, kind] of canon) {
      const proxyStatus = p.tests.get(name) ?? 'not run';
      rows.push({
        unit: u,
        name,
        kind,
        direct: d ? (d.tests.get(name) ?? 'not run') : null,
        proxy: proxyStatus,
        detail: p.errors.get(name) ?? (proxyStatus === 'not run' ? ended : ''),
      });
    }
  }
  return rows;
}

function resp3Summary(rows) {
  const ran = rows.filter((r) => r.kind !== 'tag-ignored');
  const count = (pred) => ran.filter(pred).length;
  return {
    total: ran.length,
    tagged: count((r) => r.kind === 'tag'),
    already: count((r) => r.kind === 'already'),
    hello: count((r) => r.kind === 'hello'),
    ignored: rows.length - ran.length,
    directRan: count((r) => r.direct === 'ok' || r.direct === 'err'),
    directOk: count((r) => r.direct === 'ok'),
    proxyOk: count((r) => r.proxy === 'ok'),
    proxyErr: count((r) => r.proxy === 'err'),
    proxyNotRun: count((r) => r.proxy === 'not run'),
    broken: ran.filter((r) => r.direct === 'ok' && r.proxy !== 'ok'),
  };
}

function resp3Report(o, meta, units, proxy, direct) {
  const rows = resp3Rows(units, proxy, direct);
  const s = resp3Summary(rows);
  const parts = [BEGIN_RESP3, ''];
  parts.push(
    '## RESP3 tests (`--resp3`)',
    '',
    `Run ${meta.date} · Redis test suite ${meta.version} · units ${units.map((u) => `\`${u}\``).join(', ')} (${o.units ? 'given with --units' : 'the ones with RESP3 tests'}) · ` +
      `same runtest flags as above but \`--tags "${meta.tags}"${onlyFlags(meta)}\` (\`resp3\` not denied) · reborn-proxy at ${meta.commit}, same cluster as above.`,
    '',
    'A RESP3 test is one the harness probe saw run with a client in RESP3: tagged `resp3` (in 7.0.15 only',
    '`unit/protocol`, all also `needs:debug`, so denied), begun with a client already in RESP3 (here the RESP3',
    'passes of the `foreach resp {3 2}` loops of `unit/type/list` and `unit/type/zset`, which only run when',
    '`resp3` is not denied), or sending `HELLO 3` itself (these run in the normal run too). The set is the',
    'direct run\'s; a name a unit runs twice (`unit/scripting`: FUNCTION, then EVAL) gets ` (run 2)`.',
    '',
    `**${s.total} RESP3 tests ran** (${s.tagged} tagged \`resp3\`, ${s.already} begun with a client already in RESP3, ${s.hello} sending HELLO 3 themselves; ` +
      `${s.ignored} more tagged \`resp3\` were skipped by another denied tag). ` +
      (direct ? `Against redis-server: ${s.directOk} of ${s.directRan} passed. ` : '') +
      `Through the proxy: ${s.proxyOk} passed, ${s.proxyErr} failed, ${s.proxyNotRun} not run` +
      (direct ? `; ${s.broken.length} pass against redis-server but not through the proxy.` : '.'),
    '',
    '| unit | RESP3 tests | direct ok | direct err | proxy ok | proxy err | proxy not run |',
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const u of units) {
    const ur = rows.filter((r) => r.unit === u && r.kind !== 'tag-ignored');
    const n = (who, st) => (who === 'direct' && !direct ? '–' : ur.filter((r) => r[who] === st).length);
    parts.push(`| ${u} | ${ur.length} | ${n('direct', 'ok')} | ${n('direct', 'err')} | ${n('proxy', 'ok')} | ${n('proxy', 'err')} | ${n('proxy', 'not run')} |`);
  }
  parts.push('');
  if (direct) {
    parts.push(`### RESP3 tests that pass against redis-server but not through the proxy (${s.broken.length})`, '');
    if (s.broken.length) {
      parts.push('| unit | test | kind | proxy | first lines of the failure |', '|---|---|---|---|---|');
      for (const r of s.broken) parts.push(`| ${r.unit} | ${md(r.name)} | ${r.kind} | ${r.proxy} | ${md(r.detail)} |`);
    } else {
      parts.push('None.');
    }
    parts.push('');
  }
  parts.push('### Every RESP3 test', '', '| unit | test | kind | direct | proxy |', '|---|---|---|---|---|');
  for (const r of rows) parts.push(`| ${r.unit} | ${md(r.name)} | ${KIND_TEXT[r.kind] ?? r.kind} | ${r.direct ?? '–'} | ${r.kind === 'tag-ignored' ? 'skipped' : r.proxy} |`);
  parts.push('', '### All tests of these units', '', table(units, proxy, direct).text, '');
  const exc = [];
  for (const [label, set] of [['proxy', proxy], ['direct', direct]]) {
    if (!set) continue;
    for (const [u, r] of set) for (const e of r.exceptions) exc.push(`${label} ${u}:\n${e}`);
  }
  if (exc.length) parts.push('### Exceptions (unit ended early)', '', '```', ...exc, '```', '');
  parts.push(END_RESP3);
  return { doc: splice(o.out, BEGIN_RESP3, END_RESP3, parts.join('\n')), summary: s };
}

// --- main ---------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const version = installedRedisVersion();
  const srcDir = redisSource(o, version);
  patchHarness(srcDir);
  const logDir = join(o.cache, 'logs');
  mkdirSync(logDir, { recursive: true });
  // --resp3 reports all its units as one list; without --units, only those with RESP3 tests.
  const coreUnits = o.resp3
    ? (o.units ?? unitsWithResp3(srcDir, [...CORE_UNITS, ...(o.optional ? OPTIONAL_UNITS : [])]))
    : (o.units ?? CORE_UNITS);
  const optUnits = o.units || !o.optional || o.resp3 ? [] : OPTIONAL_UNITS;

  const tk = await loadTestkit(o.build);
  console.log('starting etcd, 2 redis groups and a reborn-proxy ...');
  const cluster = await tk.startCluster({ groups: 2, replicas: 0, proxies: 1 });
  const direct = o.direct ? await tk.startRedis() : null;
  const proxy = cluster.proxies[0];
  console.log(`proxy ${proxy.addr} (groups ${cluster.groups.map((g) => g.master.addr).join(', ')})${direct ? `, direct redis ${direct.addr}` : ''}`);
  console.log(`Redis source ${srcDir}; logs in ${logDir}`);

  let core, optional, tags;
  try {
    const all = [...coreUnits, ...optUnits];
    const [p, d] = await Promise.all([
      runTarget('proxy', proxy.port, 21000, all, o, srcDir, logDir, o.strict ? {} : { REBORN_COMPAT_CONFIG_SERVERS: cluster.groups.map((g) => g.master.addr).join(' ') }, cluster.groups.map((g) => g.master)),
      direct ? runTarget('direct', direct.port, 23000, all, o, srcDir, logDir, {}, [direct]) : null,
    ]);
    tags = p.tags;
    const pick = (res, units) => (res ? new Map(units.map((u) => [u, res.results.get(u)])) : null);
    core = { units: coreUnits, proxy: pick(p, coreUnits), direct: pick(d, coreUnits) };
    optional = optUnits.length ? { units: optUnits, proxy: pick(p, optUnits), direct: pick(d, optUnits) } : null;
  } finally {
    await Promise.allSettled([cluster.stop(), direct?.stop()]);
  }

  const meta = {
    date: new Date().toISOString().slice(0, 10),
    version,
    tags,
    only: o.only,
    strict: o.strict,
    commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).stdout.trim(),
  };
  const t = table(core.units, core.proxy, core.direct);
  console.log(`\n${t.text}`);
  if (o.resp3) {
    const { doc, summary: s } = resp3Report(o, meta, core.units, core.proxy, core.direct);
    console.log(`\nRESP3 tests: ${s.total} ran (${s.tagged} tagged resp3, ${s.already} begun in RESP3, ${s.hello} send HELLO 3 themselves), ${s.ignored} tagged resp3 skipped by another tag`);
    if (core.direct) console.log(`direct redis-server: ${s.directOk} of ${s.directRan} passed`);
    console.log(`proxy: ${s.proxyOk} passed, ${s.proxyErr} failed, ${s.proxyNotRun} not run`);
    for (const r of s.broken) console.log(`  pass direct, ${r.proxy} through the proxy: ${r.unit} "${r.name}": ${r.detail.slice(0, 300)}`);
    if (o.write) {
      writeFileSync(o.out, doc);
      console.log(`wrote ${o.out} (its RESP3 part)`);
    }
    return;
  }
  if (optional) console.log(`\n${table(optional.units, optional.proxy, optional.direct).text}`);
  const [pok, perr] = t.tot.p;
  console.log(`\nproxy: ${pok} ok, ${perr} failed` + (core.direct ? `; direct redis-server: ${t.tot.d[0]} ok, ${t.tot.d[1]} failed` : ''));
  if (o.write) {
    writeFileSync(o.out, report(o, meta, core, optional));
    console.log(`wrote ${o.out}`);
  }
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  for (const c of live) killGroup(c);
  process.exit(1);
});
