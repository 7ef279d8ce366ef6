/**
 * A topology watch: every change to slots and groups after a revision, in revision order, for
 * as long as the watch is open — across etcd restarts and outages.
 *
 * How it stays correct:
 * 1. One etcd watcher over [actions/, end of slots/). That range also holds migrations/,
 *    fences/ and proxies/ (ignored here) and moves/ (onMove), but a single watcher delivers actions, slot and
 *    group changes in one revision order; two watchers would not (a slot could arrive before
 *    its new group, or a barrier action before the slot change it guards).
 * 2. etcd3 reconnects the watcher by itself, resuming from the revision *it* last saw. It takes
 *    that from response headers, which during a catch-up can be ahead of the events delivered
 *    (etcd sends history in batches, each stamped with the current revision), so a disconnect
 *    mid catch-up would skip events. We track our own `nextRev` — one past the last event
 *    delivered (etcd never splits a revision across responses), or past a progress
 *    notification's revision (only sent when the watcher is caught up) — and write it into
 *    the create request each time etcd3 (re)sends it (the 'connecting' event fires right
 *    before the request is written).
 * 3. If etcd cancels the watcher — above all because the revision we need was compacted
 *    while we were away — no event stream can bring us up to date. We reload the whole
 *    topology at a fresh revision (retrying until etcd answers), hand it to onResync (or, with
 *    no onResync, replay it as onSlot/onGroup calls), and watch again from that revision.
 * 4. If etcd's history went *back* — etcd restarted on an empty data dir, or restored from an
 *    older snapshot — a watcher asking for `nextRev` would silently wait for revisions the new
 *    history reaches only much later, and deliver unrelated events then. The answer to every
 *    (re)created watcher carries etcd's current revision: below `nextRev - 1` means history
 *    rewound, and we resync exactly as in 3 (onResync says why). Callers decide whether to
 *    believe the reloaded topology (topology-guard.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Range, type IWatchResponse, type Watcher } from 'etcd3';
import type { Conn } from './client.js';
import { UnavailableError } from './errors.js';
import {
  decodeJson,
  offlineSlot,
  parseAction,
  parseGroup,
  parseIdentity,
  parseRestoreMarker,
  parseSlot,
  type ActionInfo,
  type GroupInfo,
  type ProductIdentity,
  type RestoreMarker,
  type SlotInfo,
  type Topology,
  parseMove,
  type KeyMove,
} from './models.js';
import type { Paths } from './paths.js';
import { cancelWatcher, reportTo, retryUntilDone } from './watch-plumbing.js';

/** Why the watch reloaded the whole topology. */
export type ResyncCause = 'compacted' | 'rewound';

export interface TopologyHandlers {
  /**
   * A slot changed. A deleted slot key arrives as an offline slot with `deleted` true: no
   * writer deletes slot keys, so a deletion means the table is being wiped.
   */
  onSlot(slot: SlotInfo, revision: string, deleted: boolean): void;
  /** A group was written, or deleted (`group` null). */
  onGroup(id: number, group: GroupInfo | null, revision: string): void;
  /**
   * A barrier action was written (actions/<seq>). It arrives after every slot change of its
   * revision, because one watcher covers actions/ through slots/ in revision order.
   */
  onAction?(action: ActionInfo, revision: string): void;
  /** The product identity was written, or deleted (`identity` null). */
  onIdentity?(identity: ProductIdentity | null, revision: string): void;
  /** A restore marker was written, or deleted (`marker` null: the restore finished). */
  onRestoring?(marker: RestoreMarker | null, revision: string): void;
  /**
   * A key move record (moves/<id>, moves.ts) was written, or deleted (`move` null: the move is
   * over). Arrives in revision order with slot changes and barrier actions.
   */
  onMove?(id: string, move: KeyMove | null, revision: string): void;
  /** A fence record (fences/<proxyId>) was written (`fenced` true) or cleared. */
  onFence?(proxyId: string, fenced: boolean, revision: string): void;
  /**
   * Something went wrong that the watch handles by itself: etcd unreachable (reported once
   * per outage), a value that does not parse (the event is skipped), a handler that threw.
   */
  onError?(err: Error): void;
  /**
   * The watch lost its place in etcd's history (compaction during an outage, or a history
   * that went back: `cause`): here is the complete topology at `topology.revision`; replace
   * all state with it — or, after a rewind, check first that it is still the same product.
   * Changes after it keep arriving through onSlot/onGroup. Without onResync the snapshot is
   * replayed through onSlot (all slots) and onGroup (existing groups) — a group deleted
   * during the gap is then not reported, so callers that keep a group map should implement
   * onResync.
   */
  onResync?(topology: Topology, cause: ResyncCause): void;
}

const RESYNC_BACKOFF_MIN_MS = 100;
const RESYNC_BACKOFF_MAX_MS = 2000;

export class TopologyWatch {
  private watcher: Watcher | null = null;
  private nextRev: bigint;
  private connected = false;
  private lastResyncAt = 0;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly conn: Conn,
    private readonly paths: Paths,
    private readonly load: () => Promise<Topology>,
    fromRevision: string,
    private readonly handlers: TopologyHandlers,
    private readonly onClose: () => void = () => {},
  ) {
    this.nextRev = BigInt(fromRevision) + 1n;
    this.attach();
  }

  /** Stops delivering events. Never throws; gives up waiting for etcd after 2 s. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.onClose();
    const w = this.watcher;
    this.watcher = null;
    await cancelWatcher(w);
  }

  private attach(): void {
    const range = new Range(this.paths.actions, Range.prefix(this.paths.slots).end);
    const w = this.conn.etcd.watch().inRange(range).startRevision(this.nextRev.toString()).watcher();
    this.watcher = w;
    w.on('connecting', () => {
      w.request.start_revision = this.nextRev.toString();
    });
    w.on('connected', (res: IWatchResponse) => {
      this.connected = true;
      if (this.watcher !== w || this.closed) return;
      // etcd's revision is below what we have already seen: its history went back.
      const current = BigInt(res.header.revision);
      if (current + 1n < this.nextRev) {
        this.watcher = null;
        void w.cancel().catch(() => undefined);
        this.report(new UnavailableError(`topology watch: etcd is at revision ${current}, behind revision ${this.nextRev - 1n} seen before: its history went back (data lost or restored); reloading`));
        void this.resync('rewound');
      }
    });
    w.on('disconnected', (err: Error) => {
      if (!this.connected) return; // report the transition, not every reconnect attempt
      this.connected = false;
      this.report(new UnavailableError(`topology watch: disconnected from etcd: ${err.message}`, err));
    });
    w.on('data', (res: IWatchResponse) => {
      if (this.watcher === w) this.onData(res);
    });
    // Emitted when etcd cancels the watcher; etcd3 has already dropped it.
    w.on('error', (err: Error) => {
      if (this.watcher !== w) return;
      this.watcher = null;
      this.report(err);
      void this.resync('compacted');
    });
  }

  private onData(res: IWatchResponse): void {
    if (this.closed) return;
    if (res.events.length === 0) {
      // Progress notification: the watcher is caught up to header.revision.
      const rev = BigInt(res.header.revision) + 1n;
      if (rev > this.nextRev) this.nextRev = rev;
      return;
    }
    for (const ev of res.events) {
      const revision = ev.kv.mod_revision;
      this.nextRev = BigInt(revision) + 1n;
      const key = ev.kv.key.toString('utf8');
      // proto-loader hands enums over as their proto names (PUT/DELETE).
      const deleted = String(ev.type).toUpperCase() === 'DELETE';
      try {
        const slotId = this.paths.slotIdOf(key);
        if (slotId !== null) {
          const slot = deleted ? offlineSlot(slotId) : parseSlot(decodeJson(ev.kv.value, key), slotId, key);
          this.handlers.onSlot(slot, revision, deleted);
          continue;
        }
        const groupId = this.paths.groupIdOf(key);
        if (groupId !== null) {
          const group = deleted ? null : parseGroup(decodeJson(ev.kv.value, key), groupId, key);
          this.handlers.onGroup(groupId, group, revision);
          continue;
        }
        if (key === this.paths.identity) {
          this.handlers.onIdentity?.(deleted ? null : parseIdentity(decodeJson(ev.kv.value, key), key), revision);
          continue;
        }
        if (key === this.paths.restoring) {
          this.handlers.onRestoring?.(deleted ? null : parseRestoreMarker(decodeJson(ev.kv.value, key), key), revision);
          continue;
        }
        const moveId = this.handlers.onMove ? this.paths.moveIdOf(key) : null;
        if (moveId !== null) {
          this.handlers.onMove!(moveId, deleted ? null : parseMove(decodeJson(ev.kv.value, key), key), revision);
          continue;
        }
        if (!deleted && this.handlers.onAction && this.paths.actionSeqOf(key) !== null) {
          this.handlers.onAction(parseAction(decodeJson(ev.kv.value, key), key), revision);
          continue;
        }
        const fenced = this.handlers.onFence && key.startsWith(this.paths.fences) ? key.slice(this.paths.fences.length) : null;
        if (fenced !== null) this.handlers.onFence!(fenced, !deleted, revision);
      } catch (err) {
        this.report(err);
      }
    }
  }

  private async resync(cause: ResyncCause): Promise<void> {
    // A watcher that etcd cancels again right after each reload (say, a permission problem)
    // must not turn into a tight reload loop: space resyncs out.
    const sinceLast = Date.now() - this.lastResyncAt;
    if (sinceLast < RESYNC_BACKOFF_MAX_MS) {
      try {
        await sleep(RESYNC_BACKOFF_MAX_MS - sinceLast, undefined, { signal: this.abort.signal });
      } catch {
        return; // closed
      }
    }
    this.lastResyncAt = Date.now();
    const topology = await retryUntilDone(() => this.load(), {
      signal: this.abort.signal,
      minMs: RESYNC_BACKOFF_MIN_MS,
      maxMs: RESYNC_BACKOFF_MAX_MS,
      onError: (err) => this.report(err),
    });
    if (topology === undefined || this.closed) return;
    this.deliver(topology, cause);
    this.nextRev = BigInt(topology.revision) + 1n;
    this.attach();
  }

  private deliver(t: Topology, cause: ResyncCause): void {
    try {
      if (this.handlers.onResync) {
        this.handlers.onResync(t, cause);
        return;
      }
      for (const slot of t.slots) this.handlers.onSlot(slot, t.revision, false);
      for (const [id, g] of t.groups) this.handlers.onGroup(id, g, t.revision);
    } catch (err) {
      this.report(err);
    }
  }

  private report(err: unknown): void {
    reportTo(this.handlers, err);
  }
}
