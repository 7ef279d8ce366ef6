/**
 * Saving a product's topology (identity, groups, slots, settings) as JSON, and writing a saved
 * one back — the library behind `reborn-config topology save <file>` and
 * `topology restore <file> [--force]`, for when etcd lost the product (see
 * docs/topology-identity.md).
 *
 * Invariant of a restore: readers never take a half-written topology for the real one. The
 * restore first writes a marker and removes the identity (one guarded transaction), then the
 * groups and slots (transactions of at most MAX_TXN_OPS, each guarded by the marker still
 * being ours), and last the saved identity while removing the marker. Proxies and agents
 * treat "marker present" and "no identity" as not-yet-restored (topology-guard.ts), so they
 * pick the topology up at the identity write, complete.
 *
 * A restore refuses (ConflictError, nothing written) when the product holds another
 * identity, or a topology different from the saved one, or a restore is in progress — unless
 * forced. Running processes that followed another identity stay in alarm after a forced
 * restore (they never adopt a foreign topology); restart them.
 */
import { hostname } from 'node:os';
import {
  ConflictError,
  MAX_TXN_OPS,
  guard,
  guardedWrite,
  op,
  type WriteOp,
  SLOT_COUNT,
  ValidationError,
  assignedSlotCount,
  encodeGroup,
  encodeIdentity,
  encodeRestoreMarker,
  encodeSlot,
  isValidProduct,
  parseGroup,
  parseIdentity,
  parseSlot,
  type GroupInfo,
  type ProductIdentity,
  type SlotInfo,
  type Store,
  type Topology,
  withServers,
} from '@reborn/coordinator';
import { compactSlots, type SlotRange } from './servers.js';

export const TOPOLOGY_FORMAT = 'reborn-topology/1';

/** The JSON document saveTopology returns and restoreTopology takes. */
export interface SavedTopology {
  format: typeof TOPOLOGY_FORMAT;
  product: string;
  /** ISO-8601 time of the save. */
  savedAt: string;
  /** etcd revision the topology was read at (for the operator; a restore does not use it). */
  revision: string;
  identity: ProductIdentity;
  groups: GroupInfo[];
  /** All 1024 slots, as contiguous ranges of equal state, group (and from/to). */
  slots: SlotRange[];
  /** Product-wide settings kept in etcd: none today; the field keeps the format open. */
  settings: Record<string, never>;
}

export interface RestoreOptions {
  /** Overwrite another identity, a different topology, or a restore that did not finish. */
  force?: boolean;
  /** Who restores, shown to proxies and agents while the marker is up. Default `host pid`. */
  by?: string;
}

/** What a restore found and wrote. */
export interface RestoreReport {
  product: string;
  /** The generation the product has now. */
  generation: string;
  /** The identity it had before, when different (null: none). */
  replacedGeneration: string | null;
  /** Nothing needed writing: etcd already held exactly the saved topology. */
  unchanged: boolean;
  /** --force was needed (and given). */
  forced: boolean;
  groupsWritten: number[];
  groupsDeleted: number[];
  slotsWritten: number;
  /** Slots the restored topology serves (not offline). */
  assignedSlots: number;
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------
// Save

/**
 * The product's topology as a SavedTopology. A product without identity (from before
 * identities) is given one first, so the save and the running processes agree on it.
 * ConflictError while a restore is in progress or when there is nothing to save.
 */
export async function saveTopology(store: Store): Promise<SavedTopology> {
  let t = await store.loadTopology();
  if (t.restoring) {
    throw new ConflictError(`product ${store.product}: a topology restore is in progress (started ${t.restoring.startedAt} by ${t.restoring.by}); save after it finished`, { retryable: true });
  }
  if (t.identity === null) {
    if (t.groups.size === 0 && assignedSlotCount(t.slots) === 0) {
      throw new ConflictError(`product ${store.product} holds no topology to save: no groups, no slots, no identity`);
    }
    await store.ensureIdentity();
    t = await store.loadTopology();
    if (t.identity === null) throw new ConflictError(`product ${store.product}: its identity could not be written; try again`, { retryable: true });
  }
  return {
    format: TOPOLOGY_FORMAT,
    product: store.product,
    savedAt: new Date().toISOString(),
    revision: t.revision,
    identity: t.identity,
    // The in-sync set is live state, stale the moment it is saved: never saved, never restored.
    groups: [...t.groups.values()].map((g) => JSON.parse(encodeGroup(withoutInSync(g))) as GroupInfo),
    slots: compactSlots(t.slots),
    settings: {},
  };
}

// ---------------------------------------------------------------------------------------------
// Parse (a saved file is user input: every problem is named)

function fail(problem: string): never {
  throw new ValidationError(`saved topology: ${problem}`);
}

/** Checks a parsed JSON document and returns it typed, or throws ValidationError naming the problem. */
export function parseSavedTopology(doc: unknown): SavedTopology & { slotList: SlotInfo[] } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('want a JSON object');
  const o = doc as Record<string, unknown>;
  if (o['format'] !== TOPOLOGY_FORMAT) fail(`format must be ${JSON.stringify(TOPOLOGY_FORMAT)}, got ${JSON.stringify(o['format'])}`);
  const product = o['product'];
  if (typeof product !== 'string' || !isValidProduct(product)) fail(`product must be a product name, got ${JSON.stringify(product)}`);
  const savedAt = typeof o['savedAt'] === 'string' ? o['savedAt'] : fail('savedAt must be a string');
  const revision = typeof o['revision'] === 'string' ? o['revision'] : fail('revision must be a string');
  const identity = parseIdentity(o['identity'], 'saved topology: identity');
  const settings = o['settings'] ?? {};
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) fail('settings must be an object');
  if (Object.keys(settings).length > 0) fail(`settings: unknown setting(s) ${Object.keys(settings).join(', ')}`);

  if (!Array.isArray(o['groups'])) fail('groups must be an array');
  const groups = (o['groups'] as unknown[]).map((g, i) => parseGroup(g, undefined, `saved topology: groups[${i}]`));
  const ids = new Set<number>();
  for (const g of groups) {
    if (ids.has(g.id)) fail(`group ${g.id} appears twice`);
    ids.add(g.id);
  }
  const addrs = new Map<string, number>();
  for (const g of groups) {
    for (const s of g.servers) {
      const other = addrs.get(s.addr);
      if (other !== undefined) fail(`server ${s.addr} is in group ${other} and in group ${g.id}`);
      addrs.set(s.addr, g.id);
    }
  }

  if (!Array.isArray(o['slots'])) fail('slots must be an array of ranges');
  const slotList: (SlotInfo | undefined)[] = new Array(SLOT_COUNT);
  (o['slots'] as unknown[]).forEach((r, i) => {
    const where = `slots[${i}]`;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) fail(`${where}: want an object`);
    const range = r as Record<string, unknown>;
    const first = range['first'];
    const last = range['last'];
    if (typeof first !== 'number' || typeof last !== 'number' || !Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last >= SLOT_COUNT || first > last) {
      fail(`${where}: first and last must be slot ids 0..${SLOT_COUNT - 1}, first ≤ last`);
    }
    for (let id = first; id <= last; id++) {
      if (slotList[id] !== undefined) fail(`${where}: slot ${id} appears twice`);
      const slot = parseSlot({ id, state: range['state'], group: range['group'], from: range['from'], to: range['to'] }, id, `saved topology: ${where}`);
      for (const gid of [slot.group, slot.from, slot.to]) {
        if (gid !== undefined && gid !== 0 && !ids.has(gid)) fail(`${where}: slot ${id} refers to group ${gid}, which the saved topology does not have`);
      }
      slotList[id] = slot;
    }
  });
  const missing = Array.from(slotList, (s) => s).findIndex((s) => s === undefined);
  if (missing >= 0) fail(`slot ${missing} is missing: a saved topology lists all ${SLOT_COUNT} slots`);
  return {
    format: TOPOLOGY_FORMAT,
    product,
    savedAt,
    revision,
    identity,
    groups,
    slots: compactSlots(slotList as SlotInfo[]),
    settings: {},
    slotList: slotList as SlotInfo[],
  };
}

// ---------------------------------------------------------------------------------------------
// Restore

/**
 * Writes a saved topology back into `store`'s product (see the file header for the order and
 * the refusals). `saved` may be the document as read from JSON: it is checked first.
 */
export async function restoreTopology(store: Store, saved: unknown, opts: RestoreOptions = {}): Promise<RestoreReport> {
  const want = parseSavedTopology(saved);
  const force = opts.force === true;
  const cur = await store.loadTopology();
  const needsForce: string[] = [];
  const warnings: string[] = [];

  if (want.product !== store.product) {
    needsForce.push(`the file was saved from product ${want.product}, this is product ${store.product}`);
  }
  if (cur.restoring) {
    needsForce.push(`a restore of generation ${cur.restoring.generation} is in progress (started ${cur.restoring.startedAt} by ${cur.restoring.by}); if it died, force this one`);
  }
  if (cur.identity && cur.identity.generation !== want.identity.generation) {
    needsForce.push(
      `product ${store.product} holds identity ${cur.identity.generation} (created ${cur.identity.createdAt}), not ${want.identity.generation} of the saved topology; processes following it will stay in alarm until restarted`,
    );
  }
  const plan = planWrites(cur, want.groups, want.slotList);
  const populated = cur.groups.size > 0 || assignedSlotCount(cur.slots) > 0;
  if (populated && !plan.same) {
    needsForce.push(`product ${store.product} already holds a topology that differs from the saved one (${plan.slots.length} slot(s) and ${plan.groupPuts.length + plan.groupDeletes.length} group(s) differ)`);
  }
  if (needsForce.length > 0 && !force) {
    throw new ConflictError(`refusing to restore: ${needsForce.join('; ')}. Use --force to restore anyway.`);
  }
  for (const s of want.slotList) {
    if (s.state === 'pre_migrate' || s.state === 'migrating') {
      warnings.push(`slot ${s.id} was ${s.state} (${s.from}→${s.to}) when saved: resume or cancel its migration (reborn-config migration list)`);
      break;
    }
  }

  const report = (unchanged: boolean): RestoreReport => ({
    product: store.product,
    generation: want.identity.generation,
    replacedGeneration: cur.identity && cur.identity.generation !== want.identity.generation ? cur.identity.generation : null,
    unchanged,
    forced: needsForce.length > 0,
    groupsWritten: unchanged ? [] : plan.groupPuts.map((g) => g.id),
    groupsDeleted: unchanged ? [] : plan.groupDeletes,
    slotsWritten: unchanged ? 0 : plan.slots.length,
    assignedSlots: assignedSlotCount(want.slotList),
    warnings,
  });
  if (plan.same && cur.identity?.generation === want.identity.generation && !cur.restoring) return report(true);

  const paths = store.paths;
  // 1. Marker up, identity gone — if nothing changed since we read.
  const since = cur.revision;
  const marker = encodeRestoreMarker({ generation: want.identity.generation, startedAt: new Date().toISOString(), by: opts.by ?? `${hostname()} ${process.pid}` });
  const start = await guardedWrite(
    store,
    'start topology restore',
    [
      guard.prefixUnchangedSince(paths.slots, since),
      guard.prefixUnchangedSince(paths.groups, since),
      guard.keyUnchangedSince(paths.identity, since),
      guard.keyUnchangedSince(paths.restoring, since),
    ],
    [op.put(paths.restoring, marker), op.delete(paths.identity)],
  );
  if (!start.succeeded) throw new ConflictError(`product ${store.product} changed while the restore was being prepared; nothing was written, run it again`, { retryable: true });
  const markerRev = start.revision;
  const ours = guard.modRevision(paths.restoring, markerRev);

  // 2. Groups first (slots must never name a missing group), slots, then unused groups go.
  const ops: WriteOp[] = [
    ...plan.groupPuts.map((g) => op.put(paths.group(g.id), encodeGroup(g))),
    ...plan.slots.map((s) => op.put(paths.slot(s.id), encodeSlot(s))),
    ...plan.groupDeletes.map((gid) => op.delete(paths.group(gid))),
  ];
  for (let i = 0; i < ops.length; i += MAX_TXN_OPS) {
    const chunk = ops.slice(i, i + MAX_TXN_OPS);
    const res = await guardedWrite(store, 'write restored topology', [ours], chunk);
    if (!res.succeeded) {
      throw new ConflictError(`another restore took over product ${store.product} after ${i} of ${ops.length} writes; this one stopped (the identity was not written)`);
    }
  }

  // 3. The identity last, the marker gone: from here readers take the topology.
  const done = await guardedWrite(
    store,
    'finish topology restore',
    [ours, guard.absent(paths.identity)],
    [op.put(paths.identity, encodeIdentity(want.identity)), op.delete(paths.restoring)],
  );
  if (!done.succeeded) {
    throw new ConflictError(`product ${store.product}: the identity could not be written at the end of the restore (another restore took over, or something wrote an identity meanwhile); run it again with --force`);
  }
  return report(false);
}

function withoutInSync(g: GroupInfo): GroupInfo {
  const { inSync: _live, ...rest } = g;
  return rest;
}

/**
 * What differs between etcd (`cur`) and the saved groups and slots. The in-sync set is not
 * compared and not restored: a group etcd has keeps its live set (cut down to the restored
 * replicas); a group it lacks gets none, which counts every replica until the HA leader
 * judges it — the strict side.
 */
function planWrites(cur: Topology, saved: readonly GroupInfo[], slots: readonly SlotInfo[]) {
  const groups = saved.map((g) => {
    const have = cur.groups.get(g.id);
    const base = withoutInSync(g);
    return have?.inSync === undefined ? base : withServers({ ...base, inSync: have.inSync }, base.servers);
  });
  const groupPuts = groups.filter((g) => {
    const have = cur.groups.get(g.id);
    return have === undefined || encodeGroup(have) !== encodeGroup(g);
  });
  const wanted = new Set(groups.map((g) => g.id));
  const groupDeletes = [...cur.groups.keys()].filter((id) => !wanted.has(id));
  const keyless = new Set(cur.missingSlotKeys);
  // A saved offline slot needs no key; a present key must say offline too.
  const slotWrites = slots.filter((s) => (s.state === 'offline' && keyless.has(s.id) ? false : keyless.has(s.id) || encodeSlot(cur.slots[s.id]!) !== encodeSlot(s)));
  return { groupPuts, groupDeletes, slots: slotWrites, same: groupPuts.length === 0 && groupDeletes.length === 0 && slotWrites.length === 0 };
}
