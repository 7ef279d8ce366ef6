/**
 * Pub/Sub through the proxy (RESP2): SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, their UNSUBSCRIBEs,
 * PUBSUB introspection, and the delivery of messages to subscribed clients.
 *
 * Shape: the proxy, not each client, subscribes at the backends. Every client subscription
 * is recorded here; the union of them is subscribed once per server on a "feed" connection
 * to every server of every group — masters and replicas alike. PUBLISH and SPUBLISH are
 * routed by the slot of the channel (dispatch.ts), so each message is published in exactly
 * one group and reaches this proxy once, on the feed of that group's master; the hub then
 * writes the raw message bytes to every local subscriber (no re-encoding).
 *
 * Why every group, not only the channel's owner group: a slot migration then needs no
 * re-subscription at all (the target group was subscribed all along, before the barrier
 * sends the first PUBLISH there), patterns need every group anyway, and a PUBLISH queued in
 * a transaction on any slot still reaches every subscriber.
 *
 * Why replicas too — exactly-once delivery across a failover. Redis propagates PUBLISH and
 * SPUBLISH to replicas, whose subscribers receive them like the master's. Each group has
 * one *active* feed (its master's), whose messages are delivered, and *standby* feeds (its
 * replicas'), whose copies are matched against the active stream by a FeedMatcher
 * (feed-matcher.ts). When the HA agent promotes a replica, the proxy switches the group's
 * active feed to it and first delivers what only that replica received: messages published
 * on the old master that reached the replica but not us, and messages published on the new
 * master before this proxy heard of the promotion. The same matching recovers what the
 * master's feed missed while it reconnected. Memory is bounded per standby.
 *
 * Confirmations: a client's (P|S)SUBSCRIBE reply is released only after a PING sent behind
 * the backend SUBSCRIBE has come back from every group's master, so once a client has its
 * confirmation, any later PUBLISH (through any proxy) reaches it.
 *
 * Order and slow subscribers: messages go through the session's reply queue (Session.push),
 * so they never overtake an earlier reply; a client that does not read is disconnected at
 * the session's output limit like any other, and the backends never see it.
 *
 * Counts: a confirmation's count is the client's own, as in Redis. PUBLISH's reply and
 * PUBSUB NUMSUB count subscribed *connections* at the backends, where each proxy with local
 * subscribers counts once; 0 still means nobody is listening.
 *
 * Not promised: order between two messages published in different groups (a channel whose
 * slot just moved has its last source-group message and first target-group message on two
 * feeds), and with --durable, PUBLISH is not waited on like a write.
 */
import type { Logger } from 'pino';
import type { GroupInfo } from '@reborn/coordinator';
import {
  asPush,
  encodeArrayOfEncoded,
  encodeBulk,
  encodeCommand,
  encodeError,
  encodeInteger,
  encodeMap,
  encodePush,
  isErrorReply,
  nullBulk,
  parseIntegerReply,
  splitArrayReply,
  type CommandInfo,
  type Protocol,
} from '@reborn/protocol';
import { BackendConnection, type BackendOptions } from './backend.js';
import { FeedMatcher } from './feed-matcher.js';
import { CustomMerge, type ClientRequest } from './request.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import { CHANNEL, ClientSubscriptions, PATTERN, SHARD, type Kind } from './client-state.js';

const KINDS: readonly Kind[] = [CHANNEL, PATTERN, SHARD];

const SUBSCRIBED_VERB = ['subscribe', 'psubscribe', 'ssubscribe'].map((v) => encodeBulk(v));
const UNSUBSCRIBED_VERB = ['unsubscribe', 'punsubscribe', 'sunsubscribe'].map((v) => encodeBulk(v));
const BACKEND_SUBSCRIBE = ['SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE'];
const BACKEND_UNSUBSCRIBE = ['UNSUBSCRIBE', 'PUNSUBSCRIBE', 'SUNSUBSCRIBE'];
const COMMAND_KIND: Record<string, [Kind, boolean]> = {
  subscribe: [CHANNEL, true],
  psubscribe: [PATTERN, true],
  ssubscribe: [SHARD, true],
  unsubscribe: [CHANNEL, false],
  punsubscribe: [PATTERN, false],
  sunsubscribe: [SHARD, false],
};
/** Names per backend (UN)SUBSCRIBE command when (re)subscribing a large set. */
const NAMES_PER_COMMAND = 512;
const PING = encodeCommand(['PING']);
const HEARTBEAT_MS = 1000;

/** The commands a RESP2 client may send while subscribed (Redis's own list); RESP3 may send any. */
export const ALLOWED_WHILE_SUBSCRIBED: ReadonlySet<string> = new Set([
  'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe', 'ping', 'quit', 'reset',
]);
/** Purely local (and never refused): a subscribed client must always be able to leave. */
export const UNSUBSCRIBE_COMMANDS: ReadonlySet<string> = new Set(['unsubscribe', 'punsubscribe', 'sunsubscribe']);
export const PUBSUB_COMMANDS: ReadonlySet<string> = new Set([
  ...Object.keys(COMMAND_KIND),
  'pubsub|channels', 'pubsub|shardchannels', 'pubsub|numsub', 'pubsub|shardnumsub', 'pubsub|numpat',
]);

/** A (un)subscribe confirmation: an array in RESP2, a push in RESP3 (as Redis 7 sends it). */
function confirmation(resp: Protocol, verb: Buffer, name: Buffer | null, count: number): Buffer {
  return encodePush(resp, [verb, name === null ? nullBulk(resp) : encodeBulk(name), encodeInteger(count)]);
}

/** What a feed received, by the verb of the array (parsed in place: this is per message). */
const NOT_PUSH = -1;
const PONG_REPLY = -2;
const CONFIRMATION = -3;

/** Offset of the verb inside `*N\r\n$L\r\n<verb>\r\n…`, and its length; null if not that shape. */
function verbAt(reply: Buffer): [start: number, length: number] | null {
  if (reply[0] !== 0x2a) return null;
  let p = reply.indexOf(0x0a) + 1;
  if (reply[p] !== 0x24) return null;
  let length = 0;
  for (p++; reply[p] !== 0x0d; p++) length = length * 10 + reply[p]! - 0x30;
  return [p + 2, length];
}

/** CHANNEL / PATTERN / SHARD for message / pmessage / smessage, else one of the codes above. */
function classifyPush(reply: Buffer): number {
  const verb = verbAt(reply);
  if (verb === null) return NOT_PUSH;
  const [at, length] = verb;
  const c = reply[at];
  if (length === 7 && c === 0x6d) return CHANNEL; // message
  if (length === 8 && reply[at + 1] === 0x6d) return c === 0x70 ? PATTERN : SHARD; // pmessage, smessage
  if (length === 4 && c === 0x70) return PONG_REPLY; // pong
  return CONFIRMATION; // (p|s)(un)subscribe
}

/** The bulk string after the element whose data ends at `end`: its data start and length. */
function nextBulk(reply: Buffer, end: number): [start: number, length: number] {
  let p = end + 3; // past "\r\n$"
  let n = 0;
  for (; reply[p] !== 0x0d; p++) n = n * 10 + reply[p]! - 0x30;
  return [p + 2, n];
}

/** The second element of a message (its channel, or its pattern for pmessage), as a map key. */
function subscriptionKey(reply: Buffer): string {
  const [at, length] = verbAt(reply)!;
  const [start, n] = nextBulk(reply, at + length);
  return reply.toString('latin1', start, start + n);
}

/** Refusals that pass (a script past its busy threshold, a server loading its data, …). */
const TRANSIENT_REFUSAL = /\b(BUSY|LOADING|MASTERDOWN|TRYAGAIN)\b/;
const CATCH_UP_RETRY_MS = 100;
const KEYSPACE = Buffer.from('__keyspace@', 'latin1');
const KEYEVENT = Buffer.from('__keyevent@', 'latin1');

/** A message or pmessage (see classifyPush) whose channel is a keyspace notification. */
function isKeyspaceNotification(message: Buffer): boolean {
  const [at, length] = verbAt(message)!;
  let [start, n] = nextBulk(message, at + length);
  if (message[at] === 0x70) [start, n] = nextBulk(message, start + n); // pmessage: past the pattern
  const has = (prefix: Buffer): boolean => n >= prefix.length && message.compare(prefix, 0, prefix.length, start, start + prefix.length) === 0;
  return has(KEYSPACE) || has(KEYEVENT);
}

/** A subscribed connection to one server of a group. */
class Feed {
  readonly conn: BackendConnection;

  constructor(
    readonly addr: string,
    options: BackendOptions,
    group: GroupFeeds,
    onReply: (group: GroupFeeds, feed: Feed, reply: Buffer) => boolean,
    subscribeAll: () => Buffer[],
  ) {
    this.conn = new BackendConnection(addr, { ...options, onStateChange: () => group.feedReconnected(this) });
    this.conn.onPush = (reply) => onReply(group, this, reply);
    this.conn.afterHandshake = subscribeAll;
  }

  close(): void {
    this.conn.close('pub/sub feed closed');
  }
}

/** The feeds of one group: the master's (active) and the replicas' (standby). */
class GroupFeeds {
  active: Feed | null = null;
  readonly standbys = new Map<string, Feed>();
  private readonly matcher: FeedMatcher<Feed>;

  constructor(
    readonly id: number,
    private readonly hub: PubSub,
  ) {
    this.matcher = new FeedMatcher((message) => hub.deliverRaw(message));
  }

  /** Follows the group's servers; a new master's feed becomes active (see the file comment). */
  update(group: GroupInfo): void {
    const master = group.servers.find((s) => s.role === 'master')?.addr ?? null;
    const replicas = new Set(group.servers.filter((s) => s.role === 'replica').map((s) => s.addr));
    if (this.active?.addr !== master) {
      const old = this.active;
      let next: Feed | null = null;
      if (master !== null) {
        next = this.standbys.get(master) ?? this.hub.newFeed(master, this);
        this.standbys.delete(master);
        // What the promoted replica received that the old master's feed never delivered.
        const delivered = this.matcher.promote(next);
        const promoted = next;
        // Once a PING comes back, the stream holds only what the new master published.
        promoted.conn.send({ payload: PING, resolve: () => this.active === promoted && this.matcher.settle() });
        if (old !== null) this.hub.logger.info({ group: this.id, from: old.addr, to: master, delivered }, 'pub/sub feed switched to the new master');
      }
      this.active = next;
      if (old !== null) {
        if (replicas.has(old.addr)) {
          this.standbys.set(old.addr, old);
          this.matcher.addStandby(old);
        } else {
          old.close();
        }
      }
    }
    for (const addr of replicas) {
      if (!this.standbys.has(addr) && addr !== master) {
        const feed = this.hub.newFeed(addr, this);
        this.standbys.set(addr, feed);
        this.matcher.addStandby(feed);
      }
    }
    for (const [addr, feed] of this.standbys) {
      if (!replicas.has(addr)) {
        feed.close();
        this.standbys.delete(addr);
        this.matcher.removeStandby(feed);
      }
    }
  }

  /** A standby's new connection starts a new stream: its matching history says nothing about it. */
  feedReconnected(feed: Feed): void {
    if (feed !== this.active && this.standbys.get(feed.addr) === feed) this.matcher.addStandby(feed);
  }

  onMessage(feed: Feed, message: Buffer): void {
    if (isKeyspaceNotification(message)) {
      // Not replicated messages but each server's own events (a replica reports `del` where
      // its master reported `expired`): only the master's are delivered, never matched or
      // recovered, so a failover can lose some of them (as in redis) but not invent any.
      if (feed === this.active) this.hub.deliverRaw(message);
      return;
    }
    if (feed === this.active) this.matcher.fromActive(message);
    else if (this.standbys.get(feed.addr) === feed) this.matcher.fromStandby(feed, message);
  }

  feeds(): Feed[] {
    return this.active === null ? [...this.standbys.values()] : [this.active, ...this.standbys.values()];
  }

  close(): void {
    for (const feed of this.feeds()) feed.close();
    this.active = null;
    this.standbys.clear();
  }
}

interface Subscribers {
  readonly name: Buffer;
  readonly sessions: Set<Session>;
}

export class PubSub {
  /** Per kind: name → the local sessions subscribed to it. */
  private readonly subscribers: [Map<string, Subscribers>, Map<string, Subscribers>, Map<string, Subscribers>] = [new Map(), new Map(), new Map()];
  private readonly groups = new Map<number, GroupFeeds>();
  private started = false;
  private heartbeat: NodeJS.Timeout | null = null;
  /** Messages written to clients (one per receiving client). */
  delivered = 0;

  constructor(
    private readonly router: Router,
    private readonly options: BackendOptions,
    readonly logger: Logger,
  ) {}

  /** Distinct channels, patterns and shard channels subscribed through this proxy. */
  get subscriptions(): number {
    return this.subscribers[CHANNEL].size + this.subscribers[PATTERN].size + this.subscribers[SHARD].size;
  }

  handle(session: Session, req: ClientRequest, cmd: CommandInfo, args: Buffer[]): void {
    const verb = COMMAND_KIND[cmd.name];
    if (verb !== undefined) {
      // (Un)subscribe confirmations are pushes: Redis 7.0 sends them even under CLIENT REPLY OFF.
      req.silent = false;
      const [kind, subscribing] = verb;
      if (subscribing) this.subscribe(session, req, kind, args.slice(1));
      else this.unsubscribe(session, req, kind, args.slice(1));
      return;
    }
    this.introspect(session, req, cmd.name, args);
  }

  /** The group table changed: follow masters and replicas (only once anything subscribed). */
  groupsChanged(): void {
    if (!this.started) return;
    const seen = new Set<number>();
    for (const group of this.router.groupList()) {
      seen.add(group.id);
      let feeds = this.groups.get(group.id);
      if (feeds === undefined) {
        feeds = new GroupFeeds(group.id, this);
        this.groups.set(group.id, feeds);
      }
      feeds.update(group);
      // Connect at once: a standby must be subscribed before its master can fail.
      for (const feed of feeds.feeds()) if (!feed.conn.isUp) feed.conn.send({ payload: PING, resolve: () => undefined });
    }
    for (const [id, feeds] of this.groups) {
      if (!seen.has(id)) {
        feeds.close();
        this.groups.delete(id);
      }
    }
  }

  /** RESET, or the client went away: every subscription of the session is dropped. */
  sessionClosed(session: Session): void {
    const subs = session.pubsub;
    if (subs === null) return;
    session.pubsub = null;
    session.forgetWhenClosed(subs.closeHook);
    for (const kind of KINDS) this.forget(session, kind, [...subs.names[kind].values()]);
  }

  close(): void {
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
    for (const feeds of this.groups.values()) feeds.close();
    this.groups.clear();
    this.started = false;
  }

  /** Writes a message received on an active feed to every local subscriber of it. */
  deliverRaw(message: Buffer): void {
    const kind = classifyPush(message);
    if (kind < 0) return;
    const entry = this.subscribers[kind as Kind].get(subscriptionKey(message));
    if (entry === undefined) return;
    // One copy shared by every receiver: a view would pin the whole socket chunk in the
    // output of a slow subscriber, far past what its output limit counts. RESP3 receivers
    // share one push-framed copy (feeds speak RESP2: only the type byte differs).
    const copy = Buffer.from(message);
    let pushed: Buffer | null = null;
    for (const session of entry.sessions) session.push(session.resp === 2 ? copy : (pushed ??= asPush(3, copy)));
    this.delivered += entry.sessions.size;
  }

  newFeed(addr: string, group: GroupFeeds): Feed {
    return new Feed(addr, this.options, group, this.onFeedReply, () => this.subscribeAllCommands());
  }

  private subscribe(session: Session, req: ClientRequest, kind: Kind, names: Buffer[]): void {
    // Parked behind a held request, a SUBSCRIBE can run after its client went away.
    if (session.isClosed) {
      req.resolve(encodeError('ERR client gone'));
      return;
    }
    let subs = session.pubsub;
    if (subs === null) {
      subs = new ClientSubscriptions(() => this.sessionClosed(session));
      session.pubsub = subs;
      session.whenClosed(subs.closeHook);
    }
    const parts: Buffer[] = [];
    const fresh: Buffer[] = [];
    for (const arg of names) {
      const key = arg.toString('latin1');
      if (!subs.names[kind].has(key)) {
        const name = Buffer.from(arg);
        subs.names[kind].set(key, name);
        let entry = this.subscribers[kind].get(key);
        if (entry === undefined) {
          entry = { name, sessions: new Set() };
          this.subscribers[kind].set(key, entry);
          fresh.push(name);
        }
        entry.sessions.add(session);
      }
      parts.push(confirmation(session.resp, SUBSCRIBED_VERB[kind]!, arg, subs.count(kind)));
    }
    const reply = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    this.start();
    if (fresh.length > 0) this.sendToFeeds(BACKEND_SUBSCRIBE[kind]!, fresh);
    this.afterMastersCaughtUp(() => req.resolve(reply));
  }

  private unsubscribe(session: Session, req: ClientRequest, kind: Kind, names: Buffer[]): void {
    const subs = session.pubsub;
    const targets = names.length > 0 ? names : subs === null ? [] : [...subs.names[kind].values()];
    if (targets.length === 0) {
      req.resolve(confirmation(session.resp, UNSUBSCRIBED_VERB[kind]!, null, subs?.count(kind) ?? 0));
      return;
    }
    const parts: Buffer[] = [];
    const gone: Buffer[] = [];
    for (const name of targets) {
      const key = name.toString('latin1');
      if (subs !== null && subs.names[kind].delete(key)) {
        const last = this.leave(session, kind, key);
        if (last !== null) gone.push(last);
      }
      parts.push(confirmation(session.resp, UNSUBSCRIBED_VERB[kind]!, name, subs?.count(kind) ?? 0));
    }
    // Back to normal mode once nothing is left, as Redis does.
    if (subs !== null && subs.total === 0) {
      session.pubsub = null;
      session.forgetWhenClosed(subs.closeHook);
    }
    const reply = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (gone.length === 0) {
      req.resolve(reply);
      return;
    }
    // Confirmed once the masters dropped it too: a PUBLISH after this reply counts no one
    // for it, and PUBSUB no longer lists it.
    this.sendToFeeds(BACKEND_UNSUBSCRIBE[kind]!, gone);
    this.afterMastersCaughtUp(() => req.resolve(reply));
  }

  /** A closed session's subscriptions of one kind leave the local table (and the backends). */
  private forget(session: Session, kind: Kind, names: Buffer[]): void {
    const gone: Buffer[] = [];
    for (const name of names) {
      const last = this.leave(session, kind, name.toString('latin1'));
      if (last !== null) gone.push(last);
    }
    if (gone.length > 0) this.sendToFeeds(BACKEND_UNSUBSCRIBE[kind]!, gone);
  }

  /** Takes `session` off one name; returns the name when no local session is left on it. */
  private leave(session: Session, kind: Kind, key: string): Buffer | null {
    const entry = this.subscribers[kind].get(key);
    if (entry === undefined || !entry.sessions.delete(session) || entry.sessions.size > 0) return null;
    this.subscribers[kind].delete(key);
    return entry.name;
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.groupsChanged();
    // Keeps feeds connected (a PING reconnects a dropped one) and lets the backend watchdog
    // notice a stalled server.
    this.heartbeat = setInterval(() => {
      if (this.subscriptions === 0) return;
      for (const feeds of this.groups.values()) for (const feed of feeds.feeds()) feed.conn.send({ payload: PING, resolve: () => undefined });
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private sendToFeeds(verb: string, names: Buffer[]): void {
    for (let i = 0; i < names.length; i += NAMES_PER_COMMAND) {
      const payload = encodeCommand([verb, ...names.slice(i, i + NAMES_PER_COMMAND)]);
      for (const feeds of this.groups.values()) for (const feed of feeds.feeds()) feed.conn.sendUnanswered(payload);
    }
  }

  /** The whole subscription set, written first on every (re)connected feed. */
  private subscribeAllCommands(): Buffer[] {
    const out: Buffer[] = [];
    for (const kind of KINDS) {
      const names = [...this.subscribers[kind].values()].map((e) => e.name);
      for (let i = 0; i < names.length; i += NAMES_PER_COMMAND) out.push(encodeCommand([BACKEND_SUBSCRIBE[kind]!, ...names.slice(i, i + NAMES_PER_COMMAND)]));
    }
    return out;
  }

  /** Calls `then` once every master's feed has processed what was sent to it before. */
  private afterMastersCaughtUp(then: () => void): void {
    const actives = [...this.groups.values()].map((g) => g.active).filter((f): f is Feed => f !== null);
    let left = actives.length;
    if (left === 0) {
      then();
      return;
    }
    const ping = (feed: Feed): void => {
      feed.conn.send({
        payload: PING,
        resolve: (reply) => {
          // Refused for now (busy, loading): the feed is re-subscribing; ask again. Only a
          // server that is really down (so its group cannot publish either) lets the
          // confirmation go unbacked.
          if (reply[0] === 0x2d && TRANSIENT_REFUSAL.test(reply.toString('latin1', 1, reply.length - 2))) {
            setTimeout(() => ping(feed), CATCH_UP_RETRY_MS);
            return;
          }
          if (--left === 0) then();
        },
      });
    };
    for (const feed of actives) {
      // Try to connect now rather than fail fast on an old backoff.
      feed.conn.clearBackoff();
      ping(feed);
    }
  }

  /** Consumes what a feed receives besides PING replies: messages, confirmations, errors. */
  private readonly onFeedReply = (group: GroupFeeds, feed: Feed, reply: Buffer): boolean => {
    const kind = classifyPush(reply);
    if (kind >= 0) {
      group.onMessage(feed, reply);
      return true;
    }
    if (reply[0] === 0x2d) {
      const error = reply.toString('latin1', 1, reply.length - 2);
      if (TRANSIENT_REFUSAL.test(error)) {
        // Busy with a script, loading, …: it refused a SUBSCRIBE, a PING, or both, and which
        // reply is whose cannot be told. Drop the feed: it re-subscribes everything when it
        // reconnects, and the confirmations waiting on its PINGs ask again (afterMastersCaughtUp).
        this.logger.warn({ group: group.id, server: feed.addr, error }, 'pub/sub feed: the server refused a command for now; reconnecting to subscribe again');
        feed.conn.drop(`refused a pub/sub command: ${error}`);
        return true;
      }
      // A (un)subscribe the server refused for good (an ACL, an old server without
      // SSUBSCRIBE). It must not be taken for the answer to a PING queued behind it.
      this.logger.warn({ group: group.id, server: feed.addr, error }, 'pub/sub feed: the server refused a subscription command');
      return true;
    }
    return kind === CONFIRMATION;
  };

  /**
   * PUBSUB CHANNELS/SHARDCHANNELS (union), NUMSUB/SHARDNUMSUB/NUMPAT (max over masters). Asked
   * over RESP2 connections whatever the client speaks: the merge reads flat arrays, and the
   * merged reply is then built in the client's protocol (NUMSUB is a map in RESP3).
   */
  private introspect(session: Session, req: ClientRequest, name: string, args: Buffer[]): void {
    const masters = this.router.masters();
    if (masters.length === 0) {
      req.resolve(encodeError('ERR no group has a master'));
      return;
    }
    const payload = encodeCommand(args);
    const merge = new CustomMerge(req, masters.length, (replies) => replies.find((r) => isErrorReply(r)) ?? mergeIntrospection(session.resp, name, replies));
    masters.forEach((pool, p) => pool.pick(session.id).send(merge.part(p, payload)));
  }
}

function mergeIntrospection(resp: Protocol, name: string, replies: Buffer[]): Buffer {
  if (name === 'pubsub|numpat') {
    let max = 0n;
    for (const r of replies) {
      const n = parseIntegerReply(r) ?? 0n;
      if (n > max) max = n;
    }
    return encodeInteger(max);
  }
  if (name === 'pubsub|channels' || name === 'pubsub|shardchannels') {
    const seen = new Map<string, Buffer>();
    for (const r of replies) for (const el of splitArrayReply(r) ?? []) seen.set(el.toString('latin1'), el);
    return encodeArrayOfEncoded([...seen.values()]);
  }
  // NUMSUB / SHARDNUMSUB: [name, count, name, count, …] in request order from every master.
  const first = splitArrayReply(replies[0]!) ?? [];
  const counts = new Array<bigint>(first.length / 2).fill(0n);
  for (const r of replies) {
    const els = splitArrayReply(r) ?? [];
    for (let i = 1; i < els.length; i += 2) {
      const n = parseIntegerReply(els[i]!) ?? 0n;
      if (n > counts[(i - 1) / 2]!) counts[(i - 1) / 2] = n;
    }
  }
  const out: Buffer[] = [];
  for (let i = 0; i < counts.length; i++) out.push(first[i * 2]!, encodeInteger(counts[i]!));
  return encodeMap(resp, out);
}
