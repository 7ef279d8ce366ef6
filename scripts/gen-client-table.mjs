#!/usr/bin/env node
/**
 * Writes the client compatibility table into README.md, between
 * `<!-- client-matrix:begin -->` and `<!-- client-matrix:end -->`, from a run of the client
 * matrix: every test file in test/ that records cells with test/client-matrix.ts (it imports
 * `./client-matrix.js`), run with REBORN_CLIENT_MATRIX_OUT set so that each cell appends a
 * JSON line.
 *
 *   node scripts/gen-client-table.mjs                 build, run the matrix, rewrite the README section (npm run gen:clients)
 *   node scripts/gen-client-table.mjs --stdout        the same, but print the section only
 *   node scripts/gen-client-table.mjs --from <file>   render an earlier run's JSON lines instead of running the tests
 *
 * One row per scenario (the matrix's own rows first, in its order, then rows other files
 * record), one column per client library × protocol. A cell is ✓ when every record of it
 * passed, ✗ with a numbered footnote (the first failure's message) otherwise, and — when
 * nothing ran (a scenario that does not apply to that protocol). Failing cells are the
 * table's content, not an error: the exit code is 1 only when the run recorded nothing, or the
 * test run failed without any failing cell to show for it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { replaceBetween, runIfMain, writeReadmeSection } from './readme-section.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const README = resolve(root, 'README.md');
export const BEGIN = '<!-- client-matrix:begin -->';
export const END = '<!-- client-matrix:end -->';
const OUT_ENV = 'REBORN_CLIENT_MATRIX_OUT';

const PASS = '✓';
const FAIL = '✗';
const NOT_RUN = '—';
/** Libraries in the table's column order; others follow alphabetically. */
const LIBRARIES = ['node-redis', 'ioredis'];
const SUPERSCRIPT = '⁰¹²³⁴⁵⁶⁷⁸⁹';

const cell = (text) => String(text).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const footnoteMark = (n) => [...String(n)].map((d) => SUPERSCRIPT[Number(d)]).join('');

/** The test files that record matrix cells. */
export function matrixTestFiles(dir = join(root, 'test')) {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts'))
    .filter((f) => /from\s+['"]\.\/client-matrix\.js['"]/.test(readFileSync(join(dir, f), 'utf8')))
    .sort()
    .map((f) => join('test', f));
}

/** Records from JSON lines (blank lines ignored; a malformed line is an error naming it). */
export function parseRecords(text) {
  return text
    .split('\n')
    .map((line, i) => [line.trim(), i + 1])
    .filter(([line]) => line !== '')
    .map(([line, n]) => {
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        throw new Error(`line ${n} is not JSON: ${line.slice(0, 80)}`);
      }
      for (const field of ['client', 'protocol', 'scenario']) {
        if (typeof rec[field] !== 'string') throw new Error(`line ${n} has no ${field}`);
      }
      if (typeof rec.ok !== 'boolean') throw new Error(`line ${n} has no ok`);
      return rec;
    });
}

/** "ioredis 6.1.0 (replyMapping resp3)" → library, version parts and the rest, for sorting. */
function columnKey(client, protocol) {
  const m = /^(\S+)\s+(\d+(?:\.\d+)*)?\s*(.*)$/.exec(client) ?? [client, client, '', ''];
  const library = m[1];
  const rank = LIBRARIES.indexOf(library);
  return { library, rank: rank < 0 ? LIBRARIES.length : rank, version: (m[2] ?? '').split('.').map(Number), rest: m[3] ?? '', protocol };
}

function compareColumns(a, b) {
  const [x, y] = [columnKey(a.client, a.protocol), columnKey(b.client, b.protocol)];
  if (x.rank !== y.rank) return x.rank - y.rank;
  if (x.library !== y.library) return x.library < y.library ? -1 : 1;
  for (let i = 0; i < Math.max(x.version.length, y.version.length); i++) {
    const d = (y.version[i] ?? 0) - (x.version[i] ?? 0); // newer first
    if (d !== 0) return d;
  }
  if (x.protocol !== y.protocol) return x.protocol === 'RESP3' ? -1 : 1; // RESP3 first
  return x.rest === y.rest ? 0 : x.rest < y.rest ? -1 : 1; // plain before a variant ("(replyMapping …)")
}

/**
 * The README section (without the markers) for `records`. `meta`: { date, redisVersion } —
 * what the run was made with, printed above the table.
 */
export function renderClientSection(records, meta = {}) {
  const columns = [];
  const rows = [];
  const cells = new Map();
  for (const r of records) {
    const colId = `${r.client}\u0000${r.protocol}`;
    if (!columns.some((c) => c.id === colId)) columns.push({ id: colId, client: r.client, protocol: r.protocol });
    let row = rows.find((x) => x.scenario === r.scenario);
    if (!row) rows.push((row = { scenario: r.scenario, order: typeof r.row === 'number' && r.row >= 0 ? r.row : Infinity, seen: rows.length }));
    const key = `${r.scenario}\u0000${colId}`;
    const c = cells.get(key) ?? { ok: true, error: undefined };
    if (!r.ok && c.ok) Object.assign(c, { ok: false, error: r.error ?? 'failed (no message)' });
    cells.set(key, c);
  }
  columns.sort(compareColumns);
  // The matrix's own rows in its order, then other rows in the order they first appeared.
  rows.sort((a, b) => (a.order !== b.order ? a.order - b.order : a.seen - b.seen));

  const notes = [];
  const noteOf = (text) => {
    let i = notes.indexOf(text);
    if (i < 0) i = notes.push(text) - 1;
    return i + 1;
  };
  let passed = 0;
  let failed = 0;
  const lines = rows.map((row) => {
    const marks = columns.map((col) => {
      const c = cells.get(`${row.scenario}\u0000${col.id}`);
      if (!c) return NOT_RUN;
      if (c.ok) {
        passed++;
        return PASS;
      }
      failed++;
      return `${FAIL}${footnoteMark(noteOf(c.error))}`;
    });
    return `| ${cell(row.scenario)} | ${marks.join(' | ')} |`;
  });
  const ran = [meta.date && `on ${meta.date}`, meta.redisVersion && `against Redis ${meta.redisVersion}`].filter(Boolean).join(' ');
  return [
    '<!-- Generated by scripts/gen-client-table.mjs from the client matrix tests (test/client-matrix*.test.ts and every test recording with test/client-matrix.ts); do not edit by hand: run `npm run gen:clients`. -->',
    '',
    `Last run${ran ? ` ${ran}` : ''}: ${passed + failed} cells, ${passed} ${PASS}, ${failed} ${FAIL}. ` +
      `${PASS} passed, ${FAIL} failed (the note says how), ${NOT_RUN} does not apply. What each row checks: [docs/clients.md](docs/clients.md).`,
    '',
    `| scenario | ${columns.map((c) => cell(`${c.client} ${c.protocol}`)).join(' | ')} |`,
    `|---|${columns.map(() => ':-:').join('|')}|`,
    ...lines,
    ...(notes.length > 0 ? ['', ...notes.map((n, i) => `${i + 1}. ${cell(n)}`)] : []),
  ].join('\n');
}

/** README text with the section replaced, or undefined when the markers are missing. */
export const replaceSection = (readme, section) => replaceBetween(readme, section, BEGIN, END);

function redisVersion() {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return /v=(\S+)/.exec(r.stdout ?? '')?.[1];
}

/**
 * Test files whose suite failed outside any test (a failed beforeAll: nothing of it ran), from
 * vitest's JSON report: their cells would otherwise read as "does not apply".
 */
export function brokenSuites(report) {
  return (report.testResults ?? [])
    .filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'))
    .map((f) => `${f.name}: ${String(f.message ?? 'failed').split('\n')[0]}`);
}

/** Builds, runs the matrix test files with the output variable set; returns { records, testsFailed }. */
function runMatrix() {
  const files = matrixTestFiles();
  if (files.length === 0) throw new Error('no test file in test/ imports ./client-matrix.js');
  const build = spawnSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('`npx tsc -b` failed');
  const dir = mkdtempSync(join(tmpdir(), 'reborn-client-matrix-'));
  const out = join(dir, 'cells.jsonl');
  try {
    writeFileSync(out, '');
    process.stderr.write(`gen-client-table: running ${files.join(', ')}\n`);
    const report = join(dir, 'report.json');
    const run = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...files], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, [OUT_ENV]: out },
    });
    if (!existsSync(report)) throw new Error(`vitest wrote no report (exit ${run.status})`);
    const broken = brokenSuites(JSON.parse(readFileSync(report, 'utf8')));
    if (broken.length > 0) throw new Error(`a matrix suite failed before its tests ran; the README is left as it was:\n  ${broken.join('\n  ')}`);
    return { records: parseRecords(readFileSync(out, 'utf8')), testsFailed: run.status !== 0 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(argv) {
  const stdoutOnly = argv.includes('--stdout');
  const fromAt = argv.indexOf('--from');
  let records;
  let testsFailed = false;
  if (fromAt >= 0) {
    const file = argv[fromAt + 1];
    if (!file) throw new Error('--from needs a file of JSON lines');
    records = parseRecords(readFileSync(resolve(file), 'utf8'));
  } else {
    ({ records, testsFailed } = runMatrix());
  }
  if (records.length === 0) throw new Error('the run recorded no cell: was every matrix test skipped, or did the suites fail to start?');
  if (testsFailed && records.every((r) => r.ok)) {
    throw new Error('the tests failed but no cell did: a suite failed outside its cells (see the output above); the README is left as it was');
  }
  const section = renderClientSection(records, { date: new Date().toISOString().slice(0, 10), redisVersion: redisVersion() });
  if (stdoutOnly) {
    process.stdout.write(`${section}\n`);
    return 0;
  }
  const failedCells = records.filter((r) => !r.ok).length;
  return writeReadmeSection({
    tool: 'gen-client-table',
    readmePath: README,
    section,
    begin: BEGIN,
    end: END,
    summary: ` (${records.length} records, ${failedCells} failed)`,
  });
}

runIfMain(import.meta.url, 'gen-client-table', main);
