/**
 * The process supervisor: redis-server and reborn-proxy processes started through the HTTP
 * API, each with its own data dir and log file under --data-dir, kept running.
 *
 *   1. Start: validate, refuse a port another app already uses, spawn the process detached
 *      (its own session: a signal to the agent's terminal or process group does not reach
 *      it) with stdout+stderr appended to logs/<id>.log, wait until it is ready (redis: PING;
 *      proxy: /healthz 200). An exit during startup fails the request with the log tail.
 *   2. Every second, and at once when a child of ours exits: an app whose process is gone
 *      (no such pid, a zombie, or a pid now running another program) has crashed; it is
 *      restarted after 0.5 s, 1 s, 2 s, … up to 30 s between attempts. The backoff starts
 *      over once a process has stayed up for 30 s.
 *      A redis-server is restarted the way the groups in etcd say (redis-restart.ts,
 *      restart-plan.ts): in place when it is in no group or the master of a group without
 *      replicas; NOT while etcd names it master of a group with replicas (back empty, it
 *      would wipe them: the HA leader fails it over first); as a replica (`--replicaof`) of
 *      the master etcd names otherwise, its login to that master set right after start
 *      (runtime only, see repl-guard.ts). Without an answer from etcd it waits and asks
 *      again each second: it never guesses.
 *   3. State file (app-records.ts): every change is written to <data-dir>/agent-state.json
 *      (a temp file renamed: never a torn file). On start the agent reads it and re-adopts
 *      each app whose pid is alive and still the right program (/proc/<pid>/cmdline), and
 *      restarts the rest.
 *      The agent leaves its apps running when it exits: restarting the supervisor must not
 *      take redis down. POST /api/stop is how an app is stopped (SIGTERM, SIGKILL after 10 s).
 *   4. Locked down (app-options.ts): `args` pass a whitelist, a data dir lies inside the
 *      agent's own, and a redis-server gets a config file (0600) with the servers' password
 *      (requirepass: never an open default user) and AOF on. Without a
 *      --redis-password the agent starts no redis at all. Specs read back from the state file
 *      are checked again: one that no longer passes is not restarted.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, realpathSync, writeFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { isValidAddr, isValidName, splitAddr, type Store } from '@reborn/coordinator';
import { checkProxyArgs, checkRedisArgs, redisConfigFile } from './app-options.js';
import { addrField, allowOnly, asBody, portField, portOf, stringField } from './app-requests.js';
import { AgentError, AppExistsError, BadRequestError, StartFailedError, UnknownAppError } from './errors.js';
import type { AgentMetrics } from './metrics.js';
import { isAliveAs, signal } from './proc.js';
import { readStateFile, writeStateFile, type AppRecord, type AppSpec, type AppView, type RedisSpec } from './app-records.js';
import { HOLD_POLL_MS, RedisRestarts, localAddr } from './redis-restart.js';
import type { RedisAdmin } from '@reborn/coordinator/admin';

export type { AppKind, AppState, AppSpec, AppView, ProxySpec, RedisSpec } from './app-records.js';

export interface SupervisorOptions {
  dataDir: string;
  etcd: readonly string[];
  product: string;
  redisBin: string;
  proxyBin: string;
  /** The servers' default-user password: every redis started gets it; null starts no redis. */
  redisPassword: string | null;
  logger: Logger;
  metrics: AgentMetrics;
  admin: RedisAdmin;
  checkIntervalMs?: number;
}

const STATE_FILE = 'agent-state.json';
/** In each redis app's data dir: written at every start, read by redis-server first. */
const REDIS_CONFIG_FILE = 'reborn-redis.conf';
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const STABLE_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const REDIS_READY_MS = 10_000;
const PROXY_READY_MS = 15_000;

export class Supervisor {
  private readonly apps = new Map<string, AppRecord>();
  private readonly starting = new Set<string>();
  /** Redis apps whose restart plan is being read from etcd. */
  private readonly deciding = new Set<string>();
  private readonly restarts: RedisRestarts;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly log: Logger;
  private readonly statePath: string;
  private readonly logsDir: string;

  constructor(private readonly opts: SupervisorOptions) {
    this.log = opts.logger.child({ component: 'supervisor' });
    this.statePath = join(opts.dataDir, STATE_FILE);
    this.logsDir = join(opts.dataDir, 'logs');
    this.restarts = new RedisRestarts({
      admin: opts.admin,
      redisPassword: opts.redisPassword,
      log: this.log,
      registry: opts.metrics.registry,
      apps: () => this.apps.values(),
    });
  }

  /** etcd, once the agent reaches it: redis restarts are planned from its groups (until then they wait). */
  useStore(store: Store): void {
    this.restarts.useStore(store);
    this.check();
  }

  /** Reads the state file, re-adopts live processes, restarts dead ones, starts checking. */
  async start(): Promise<void> {
    mkdirSync(this.logsDir, { recursive: true });
    for (const rec of this.readState()) {
      this.apps.set(rec.id, rec);
      if (rec.state === 'stopped') continue;
      if (this.alive(rec)) {
        rec.state = 'running';
        rec.nextStartAt = null;
        this.log.info({ app: rec.id, pid: rec.pid }, 're-adopted running app');
      } else {
        this.log.warn({ app: rec.id, pid: rec.pid }, 'app not running after agent restart; starting it again');
        rec.pid = null;
        rec.state = 'restarting';
        rec.nextStartAt = Date.now(); // check() restarts (and counts) it right away
      }
    }
    this.persist();
    const interval = this.opts.checkIntervalMs ?? 1000;
    this.timer = setInterval(() => this.check(), interval);
    this.check();
  }

  /** Stops checking and writes the state. Apps keep running. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.persist();
  }

  list(): AppView[] {
    return [...this.apps.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((r) => this.view(r));
  }

  get(id: string): AppView {
    const rec = this.apps.get(id);
    if (!rec) throw new UnknownAppError(id);
    return this.view(rec);
  }

  // -------------------------------------------------------------------------------------------
  // API operations

  /** POST /api/start_redis {port, args?, dataDir?, host?} */
  async startRedis(body: unknown): Promise<AppView> {
    const o = asBody(body);
    allowOnly(o, ['port', 'args', 'dataDir', 'host']);
    if (this.opts.redisPassword === null) {
      throw new AgentError(
        'ENOREDISPASSWORD',
        'this agent has no redis password (--redis-password or REBORN_REDIS_PASSWORD): it starts no redis-server with an open default user',
        409,
      );
    }
    const port = portField(o, 'port');
    const host = o['host'] === undefined ? '127.0.0.1' : stringField(o, 'host');
    if (!isValidAddr(`${host}:${port}`)) throw new BadRequestError(`host must be a host name or IP address, got ${JSON.stringify(host)}`);
    const args = checkRedisArgs(o['args']);
    const dataDir = o['dataDir'] === undefined ? join(this.opts.dataDir, `redis-${port}`) : this.insideDataDir(stringField(o, 'dataDir'));
    const id = `redis-${port}`;
    this.claim(id, [port]);
    try {
      mkdirSync(dataDir, { recursive: true });
    } catch (err) {
      throw new BadRequestError(`cannot create dataDir ${JSON.stringify(dataDir)}: ${(err as Error).message}`);
    }
    // A symlink on the way could lead out of the agent's dir: judge the real path too.
    this.insideDataDir(realpathSync(dataDir));
    return this.create({ kind: 'redis', host, port, args, dataDir }, id);
  }

  /**
   * `dir` (absolute, or relative to the agent's data dir) resolved, when it lies strictly
   * inside the agent's data dir (the agent's own files sit at its top, so not the dir itself).
   */
  private insideDataDir(dir: string): string {
    const root = realpathOr(this.opts.dataDir);
    const full = resolve(root, dir);
    const rel = relative(root, full);
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel) || rel.split(sep)[0] === 'logs') {
      throw new BadRequestError(`dataDir must be a directory inside the agent's data dir ${root} (not the dir itself, nor its logs), got ${JSON.stringify(dir)}`);
    }
    return full;
  }

  /** POST /api/start_proxy {addr, adminAddr, id?, args?} */
  async startProxy(body: unknown): Promise<AppView> {
    const o = asBody(body);
    allowOnly(o, ['addr', 'adminAddr', 'id', 'auth', 'args']);
    const addr = addrField(o, 'addr');
    const adminAddr = addrField(o, 'adminAddr');
    const port = splitAddr(addr).port;
    const adminPort = splitAddr(adminAddr).port;
    if (port === adminPort) throw new BadRequestError('addr and adminAddr must use different ports');
    let proxyId: string | null = null;
    if (o['id'] !== undefined) {
      proxyId = stringField(o, 'id');
      if (!isValidName(proxyId)) throw new BadRequestError(`id must match [A-Za-z0-9_.:-]{1,128}, got ${JSON.stringify(proxyId)}`);
    }
    const auth = o['auth'] === undefined ? null : stringField(o, 'auth');
    if (auth !== null && /[\x00-\x1f\x7f]/.test(auth)) throw new BadRequestError('auth must not contain control characters');
    const args = checkProxyArgs(o['args']);
    const id = `proxy-${port}`;
    this.claim(id, [port, adminPort]);
    return this.create({ kind: 'proxy', addr, adminAddr, proxyId, auth, args }, id);
  }

  /** POST /api/stop {id} */
  async stop(body: unknown): Promise<AppView> {
    const o = asBody(body);
    allowOnly(o, ['id']);
    const id = stringField(o, 'id');
    const rec = this.apps.get(id);
    if (!rec) throw new UnknownAppError(id);
    if (this.starting.has(id)) throw new AppExistsError(`app ${id} is starting; stop it once it is up`);
    rec.state = 'stopped';
    rec.nextStartAt = null;
    this.persist();
    const pid = rec.pid;
    if (pid !== null && this.alive(rec)) {
      this.log.info({ app: id, pid }, 'stopping app');
      signal(pid, 'SIGTERM');
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (this.alive(rec) && Date.now() < deadline) await sleep(50);
      if (this.alive(rec)) {
        this.log.warn({ app: id, pid }, 'app ignored SIGTERM; sending SIGKILL');
        signal(pid, 'SIGKILL');
        while (this.alive(rec)) await sleep(20);
      }
    }
    rec.pid = null;
    rec.lastExit = { at: new Date().toISOString(), reason: 'stopped through the API' };
    this.persist();
    return this.view(rec);
  }

  // -------------------------------------------------------------------------------------------

  /** Refuses an id or port in use by an app that is not stopped. */
  private claim(id: string, ports: number[]): void {
    if (this.starting.has(id)) throw new AppExistsError(`app ${id} is already starting`);
    for (const rec of this.apps.values()) {
      if (rec.state === 'stopped') continue;
      if (rec.id === id) throw new AppExistsError(`app ${id} already exists (${rec.state}, pid ${rec.pid})`);
      const used = rec.spec.kind === 'redis' ? [rec.spec.port] : [portOf(rec.spec.addr), portOf(rec.spec.adminAddr)];
      const clash = ports.find((p) => used.includes(p));
      if (clash !== undefined) throw new AppExistsError(`port ${clash} is already used by app ${rec.id}`);
    }
  }

  private async create(spec: AppSpec, id: string): Promise<AppView> {
    const previous = this.apps.get(id);
    const rec: AppRecord = {
      id,
      spec,
      pid: null,
      state: 'running',
      restarts: 0,
      startedAt: null,
      logFile: join(this.logsDir, `${id}.log`),
      crashes: 0,
      nextStartAt: null,
      lastExit: null,
    };
    this.starting.add(id);
    this.apps.set(id, rec);
    try {
      const logStart = fileSize(rec.logFile);
      this.spawn(rec);
      const ready = await this.waitReady(rec);
      if (!ready.ok) {
        const tail = await readTail(rec.logFile, logStart);
        if (previous) this.apps.set(id, previous);
        else this.apps.delete(id);
        if (rec.pid !== null) signal(rec.pid, 'SIGKILL');
        this.persist();
        throw new StartFailedError(`${id}: ${ready.why}`, tail);
      }
      this.log.info({ app: id, pid: rec.pid, kind: spec.kind }, 'app started');
      return { ...this.view(rec), ...(ready.why ? { note: ready.why } : {}) };
    } finally {
      this.starting.delete(id);
    }
  }

  /** Waits until the app answers; not ok if it exits first. A slow start is ok with a note. */
  private async waitReady(rec: AppRecord): Promise<{ ok: boolean; why: string }> {
    const spec = rec.spec;
    const deadline = Date.now() + (spec.kind === 'redis' ? REDIS_READY_MS : PROXY_READY_MS);
    for (;;) {
      if (!this.alive(rec)) return { ok: false, why: `the process exited during startup (${rec.lastExit?.reason ?? 'see log'})` };
      if (await this.ready(rec).catch(() => false)) return { ok: true, why: '' };
      if (Date.now() > deadline) return { ok: true, why: 'running but not ready yet' };
      await sleep(50);
    }
  }

  /**
   * Ready, and answered by *this* process: another server already on the port would answer
   * too (while ours exits with "address in use"), so the answer must carry our pid.
   */
  private async ready(rec: AppRecord): Promise<boolean> {
    const spec = rec.spec;
    if (spec.kind === 'redis') {
      const info = String(await this.opts.admin.call(localAddr(spec), ['INFO', 'server'], 500));
      return new RegExp(`^process_id:${rec.pid}\\r?$`, 'm').test(info);
    }
    const health = await fetch(`http://${spec.adminAddr}/healthz`, { signal: AbortSignal.timeout(1000) });
    await health.body?.cancel();
    if (health.status !== 200) return false;
    // The proxy's /api/proxy names its pid; without that endpoint, trust /healthz.
    const about = await fetch(`http://${spec.adminAddr}/api/proxy`, { signal: AbortSignal.timeout(1000) });
    if (about.status !== 200) {
      await about.body?.cancel();
      return true;
    }
    const body = (await about.json()) as { pid?: unknown };
    return body.pid === undefined || body.pid === rec.pid;
  }

  /** `replicaOf`: a redis-server starts as a replica of that master (never serving as a master). */
  private command(spec: AppSpec, replicaOf: string | null = null): { cmd: string; args: string[]; cwd: string; env: NodeJS.ProcessEnv } {
    // Secrets travel in a 0600 file or the environment, never in argv (ps shows argv to all).
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env['REBORN_REDIS_PASSWORD'];
    delete env['REBORN_PROXY_AUTH'];
    if (spec.kind === 'redis') {
      const conf = join(spec.dataDir, REDIS_CONFIG_FILE);
      // startRedis and check() never get here without a password.
      if (this.opts.redisPassword === null) throw new Error('no redis password: refusing to start redis-server with an open default user');
      writeFileSync(conf, redisConfigFile(this.opts.redisPassword), { mode: 0o600 });
      chmodSync(conf, 0o600);
      const replica = replicaOf === null ? [] : ['--replicaof', splitAddr(replicaOf).host, String(splitAddr(replicaOf).port)];
      return {
        cmd: this.opts.redisBin,
        // Log to stdout (our log file); later args win in redis, so the caller's come last.
        args: [conf, '--port', String(spec.port), '--bind', spec.host, '--dir', spec.dataDir, '--daemonize', 'no', '--logfile', '', ...replica, ...spec.args],
        cwd: spec.dataDir,
        env,
      };
    }
    if (this.opts.redisPassword !== null) env['REBORN_REDIS_PASSWORD'] = this.opts.redisPassword;
    if (spec.auth) env['REBORN_PROXY_AUTH'] = spec.auth;
    return {
      env,
      cmd: process.execPath,
      args: [
        this.opts.proxyBin,
        '--addr', spec.addr,
        '--admin-addr', spec.adminAddr,
        '--etcd', this.opts.etcd.join(','),
        '--product', this.opts.product,
        ...(spec.proxyId === null ? [] : ['--id', spec.proxyId]),
        ...spec.args,
      ],
      cwd: this.opts.dataDir,
    };
  }

  private spawn(rec: AppRecord, replicaOf: string | null = null): void {
    const { cmd, args, cwd, env } = this.command(rec.spec, replicaOf);
    const fd = openSync(rec.logFile, 'a');
    try {
      writeFileSync(fd, `--- ${new Date().toISOString()} reborn-agent starts: ${cmd} ${args.join(' ')}\n`);
      const child = spawn(cmd, args, { cwd, detached: true, stdio: ['ignore', fd, fd], env });
      child.unref();
      rec.pid = child.pid ?? null;
      rec.startedAt = new Date().toISOString();
      rec.state = 'running';
      rec.nextStartAt = null;
      child.once('error', (err) => {
        this.log.error({ app: rec.id, err: err.message }, 'cannot spawn app');
        rec.lastExit = { at: new Date().toISOString(), reason: `spawn failed: ${err.message}` };
        if (rec.pid === (child.pid ?? null)) rec.pid = null;
        this.check();
      });
      child.once('exit', (code, sig) => {
        if (rec.pid !== child.pid) return;
        rec.lastExit = { at: new Date().toISOString(), reason: sig ? `killed by ${sig}` : `exit code ${code}` };
        // Checked on the next turn, after Node has reaped it.
        setImmediate(() => this.check());
      });
    } finally {
      closeSync(fd);
    }
    this.persist();
  }

  /** One supervision pass: detect crashes, restart what is due. */
  private check(): void {
    if (this.closed) return;
    const now = Date.now();
    let changed = false;
    for (const rec of this.apps.values()) {
      if (this.starting.has(rec.id) || rec.state === 'stopped') continue;
      if (rec.state === 'running' && !this.alive(rec)) {
        const upMs = rec.startedAt ? now - Date.parse(rec.startedAt) : 0;
        if (upMs >= STABLE_MS) rec.crashes = 0;
        rec.crashes++;
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (rec.crashes - 1));
        rec.lastExit ??= { at: new Date(now).toISOString(), reason: 'process gone' };
        this.log.warn(
          { app: rec.id, pid: rec.pid, upMs, exit: rec.lastExit.reason, restartInMs: delay, crashes: rec.crashes },
          'app died; restarting',
        );
        rec.pid = null;
        rec.state = 'restarting';
        rec.nextStartAt = now + delay;
        changed = true;
      }
      if (rec.state === 'restarting' && rec.nextStartAt !== null && now >= rec.nextStartAt) {
        if (rec.spec.kind === 'redis' && this.opts.redisPassword === null) {
          // A live one stays supervised (it has its password); a dead one would come back open.
          const reason = 'not restarted: this agent has no redis password (--redis-password or REBORN_REDIS_PASSWORD)';
          this.log.error({ app: rec.id }, reason);
          rec.state = 'stopped';
          rec.nextStartAt = null;
          rec.lastExit = { at: new Date(now).toISOString(), reason };
          changed = true;
          continue;
        }
        if (rec.spec.kind === 'redis') {
          if (!this.deciding.has(rec.id)) void this.restartRedis(rec, rec.spec);
          continue;
        }
        this.restartNow(rec, null);
        changed = true;
      }
    }
    if (changed) this.persist();
  }

  private restartNow(rec: AppRecord, replicaOf: string | null): void {
    rec.restarts++;
    rec.lastExit = null;
    this.opts.metrics.appRestarts.inc({ app: rec.id, kind: rec.spec.kind });
    if (rec.spec.kind === 'redis') {
      mkdirSync(rec.spec.dataDir, { recursive: true });
      rec.replicaOf = replicaOf;
    }
    this.spawn(rec, replicaOf);
    this.log.info({ app: rec.id, pid: rec.pid, restarts: rec.restarts, ...(replicaOf === null ? {} : { replicaOf }) }, replicaOf === null ? 'app restarted' : 'app restarted as a replica');
  }

  /**
   * A crashed redis-server is due: plan its restart from etcd (redis-restart.ts), then start
   * it in place, as a replica, or put it on hold and ask again in HOLD_POLL_MS.
   */
  private async restartRedis(rec: AppRecord, spec: RedisSpec): Promise<void> {
    this.deciding.add(rec.id);
    const { plan, login } = await this.restarts.plan(spec.host, spec.port).finally(() => this.deciding.delete(rec.id));
    // Stopped, replaced or closed meanwhile: the plan is for nobody.
    if (this.closed || this.apps.get(rec.id) !== rec || rec.state !== 'restarting' || this.starting.has(rec.id)) return;
    if (plan.kind === 'wait') {
      this.restarts.noteHold(rec, plan.hold, plan.why);
      rec.waiting = { reason: plan.hold, why: plan.why };
      rec.nextStartAt = Date.now() + HOLD_POLL_MS;
      return;
    }
    if (rec.waiting) this.log.info({ app: rec.id, crashedAt: rec.lastExit?.at, plan: plan.why }, 'restart no longer on hold');
    rec.waiting = null;
    this.restartNow(rec, plan.kind === 'replica' ? plan.master : null);
    this.persist();
    const pid = rec.pid;
    if (plan.kind === 'replica') {
      void this.restarts.setReplicaLogin(rec.id, localAddr(spec), login, () => !this.closed && rec.pid === pid && this.alive(rec), () => this.ready(rec));
    }
  }

  private alive(rec: AppRecord): boolean {
    const spec = rec.spec;
    if (spec.kind === 'redis') {
      // redis-server rewrites its title to "redis-server host:port"; before that it is argv.
      return isAliveAs(rec.pid, (c) => c.includes(basename(this.opts.redisBin)) && (c.includes(`:${spec.port}`) || c.includes(`--port ${spec.port}`)));
    }
    return isAliveAs(rec.pid, (c) => c.includes(basename(this.opts.proxyBin)) && c.includes(spec.addr));
  }

  private view(r: AppRecord): AppView {
    const s = r.spec;
    const common = {
      id: r.id,
      kind: s.kind,
      pid: r.pid,
      state: r.state,
      restarts: r.restarts,
      startedAt: r.startedAt,
      logFile: r.logFile,
      args: s.args,
      ...(r.state === 'restarting' && r.nextStartAt !== null ? { nextRestartAt: new Date(r.nextStartAt).toISOString() } : {}),
      ...(r.lastExit ? { lastExit: r.lastExit } : {}),
      ...(r.state === 'restarting' && r.waiting ? { waiting: r.waiting.why } : {}),
      ...(r.replicaOf ? { replicaOf: r.replicaOf } : {}),
    };
    if (s.kind === 'redis') {
      const addr = s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
      return { ...common, port: s.port, addr, dataDir: s.dataDir };
    }
    return { ...common, port: portOf(s.addr), addr: s.addr, adminAddr: s.adminAddr, proxyId: s.proxyId, auth: Boolean(s.auth) };
  }

  private persist(): void {
    const apps = [...this.apps.values()].filter((r) => !this.starting.has(r.id) || r.pid !== null);
    writeStateFile(this.statePath, apps, this.log);
  }

  /**
   * A spec from the state file passes today's checks, or its app is not started again: a file
   * written by an older agent (or by hand) must not get around the whitelist.
   */
  private recheck(rec: AppRecord): AppRecord {
    try {
      if (rec.spec.kind === 'redis') {
        checkRedisArgs(rec.spec.args);
        this.insideDataDir(rec.spec.dataDir);
      } else {
        checkProxyArgs(rec.spec.args);
      }
      return rec;
    } catch (err) {
      const reason = `not restarted: its spec is refused now: ${(err as Error).message}`;
      this.log.error({ app: rec.id, pid: rec.pid }, reason);
      return { ...rec, state: 'stopped', lastExit: { at: new Date().toISOString(), reason } };
    }
  }

  private readState(): AppRecord[] {
    return readStateFile(this.statePath, this.log).map((r) => this.recheck(r));
  }

}

/** The real path of `dir`, or `dir` resolved when it does not exist (yet). */
function realpathOr(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return resolve(dir);
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The last lines written to `path` since byte `from` (at most 4 KiB). */
async function readTail(path: string, from: number): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const size = (await fh.stat()).size;
      const start = Math.max(from, size - 4096);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      return buf.toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}
