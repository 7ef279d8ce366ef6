/**
 * reborn-config's verbs: parse (options.ts), run the operation (servers.ts), print (output.ts).
 * `runCli` returns the exit status instead of exiting, so tests can drive it in-process; the
 * binary (main.ts) only wires process streams and signals to it. The operation verbs are in
 * cli-verbs.ts by verb group; following a migration is cli-follow.ts; this file runs help,
 * check and dashboard itself.
 *
 * Output contract: results on stdout, progress on stderr, exit 0 on success, otherwise
 * non-zero with exactly one line `reborn-config: <reason>` on stderr.
 */
import { Store } from '@reborn/coordinator';
import { errorCode, exitCodeOf, oneLine } from './errors.js';
import { parseCommandLine, usage, type Command, type GlobalOptions } from './options.js';
import { json } from './output.js';
import { Admin } from './servers.js';
import { NL, cliLogger, type CliIo } from './cli-io.js';
import { execute } from './cli-verbs.js';
import { ETCD_CALL_TIMEOUT_MS, explainEtcdSilence } from './etcd-trouble.js';

export type { CliIo } from './cli-io.js';

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let store: Store | null = null;
  let parsed: { global: GlobalOptions; command: Command } | null = null;
  try {
    parsed = parseCommandLine(argv, io.env);
    const { global, command } = parsed;
    if (command.verb === 'help') {
      io.stdout(usage(command.topic));
      return 0;
    }
    store = await Store.open({ endpoints: global.etcd, product: global.product, dialTimeoutMs: ETCD_CALL_TIMEOUT_MS, callTimeoutMs: ETCD_CALL_TIMEOUT_MS });
    if (command.verb === 'dashboard') return await dashboard(store, global, command, io);
    if (command.verb === 'check') return await check(store, global, command, io);
    await execute(new Admin(store, { ...io.admin, redisPassword: global.redisPassword }), global, command, io);
    return 0;
  } catch (raw) {
    // A silent etcd in the operator's words: which endpoints, how many reachable, what changed.
    const err = parsed ? await explainEtcdSilence(raw, parsed.global.etcd, ETCD_CALL_TIMEOUT_MS, outcomeOf(parsed.command, store !== null)) : raw;
    io.stderr(`reborn-config: ${oneLine(err)}${NL}`);
    if (errorCode(err) === 'EINTERNAL' && io.env['REBORN_DEBUG']) io.stderr(`${(err as Error).stack ?? ''}${NL}`);
    return exitCodeOf(err);
  } finally {
    await store?.close();
  }
}

/** Where to look after a write verb met a silent etcd (its outcome is unknown). */
const CHECK_WITH: Partial<Record<Command['verb'], string>> = {
  'group add': 'group list',
  'group remove': 'group list',
  'group set': 'group list',
  'server add': 'group list',
  'server remove': 'group list',
  'server promote': 'group list',
  'slot init': 'slot list',
  'slot set': 'slot list',
  'slot migrate': 'migration list',
  'slot rebalance': 'migration list',
  'migration pause': 'migration list',
  'migration resume': 'migration list',
  'migration cancel': 'migration list',
  'proxy offline': 'proxy list',
  'redis-config set': 'redis-config list',
  'redis-config unset': 'redis-config list',
  'topology restore': 'slot list',
  check: 'check',
};

/** What a verb that met a silent etcd left behind, said to the operator. */
function outcomeOf(command: Command, connected: boolean): string {
  const readOnly =
    (command.verb === 'slot rebalance' && !command.confirm) || (command.verb === 'check' && !command.fix) || CHECK_WITH[command.verb] === undefined;
  if (!connected || readOnly) return 'nothing was changed';
  return `the change may or may not have been made: check with "reborn-config ${CHECK_WITH[command.verb]}" once etcd answers again`;
}

/**
 * `check`: the report (or JSON) on stdout; exit 0 clean, 3 when something was found (or left
 * by --fix), 4 when some server could not be checked. Ctrl-C stops at the next SCAN page.
 */
async function check(store: Store, global: GlobalOptions, command: Extract<Command, { verb: 'check' }>, io: CliIo): Promise<number> {
  const { checkProduct, checkExitCode, formatCheckReport } = await import('./check.js');
  const result = await checkProduct(store, {
    fix: command.fix,
    ...(command.throttle === undefined ? {} : { throttle: command.throttle }),
    ...(command.scanCount === undefined ? {} : { scanCount: command.scanCount }),
    ...(command.examples === undefined ? {} : { maxExamples: command.examples }),
    redisPassword: global.redisPassword,
    logger: await cliLogger(global, 2, 'warn'),
    ...(io.signal ? { signal: io.signal } : {}),
  });
  const text = global.json ? json(result) : formatCheckReport(result);
  io.stdout(text.endsWith(NL) ? text : text + NL);
  return checkExitCode(result);
}

/**
 * `dashboard`: the REST API (+ /metrics, /healthz) and the product's migration runner, until
 * the signal aborts; then stops accepting, stops the runner at a safe point, closes etcd.
 */
async function dashboard(store: Store, global: GlobalOptions, command: Extract<Command, { verb: 'dashboard' }>, io: CliIo): Promise<number> {
  const logger = await cliLogger(global, 1, 'info');
  const [{ createApi }, { MigrationRunner }] = await Promise.all([import('./api.js'), import('./runner-api.js')]);
  const api = createApi({
    store,
    etcdEndpoints: global.etcd,
    etcdTimeoutMs: ETCD_CALL_TIMEOUT_MS,
    logger: logger.child({ component: 'api' }),
    token: command.token,
    allowHosts: command.allowHosts,
    admin: { ...io.admin, redisPassword: global.redisPassword },
    stats: { redisPassword: global.redisPassword },
  });
  const server = await api.listen(command.httpAddr);
  const runner = new MigrationRunner({ store, logger: logger.child({ component: 'runner' }), redisPassword: global.redisPassword });
  io.graceful?.();
  try {
    await runner.start();
    logger.info({ addr: server.address, auth: command.token !== null, allowHosts: command.allowHosts }, 'dashboard listening');
    io.onListening?.(server.address);
    await new Promise<void>((resolve) => {
      if (!io.signal || io.signal.aborted) return resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    logger.info('dashboard stopping');
  } finally {
    await server.close();
    await runner.stop().catch((err: unknown) => logger.error({ err }, 'runner did not stop cleanly'));
  }
  logger.info('dashboard stopped');
  return 0;
}
