/**
 * The registered proxies of a product, followed live: the whole list is handed over each
 * time it may have changed (a proxy registered, re-registered, updated its state, or its
 * lease ran out). A proxy's cluster face builds its CLUSTER SLOTS map from it.
 *
 * Invariant: after every change etcd makes to proxies/, a fresh read of the whole list
 * follows, and lists are delivered in the order they were read (one read at a time; changes
 * seen while a read runs trigger exactly one more). The list is small (one entry per proxy),
 * so re-reading it whole is simpler and safer than applying single events.
 *
 * Why a read on every (re)connect of the watcher: events may have been missed while etcd was
 * away, and a watcher etcd cancelled (its revision compacted) is replaced by a fresh one — a
 * read after that covers whatever happened in between. While etcd is unreachable the last
 * list delivered stays the caller's truth; nothing is delivered until a read succeeds.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Watcher } from 'etcd3';
import type { ProxyInfo } from './models.js';
import type { Store } from './store.js';
import { cancelWatcher, reportTo, retryUntilDone } from './watch-plumbing.js';

export interface ProxyListHandlers {
  /** The registered proxies, sorted by id. */
  onList(proxies: ProxyInfo[]): void;
  /** A read or the watcher failed; the watch retries by itself. */
  onError?(err: Error): void;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2000;

export class ProxyListWatch {
  private watcher: Watcher | null = null;
  private reading = false;
  private readAgain = false;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly store: Store,
    private readonly handlers: ProxyListHandlers,
  ) {
    this.attach();
  }

  /** Stops watching; no list is delivered after this resolves. Never throws; gives up waiting for etcd after 2 s. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    const w = this.watcher;
    this.watcher = null;
    await cancelWatcher(w);
  }

  private attach(): void {
    if (this.closed) return;
    const w = this.store.etcd.watch().prefix(this.store.paths.proxies).watcher();
    this.watcher = w;
    // First connect and every reconnect: whatever happened meanwhile is in a fresh read.
    w.on('connected', () => {
      if (this.watcher === w) this.refresh();
    });
    w.on('data', (res) => {
      if (this.watcher === w && res.events.length > 0) this.refresh();
    });
    // etcd cancelled the watcher (e.g. it resumed from a compacted revision): start afresh.
    w.on('error', (err: Error) => {
      if (this.watcher !== w) return;
      this.watcher = null;
      this.report(err);
      void sleep(RETRY_MAX_MS, undefined, { signal: this.abort.signal }).then(
        () => this.attach(),
        () => undefined, // closed
      );
    });
  }

  /** Reads the list and delivers it; one read at a time, retried until etcd answers. */
  private refresh(): void {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    void this.readUntilDelivered().finally(() => {
      this.reading = false;
      if (this.readAgain && !this.closed) {
        this.readAgain = false;
        this.refresh();
      }
    });
  }

  private async readUntilDelivered(): Promise<void> {
    const proxies = await retryUntilDone(
      () => {
        // A change seen before this read started is covered by it.
        this.readAgain = false;
        return this.store.listProxies();
      },
      { signal: this.abort.signal, minMs: RETRY_MIN_MS, maxMs: RETRY_MAX_MS, onError: (err) => this.report(err) },
    );
    if (proxies === undefined || this.closed) return;
    try {
      this.handlers.onList(proxies);
    } catch (err) {
      this.report(err); // the handler's own bug: reading again would not fix it
    }
  }

  private report(err: unknown): void {
    reportTo(this.handlers, err);
  }
}
