/**
 * Client-side caching through the proxy: CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO
 * with Redis 7's semantics, and the delivery of invalidations — `>2 invalidate [keys]` pushes
 * to RESP3 clients, `message __redis__:invalidate [keys]` to a RESP2 client's REDIRECT target
 * (a subscribed connection of this proxy, by its CLIENT ID) — for writes made through any
 * proxy, or on redis directly.
 *
 * How: redis never sees the clients. The proxy keeps their tracking state (ClientTracking, on
 * the session): the keys each default-mode client read (tracking-table.ts) and each BCAST
 * client's prefixes (tracking-prefixes.ts). While any client tracks, every group master is
 * watched by a listener that hears of every key written there (tracking-listener.ts); each
 * such key is sent to the clients that may hold it, and forgotten (Redis's rule: one
 * invalidation per read).
 *
 * Invariant — a client never keeps a stale value:
 * - A read is recorded when the command is about to be sent, after it took its place in the
 *   client's reply queue. Any invalidation handled from then on goes behind that reply
 *   (Session.push writes behind every reply still owed), so the client sees the value, then
 *   its invalidation, whatever the order in which the two reached the proxy.
 * - A read of a group whose listener is not live (not yet confirmed, reconnecting, master just
 *   replaced) is not recorded but invalidated at once, behind its own reply: nobody would hear
 *   of a write there.
 * - When a live listener stops being one, every client that read keys of that group (and
 *   every BCAST client) gets the flush-everything null: writes may have gone unheard.
 * - A slot whose serving group changes, or whose migration ends, has its recorded keys
 *   invalidated: the new owner's copy is not what was read.
 * - The table is bounded (`maxKeys`); a key evicted from it is invalidated.
 * - CLIENT TRACKING ON is answered once the listeners are live, and the client's later
 *   commands wait for it (the session's gate): a read right behind the OK is tracked.
 *
 * Not like Redis: NOLOOP is accepted (and shown) but a client still hears of its own writes:
 * the listener sees every proxy's writes on shared connections and cannot tell whose a write
 * was, and guessing wrong would leave another client's write unheard. FLUSHALL reaches, per
 * master flushed, the clients that read keys there and every BCAST client (Redis: every
 * tracking client). Scripts' declared keys are tracked whether or not they read. REDIRECT
 * names a connection of this same proxy. An invalidation waits behind a blocked command's
 * reply. docs/client-side-caching.md has the user's view.
 */
import type { Logger } from 'pino';
import {
  CommandFlag,
  NULL3,
  NULL_BULK,
  checkArity,
  encodeArrayOfEncoded,
  encodeBulk,
  encodeInteger,
  encodePush,
  extractKeyIndexes,
  keySlot,
  OK,
  type CommandInfo,
  type Protocol,
} from '@reborn/protocol';
import { NO_GROUP } from '@reborn/coordinator';
import type { BackendOptions } from './backend.js';
import type { TrackingGauges } from './metrics.js';
import type { ClientRequest } from './request.js';
import type { Router } from './router.js';
import { KeyTable, type Taken } from './tracking-table.js';
import { PrefixTree } from './tracking-prefixes.js';
import { checkCaching, checkTrackingOn, getRedir, parseTracking, trackingInfo, type TrackingMode } from './tracking-commands.js';
import { InvalidationListeners, type ListenerEvents, type Listeners } from './tracking-listener.js';

/** What tracking needs of a client connection (a Session). */
export interface TrackingClient {
  readonly id: number;
  readonly resp: Protocol;
  /** Subscribed to anything: a RESP2 REDIRECT target must be. */
  readonly pubsub: object | null;
  /** Inside MULTI. */
  readonly tx: object | null;
  readonly isClosed: boolean;
  /** Closed or closing (after QUIT): a REDIRECT to it is broken. */
  readonly isEnding: boolean;
  tracking: ClientTracking | null;
  /** Writes an out-of-band frame behind every reply still owed. */
  push(frame: Buffer): void;
  /** Parks the client's later commands until ungate() (Session's gate). */
  gate(): void;
  ungate(): void;
  whenClosed(hook: () => void): void;
  forgetWhenClosed(hook: () => void): void;
}

export interface TrackingLimits {
  /** Keys in the tracking table, 0 = no limit (Redis's tracking-table-max-keys). */
  maxKeys: number;
  /** BCAST prefixes one client may register. */
  maxPrefixes: number;
}

/** Why invalidations were sent: the label of reborn_proxy_tracking_invalidations_total. */
export const INVALIDATION_REASONS = ['write', 'flush', 'listener_lost', 'not_listening', 'slot_moved', 'evicted'] as const;
export type InvalidationReason = (typeof INVALIDATION_REASONS)[number];

/** Scripts: their declared keys are tracked, as Redis tracks the caller's keys when a script reads. */
const SCRIPTS = new Set(['eval', 'evalsha', 'fcall']);
const INVALIDATE = encodeBulk('invalidate');
const MESSAGE = encodeBulk('message');
const CHANNEL = encodeBulk('__redis__:invalidate');
const REDIR_BROKEN = encodeBulk('tracking-redir-broken');

/** The keys a command reads, if it is one whose keys tracking records (Redis: readonly commands). */
function readKeys(cmd: CommandInfo, args: readonly Buffer[]): Buffer[] | null {
  if (!(cmd.readonly || SCRIPTS.has(cmd.name)) || (cmd.flags & CommandFlag.pubsub) !== 0 || !checkArity(cmd, args.length)) return null;
  let indexes: number[];
  try {
    indexes = extractKeyIndexes(cmd, args);
  } catch {
    return null; // refused by redis whatever server gets it: nothing is read
  }
  return indexes.length === 0 ? null : indexes.map((i) => args[i]!);
}

/** One client's tracking state, on its session while tracking is on. */
export class ClientTracking implements TrackingMode {
  redirect = 0;
  /** The REDIRECT connection, found by its id when tracking was turned on (ids are never reused). */
  redirectTo: TrackingClient | null = null;
  bcast = false;
  optin = false;
  optout = false;
  noloop = false;
  caching = false;
  brokenRedirect = false;
  readonly prefixes = new Map<string, Buffer>();
  /** Default mode: the keys recorded for this client (the table's view of it). */
  readonly keys = new Set<string>();
  /** Default mode: groups this client read recorded keys from, since its last flush. */
  readonly groups = new Set<number>();
  /** Keys read by the commands queued in MULTI: recorded when EXEC runs. */
  private queuedReads: Buffer[] | null = null;
  /** The last command was a CLIENT one: it leaves CLIENT CACHING's flag in place. */
  private lastWasClient = true;
  readonly closeHook: () => void;

  constructor(
    readonly client: TrackingClient,
    private readonly hub: Tracking,
  ) {
    this.closeHook = () => hub.disable(client);
  }

  /**
   * Every command of a tracking client, when it runs (dispatch.ts), before it is sent: the
   * CLIENT CACHING flag's lifetime, and the reads to record.
   */
  beforeCommand(cmd: CommandInfo | undefined, args: readonly Buffer[]): void {
    const name = cmd?.name;
    // Redis clears the flag after any command but CLIENT, unless inside MULTI (networking.c
    // resetClient): it covers the next command, or the next whole transaction.
    if (!this.lastWasClient && this.client.tx === null) this.caching = false;
    this.lastWasClient = name !== undefined && (name === 'client' || name.startsWith('client|'));
    if (cmd === undefined) return;
    if (this.client.tx !== null) {
      if (name === 'exec') {
        const reads = this.queuedReads;
        this.queuedReads = null;
        if (reads !== null && this.wants()) this.hub.noteReads(this, reads);
      } else if (name === 'discard') {
        this.queuedReads = null;
      } else if (name !== 'multi' && name !== 'watch' && name !== 'quit' && name !== 'reset') {
        const keys = readKeys(cmd, args);
        if (keys !== null) (this.queuedReads ??= []).push(...keys.map((k) => Buffer.from(k)));
      }
      return;
    }
    if (name === 'multi') {
      this.queuedReads = null;
      return;
    }
    const keys = readKeys(cmd, args);
    if (keys !== null && this.wants()) this.hub.noteReads(this, keys);
  }

  /** RESET, CLIENT TRACKING OFF, or the connection closed. */
  disable(): void {
    this.hub.disable(this.client);
  }

  /** OPTIN reads are tracked after CLIENT CACHING YES only; OPTOUT ones unless CACHING NO. */
  private wants(): boolean {
    return !((this.optin && !this.caching) || (this.optout && this.caching));
  }
}

export class Tracking implements ListenerEvents {
  private readonly trackers = new Set<ClientTracking>();
  private readonly table: KeyTable<ClientTracking>;
  private readonly prefixTree = new PrefixTree<ClientTracking>();
  private bcastClients = 0;
  private readonly sent = new Map<InvalidationReason, number>(INVALIDATION_REASONS.map((r) => [r, 0]));
  private readonly listeners: Listeners;

  constructor(
    private readonly limits: TrackingLimits,
    /** The groups whose masters may hold a slot's keys now (owner; source and target while it moves). */
    private readonly groupsOfSlot: (slot: number) => readonly number[],
    /** Every client connection of this proxy: where a REDIRECT id is looked up. */
    private readonly clients: () => Iterable<TrackingClient>,
    listeners: (events: ListenerEvents) => Listeners,
  ) {
    this.table = new KeyTable(limits.maxKeys);
    this.listeners = listeners(this);
  }

  /** CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO (local-commands.ts). */
  command(client: TrackingClient, req: ClientRequest, name: string, args: Buffer[]): void {
    switch (name) {
      case 'client|tracking':
        this.trackingCommand(client, req, args);
        return;
      case 'client|caching': {
        const refused = checkCaching(client.tracking, args[2]!);
        if (refused === null) client.tracking!.caching = true;
        req.resolve(refused ?? OK);
        return;
      }
      case 'client|getredir':
        req.resolve(getRedir(client.tracking));
        return;
      default:
        req.resolve(trackingInfo(client.resp, client.tracking));
    }
  }

  private trackingCommand(client: TrackingClient, req: ClientRequest, args: Buffer[]): void {
    const parsed = parseTracking(args, (id) => this.client(id) !== undefined, this.limits.maxPrefixes);
    if (Buffer.isBuffer(parsed)) {
      req.resolve(parsed);
      return;
    }
    if (!parsed.on) {
      this.disable(client);
      req.resolve(OK);
      return;
    }
    const refused = checkTrackingOn(client.tracking, parsed, this.limits.maxPrefixes);
    if (refused !== null) {
      req.resolve(refused);
      return;
    }
    let t = client.tracking;
    if (t === null) {
      t = new ClientTracking(client, this);
      client.tracking = t;
      this.trackers.add(t);
      client.whenClosed(t.closeHook);
    }
    t.redirect = parsed.redirect;
    t.redirectTo = parsed.redirect === 0 ? null : this.client(parsed.redirect)!;
    t.brokenRedirect = false;
    t.optin = parsed.optin;
    t.optout = parsed.optout;
    t.noloop = parsed.noloop;
    if (parsed.bcast && !t.bcast) {
      t.bcast = true;
      this.bcastClients++;
    }
    if (parsed.bcast) for (const p of parsed.prefixes.length === 0 ? [Buffer.alloc(0)] : parsed.prefixes) this.addPrefix(t, p);
    this.listeners.start();
    // Answered once every master is listened to, and the client's later commands wait until
    // then: a read right behind the OK is then tracked rather than invalidated at once.
    client.gate();
    const answer = (): void => {
      req.resolve(OK);
      client.ungate();
    };
    this.listeners.whenListening().then(answer, answer);
  }

  /** A connection of this proxy by CLIENT ID (a scan: CLIENT TRACKING … REDIRECT only). */
  private client(id: number): TrackingClient | undefined {
    for (const c of this.clients()) if (c.id === id && !c.isEnding) return c;
    return undefined;
  }

  private addPrefix(t: ClientTracking, prefix: Buffer): void {
    const name = prefix.toString('latin1');
    if (t.prefixes.has(name)) return;
    const copy = Buffer.from(prefix);
    t.prefixes.set(name, copy);
    this.prefixTree.add(copy, t);
  }

  /** Tracking off for `client`: RESET, CLIENT TRACKING OFF, the connection closed. */
  disable(client: TrackingClient): void {
    const t = client.tracking;
    if (t === null) return;
    client.tracking = null;
    client.forgetWhenClosed(t.closeHook);
    this.trackers.delete(t);
    for (const p of t.prefixes.values()) this.prefixTree.remove(p, t);
    t.prefixes.clear();
    if (t.bcast) this.bcastClients--;
    this.table.forget(t);
    t.groups.clear();
    if (this.trackers.size === 0) this.listeners.idle();
  }

  /** Keys `t` is about to read (see the file comment: recorded before the command is sent). */
  noteReads(t: ClientTracking, keys: readonly Buffer[]): void {
    let unwatched: Buffer[] | null = null;
    for (const key of keys) {
      const slot = keySlot(key);
      const groups = this.groupsOfSlot(slot);
      let live = groups.length > 0;
      for (const g of groups) if (!this.listeners.isLive(g)) live = false;
      if (!live) {
        (unwatched ??= []).push(Buffer.from(key));
        continue;
      }
      if (t.bcast) continue; // BCAST clients hear of their prefixes, not of their reads
      for (const g of groups) t.groups.add(g);
      const evicted = this.table.track(t, key.toString('latin1'), slot);
      if (evicted !== null) this.fanOut(evicted, 'evicted');
    }
    if (unwatched !== null) this.deliver(t, unwatched, 'not_listening');
  }

  /** A slot's serving group changed, or its migration ended (router.ts). */
  slotMoved(slot: number): void {
    const taken = this.table.takeSlot(slot);
    if (taken.length > 0) this.fanOut(taken, 'slot_moved');
  }

  /** The group table changed: the listeners follow the masters. */
  groupsChanged(): void {
    this.listeners.groupsChanged();
  }

  // --- ListenerEvents -------------------------------------------------------------------------

  /**
   * Keys written in group `gid`, framed as Redis frames them (tracking.c): a default-mode
   * client gets one message per key; a BCAST client one message per matching prefix, with
   * every key under it (a key under two of its prefixes is in both).
   */
  keys(_gid: number, keys: Buffer[]): void {
    if (this.table.size > 0) {
      for (const key of keys) {
        const holders = this.table.take(key.toString('latin1'));
        if (holders !== undefined) for (const t of holders) this.deliver(t, [key], 'write');
      }
    }
    if (this.bcastClients === 0) return;
    const per = new Map<ClientTracking, Map<object, Buffer[]>>();
    for (const key of keys) {
      this.prefixTree.match(key, (t, prefix) => {
        let byPrefix = per.get(t);
        if (byPrefix === undefined) per.set(t, (byPrefix = new Map()));
        const list = byPrefix.get(prefix);
        if (list === undefined) byPrefix.set(prefix, [key]);
        else list.push(key);
      });
    }
    for (const [t, byPrefix] of per) for (const list of byPrefix.values()) this.deliver(t, list, 'write');
  }

  flush(gid: number): void {
    this.flushGroup(gid, 'flush');
  }

  lost(gid: number): void {
    this.flushGroup(gid, 'listener_lost');
  }

  // ---------------------------------------------------------------------------------------------

  /** Flush-everything to every client that may hold keys of group `gid`. */
  private flushGroup(gid: number, reason: InvalidationReason): void {
    for (const t of this.trackers) {
      if (!t.bcast && !t.groups.has(gid)) continue;
      this.table.forget(t);
      t.groups.clear();
      this.deliver(t, null, reason);
    }
  }

  private fanOut(taken: Taken<ClientTracking>, reason: InvalidationReason): void {
    const per = new Map<ClientTracking, Buffer[]>();
    for (const [key, holders] of taken) {
      const bytes = Buffer.from(key, 'latin1');
      for (const t of holders) {
        const list = per.get(t);
        if (list === undefined) per.set(t, [bytes]);
        else list.push(bytes);
      }
    }
    for (const [t, list] of per) this.deliver(t, list, reason);
  }

  /**
   * Sends `keys` (null: everything) to `t`'s client, or to its REDIRECT target, the way Redis
   * does (tracking.c sendTrackingMessage): a RESP3 receiver gets a push; a RESP2 target a
   * pub/sub message if it is subscribed; a RESP2 client without REDIRECT nothing. A REDIRECT
   * target that is gone marks the redirect broken (a RESP3 client is told).
   */
  private deliver(t: ClientTracking, keys: Buffer[] | null, reason: InvalidationReason): void {
    const client = t.client;
    let target: TrackingClient = client;
    if (t.redirect !== 0) {
      const r = t.redirectTo;
      if (r === null || r.isEnding) {
        t.brokenRedirect = true;
        if (client.resp === 3) client.push(encodePush(3, [REDIR_BROKEN, encodeInteger(t.redirect)]));
        return;
      }
      target = r;
    }
    // Redis writes the null in the tracking client's protocol; never `_` to a RESP2 reader.
    const payload = keys === null ? (client.resp === 3 && target.resp === 3 ? NULL3 : NULL_BULK) : encodeArrayOfEncoded(keys.map((k) => encodeBulk(k)));
    if (target.resp === 3) target.push(encodePush(3, [INVALIDATE, payload]));
    else if (t.redirect !== 0 && target.pubsub !== null) target.push(encodePush(2, [MESSAGE, CHANNEL, payload]));
    else return;
    this.sent.set(reason, this.sent.get(reason)! + 1);
  }

  /** The gauges /metrics reads; INFO and /api/proxy show them too. */
  stats(): TrackingGauges {
    return { clients: this.trackers.size, keys: this.table.size, prefixes: this.prefixTree.size, invalidations: this.sent, listeners: this.listeners.states() };
  }

  /** For /api/proxy. */
  view(): Record<string, unknown> {
    const t = this.stats();
    return {
      clients: t.clients,
      keys: t.keys,
      prefixes: t.prefixes,
      invalidations: Object.fromEntries(t.invalidations),
      listeners: Object.fromEntries([...t.listeners].map(([gid, live]) => [gid, live ? 'live' : 'not live'])),
    };
  }

  close(): void {
    this.listeners.close();
  }
}

/**
 * Client-side caching for a proxy: the hub, its listeners on the router's group masters (with
 * the proxy's backend settings), and the router's slot moves wired to it.
 */
export function trackingForProxy(
  router: Router,
  backendOptions: BackendOptions,
  logger: Logger,
  limits: TrackingLimits,
  clients: () => Iterable<TrackingClient>,
): Tracking {
  const log = logger.child({ component: 'tracking' });
  const tracking = new Tracking(limits, slotGroups(router), clients, (events) => new InvalidationListeners(router, backendOptions, log, events));
  router.onSlotMoved = (slot) => tracking.slotMoved(slot);
  return tracking;
}

/** The groups that may hold a slot's keys, from the router's view of the slot. */
export function slotGroups(router: Router): (slot: number) => readonly number[] {
  // Asked for every key a tracking client reads: an online slot (the common case) answers a
  // shared one-element array instead of building one per read.
  const single = new Map<number, readonly number[]>();
  const NONE: readonly number[] = [];
  return (slot) => {
    const info = router.slotInfoOf(slot);
    if (info.state === 'offline' || info.group === NO_GROUP) return NONE;
    const moving = (g: number | undefined): boolean => g !== undefined && g !== NO_GROUP && g !== info.group;
    if (!moving(info.from) && !moving(info.to)) {
      let one = single.get(info.group);
      if (one === undefined) single.set(info.group, (one = [info.group]));
      return one;
    }
    const out = [info.group];
    if (moving(info.from)) out.push(info.from!);
    if (moving(info.to) && info.to !== info.from) out.push(info.to!);
    return out;
  };
}
