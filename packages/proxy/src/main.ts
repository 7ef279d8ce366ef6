/**
 * reborn-proxy entry point: options (flags > env > defaults), logger, signals, workers.
 *
 * With `--workers N` (N > 1) this process is a supervisor: it forks N workers with
 * node:cluster that share the client port (the primary hands out connections round-robin).
 * Each worker is a complete proxy with its own backend connections, its own etcd
 * registration and barrier acks (id `<id>-w<n>`) and its own admin port (`--admin-addr`
 * port + n, or a free port when that is 0). A worker that dies is forked again.
 */
import cluster from 'node:cluster';
import pino from 'pino';
import { joinAddr, parseOptionsOrExit, runUntilSignalled, splitAddr } from '@reborn/coordinator';
import { parseProxyOptions, usage } from './options.js';
import { Proxy } from './proxy.js';

let options = parseOptionsOrExit('reborn-proxy', process.argv.slice(2), parseProxyOptions, usage);

const workerIndex = cluster.isWorker ? Number(process.env['REBORN_WORKER_INDEX'] ?? '0') : -1;
if (cluster.isWorker) {
  const { host: adminHost, port: adminPort } = splitAddr(options.adminAddr);
  options = {
    ...options,
    id: `${options.id}-w${workerIndex}`,
    adminAddr: joinAddr(adminHost, adminPort === 0 ? 0 : adminPort + workerIndex),
  };
}

const logger = pino({ level: options.logLevel, base: { app: 'reborn-proxy', id: options.id, product: options.product } });

if (options.workers > 1 && cluster.isPrimary) {
  superviseWorkers(options.workers);
} else {
  serve();
}

function superviseWorkers(count: number): void {
  let stopping = false;
  const fork = (index: number): void => {
    const worker = cluster.fork({ REBORN_WORKER_INDEX: String(index) });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      logger.error({ worker: index, code, signal }, 'proxy worker exited; starting it again');
      setTimeout(() => fork(index), 500);
    });
  };
  for (let i = 0; i < count; i++) fork(i);
  logger.info({ workers: count }, 'proxy workers started');
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
    const check = setInterval(() => {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        clearInterval(check);
        process.exit(0);
      }
    }, 50);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGTERM'));
}

function serve(): void {
  runUntilSignalled(new Proxy(options, logger), logger, 'proxy');
}
