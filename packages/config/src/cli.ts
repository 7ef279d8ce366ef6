/**
 * reborn-config's verbs: parse (options.ts), run the operation (servers.ts), print (output.ts).
 * `runCli` returns the exit status instead of exiting, so tests can drive it in-process; the
 * binary (main.ts) only wires process streams and signals to it.
 *
 * Output contract: results on stdout, progress on stderr, exit 0 on success,
 * otherwise non-zero with exactly one line `reborn-config: <reason>` on stderr.
 *
 * `slot migrate` without --detach follows the task until every slot of the range is online in
 * the target group. When a runner (a dashboard) is alive for the product it only watches;
 * otherwise it runs the task itself. Ctrl-C then stops the local run at a safe point and the
 * task stays in etcd, resumable: the same `slot migrate` (or a dashboard) continues it.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { SlotState, Store, ValidationError, type MigrationTask } from '@reborn/coordinator';
import { InterruptedError, MigrationEndedError, errorCode, exitCodeOf, oneLine } from './errors.js';
import { parseCommandLine, usage, type Command, type GlobalOptions } from './options.js';
import {
  formatGroups,
  formatMigrationSummary,
  formatMigrations,
  formatPlan,
  formatProgress,
  formatProxies,
  formatSlotInfo,
  formatSlotRanges,
  json,
} from './output.js';
import { Admin, formatSlotList, type AdminOptions } from './servers.js';
import { etcdTrouble } from './etcd-trouble.js';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  /** Aborted on Ctrl-C / SIGTERM. */
  signal?: AbortSignal;
  /**
   * Called by verbs that handle an interruption themselves (they stop at a safe point); for
   * the others the binary exits at once on Ctrl-C.
   */
  graceful?(): void;
  /** Called with the address the dashboard listens on (tests use port 0). */
  onListening?(addr: string): void;
  /** Timeouts for redis operations (tests shorten them). */
  admin?: AdminOptions;
}

const NL = '\n';

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let store: Store | null = null;
  try {
    const { global, command } = parseCommandLine(argv, io.env);
    if (command.verb === 'help') {
      io.stdout(usage(command.topic));
      return 0;
    }
    store = await Store.open({ endpoints: global.etcd, product: global.product, dialTimeoutMs: 5000 });
    if (command.verb === 'dashboard') return await dashboard(store, global, command, io);
    if (command.verb === 'check') return await check(store, global, command, io);
    await execute(new Admin(store, { ...io.admin, redisPassword: global.redisPassword }), global, command, io);
    return 0;
  } catch (err) {
    io.stderr(`reborn-config: ${oneLine(err)}${NL}`);
    if (errorCode(err) === 'EINTERNAL' && io.env['REBORN_DEBUG']) io.stderr(`${(err as Error).stack ?? ''}${NL}`);
    return exitCodeOf(err);
  } finally {
    await store?.close();
  }
}

/**
 * pino, the API (prom-client) and the runner (ioredis) are imported by the verbs that use
 * them: most calls need none, and start-up time is most of a CLI call.
 */
async function cliLogger(global: GlobalOptions, dest: number, dflt: string): Promise<Logger> {
  const { default: pino } = await import('pino');
  return pino(
    { level: global.logLevel || dflt, base: { app: 'reborn-config', product: global.product } },
    pino.destination({ dest, sync: true }),
  );
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

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function execute(admin: Admin, global: GlobalOptions, command: Exclude<Command, { verb: 'help' | 'dashboard' | 'check' }>, io: CliIo): Promise<void> {
  const out = (s: string): void => io.stdout(s.endsWith(NL) ? s : s + NL);
  const note = (s: string): void => io.stderr(s + NL);
  switch (command.verb) {
    case 'group add':
      await admin.addGroup(command.gid);
      return out(`group ${command.gid} added`);
    case 'group remove':
      await admin.removeGroup(command.gid);
      return out(`group ${command.gid} removed`);
    case 'group list': {
      const groups = await admin.listGroups();
      return out(global.json ? json(groups) : formatGroups(groups));
    }
    case 'server add': {
      const { role } = await admin.addServer(command.gid, command.addr);
      return out(
        role === 'master'
          ? `server ${command.addr} added to group ${command.gid} as master`
          : `server ${command.addr} added to group ${command.gid} as replica (replication link up, initial sync done)`,
      );
    }
    case 'server remove': {
      const { role } = await admin.removeServer(command.gid, command.addr);
      return out(`server ${command.addr} (${role}) removed from group ${command.gid}`);
    }
    case 'server promote': {
      const r = await admin.promoteServer(command.gid, command.addr);
      for (const w of r.warnings) note(`warning: ${w}`);
      return out(`server ${command.addr} is now the master of group ${command.gid}; old master ${r.oldMaster} is its replica (caught up at offset ${r.offset})`);
    }
    case 'slot init': {
      const plan = await admin.initSlots(command.force);
      return out(`slots assigned: ${plan.map((p) => `${p.first}-${p.last} → group ${p.group}`).join(', ')}`);
    }
    case 'slot set': {
      const { changedOwner } = await admin.setSlots(command.first, command.last, command.gid);
      if (changedOwner > 0) note(`warning: ${changedOwner} slot(s) changed owner without moving their data`);
      return out(`slots ${command.first}-${command.last} online in group ${command.gid} (no data was moved)`);
    }
    case 'slot list': {
      const ranges = await admin.listSlots();
      return out(global.json ? json(ranges) : formatSlotRanges(ranges));
    }
    case 'slot info': {
      const info = await admin.slotInfo(command.id);
      return out(global.json ? json(info) : formatSlotInfo(info));
    }
    case 'slot migrate': {
      const { first, last, gid } = command;
      const { task, resumed } = await admin.startMigration(first, last, gid, {
        ...(command.throttle === undefined ? {} : { throttle: command.throttle }),
        ...(command.batchSlots === undefined ? {} : { batchSlots: command.batchSlots }),
      });
      if (task === null) {
        // With --detach stdout carries only a task id (scripts capture it): here there is none.
        const msg = `slots ${first}-${last} are already online in group ${gid}: nothing to move`;
        return command.detach ? note(msg) : out(msg);
      }
      if (command.detach) {
        if (resumed) note(`migration ${task.id} of these slots already exists (${task.state})`);
        return out(task.id);
      }
      note(
        resumed
          ? `resuming migration ${task.id} (${task.state}): slots ${formatSlotList(task.slots)} → group ${task.to}`
          : `created migration ${task.id}: slots ${formatSlotList(task.slots)} from group(s) ${task.from.join(',')} → group ${task.to}`,
      );
      return out(await follow(admin, global, task.id, io));
    }
    case 'slot rebalance': {
      if (!command.confirm) return out(formatPlan(await admin.rebalancePlan(), false));
      const { plan, tasks } = await admin.rebalance();
      io.stdout(formatPlan(plan, true));
      const lines: string[] = [];
      for (const t of tasks) {
        note(`created migration ${t.id}: slots ${formatSlotList(t.slots)} → group ${t.to}`);
        lines.push(await follow(admin, global, t.id, io));
      }
      return lines.length > 0 ? out(lines.join(NL)) : undefined;
    }
    case 'migration list': {
      const tasks = await admin.listMigrations();
      return out(global.json ? json(tasks) : formatMigrations(tasks));
    }
    case 'migration pause':
    case 'migration resume':
    case 'migration cancel': {
      const op = command.verb.slice('migration '.length) as 'pause' | 'resume' | 'cancel';
      const before = await admin.getMigration(command.id);
      const after = await admin.changeMigration(command.id, op);
      if (after.state === before.state) return out(`migration ${command.id} is already ${after.state}`);
      out(`migration ${command.id}: ${before.state} → ${after.state}`);
      if (op !== 'pause' && !(await admin.runnerAlive())) {
        note(`note: no runner is alive for product ${global.product}; start "reborn-config dashboard" (or re-run the same "slot migrate") to carry this out`);
      }
      return;
    }
    case 'proxy list': {
      const proxies = await admin.listProxies();
      if (global.json) return out(json(proxies));
      return out(formatProxies(proxies, await admin.stalledBarriers()));
    }
    case 'topology save': {
      const { saveTopology } = await import('./topology.js');
      const text = JSON.stringify(await saveTopology(admin.store), null, 2) + NL;
      if (command.file === '-') return out(text);
      await writeFile(command.file, text);
      return out(`topology of product ${global.product} saved to ${command.file}`);
    }
    case 'topology restore': {
      const { restoreTopology } = await import('./topology.js');
      let doc: unknown;
      try {
        doc = JSON.parse(command.file === '-' ? await readStdin() : await readFile(command.file, 'utf8'));
      } catch (err) {
        throw new ValidationError(`cannot read a saved topology from ${command.file}: ${(err as Error).message}`);
      }
      const r = await restoreTopology(admin.store, doc, { force: command.force });
      if (global.json) return out(json(r));
      for (const w of r.warnings) note(`warning: ${w}`);
      return out(
        r.unchanged
          ? `product ${r.product} already holds this topology (generation ${r.generation}); nothing written`
          : `product ${r.product} restored: generation ${r.generation}, groups ${r.groupsWritten.join(',') || '-'} written, ${r.slotsWritten} slots written (${r.assignedSlots} served)`,
      );
    }
    case 'proxy offline': {
      const { registered } = await admin.proxyOffline(command.id);
      return out(`proxy ${command.id} fenced at every group's servers${registered ? ' and its registration deleted' : ''}`);
    }
  }
}

/**
 * Follows migration `id` to its end (see the top of this file); returns the summary line, or
 * throws when it ends other than done, or when interrupted.
 */
async function follow(admin: Admin, global: GlobalOptions, id: string, io: CliIo): Promise<string> {
  const started = Date.now();
  const store = admin.store;
  let lastLine = '';
  let lastAt = 0;
  const progress = (t: MigrationTask): void => {
    const line = formatProgress(t);
    const now = Date.now();
    if (line !== lastLine && (now - lastAt >= 1000 || t.state !== 'running')) {
      io.stderr(line + NL);
      lastLine = line;
      lastAt = now;
    }
  };
  io.graceful?.();
  const signal = io.signal;
  const { MigrationRunner, isRunnerAlive, waitForMigration } = await import('./runner-api.js');
  let final: MigrationTask | null = null;
  while (final === null) {
    if (await isRunnerAlive(store)) {
      io.stderr(`a runner is alive for product ${global.product}: following migration ${id} (Ctrl-C detaches; the task goes on)${NL}`);
      // Follow while the runner lives; if it goes away (its lease expired), run the task here.
      const ctl = new AbortController();
      const onAbort = (): void => ctl.abort(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      let runnerGone = false;
      const watch = setInterval(() => {
        isRunnerAlive(store).then(
          (alive) => {
            if (!alive && !ctl.signal.aborted) {
              runnerGone = true;
              ctl.abort(new Error('runner gone'));
            }
          },
          () => undefined,
        );
      }, 2000);
      try {
        final = await waitForMigration(store, id, progress, ctl.signal, etcdTrouble((line) => io.stderr(line + NL), 'Ctrl-C detaches; the task goes on'));
      } catch (err) {
        if (!ctl.signal.aborted) throw err;
      } finally {
        clearInterval(watch);
        signal?.removeEventListener('abort', onAbort);
      }
      if (final === null && signal?.aborted) {
        const now = await admin.getMigration(id);
        if (isFinished(now)) final = now;
        else throw new InterruptedError(`detached from migration ${id}; it goes on in the runner (see "migration list")`);
      }
      if (final === null && runnerGone) io.stderr(`the runner of product ${global.product} went away${NL}`);
      continue;
    }
    io.stderr(`no runner is alive for product ${global.product}: running migration ${id} here (Ctrl-C stops at a safe point; the task stays resumable)${NL}`);
    const runner = new MigrationRunner({ store, logger: await cliLogger(global, 2, 'warn'), redisPassword: global.redisPassword });
    const poll = pollProgress(admin, id, progress, etcdTrouble((line) => io.stderr(line + NL), 'Ctrl-C stops at a safe point'));
    try {
      final = await runner.runTask(id, signal ? { signal } : {});
    } catch (err) {
      if (!signal?.aborted) throw err;
      final = await admin.getMigration(id);
    } finally {
      poll.stop();
      await runner.stop().catch(() => undefined);
    }
    if (signal?.aborted && !isFinished(final)) {
      throw new InterruptedError(
        `stopped migration ${id} at a safe point; it stays ${final.state} in etcd: run the same "slot migrate" again, or start "reborn-config dashboard", to finish it`,
      );
    }
  }
  progress(final);
  if (final.state !== 'done') {
    const why = final.error ? `: ${final.error}` : '';
    if (isFinished(final)) throw new MigrationEndedError(`migration ${id} ended ${final.state}${why}`);
    throw new MigrationEndedError(`migration ${id} is ${final.state}, not done${why}; see "migration list"`);
  }
  const slots = await store.listSlots();
  const bad = final.slots.map((s) => slots[s]!).find((s) => !(s.state === SlotState.Online && s.group === final.to));
  if (bad) {
    throw new MigrationEndedError(`migration ${id} says done but slot ${bad.id} is ${bad.state} in group ${bad.group}, not online in group ${final.to}`);
  }
  return formatMigrationSummary(final, Date.now() - started);
}

function isFinished(t: MigrationTask): boolean {
  return t.state === 'done' || t.state === 'cancelled' || t.state === 'failed';
}

/** Reads the task every 500 ms and reports it (the local runner writes progress to etcd). */
function pollProgress(admin: Admin, id: string, report: (t: MigrationTask) => void, onEtcd: (err: Error | null) => void): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    try {
      report(await admin.getMigration(id));
      onEtcd(null);
    } catch (err) {
      // etcd hiccup: the runner itself decides what that means; keep polling, and say so.
      onEtcd(err as Error);
    }
    if (!stopped) timer = setTimeout(() => void tick(), 500);
  };
  timer = setTimeout(() => void tick(), 500);
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
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
