/**
 * The client compatibility matrix's result recording (not a test file itself).
 *
 * A matrix cell is one scenario (a row of the README table) run by one client under one
 * protocol (a column). Wrap a test body in `matrixRow(client, protocol, scenario)` and its
 * outcome is recorded: when REBORN_CLIENT_MATRIX_OUT names a file, each run of the body
 * appends one JSON line `{client, protocol, scenario, ok, error?, file, row}` to it. Without the
 * variable nothing is written and the wrapper only passes the body through, so matrix tests
 * run as ordinary tests too. scripts/gen-client-table.mjs runs every test file that imports
 * this module with the variable set, and renders the lines into README.md.
 *
 * Invariant: the wrapped test's own outcome is never changed (a failure is recorded, then
 * rethrown), and one line is one complete JSON record: a single appendFileSync of a short
 * line, so matrix files running in parallel workers never interleave their records.
 *
 * Several tests may record the same cell (a scenario checked in parts): the cell passes only
 * when every one of its records passed. Other test files add rows (client-side caching,
 * cluster mode, …) just by recording under their own scenario names.
 */
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const MATRIX_OUT_ENV = 'REBORN_CLIENT_MATRIX_OUT';

export type Protocol = 'RESP2' | 'RESP3';

export interface MatrixRecord {
  /** The client library and its version, e.g. "node-redis 6.4.0". */
  client: string;
  protocol: Protocol;
  /** The row of the table, e.g. "hashes". */
  scenario: string;
  ok: boolean;
  /** First line of the failure (for the table's footnote), when !ok. */
  error?: string;
  /** The test file that recorded it, relative to the repository. */
  file?: string;
  /** The scenario's place in SCENARIOS, -1 for rows of other files (the table's row order). */
  row: number;
}

/**
 * The scenario rows of this matrix, in the table's order; rows recorded by other files
 * follow, in the order they first appear.
 */
export const SCENARIOS = [
  'connect with defaults',
  'strings',
  'hashes',
  'lists',
  'sets',
  'sorted sets',
  'streams',
  'HyperLogLog',
  'bitmaps',
  'geo',
  'TTLs',
  'pipeline of 1,000 commands',
  'MULTI/EXEC',
  'WATCH, aborted EXEC',
  'pub/sub: channels',
  'pub/sub: patterns',
  'pub/sub: sharded channels',
  'commands on a subscribed connection',
  'blocking pops woken by another client',
  'SCAN of 5,000 keys over both groups',
  'MGET/MSET/DEL across groups',
  'slot migration under load',
  'failover under load',
] as const;

const REPO = fileURLToPath(new URL('../', import.meta.url));
const MAX_ERROR_CHARS = 300;

/** The first line of an error, without terminal colours, short enough for a footnote. */
export function errorLine(err: unknown): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/\u001b\[[0-9;]*m/g, '').split('\n').find((l) => l.trim() !== '') ?? text;
  const trimmed = line.trim();
  return trimmed.length > MAX_ERROR_CHARS ? `${trimmed.slice(0, MAX_ERROR_CHARS - 1)}…` : trimmed;
}

/** Appends one record when REBORN_CLIENT_MATRIX_OUT is set; a no-op otherwise. */
export function recordMatrixResult(rec: MatrixRecord): void {
  const out = process.env[MATRIX_OUT_ENV];
  if (!out) return;
  appendFileSync(out, `${JSON.stringify(rec)}\n`);
}

/** The test file running now (vitest's test path), relative to the repository. */
function currentFile(): string | undefined {
  const path = expect.getState().testPath;
  return path ? relative(REPO, path) : undefined;
}

/**
 * Wraps a test body so that its outcome is recorded as the cell (client, protocol,
 * scenario): `it('…', matrixRow('ioredis 5.11.1', 'RESP2', 'hashes')(async () => { … }))`.
 */
export function matrixRow(client: string, protocol: Protocol, scenario: string) {
  return <A extends unknown[]>(body: (...args: A) => unknown) =>
    async (...args: A): Promise<void> => {
      const base = { client, protocol, scenario, file: currentFile(), row: (SCENARIOS as readonly string[]).indexOf(scenario) };
      try {
        await body(...args);
      } catch (err) {
        recordMatrixResult({ ...base, ok: false, error: errorLine(err) });
        throw err;
      }
      recordMatrixResult({ ...base, ok: true });
    };
}
