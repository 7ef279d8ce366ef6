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

  /** Stops watching; no list is delivered after this resolves. Never throws. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    const w = this.watcher;
    this.watcher = null;
    await w?.cancel().catch(() => undefined);
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
    for (let delay = RETRY_MIN_MS; !this.closed; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      // A change seen before this read started is covered by it.
      this.readAgain = false;
      let proxies: ProxyInfo[];
      try {
        proxies = await this.store.listProxies();
      } catch (err) {
        this.report(err);
        try {
          await sleep(delay, undefined, { signal: this.abort.signal });
        } catch {
          return; // closed
        }
        continue;
      }
      if (this.closed) return;
      try {
        this.handlers.onList(proxies);
      } catch (err) {
        this.report(err); // the handler's own bug: reading again would not fix it
      }
      return;
    }
  }

  /** Handler exceptions must not escape into etcd3's stream callbacks. */
  private report(err: unknown): void {
    try {
      this.handlers.onError?.(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // The error sink itself failed: nothing sensible left to tell.
    }
  }
}
