/**
 * Stray keys as they appear (`--watch-strays`). A key is a stray when it lives in a group
 * that does not own its slot: a Lua script or function that wrote a key it did not declare,
 * a write made on a server directly, the leftovers of an interrupted operation. Through the
 * proxy it cannot be read or deleted (requests go to the slot's owner), yet it counts in
 * DBSIZE and SCAN, and a later migration into that group fails with BUSYKEY.
 * `reborn-config check` finds the ones already there; this watch notices new ones at once.
 *
 * How: one subscribed connection per group master to `__keyevent@0__:new` (redis's new-key
 * event, class `n`, which the watch turns on — adding `E` and `n` to whatever
 * notify-keyspace-events the server already has). Each new key's slot is checked against the
 * slot table: at home when the slot is online in this group, or pre_migrate/migrating from
 * or to it (a MIGRATE creates keys on the target). Anything else is counted in
 * `reborn_proxy_stray_keys_total{group}`, kept in a short list of recent strays for
 * /api/proxy and the dashboard, and logged (at most one line per group per second).
 *
 * Why the table never makes a false alarm out of a migration: every registered proxy has
 * seen a slot in pre_migrate (from, to) before the runner moves its first key (the barrier
 * waits for its ack), and the target is home from then on.
 *
 * Cost: redis publishes one message per new key to every proxy watching. Off by default; turn
 * it on where new keys are created at a rate the proxies can take (measure first).
 */
import type { Logger } from 'pino';
import { encodeCommand, isErrorReply, keySlot, splitArrayReply } from '@reborn/protocol';
import { groupMaster, isInternalKey } from '@reborn/coordinator';
import { redisCommand } from './admin-redis.js';
import { BackendConnection, type BackendOptions } from './backend.js';
import type { Router } from './router.js';

const NEW_KEY_CHANNEL = '__keyevent@0__:new';
const SUBSCRIBE = encodeCommand(['SUBSCRIBE', NEW_KEY_CHANNEL]);
const PING = encodeCommand(['PING']);
const MESSAGE = Buffer.from('$7\r\nmessage\r\n');
const SUBSCRIBED = Buffer.from('$9\r\nsubscribe\r\n');
/** A connection that failed reconnects on the next request: a PING this often is that request. */
const KEEPALIVE_MS = 1000;
/** How many recent strays /api/proxy lists. */
const RECENT = 20;
const LOG_EVERY_MS = 1000;

export interface StrayKey {
  /** The key as latin1 text, cut at 200 bytes. */
  key: string;
  slot: number;
  /** The group whose master holds it. */
  group: number;
  /** The group that owns the slot (null: the slot is offline). */
  owner: number | null;
  at: string;
}

export class StrayWatch {
  private readonly feeds = new Map<number, { addr: string; conn: BackendConnection }>();
  private readonly recentStrays: StrayKey[] = [];
  private readonly lastLogAt = new Map<number, number>();
  private readonly log: Logger;
  /** Strays seen, by group: read by the metrics collector. */
  readonly counts = new Map<number, number>();
  private readonly keepalive: NodeJS.Timeout;

  constructor(
    private readonly router: Router,
    private readonly options: BackendOptions,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'stray-watch' });
    this.keepalive = setInterval(() => {
      for (const { conn } of this.feeds.values()) conn.send({ payload: PING, resolve: () => undefined });
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  /** Follows the groups' masters: one subscribed connection each. */
  groupsChanged(): void {
    const wanted = new Map<number, string>();
    for (const g of this.router.groupList()) {
      const m = groupMaster(g);
      if (m) wanted.set(g.id, m.addr);
    }
    for (const [gid, feed] of this.feeds) {
      if (wanted.get(gid) !== feed.addr) {
        feed.conn.close('stray watch: the group master changed');
        this.feeds.delete(gid);
      }
    }
    for (const [gid, addr] of wanted) if (!this.feeds.has(gid)) this.feeds.set(gid, { addr, conn: this.subscribe(gid, addr) });
  }

  get recent(): readonly StrayKey[] {
    return this.recentStrays;
  }

  close(): void {
    clearInterval(this.keepalive);
    for (const feed of this.feeds.values()) feed.conn.close('proxy stopping');
    this.feeds.clear();
  }

  private subscribe(gid: number, addr: string): BackendConnection {
    const conn = new BackendConnection(addr, this.options);
    // Messages and the subscribe confirmation are ours; a PING's reply completes the PING.
    conn.onPush = (reply) => this.onPush(gid, reply);
    // On every (re)connect: events on (a restarted server forgot them), then the subscription.
    conn.afterHandshake = () => {
      void this.enableEvents(addr);
      return [SUBSCRIBE];
    };
    conn.send({ payload: PING, resolve: () => undefined }); // connects
    return conn;
  }

  private onPush(gid: number, reply: Buffer): boolean {
    if (isErrorReply(reply)) {
      // SUBSCRIBE refused (a PING is never): ours, or the PINGs' replies would shift by one.
      this.log.warn({ group: gid, reply: reply.toString('latin1').trim() }, 'stray watch: subscription refused');
      return true;
    }
    const parts = splitArrayReply(reply);
    if (parts === null || parts.length !== 3) return false;
    if (parts[0]!.equals(SUBSCRIBED)) return true;
    if (!parts[0]!.equals(MESSAGE)) return false;
    this.check(gid, parts[2]!);
    return true;
  }

  private check(gid: number, bulk: Buffer): void {
    const key = bulk.subarray(bulk.indexOf(0x0a) + 1, bulk.length - 2);
    if (isInternalKey(key)) return; // a migration's copy marks: the product's own, never strays
    const slot = keySlot(key);
    const info = this.router.slotInfoOf(slot);
    const home =
      info.state === 'online' ? info.group === gid : info.state === 'offline' ? false : info.from === gid || info.to === gid || info.group === gid;
    if (home) return;
    this.counts.set(gid, (this.counts.get(gid) ?? 0) + 1);
    const stray: StrayKey = {
      key: key.toString('latin1', 0, Math.min(key.length, 200)),
      slot,
      group: gid,
      owner: info.state === 'offline' ? null : info.group,
      at: new Date().toISOString(),
    };
    this.recentStrays.push(stray);
    if (this.recentStrays.length > RECENT) this.recentStrays.shift();
    const now = Date.now();
    if (now - (this.lastLogAt.get(gid) ?? 0) >= LOG_EVERY_MS) {
      this.lastLogAt.set(gid, now);
      this.log.warn({ ...stray, total: this.counts.get(gid) }, 'stray key: written in a group that does not own its slot (run reborn-config check)');
    }
  }

  /** Adds E (keyevent channels) and n (new keys) to the server's notify-keyspace-events. */
  private async enableEvents(addr: string): Promise<void> {
    const password = this.options.auth?.adminPassword ?? null;
    try {
      const got = splitArrayReply(await redisCommand(addr, ['CONFIG', 'GET', 'notify-keyspace-events'], 2000, password));
      const value = got?.[1];
      const flags = value === undefined ? '' : value.toString('latin1', value.indexOf(0x0a) + 1, value.length - 2);
      if (flags.includes('E') && flags.includes('n')) return;
      const next = [...new Set([...flags, 'E', 'n'])].join('');
      const set = await redisCommand(addr, ['CONFIG', 'SET', 'notify-keyspace-events', next], 2000, password);
      if (isErrorReply(set)) throw new Error(set.toString('latin1').trim());
      this.log.info({ backend: addr, from: flags, to: next }, 'new-key events turned on for the stray watch');
    } catch (err) {
      this.log.warn({ backend: addr, err: (err as Error).message }, 'cannot turn on new-key events: strays there go unnoticed');
    }
  }
}
