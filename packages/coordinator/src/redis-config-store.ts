/**
 * The product-wide redis parameters in etcd (`/reborn/<p>/redis-config`, one JSON record, see
 * redis-config.ts): read, change, watch — and the one way a change is made, shared by the
 * proxy's CONFIG SET and reborn-config's `redis-config set`: validate on one master, store,
 * and only then let it spread.
 *
 * Invariants: every change is a compare-and-swap on the key's revision, re-decided on fresh
 * state when another writer got there first, so two operators setting two parameters at once
 * both land; nothing is stored that the validating master refused; a watch always delivers the
 * stored record as of its newest event, and reads it again whenever it (re)connects, so an
 * etcd outage or compaction never leaves a watcher with an old record.
 */
import type { Watcher } from 'etcd3';
import { ConflictError } from './errors.js';
import { guard, guardedWrite, op, readKey } from './guarded-writes.js';
import { decodeJson } from './models.js';
import {
  EMPTY_PRODUCT_CONFIG,
  encodeProductConfig,
  parseProductConfig,
  setAllOrNothing,
  type ApplyConfigOptions,
  type ProductConfigRecord,
  type ServerConfigAccess,
} from './redis-config.js';
import type { Store } from './store.js';
import { cancelWatcher, reportTo, retryUntilDone } from './watch-plumbing.js';

/** Compare-and-swap attempts before a change gives up (only ever reached under a write storm). */
const CAS_ATTEMPTS = 10;
const REWATCH_MIN_MS = 100;
const REWATCH_MAX_MS = 2000;

export interface ProductConfigHandlers {
  /** The stored record changed (or was read again after a reconnect). */
  onChange(record: ProductConfigRecord): void;
  /** etcd unreachable, a value that does not parse (the event is skipped). */
  onError?(err: Error): void;
}

export class RedisConfigStore {
  private readonly key: string;

  constructor(private readonly store: Store) {
    this.key = store.paths.redisConfig;
  }

  /** The stored record (EMPTY_PRODUCT_CONFIG when none), with the key's revision (null: absent). */
  async read(): Promise<{ record: ProductConfigRecord; modRevision: string | null }> {
    const kv = await readKey(this.store, 'read redis config', this.key);
    if (kv === null) return { record: EMPTY_PRODUCT_CONFIG, modRevision: null };
    return { record: parseProductConfig(decodeJson(kv.value, this.key), this.key), modRevision: kv.modRevision };
  }

  /** Stores `params` (canonical names, checked values) over the stored ones. */
  set(params: Readonly<Record<string, string>>): Promise<ProductConfigRecord> {
    return this.change('store redis config', (current) => ({ ...current, ...params }));
  }

  /** Removes `names` from the stored set; resolves with those that were stored. */
  async unset(names: readonly string[]): Promise<string[]> {
    const removed: string[] = [];
    await this.change('unset redis config', (current) => {
      removed.length = 0;
      const next = { ...current };
      for (const n of names) {
        if (n in next) {
          removed.push(n);
          delete next[n];
        }
      }
      return next;
    });
    return removed;
  }

  /** Delivers the stored record now and after every change, until closed. */
  watch(handlers: ProductConfigHandlers): ProductConfigWatch {
    return new ProductConfigWatch(this.store, this.key, () => this.read(), handlers);
  }

  private async change(what: string, next: (current: Record<string, string>) => Record<string, string>): Promise<ProductConfigRecord> {
    for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
      const { record, modRevision } = await this.read();
      const updated: ProductConfigRecord = { params: next({ ...record.params }), updatedAt: new Date().toISOString() };
      const guardNow = modRevision === null ? guard.absent(this.key) : guard.modRevision(this.key, modRevision);
      const text = encodeProductConfig(updated);
      const res = await guardedWrite(this.store, what, [guardNow], [op.put(this.key, text)]);
      if (res.succeeded) return parseProductConfig(decodeJson(text, this.key), this.key);
    }
    throw new ConflictError(`${what}: the record kept changing under us; try again`, { retryable: true });
  }
}

/**
 * The one change of the product's parameters: CONFIG SET of all of them on `validateOn` (a
 * master) first — a refusal there (RedisConfigRefusedError, redis' own words) stores nothing —
 * then the merged record in etcd. If storing fails, the master gets its old values back, so
 * no server keeps a value the product does not have. Spreading it to every server is the
 * caller's next step (and every proxy's, on the change it sees).
 */
export async function setProductConfig(
  configs: RedisConfigStore,
  access: ServerConfigAccess,
  validateOn: string,
  params: Readonly<Record<string, string>>,
  opts: ApplyConfigOptions = {},
): Promise<ProductConfigRecord> {
  const before = await access.get(validateOn, Object.keys(params));
  await setAllOrNothing(access, validateOn, params, opts);
  try {
    return await configs.set(params);
  } catch (err) {
    const back = [...before.entries()];
    if (back.length > 0) await access.set(validateOn, back).catch(() => undefined);
    throw err;
  }
}

/** A watch of the one key; see RedisConfigStore.watch. */
export class ProductConfigWatch {
  private watcher: Watcher | null = null;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly store: Store,
    private readonly key: string,
    private readonly read: () => Promise<{ record: ProductConfigRecord; modRevision: string | null }>,
    private readonly handlers: ProductConfigHandlers,
  ) {
    void this.start();
  }

  /** Stops delivering. Never throws; gives up waiting for etcd after 2 s. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    const w = this.watcher;
    this.watcher = null;
    await cancelWatcher(w);
  }

  /** Reads the record, delivers it, and watches from that revision on (retrying while etcd is away). */
  private async start(): Promise<void> {
    const res = await retryUntilDone(() => this.store.call('read redis config', () => this.store.etcd.get(this.key).exec()), {
      signal: this.abort.signal,
      minMs: REWATCH_MIN_MS,
      maxMs: REWATCH_MAX_MS,
      onError: (err) => this.report(err),
    });
    if (res === undefined || this.closed) return;
    const kv = res.kvs[0];
    this.deliver(kv ? kv.value : null);
    if (!this.closed) this.attach(res.header.revision);
  }

  private attach(revision: string): void {
    const w = this.store.etcd.watch().key(this.key).startRevision((BigInt(revision) + 1n).toString()).watcher();
    this.watcher = w;
    let wasDown = false;
    w.on('put', (kv) => {
      if (this.watcher === w) this.deliver(kv.value);
    });
    w.on('delete', () => {
      if (this.watcher === w) this.deliver(null);
    });
    w.on('disconnected', () => {
      wasDown = true;
    });
    // Back after an outage: read again rather than trust a resumed stream to say everything.
    w.on('connected', () => {
      if (!wasDown || this.watcher !== w) return;
      wasDown = false;
      this.read().then(
        ({ record }) => {
          if (this.watcher === w) this.deliverRecord(record);
        },
        (err: unknown) => this.report(err),
      );
    });
    // etcd cancelled the watcher (compaction, say): start over from a fresh read.
    w.on('error', (err) => {
      if (this.watcher !== w) return;
      this.watcher = null;
      this.report(err);
      void this.start();
    });
  }

  private deliver(value: Buffer | null): void {
    try {
      this.deliverRecord(value === null ? EMPTY_PRODUCT_CONFIG : parseProductConfig(decodeJson(value, this.key), this.key));
    } catch (err) {
      this.report(err);
    }
  }

  private deliverRecord(record: ProductConfigRecord): void {
    if (this.closed) return;
    try {
      this.handlers.onChange(record);
    } catch (err) {
      this.report(err);
    }
  }

  private report(err: unknown): void {
    reportTo(this.handlers, err);
  }
}
