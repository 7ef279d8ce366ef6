/**
 * What the README generators (gen-compat-table.mjs, gen-client-table.mjs) share: replacing the
 * text between two marker comments, writing README.md (or only checking it), and running a
 * script's main when the file is run rather than imported.
 *
 * Invariant: text outside the markers is never changed, and README.md is written only when
 * its content changes; without the markers nothing is written and the section is printed.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** `readme` with the text between `begin` and `end` replaced by `section`, or undefined when a marker is missing. */
export function replaceBetween(readme, section, begin, end) {
  const from = readme.indexOf(begin);
  const to = readme.indexOf(end, from + begin.length);
  if (from < 0 || to < 0) return undefined;
  return `${readme.slice(0, from + begin.length)}\n${section}\n${readme.slice(to)}`;
}

/**
 * Puts `section` between the markers of the README at `readmePath` and says so on stderr
 * (`summary` is appended to that line); returns the exit code. A README without the markers
 * (or none at all): the section goes to stdout, and 1. With `check`: nothing is written, and
 * 1 with `staleMessage` when the README is out of date.
 */
export function writeReadmeSection({ tool, readmePath, section, begin, end, check = false, staleMessage = 'README.md is out of date', summary = '' }) {
  const readme = existsSync(readmePath) ? readFileSync(readmePath, 'utf8') : undefined;
  const updated = readme === undefined ? undefined : replaceBetween(readme, section, begin, end);
  if (updated === undefined) {
    process.stdout.write(`${section}\n`);
    process.stderr.write(
      `${tool}: ${readme === undefined ? 'README.md does not exist' : `README.md has no ${begin} … ${end} markers`}; the table is printed above\n`,
    );
    return 1;
  }
  if (check) {
    if (updated === readme) return 0;
    process.stderr.write(`${tool}: ${staleMessage}\n`);
    return 1;
  }
  if (updated !== readme) writeFileSync(readmePath, updated);
  process.stderr.write(`${tool}: README.md ${updated !== readme ? 'updated' : 'already up to date'}${summary}\n`);
  return 0;
}

/**
 * Runs `main(argv)` and exits with its code when the module at `moduleUrl` is the script node
 * was started with (not when a test imports it); an error becomes one line on stderr and exit 1.
 */
export function runIfMain(moduleUrl, tool, main) {
  if (process.argv[1] === undefined || moduleUrl !== pathToFileURL(resolve(process.argv[1])).href) return;
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${tool}: ${err instanceof Error ? err.message : err}\n`);
      process.exit(1);
    },
  );
}
