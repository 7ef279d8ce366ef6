/**
 * CLIENT subcommands the proxy answers for its own connections: SETNAME/GETNAME, ID, REPLY,
 * SETINFO, INFO and LIST (in Redis' line format, verbatim strings in RESP3), and
 * MAINT_NOTIFICATIONS (accepted: see below).
 *
 * What the proxy cannot know the way Redis does (its own file descriptors, query buffer
 * sizes) is reported as Redis reports an idle connection's, so parsers of CLIENT LIST keep
 * working; the fields a user acts on (id, addr, name, age, idle, flags, subscriptions,
 * MULTI, resp, lib-name/lib-ver) are real.
 */
import { encodeBulk, encodeError, encodeInteger, encodeVerbatim, nullBulk, OK, type CommandInfo } from '@reborn/protocol';
import type { ClientRequest } from './request.js';
import type { Session } from './session.js';
import { CHANNEL, PATTERN, SHARD } from './client-state.js';

export interface ClientCommandContext {
  sessions(): Iterable<Session>;
}

const BAD_NAME = 'ERR Client names cannot contain spaces, newlines or special characters.';
const MAINT_ENDPOINT_TYPES = new Set(['internal-ip', 'internal-fqdn', 'external-ip', 'external-fqdn', 'none', 'auto']);

export function validClientName(name: Uint8Array): boolean {
  for (const c of name) if (c < 0x21 || c > 0x7e) return false;
  return true;
}

function lower(b: Uint8Array): string {
  return Buffer.from(b).toString('latin1').toLowerCase();
}

/** A client's argument as an error message quotes it: at most 128 bytes, printable only. */
function quoted(arg: Uint8Array): string {
  return Buffer.from(arg.subarray(0, 128)).toString('latin1').replace(/[^\x20-\x7e]/g, '?');
}

/** CLIENT REPLY ON|OFF|SKIP: OFF and SKIP are not answered themselves; ON always is. */
function clientReply(session: Session, req: ClientRequest, mode: Buffer): Buffer {
  switch (lower(mode)) {
    case 'on':
      session.replyOff = false;
      session.skipNextReply = false;
      req.silent = false;
      return OK;
    case 'off':
      session.replyOff = true;
      req.silent = true;
      return OK;
    case 'skip':
      if (!session.replyOff) session.skipNextReply = true;
      req.silent = true;
      return OK;
    default:
      return encodeError('ERR syntax error');
  }
}

/** CLIENT SETINFO LIB-NAME|LIB-VER value, checked as Redis 7.2 checks it. */
function setInfo(session: Session, args: Buffer[]): Buffer {
  const attr = lower(args[2]!);
  const value = args[3]!;
  if (attr !== 'lib-name' && attr !== 'lib-ver') return encodeError(`ERR Unrecognized option '${quoted(args[2]!)}'`);
  for (const c of value) {
    if (c < 0x21 || c > 0x7e) return encodeError(`ERR ${attr} cannot contain spaces, newlines or special characters.`);
  }
  const text = value.length === 0 ? null : Buffer.from(value).toString('latin1');
  if (attr === 'lib-name') session.libName = text;
  else session.libVer = text;
  return OK;
}

/** One connection as a CLIENT LIST line. */
export function describe(session: Session, now = Date.now()): string {
  const subs = session.pubsub;
  // Redis' letters: P subscribed, x in MULTI, t tracking, B broadcast tracking, R its
  // redirect client is gone.
  const t = session.tracking;
  const flags = `${subs !== null ? 'P' : ''}${session.tx !== null ? 'x' : ''}${t !== null ? 't' : ''}${t?.bcast ? 'B' : ''}${t?.brokenRedirect ? 'R' : ''}` || 'N';
  const socket = session.socket;
  return [
    `id=${session.id}`,
    `addr=${session.remote}`,
    `laddr=${socket.localAddress ?? '?'}:${socket.localPort ?? 0}`,
    'fd=-1',
    `name=${session.name?.toString('latin1') ?? ''}`,
    `age=${Math.floor((now - session.connectedAt) / 1000)}`,
    `idle=${Math.floor((performance.now() - session.lastCommandAt) / 1000)}`,
    `flags=${flags}`,
    'db=0',
    `sub=${subs?.names[CHANNEL].size ?? 0}`,
    `psub=${subs?.names[PATTERN].size ?? 0}`,
    `ssub=${subs?.names[SHARD].size ?? 0}`,
    `multi=${session.tx?.queued.length ?? -1}`,
    `watch=${session.watch !== null ? 1 : 0}`,
    `qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=${session.tx?.bytes ?? 0} rbs=0 rbp=0`,
    `obl=0 oll=0 omem=${session.socket.writableLength} tot-mem=0 events=r`,
    `cmd=${session.lastCommand}`,
    'user=default',
    `redir=${t === null ? -1 : t.redirect}`,
    `resp=${session.resp}`,
    `lib-name=${session.libName ?? ''}`,
    `lib-ver=${session.libVer ?? ''}`,
  ].join(' ');
}

/** CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id …]. */
function list(ctx: ClientCommandContext, session: Session, args: Buffer[]): Buffer {
  let type: string | null = null;
  let ids: Set<number> | null = null;
  for (let i = 2; i < args.length; i++) {
    const opt = lower(args[i]!);
    if (opt === 'type' && i + 1 < args.length) {
      type = lower(args[++i]!);
      if (!['normal', 'master', 'replica', 'slave', 'pubsub'].includes(type)) {
        return encodeError(`ERR Unknown client type '${quoted(args[i]!)}'`);
      }
    } else if (opt === 'id' && i + 1 < args.length) {
      ids = new Set();
      for (i++; i < args.length; i++) {
        const text = args[i]!.toString('latin1');
        if (!/^[1-9]\d{0,15}$/.test(text)) return encodeError('ERR Invalid client ID');
        ids.add(Number(text));
      }
    } else {
      return encodeError('ERR syntax error');
    }
  }
  const now = Date.now();
  const lines: string[] = [];
  for (const s of ctx.sessions()) {
    if (ids !== null && !ids.has(s.id)) continue;
    if (type === 'master' || type === 'replica' || type === 'slave') continue;
    if (type === 'pubsub' && s.pubsub === null) continue;
    if (type === 'normal' && s.pubsub !== null) continue;
    lines.push(describe(s, now) + '\n');
  }
  return encodeVerbatim(session.resp, lines.join(''));
}

/**
 * CLIENT MAINT_NOTIFICATIONS ON|OFF [moving-endpoint-type <type>]: accepted, and no
 * notification is ever sent. The proxy itself holds a client's requests through a slot's
 * barrier and follows a failover, so there is nothing for the client to prepare for; an
 * error would make clients configured with `maintNotifications: 'enabled'` refuse to connect.
 */
function maintNotifications(args: Buffer[]): Buffer {
  const mode = lower(args[2]!);
  if (mode !== 'on' && mode !== 'off') return encodeError("ERR syntax error: expected 'on' or 'off'");
  for (let i = 3; i < args.length; i += 2) {
    const opt = lower(args[i]!);
    if (opt !== 'moving-endpoint-type' || i + 1 >= args.length) return encodeError(`ERR unknown maintenance notification option '${quoted(args[i]!)}'`);
    if (!MAINT_ENDPOINT_TYPES.has(lower(args[i + 1]!))) return encodeError(`ERR invalid moving-endpoint-type '${quoted(args[i + 1]!)}'`);
  }
  return OK;
}

export function clientCommand(ctx: ClientCommandContext, session: Session, req: ClientRequest, cmd: CommandInfo, args: Buffer[]): Buffer {
  switch (cmd.name) {
    case 'client|setname': {
      const name = args[2]!;
      if (!validClientName(name)) return encodeError(BAD_NAME);
      session.name = name.length === 0 ? null : Buffer.from(name);
      return OK;
    }
    case 'client|getname':
      return session.name === null ? nullBulk(session.resp) : encodeBulk(session.name);
    case 'client|id':
      return encodeInteger(session.id);
    case 'client|reply':
      return clientReply(session, req, args[2]!);
    case 'client|setinfo':
      return setInfo(session, args);
    case 'client|info':
      return encodeVerbatim(session.resp, describe(session) + '\n');
    case 'client|list':
      return list(ctx, session, args);
    case 'client|maint_notifications':
      return maintNotifications(args);
    default:
      return encodeError(`ERR command '${cmd.name.replace('|', ' ')}' is not supported by reborn`);
  }
}
