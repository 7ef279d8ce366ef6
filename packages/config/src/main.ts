/**
 * reborn-config entry point: wires process streams and signals to runCli (cli.ts).
 *
 * Signals. Verbs that can stop at a safe point (slot migrate, slot rebalance, dashboard) say
 * so through `graceful()`; Ctrl-C or SIGTERM then aborts their signal and they wind down. For
 * every other verb — and on a second Ctrl-C — the process exits at once with status 130.
 */
import { runCli } from './cli.js';

const ac = new AbortController();
let graceful = false;
let signals = 0;

const onSignal = (sig: NodeJS.Signals): void => {
  signals++;
  if (!graceful || signals > 1) {
    process.stderr.write(`reborn-config: interrupted (${sig})\n`);
    process.exit(130);
  }
  ac.abort(new Error(`interrupted (${sig})`));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const code = await runCli(process.argv.slice(2), {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  env: process.env,
  signal: ac.signal,
  graceful: () => {
    graceful = true;
  },
});
// Let stdout drain (a pipe to `jq`, say) before exiting; lingering client handles must not
// keep the process alive.
process.stdout.write('', () => process.exit(code));
