/**
 * Typed access to one product's slots, groups and proxies in etcd. Every call is bounded by
 * `callTimeoutMs` and fails with UnavailableError when etcd does not answer (client.ts), so a
 * caller's control loop never hangs on etcd.
 *
 * Invariants kept with etcd transactions (not by trusting callers):
 * - putSlots only writes slots whose groups exist (compare create_revision > 0 per group);
 * - deleteGroup only deletes a group no slot refers to, and only if neither the group nor any
 *   slot changed since it checked (compare mod_revision over the slots/ range).
 * Together: every slot is offline or owned by a group that exists.
 * - the product identity is only ever created if absent (ensureIdentity), and never while a
 *   restore is in progress; putGroup and putSlots create it, so whoever creates a product
 *   through this Store gives it an identity.
 */
import { CompareResult, CompareTarget, Range, type Etcd3, type ICompare, type IKeyValue, type IRequestOp } from 'etcd3';
import { Conn, createClient, withTimeout, toCoordinatorError } from './client.js';
import { MAX_TXN_OPS, guard, guardedWrite, op } from './guarded-writes.js';
import { ConflictError, NotFoundError, ValidationError } from './errors.js';
import {
  SLOT_COUNT,
  assertGroupId,
  assertSlotId,
  decodeJson,
  encodeGroup,
  encodeIdentity,
  encodeSlot,
  newIdentity,
  offlineSlot,
  parseGroup,
  parseIdentity,
  parseProxy,
  parseRestoreMarker,
  parseSlot,
  type GroupInfo,
  type ProductIdentity,
  type ProxyInfo,
  type RestoreMarker,
  type SlotInfo,
  type Topology,
  parseMove,
  type KeyMove,
} from './models.js';
import { PRODUCTS_PREFIX, Paths, productOfFirstSlot } from './paths.js';
import { ProxyRegistration } from './registration.js';
import { TopologyWatch, type TopologyHandlers } from './watch.js';

/** What ensureIdentity found or wrote. */
export interface IdentityResult {
  /** The identity etcd holds now; null only while a restore is in progress. */
  readonly identity: ProductIdentity | null;
  /** True when this call wrote it. */
  readonly created: boolean;
  /** The restore in progress that kept this call from writing one. */
  readonly restoring: RestoreMarker | null;
}

/** The cheap part of a topology read: enough to notice a lost or replaced topology. */
export interface TopologyHead {
  readonly identity: ProductIdentity | null;
  readonly restoring: RestoreMarker | null;
  readonly slotKeys: number;
  readonly groups: number;
  readonly revision: string;
}

export interface StoreOptions {
  /** etcd client URLs, e.g. `http://127.0.0.1:2379`. */
  endpoints: readonly string[];
  product: string;
  /** How long open() waits for etcd to answer its first request. Default 5000. */
  dialTimeoutMs?: number;
  /** Upper bound of every etcd operation. Default 5000. */
  callTimeoutMs?: number;
}

/** etcd's default `--max-txn-ops` (defined with the guarded writes that chunk by it). */
export { MAX_TXN_OPS };
const DEFAULT_TIMEOUT_MS = 5000;

export class Store {
  readonly paths: Paths;
  /** The raw client, for coordinator modules built on this Store (actions, migrations). */
  readonly etcd: Etcd3;
  private readonly conn: Conn;
  private readonly watches = new Set<TopologyWatch>();
  private readonly registrations = new Set<ProxyRegistration>();
  private closed = false;

  private constructor(conn: Conn, paths: Paths) {
    this.conn = conn;
    this.etcd = conn.etcd;
    this.paths = paths;
  }

  /** Connects and checks that etcd answers; throws UnavailableError when it does not. */
  static async open(opts: StoreOptions): Promise<Store> {
    const paths = new Paths(opts.product);
    if (opts.endpoints.length === 0) throw new ValidationError('no etcd endpoints given');
    const callTimeoutMs = opts.callTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    const dialTimeoutMs = opts.dialTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    const etcd = createClient(opts.endpoints, callTimeoutMs);
    try {
      await withTimeout(etcd.get(paths.root).exec(), dialTimeoutMs, `connect to etcd ${opts.endpoints.join(',')}`);
    } catch (err) {
      etcd.close();
      throw toCoordinatorError(err, `connect to etcd ${opts.endpoints.join(',')}`);
    }
    return new Store(new Conn(etcd, callTimeoutMs), paths);
  }

  get product(): string {
    return this.paths.product;
  }

  /** Runs one etcd operation bounded by the call timeout; for coordinator modules built on Store. */
  call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.conn.call(what, fn);
  }

  // -------------------------------------------------------------------------------------------
  // Groups

  /** All groups, sorted by id. */
  async listGroups(): Promise<GroupInfo[]> {
    const res = await this.conn.call('list groups', () => this.etcd.getAll().prefix(this.paths.groups).exec());
    return [...this.parseGroups(res.kvs).values()].sort((a, b) => a.id - b.id);
  }

  /** The group, or null when it does not exist. */
  async getGroup(id: number): Promise<GroupInfo | null> {
    const key = this.paths.group(id);
    const res = await this.conn.call(`get group ${id}`, () => this.etcd.get(key).exec());
    const kv = res.kvs[0];
    return kv ? parseGroup(decodeJson(kv.value, key), id, key) : null;
  }

  /**
   * Creates or replaces the group. Returns the etcd revision of the write. Gives the product
   * its identity first if it has none (ensureIdentity): creating a group creates a product.
   */
  async putGroup(g: GroupInfo): Promise<string> {
    const value = encodeGroup(g);
    await this.ensureIdentity();
    const res = await this.conn.call(`put group ${g.id}`, () => this.etcd.put(this.paths.group(g.id)).value(value).exec());
    return res.header.revision;
  }

  /**
   * Deletes a group that no slot refers to (as owner or migration target).
   * NotFoundError if absent; ConflictError if slots use it or changed while checking.
   */
  async deleteGroup(id: number): Promise<string> {
    assertGroupId(id);
    const t = await this.loadTopology();
    if (!t.groups.has(id)) throw new NotFoundError(`group ${id} does not exist`);
    const used = t.slots.filter((s) => s.group === id || s.to === id);
    if (used.length > 0) {
      throw new ConflictError(`group ${id} is still used by ${used.length} slot(s), e.g. slot ${used[0]?.id}`);
    }
    const notChangedSince = (key: string, rangeEnd?: Buffer): ICompare => ({
      key: Buffer.from(key),
      ...(rangeEnd ? { range_end: rangeEnd } : {}),
      target: CompareTarget.Mod,
      result: CompareResult.Less,
      mod_revision: (BigInt(t.revision) + 1n).toString(),
    });
    const key = this.paths.group(id);
    const res = await this.conn.call(`delete group ${id}`, () =>
      this.etcd.kv.txn({
        compare: [notChangedSince(key), notChangedSince(this.paths.slots, Range.prefix(this.paths.slots).end)],
        success: [{ request_delete_range: { key: Buffer.from(key) } }],
      }),
    );
    if (!res.succeeded) {
      throw new ConflictError(`group ${id} or the slots changed while deleting it; try again`, { retryable: true });
    }
    return res.header.revision;
  }

  // -------------------------------------------------------------------------------------------
  // Slots

  /** Exactly SLOT_COUNT slots, index = id; a slot without a key is offline. */
  async listSlots(): Promise<SlotInfo[]> {
    const res = await this.conn.call('list slots', () => this.etcd.getAll().prefix(this.paths.slots).exec());
    return this.parseSlots(res.kvs);
  }

  async getSlot(id: number): Promise<SlotInfo> {
    const key = this.paths.slot(id);
    const res = await this.conn.call(`get slot ${id}`, () => this.etcd.get(key).exec());
    const kv = res.kvs[0];
    return kv ? parseSlot(decodeJson(kv.value, key), id, key) : offlineSlot(id);
  }

  /**
   * Writes slots in transactions of at most MAX_TXN_OPS puts (and as many group-exists
   * compares), in order. Each transaction is atomic; the whole call is not — a failure part
   * way leaves earlier chunks written. NotFoundError (nothing of that chunk written) if a
   * referenced group does not exist. Returns the revision of the last write. Gives the
   * product its identity first if it has none, as putGroup does.
   */
  async putSlots(slots: readonly SlotInfo[]): Promise<string> {
    const seen = new Set<number>();
    const items = slots.map((s) => {
      assertSlotId(s.id);
      if (seen.has(s.id)) throw new ValidationError(`slot ${s.id} appears twice`);
      seen.add(s.id);
      const groups = [s.group, s.to].filter((g): g is number => g !== undefined && g !== 0);
      return { key: this.paths.slot(s.id), value: encodeSlot(s), groups };
    });

    // Greedy chunking: a chunk closes when its puts or its distinct groups would pass the limit.
    const chunks: { items: typeof items; groups: Set<number> }[] = [];
    for (const item of items) {
      let chunk = chunks[chunks.length - 1];
      const extra = item.groups.filter((g) => !chunk?.groups.has(g)).length;
      if (!chunk || chunk.items.length >= MAX_TXN_OPS || chunk.groups.size + extra > MAX_TXN_OPS) {
        chunk = { items: [], groups: new Set() };
        chunks.push(chunk);
      }
      chunk.items.push(item);
      for (const g of item.groups) chunk.groups.add(g);
    }

    if (chunks.length > 0) await this.ensureIdentity();
    let revision = '';
    for (const chunk of chunks) {
      const res = await guardedWrite(
        this,
        'put slots',
        [...chunk.groups].map((g) => guard.exists(this.paths.group(g))),
        chunk.items.map((i) => op.put(i.key, i.value)),
      );
      if (!res.succeeded) {
        const existing = new Set((await this.listGroups()).map((g) => g.id));
        const missing = [...chunk.groups].filter((g) => !existing.has(g));
        throw new NotFoundError(`group(s) ${missing.join(', ') || '?'} do not exist; slots not written`);
      }
      revision = res.revision;
    }
    return revision;
  }

  // -------------------------------------------------------------------------------------------
  // Topology: consistent snapshot + watch

  /** Slots, groups, the identity and a restore marker, read in one transaction (one revision). */
  async loadTopology(): Promise<Topology> {
    const res = await this.conn.call('load topology', () =>
      this.etcd.kv.txn({
        success: [
          rangeOf(this.paths.slots),
          rangeOf(this.paths.groups),
          keyOf(this.paths.identity),
          keyOf(this.paths.restoring),
          rangeOf(this.paths.moves),
        ],
      }),
    );
    const [slots, groups, identity, restoring, moveKvs] = res.responses;
    const slotKvs = slots?.response_range.kvs ?? [];
    const keyed = new Set<number>();
    for (const kv of slotKvs) {
      const id = this.paths.slotIdOf(kv.key.toString('utf8'));
      if (id !== null) keyed.add(id);
    }
    return {
      slots: this.parseSlots(slotKvs),
      groups: this.parseGroups(groups?.response_range.kvs ?? []),
      revision: res.header.revision,
      identity: this.parseIdentityKv(identity?.response_range.kvs[0]),
      restoring: this.parseRestoringKv(restoring?.response_range.kvs[0]),
      missingSlotKeys: Array.from({ length: SLOT_COUNT }, (_, id) => id).filter((id) => !keyed.has(id)),
      moves: this.parseMoves(moveKvs?.response_range.kvs ?? []),
    };
  }

  /**
   * The identity, the restore marker and how many slot and group keys exist, in one small
   * transaction (counts only): a cheap periodic check that the topology is still there.
   */
  async loadTopologyHead(): Promise<TopologyHead> {
    const res = await this.conn.call('read topology head', () =>
      this.etcd.kv.txn({
        success: [
          keyOf(this.paths.identity),
          keyOf(this.paths.restoring),
          rangeOf(this.paths.slots, true),
          rangeOf(this.paths.groups, true),
        ],
      }),
    );
    const [identity, restoring, slots, groups] = res.responses;
    return {
      identity: this.parseIdentityKv(identity?.response_range.kvs[0]),
      restoring: this.parseRestoringKv(restoring?.response_range.kvs[0]),
      slotKeys: Number(slots?.response_range.count ?? 0),
      groups: Number(groups?.response_range.count ?? 0),
      revision: res.header.revision,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Identity

  /** The product's identity, or null when it has none. */
  async getIdentity(): Promise<ProductIdentity | null> {
    const res = await this.conn.call('get product identity', () => this.etcd.get(this.paths.identity).exec());
    return this.parseIdentityKv(res.kvs[0]);
  }

  /**
   * Gives the product an identity if it has none: create-if-absent, and never while a restore
   * is in progress (the restore writes its own last). One read when the identity exists. An
   * identity written for a product that already has groups or slots is marked `adopted` (a
   * product from before identities existed, upgraded in place).
   */
  async ensureIdentity(): Promise<IdentityResult> {
    const absent = (key: string): ICompare => ({
      key: Buffer.from(key),
      target: CompareTarget.Create,
      result: CompareResult.Equal,
      create_revision: 0,
    });
    const guard = [absent(this.paths.identity), absent(this.paths.restoring)];
    const existing = (res: { responses: { response_range: { kvs: IKeyValue[] } }[] }): IdentityResult => ({
      identity: this.parseIdentityKv(res.responses[0]?.response_range.kvs[0]),
      restoring: this.parseRestoringKv(res.responses[1]?.response_range.kvs[0]),
      created: false,
    });
    const look = await this.conn.call('read product identity', () =>
      this.etcd.kv.txn({
        compare: guard,
        success: [rangeOf(this.paths.groups, true), rangeOf(this.paths.slots, true)],
        failure: [keyOf(this.paths.identity), keyOf(this.paths.restoring)],
      }),
    );
    if (!look.succeeded) return existing(look);
    const populated = look.responses.some((r) => Number(r.response_range.count) > 0);
    const identity = newIdentity({ adopted: populated });
    const res = await this.conn.call('create product identity', () =>
      this.etcd.kv.txn({
        compare: guard,
        success: [{ request_put: { key: Buffer.from(this.paths.identity), value: Buffer.from(encodeIdentity(identity)) } }],
        failure: [keyOf(this.paths.identity), keyOf(this.paths.restoring)],
      }),
    );
    return res.succeeded ? { identity, created: true, restoring: null } : existing(res);
  }

  /**
   * Delivers every slot and group change after `fromRevision` (usually loadTopology's) until
   * closed, surviving etcd outages; see watch.ts for how, and for onResync.
   */
  watchTopology(fromRevision: string, handlers: TopologyHandlers): TopologyWatch {
    if (!/^\d+$/.test(fromRevision)) throw new ValidationError(`invalid revision ${JSON.stringify(fromRevision)}`);
    const w = new TopologyWatch(this.conn, this.paths, () => this.loadTopology(), fromRevision, handlers, () =>
      this.watches.delete(w),
    );
    this.watches.add(w);
    return w;
  }

  // -------------------------------------------------------------------------------------------
  // Proxies

  /**
   * Registers a proxy under a lease of `ttlSeconds` kept alive in the background, re-registering
   * by itself after the lease is lost (registration.ts). ConflictError if another live process
   * holds the id (after waiting one TTL for a crashed predecessor's key to expire).
   */
  async registerProxy(info: ProxyInfo, ttlSeconds = 10): Promise<ProxyRegistration> {
    const reg = await ProxyRegistration.start(this.conn, this.paths, info, ttlSeconds, () =>
      this.registrations.delete(reg),
    );
    this.registrations.add(reg);
    return reg;
  }

  /**
   * Every product with a slot table in this etcd, this one included, sorted. Keys only: an
   * admin view (the dashboard overview), not a hot path.
   */
  async listProducts(): Promise<string[]> {
    const keys = await this.conn.call('list products', () => this.etcd.getAll().prefix(PRODUCTS_PREFIX).keys());
    const out: string[] = [];
    for (const key of keys) {
      const product = productOfFirstSlot(key);
      if (product !== null) out.push(product);
    }
    return out.sort();
  }

  /** Registered proxies, sorted by id. */
  async listProxies(): Promise<ProxyInfo[]> {
    const res = await this.conn.call('list proxies', () => this.etcd.getAll().prefix(this.paths.proxies).exec());
    const out: ProxyInfo[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      const id = this.paths.proxyIdOf(key);
      if (id !== null) out.push(parseProxy(decodeJson(kv.value, key), id, key));
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Closes watches, revokes registrations (their keys vanish now rather than after a TTL),
   * then the client. Never throws: with etcd down the leases simply expire.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([
      ...[...this.watches].map((w) => w.close()),
      ...[...this.registrations].map((r) => r.close()),
    ]);
    this.etcd.close();
  }

  // -------------------------------------------------------------------------------------------

  private parseIdentityKv(kv: IKeyValue | undefined): ProductIdentity | null {
    return kv ? parseIdentity(decodeJson(kv.value, this.paths.identity), this.paths.identity) : null;
  }

  private parseRestoringKv(kv: IKeyValue | undefined): RestoreMarker | null {
    return kv ? parseRestoreMarker(decodeJson(kv.value, this.paths.restoring), this.paths.restoring) : null;
  }

  private parseSlots(kvs: readonly IKeyValue[]): SlotInfo[] {
    const slots: SlotInfo[] = Array.from({ length: SLOT_COUNT }, (_, id) => offlineSlot(id));
    for (const kv of kvs) {
      const key = kv.key.toString('utf8');
      const id = this.paths.slotIdOf(key);
      if (id !== null) slots[id] = parseSlot(decodeJson(kv.value, key), id, key);
    }
    return slots;
  }

  /** Move records; one that does not parse is skipped (the watch reports such values). */
  private parseMoves(kvs: readonly IKeyValue[]): Map<string, KeyMove> {
    const out = new Map<string, KeyMove>();
    for (const kv of kvs) {
      const key = kv.key.toString('utf8');
      const id = this.paths.moveIdOf(key);
      if (id === null) continue;
      try {
        out.set(id, parseMove(decodeJson(kv.value, key), key));
      } catch {
        // a value no proxy can act on: nothing to hold for it
      }
    }
    return out;
  }

  private parseGroups(kvs: readonly IKeyValue[]): Map<number, GroupInfo> {
    const groups = new Map<number, GroupInfo>();
    for (const kv of kvs) {
      const key = kv.key.toString('utf8');
      const id = this.paths.groupIdOf(key);
      if (id !== null) groups.set(id, parseGroup(decodeJson(kv.value, key), id, key));
    }
    return new Map([...groups].sort(([a], [b]) => a - b));
  }
}

/** A read of every key under `prefix` (or only their count) as a transaction op. */
function rangeOf(prefix: string, countOnly = false): IRequestOp {
  const r = Range.prefix(prefix);
  return { request_range: { key: r.start, range_end: r.end, ...(countOnly ? { count_only: true } : {}) } };
}

/** A read of one key as a transaction op. */
function keyOf(key: string): IRequestOp {
  return { request_range: { key: Buffer.from(key) } };
}
