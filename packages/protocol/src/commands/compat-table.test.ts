/**
 * The README's compatibility table is generated from the command table (policy.ts +
 * generated.ts) by scripts/gen-compat-table.mjs; this fails when the README is out of date.
 * The generator reads the built package (packages/protocol/dist), so build first
 * (`npx tsc -b`, which `npm test` does).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../../', import.meta.url));

describe('README compatibility table', () => {
  it('is built from the protocol package', () => {
    expect(existsSync(`${root}packages/protocol/dist/index.js`), 'run `npx tsc -b` first').toBe(true);
  });

  it('is up to date (else run `npm run gen:readme`)', () => {
    const run = spawnSync(process.execPath, ['scripts/gen-compat-table.mjs', '--check'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.error).toBeUndefined();
    expect(run.stderr.trim(), 'gen-compat-table --check').toBe('');
    expect(run.status).toBe(0);
  });

  it('lists every command and subcommand with a status', () => {
    const run = spawnSync(process.execPath, ['scripts/gen-compat-table.mjs', '--stdout'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(0);
    const rows = run.stdout.split('\n').filter((l) => /^\| [A-Z]/.test(l));
    const byName = new Map(rows.map((r) => [r.split(' | ')[0]!.slice(2), r]));
    expect(rows.length).toBe(byName.size);
    expect(byName.get('GET')).toContain('| supported |');
    expect(byName.get('MSETNX')).toContain('| supported with conditions |');
    expect(byName.get('CLIENT SETNAME')).toContain('| supported |');
    expect(byName.get('CONFIG SET')).toContain('| supported with conditions |');
    expect(byName.get('CONFIG RESETSTAT')).toContain('| refused |');
    expect(byName.get('MULTI')).toContain('| supported with conditions |');
    expect(byName.get('SUBSCRIBE')).toMatch(/supported with conditions \| the proxy subscribes once per server/);
    for (const row of rows) expect(row, row).toMatch(/\| (supported|supported with conditions|refused) \|/);
  });
});
