/**
 * The client matrix's recording and its README table, without starting anything: matrixRow
 * appends one JSON line per run of a cell (and only when REBORN_CLIENT_MATRIX_OUT is set),
 * and scripts/gen-client-table.mjs renders lines into the table — rows in the matrix's
 * order, columns by library, version and protocol, ✗ with deduplicated footnotes, — where
 * nothing ran — and refuses input it cannot trust.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BEGIN, END, brokenSuites, matrixTestFiles, parseRecords, renderClientSection, replaceSection } from '../scripts/gen-client-table.mjs';
import { MATRIX_OUT_ENV, matrixRow, type MatrixRecord } from './client-matrix.js';

const saved = process.env[MATRIX_OUT_ENV];
const dirs: string[] = [];

afterEach(() => {
  if (saved === undefined) delete process.env[MATRIX_OUT_ENV];
  else process.env[MATRIX_OUT_ENV] = saved;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function outFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'reborn-matrix-table-'));
  dirs.push(dir);
  return join(dir, 'cells.jsonl');
}

const rec = (client: string, protocol: 'RESP2' | 'RESP3', scenario: string, ok: boolean, row: number, error?: string): MatrixRecord => ({
  client,
  protocol,
  scenario,
  ok,
  row,
  ...(error === undefined ? {} : { error }),
});

describe('matrixRow', () => {
  it('records a pass and a failure (first line of the message, no colours), and rethrows the failure', async () => {
    const out = outFile();
    process.env[MATRIX_OUT_ENV] = out;
    await matrixRow('lib 1.0.0', 'RESP2', 'hashes')(async () => undefined)();
    const failing = matrixRow('lib 1.0.0', 'RESP3', 'hashes')(() => {
      throw new Error('\u001b[31mexpected 1\u001b[39m to be 2\nsecond line');
    });
    await expect(failing()).rejects.toThrow('to be 2');
    const lines = parseRecords(readFileSync(out, 'utf8'));
    expect(lines).toEqual([
      { client: 'lib 1.0.0', protocol: 'RESP2', scenario: 'hashes', ok: true, row: 2, file: 'test/client-matrix-table.test.ts' },
      { client: 'lib 1.0.0', protocol: 'RESP3', scenario: 'hashes', ok: false, row: 2, error: 'expected 1 to be 2', file: 'test/client-matrix-table.test.ts' },
    ]);
  });

  it('writes nothing without the variable, and passes the body through', async () => {
    delete process.env[MATRIX_OUT_ENV];
    let ran = 0;
    await matrixRow('lib 1.0.0', 'RESP2', 'x')(async (n: number) => {
      ran = n;
    })(7);
    expect(ran).toBe(7);
  });
});

describe('gen-client-table', () => {
  it('renders rows in matrix order then others, columns node-redis before ioredis, newer first, RESP3 first', () => {
    const section = renderClientSection(
      [
        rec('ioredis 5.11.1', 'RESP2', 'client-side caching', true, -1),
        rec('ioredis 5.11.1', 'RESP2', 'hashes', true, 2),
        rec('ioredis 6.1.0', 'RESP2', 'hashes', false, 2, 'boom | pipe'),
        rec('node-redis 6.4.0', 'RESP2', 'hashes', true, 2),
        rec('node-redis 6.4.0', 'RESP3', 'connect with defaults', true, 0),
        rec('ioredis 6.1.0', 'RESP3', 'hashes', false, 2, 'boom | pipe'),
        rec('ioredis 6.1.0', 'RESP3', 'hashes', true, 2),
        rec('ioredis 6.1.0 (replyMapping resp3)', 'RESP3', 'hashes', true, 2),
      ],
      { date: '2026-12-07', redisVersion: '7.0.15' },
    );
    const lines = section.split('\n');
    expect(lines[2]).toBe(
      'Last run on 2026-12-07 against Redis 7.0.15: 7 cells, 5 ✓, 2 ✗. ✓ passed, ✗ failed (the note says how), — does not apply. What each row checks: [docs/clients.md](docs/clients.md).',
    );
    expect(lines.slice(4)).toEqual([
      '| scenario | node-redis 6.4.0 RESP3 | node-redis 6.4.0 RESP2 | ioredis 6.1.0 RESP3 | ioredis 6.1.0 (replyMapping resp3) RESP3 | ioredis 6.1.0 RESP2 | ioredis 5.11.1 RESP2 |',
      '|---|:-:|:-:|:-:|:-:|:-:|:-:|',
      '| connect with defaults | ✓ | — | — | — | — | — |',
      // A cell fails when any of its records failed; one note per distinct message.
      '| hashes | — | ✓ | ✗¹ | ✓ | ✗¹ | ✓ |',
      '| client-side caching | — | — | — | — | — | ✓ |',
      '',
      '1. boom \\| pipe',
    ]);
  });

  it('replaces only the marked section', () => {
    const readme = `# R\n\n${BEGIN}\nold\n${END}\n\nafter\n`;
    expect(replaceSection(readme, 'new')).toBe(`# R\n\n${BEGIN}\nnew\n${END}\n\nafter\n`);
    expect(replaceSection('# no markers\n', 'new')).toBeUndefined();
  });

  it('refuses malformed lines and finds suites that failed before their tests', () => {
    expect(() => parseRecords('{"client":"a","protocol":"RESP2","scenario":"s","ok":true}\nnot json\n')).toThrow('line 2 is not JSON');
    expect(() => parseRecords('{"client":"a","protocol":"RESP2","ok":true}\n')).toThrow('line 1 has no scenario');
    expect(
      brokenSuites({
        testResults: [
          { name: 'a.test.ts', status: 'failed', message: 'beforeAll failed\nstack', assertionResults: [{ status: 'skipped' }] },
          { name: 'b.test.ts', status: 'failed', assertionResults: [{ status: 'failed' }] },
          { name: 'c.test.ts', status: 'passed', assertionResults: [{ status: 'passed' }] },
        ],
      }),
    ).toEqual(['a.test.ts: beforeAll failed']);
  });

  it('runs the test files that record cells', () => {
    expect(matrixTestFiles()).toEqual(expect.arrayContaining(['test/client-matrix.test.ts', 'test/client-matrix-disruption.test.ts']));
    expect(matrixTestFiles()).not.toContain('test/proxy-resp3.test.ts');
  });
});
