/**
 * Guarded etcd writes in the control plane's own words: a write is a list of puts and deletes
 * that etcd applies only if every guard still holds ("nothing under this prefix changed since
 * revision R", "the leader's election key exists", "this key is still at revision R"). Every
 * decide-then-write in config and the migration runner goes through here, so the raw etcd
 * client (and etcd3's types) stay inside coordinator. See docs/architecture.md (etcd layout).
 *
 * Invariant: a write either lands whole (one etcd transaction) or not at all, and a guard that
 * fails is reported (succeeded: false), never retried here — the caller re-decides on fresh
 * state. Chunked writers (writeChunksGuarded) guard each next chunk by "nothing changed since
 * our previous chunk", so no concurrent write slips in between chunks.
 */
import { Range, type Etcd3, type ICompare, type IRequestOp } from 'etcd3';

/**
 * What these helpers need of a Store: its client and its bounded call. A structural type, so
 * this module stays below store.ts (which writes through it) instead of importing it back.
 */
export interface EtcdAccess {
  readonly etcd: Etcd3;
  call<T>(what: string, fn: () => Promise<T>): Promise<T>;
}

/** etcd's default limit of operations in one transaction (--max-txn-ops). */
export const MAX_TXN_OPS = 128;

/** One condition of a guarded write. */
export type WriteGuard =
  /** Nothing at `key` (or in [key, rangeEnd), or under the prefix `key`) modified after `revision`. */
  | { kind: 'unchangedSince'; key: string; revision: string; rangeEnd?: string; prefix?: boolean }
  /** The key exists (e.g. a leader's election key: its lease is alive). */
  | { kind: 'exists'; key: string }
  /** The key does not exist. */
  | { kind: 'absent'; key: string }
  /** The key was last written at exactly `revision` (compare-and-swap). */
  | { kind: 'modRevision'; key: string; revision: string };

export type WriteOp = { put: string; value: string } | { delete: string };

export const guard = {
  prefixUnchangedSince: (prefix: string, revision: string): WriteGuard => ({ kind: 'unchangedSince', key: prefix, revision, prefix: true }),
  rangeUnchangedSince: (key: string, rangeEnd: string, revision: string): WriteGuard => ({ kind: 'unchangedSince', key, revision, rangeEnd }),
  keyUnchangedSince: (key: string, revision: string): WriteGuard => ({ kind: 'unchangedSince', key, revision }),
  exists: (key: string): WriteGuard => ({ kind: 'exists', key }),
  absent: (key: string): WriteGuard => ({ kind: 'absent', key }),
  modRevision: (key: string, revision: string): WriteGuard => ({ kind: 'modRevision', key, revision }),
};

export const op = {
  put: (key: string, value: string): WriteOp => ({ put: key, value }),
  delete: (key: string): WriteOp => ({ delete: key }),
};

export interface WriteResult {
  succeeded: boolean;
  /** The etcd revision after the transaction (the write's own revision when it succeeded). */
  revision: string;
}

/** A key as read: its value and the revision it was last written at. */
export interface StoredValue {
  key: string;
  value: Buffer;
  modRevision: string;
}

function toCompare(g: WriteGuard): ICompare {
  const key = Buffer.from(g.key);
  switch (g.kind) {
    case 'unchangedSince': {
      const rangeEnd = g.prefix ? Range.prefix(g.key).end : g.rangeEnd === undefined ? undefined : Buffer.from(g.rangeEnd);
      return { key, ...(rangeEnd ? { range_end: rangeEnd } : {}), target: 'Mod', result: 'Less', mod_revision: (BigInt(g.revision) + 1n).toString() };
    }
    case 'exists':
      return { key, target: 'Create', result: 'Greater', create_revision: '0' };
    case 'absent':
      return { key, target: 'Create', result: 'Equal', create_revision: '0' };
    case 'modRevision':
      return { key, target: 'Mod', result: 'Equal', mod_revision: g.revision };
  }
}

function toRequest(o: WriteOp): IRequestOp {
  return 'put' in o
    ? { request_put: { key: Buffer.from(o.put), value: Buffer.from(o.value) } }
    : { request_delete_range: { key: Buffer.from(o.delete) } };
}

/** Applies `ops` in one transaction if every guard holds (bounded by the store's deadline). */
export async function guardedWrite(store: EtcdAccess, what: string, guards: readonly WriteGuard[], ops: readonly WriteOp[]): Promise<WriteResult> {
  const res = await store.call(what, () => store.etcd.kv.txn({ compare: guards.map(toCompare), success: ops.map(toRequest) }));
  return { succeeded: res.succeeded, revision: res.header.revision };
}

/**
 * Writes `ops` in transactions of at most MAX_TXN_OPS: the first guarded by `guardsAt(revision)`,
 * each next one by `guardsAt(<revision of the previous chunk>)`. Returns how many ops landed
 * before a guard failed (all of them: `written === ops.length`) and the last revision.
 */
export async function writeChunksGuarded(
  store: EtcdAccess,
  what: string,
  ops: readonly WriteOp[],
  revision: string,
  guardsAt: (revision: string) => readonly WriteGuard[],
): Promise<{ written: number; revision: string }> {
  let rev = revision;
  for (let i = 0; i < ops.length; i += MAX_TXN_OPS) {
    const res = await guardedWrite(store, what, guardsAt(rev), ops.slice(i, i + MAX_TXN_OPS));
    if (!res.succeeded) return { written: i, revision: rev };
    rev = res.revision;
  }
  return { written: ops.length, revision: rev };
}

/** Everything under each prefix, read in one transaction (one revision for all of them). */
export async function readPrefixes(store: EtcdAccess, what: string, prefixes: readonly string[]): Promise<{ revision: string; ranges: StoredValue[][] }> {
  const requests: IRequestOp[] = prefixes.map((p) => {
    const r = Range.prefix(p);
    return { request_range: { key: r.start, range_end: r.end } };
  });
  const res = await store.call(what, () => store.etcd.kv.txn({ success: requests }));
  const ranges = prefixes.map((_, i) =>
    (res.responses[i]?.response_range.kvs ?? []).map((kv) => ({ key: kv.key.toString('utf8'), value: kv.value, modRevision: kv.mod_revision })),
  );
  return { revision: res.header.revision, ranges };
}

/** One key as read now, or null. */
export async function readKey(store: EtcdAccess, what: string, key: string): Promise<StoredValue | null> {
  const res = await store.call(what, () => store.etcd.get(key).exec());
  const kv = res.kvs[0];
  return kv ? { key, value: kv.value, modRevision: kv.mod_revision } : null;
}

/** Deletes one key (unguarded: for records the caller alone owns). */
export async function deleteKey(store: EtcdAccess, what: string, key: string): Promise<void> {
  await store.call(what, () => store.etcd.delete().key(key).exec());
}

/** Puts one key (unguarded); resolves with the write's revision. */
export async function putKey(store: EtcdAccess, what: string, key: string, value: string): Promise<string> {
  const res = await store.call(what, () => store.etcd.put(key).value(value).exec());
  return res.header.revision;
}

/** The value of the current leader of the (un-namespaced) election `name`, or undefined. */
export async function electionLeader(store: EtcdAccess, what: string, name: string): Promise<string | undefined> {
  const election = store.etcd.election(name);
  return store.call(what, () => election.leader());
}
