/**
 * Commands the proxy answers itself, or by asking every master and aggregating (INFO's
 * keyspace, DBSIZE), or by asking any one master (COMMAND: every master runs the same Redis).
 */
import { timingSafeEqual } from 'node:crypto';
import {
  EMPTY_ARRAY,
  encodeArrayOfEncoded,
  encodeBulk,
  encodeCommand,
  encodeError,
  encodeInteger,
  encodeMapOf,
  encodeVerbatim,
  nullBulk,
  OK,
  PONG,
  REDIS_VERSION,
  type CommandInfo,
  type Protocol,
} from '@reborn/protocol';
import { clientCommand, validClientName } from './client-command.js';
import { answerCluster, isClusterSession } from './cluster-face.js';
import { flush, keys, randomKey, scan, type KeyspaceLimits } from './keyspace.js';
import type { SlowLog } from './slowlog.js';
import { answerConfig } from './config-command.js';
import type { ProductConfig } from './product-config.js';
import { CustomMerge, SumMerge, type ClientRequest } from './request.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { Tracking } from './tracking.js';

export const PROXY_VERSION = '0.1.0';

/**
 * The Redis version the proxy reports (HELLO, INFO): the lowest among the servers behind it,
 * since clients gate features on it. Before any server answered, the version of the Redis
 * the command table was generated from (the one reborn is built and tested against).
 */
function redisVersion(ctx: LocalContext): string {
  return ctx.router.lowestServerVersion() ?? REDIS_VERSION;
}

export interface LocalContext {
  readonly router: Router;
  readonly keyspace: KeyspaceLimits;
  readonly slowlog: SlowLog;
  readonly password: string | null;
  readonly proxyId: string;
  readonly product: string;
  readonly port: number;
  readonly startedAt: number;
  clientCount(): number;
  /** Every client connection of this proxy (CLIENT LIST). */
  sessions(): Iterable<Session>;
  readonly maxClients: number;
  /** Clients waiting in a blocking command (BLPOP, XREAD BLOCK, WAIT …). */
  blockedClients(): number;
  totalConnections(): number;
  totalCommands(): number;
  /** Why data commands are refused right now (not registered, fenced, topology lost), or null. */
  refusal(): Buffer | null;
  /** product config: CONFIG GET/SET of the product-wide redis parameters (config-command.ts). */
  readonly productConfig: ProductConfig;
  /** CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO (tracking.ts). */
  readonly tracking: Tracking;
}

const NOT_READY = encodeError('ERR proxy not ready');
/** Client-side caching, answered by tracking.ts. */
const TRACKING_SUBCOMMANDS = new Set(['client|tracking', 'client|caching', 'client|getredir', 'client|trackinginfo']);

/**
 * The refusal of a keyspace-wide command (KEYS, SCAN, DBSIZE, FLUSH…), or null when it may run:
 * the same rule as routed commands, so a refusing proxy never answers "0 keys" or "OK".
 */
function notServing(ctx: LocalContext): Buffer | null {
  return ctx.router.isReady ? ctx.refusal() : NOT_READY;
}

const PONG_VERB = encodeBulk('pong');
const EMPTY = Buffer.alloc(0);
const WRONGPASS = encodeError('WRONGPASS invalid username-password pair or user is disabled.');
const NOPROTO = encodeError('NOPROTO unsupported protocol version');

function lower(b: Uint8Array): string {
  return Buffer.from(b).toString('latin1').toLowerCase();
}

function checkPassword(expected: string | null, given: Uint8Array): boolean {
  if (expected === null) return false;
  const a = Buffer.from(expected);
  return a.length === given.length && timingSafeEqual(a, given);
}

/** AUTH [username] password. Only the `default` user exists on the proxy. */
function auth(ctx: LocalContext, session: Session, args: Buffer[]): Buffer {
  // AUTH <password> | AUTH <user> <password>; anything longer is redis's syntax error.
  if (args.length > 3) return encodeError('ERR syntax error');
  if (ctx.password === null) {
    return encodeError('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
  }
  const user = args.length === 3 ? lower(args[1]!) : 'default';
  if (user === 'default' && checkPassword(ctx.password, args[args.length - 1]!)) {
    session.authenticated = true;
    return OK;
  }
  return WRONGPASS;
}

/**
 * HELLO [protover [AUTH user pass] [SETNAME name]], as Redis 7 does it: every option is
 * checked before any takes effect; then AUTH, SETNAME, and the protocol switch, and the
 * server map answered in the new protocol (a map in RESP3, a flat array in RESP2).
 */
function hello(ctx: LocalContext, session: Session, req: ClientRequest, args: Buffer[]): Buffer {
  let resp: Protocol = session.resp;
  if (args.length >= 2) {
    const ver = Buffer.from(args[1]!).toString('latin1');
    if (!/^-?\d{1,19}$/.test(ver)) return encodeError('ERR Protocol version is not an integer or out of range');
    if (ver !== '2' && ver !== '3') return NOPROTO;
    resp = ver === '3' ? 3 : 2;
  }
  let credentials: [Buffer, Buffer] | null = null;
  let name: Buffer | null = null;
  for (let i = 2; i < args.length; i++) {
    const opt = lower(args[i]!);
    const more = args.length - 1 - i;
    if (opt === 'auth' && more >= 2) {
      credentials = [args[i + 1]!, args[i + 2]!];
      i += 2;
    } else if (opt === 'setname' && more >= 1) {
      name = args[i + 1]!;
      i += 1;
    } else {
      return encodeError(`ERR Syntax error in HELLO option '${printable(args[i]!)}'`);
    }
  }
  if (credentials !== null) {
    const r = auth(ctx, session, [args[0]!, credentials[0], credentials[1]]);
    if (r !== OK) return r;
  }
  if (!session.authenticated) return encodeError('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time');
  if (name !== null) {
    if (!validClientName(name)) return encodeError('ERR Client names cannot contain spaces, newlines or special characters.');
    session.name = name.length === 0 ? null : Buffer.from(name);
  }
  if (resp !== session.resp && session.watch?.conn) {
    // The WATCH's pinned connection was opened in the old protocol, and the commands after
    // this HELLO (EXEC too) go over it: it switches with the client, in order.
    session.watch.conn.send({ payload: encodeCommand(['HELLO', String(resp)]), resolve: () => undefined });
  }
  session.switchProtocol(req, resp);
  return encodeMapOf(resp, [
    ['server', encodeBulk('redis')],
    ['version', encodeBulk(redisVersion(ctx))],
    ['proto', encodeInteger(resp)],
    ['id', encodeInteger(session.id)],
    ['mode', encodeBulk(isClusterSession(session) ? 'cluster' : 'standalone')],
    ['role', encodeBulk('master')],
    ['modules', EMPTY_ARRAY],
  ]);
}

function printable(arg: Uint8Array, max = 128): string {
  return Buffer.from(arg.subarray(0, max)).toString('latin1').replace(/[^\x20-\x7e]/g, '?');
}

function time(): Buffer {
  const micros = BigInt(Date.now()) * 1000n + BigInt(Math.floor((performance.now() % 1) * 1000));
  return encodeArrayOfEncoded([encodeBulk(String(micros / 1000000n)), encodeBulk(String(micros % 1000000n))]);
}

/** INFO: the proxy's own sections, plus a keyspace section summed over every master. */
function info(ctx: LocalContext, session: Session, req: ClientRequest, args: Buffer[]): void {
  const text = (lines: string[]): Buffer => encodeVerbatim(session.resp, lines.join('\r\n'));
  const wanted = new Set(args.slice(1).map(lower));
  const all = wanted.size === 0 || wanted.has('all') || wanted.has('everything') || wanted.has('default');
  const want = (section: string): boolean => all || wanted.has(section);
  const own = (): string[] => {
    const out: string[] = [];
    if (want('server')) {
      out.push('# Server', `redis_version:${redisVersion(ctx)}`, `reborn_version:${PROXY_VERSION}`, `redis_mode:${isClusterSession(session) ? 'cluster' : 'standalone'}`,
        'reborn_role:proxy', `reborn_proxy_id:${ctx.proxyId}`, `reborn_product:${ctx.product}`, `process_id:${process.pid}`,
        `tcp_port:${ctx.port}`, `uptime_in_seconds:${Math.floor((Date.now() - ctx.startedAt) / 1000)}`, '');
    }
    // The proxy's own clients, counted as Redis counts its own: harnesses wait on these.
    if (want('clients')) {
      out.push('# Clients', `connected_clients:${ctx.clientCount()}`, 'cluster_connections:0', `maxclients:${ctx.maxClients}`,
        'client_recent_max_input_buffer:0', 'client_recent_max_output_buffer:0', `blocked_clients:${ctx.blockedClients()}`,
        `tracking_clients:${ctx.tracking.stats().clients}`, 'clients_in_timeout_table:0', '');
    }
    if (want('stats')) {
      out.push('# Stats', `total_connections_received:${ctx.totalConnections()}`, `total_commands_processed:${ctx.totalCommands()}`, '');
    }
    // Cluster-mode clients look for cluster_enabled:1 on the cluster face.
    if (want('cluster')) out.push('# Cluster', `cluster_enabled:${isClusterSession(session) ? 1 : 0}`, '');
    return out;
  };
  const masters = ctx.router.isReady ? ctx.router.masters() : [];
  if (!want('keyspace') || masters.length === 0) {
    const lines = own();
    if (want('keyspace')) lines.push('# Keyspace', '');
    req.resolve(text(lines));
    return;
  }
  const merge = new CustomMerge(req, masters.length, (replies) => {
    let keys = 0;
    let expires = 0;
    for (const r of replies) {
      const text = r.toString('latin1');
      const m = /db0:keys=(\d+),expires=(\d+)/.exec(text);
      if (m) {
        keys += Number(m[1]);
        expires += Number(m[2]);
      }
    }
    const lines = own();
    lines.push('# Keyspace');
    if (keys > 0) lines.push(`db0:keys=${keys},expires=${expires},avg_ttl=0`);
    lines.push('');
    return text(lines);
  });
  const payload = encodeCommand(['INFO', 'keyspace']);
  masters.forEach((pool, i) => pool.pick(session.id, session.resp).send(merge.part(i, payload)));
}

export function answerLocally(
  ctx: LocalContext,
  session: Session,
  req: ClientRequest,
  cmd: CommandInfo,
  args: Buffer[],
  raw: Buffer | null,
): void {
  const name = cmd.name;
  switch (name) {
    case 'ping':
      // The table says arity -1; Redis itself refuses more than one argument.
      if (args.length > 2) req.resolve(encodeError("ERR wrong number of arguments for 'ping' command"));
      // While subscribed, Redis answers a RESP2 client's PING as an array: [pong, <arg or "">].
      else if (session.pubsub !== null && session.resp === 2) req.resolve(encodeArrayOfEncoded([PONG_VERB, encodeBulk(args[1] ?? EMPTY)]));
      else req.resolve(args.length > 1 ? encodeBulk(args[1]!) : PONG);
      return;
    case 'echo':
      req.resolve(encodeBulk(args[1]!));
      return;
    case 'quit':
      req.resolve(OK);
      session.endAfterReplies();
      return;
    case 'auth':
      req.resolve(auth(ctx, session, args));
      return;
    case 'hello':
      req.resolve(hello(ctx, session, req, args));
      return;
    case 'select':
      req.resolve(Buffer.from(args[1]!).toString('latin1') === '0' ? OK : encodeError('ERR DB index is out of range'));
      return;
    case 'readonly':
    case 'readwrite':
      req.resolve(OK);
      return;
    case 'time':
      req.resolve(time());
      return;
    case 'info':
      info(ctx, session, req, args);
      return;
    case 'keys':
    case 'scan':
    case 'randomkey':
    case 'flushdb':
    case 'flushall': {
      const refused = notServing(ctx);
      if (refused !== null) {
        req.resolve(refused);
        return;
      }
      if (name === 'keys') keys(ctx.router, ctx.keyspace, session, req, args);
      else if (name === 'scan') scan(ctx.router, session, req, args);
      else if (name === 'randomkey') randomKey(ctx.router, session, req);
      else flush(ctx.router, ctx.keyspace, session, req, args);
      return;
    }
    case 'dbsize': {
      const refused = notServing(ctx);
      if (refused !== null) {
        req.resolve(refused);
        return;
      }
      const masters = ctx.router.masters();
      if (masters.length === 0) {
        req.resolve(encodeInteger(0));
        return;
      }
      const merge = new SumMerge(req, masters.length);
      const payload = raw ?? encodeCommand(args);
      masters.forEach((pool, i) => pool.pick(session.id, session.resp).send(merge.part(i, payload)));
      return;
    }
    default:
      break;
  }
  if (name.startsWith('cluster|')) {
    req.resolve(answerCluster(session, name, args));
    return;
  }
  if (name.startsWith('slowlog|')) {
    req.resolve(ctx.slowlog.command(name.slice('slowlog|'.length), args.slice(2)));
    return;
  }
 
  if (name === 'config|get' || name === 'config|set') {
    answerConfig(ctx, session, req, name, args);
    return;
  }
  // Client-side caching is tracking.ts's
  if (TRACKING_SUBCOMMANDS.has(name)) {
    ctx.tracking.command(session, req, name, args);
    return;
  }
  if (name === 'client' || name.startsWith('client|')) {
    req.resolve(clientCommand(ctx, session, req, cmd, args));
    return;
  }
  if (name === 'command' || name.startsWith('command|')) {
    // Every master runs the same Redis: any one of them describes the commands.
    const first = ctx.router.isReady ? ctx.router.masters()[0] : undefined;
    if (first === undefined) {
      req.resolve(encodeError('ERR proxy not ready'));
      return;
    }
    if (raw === null) req.payload = encodeCommand(args);
    first.pick(session.id, session.resp).send(req);
    return;
  }
  req.resolve(encodeError(`ERR command '${name.replace('|', ' ')}' is not supported by reborn`));
}
