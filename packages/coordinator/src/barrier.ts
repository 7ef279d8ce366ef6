/**
 * The two-phase-commit barrier (docs/architecture.md §4 "The 2PC barrier") and fencing records.
 *
 *   1. The caller writes the slot change (e.g. slots → pre_migrate) and gets its revision R.
 *   2. createAction(): reads the proxies at revision X, then in ONE transaction — guarded by
 *      "no proxy or member key changed since X" and by the sequence counter — writes
 *      `actions/<seq>` = {seq, slots, revision: R, proxies}. The proxies named there are the
 *      ones that must ack; a proxy that registers later loads a table that already has the
 *      change, so it never routed those slots the old way.
 *
 *      "The proxies" are the registered ones (lease-bound keys) AND the members: a member key
 *      (`members/<id>`, no lease) is written by a proxy before it serves and deleted only on a
 *      clean shutdown or after the proxy was fenced. A proxy cut off from etcd loses its lease
 *      but may still be serving with an old table; as a member it is still named, cannot ack,
 *      and so gets fenced before the barrier goes on.
 *   3. Each named proxy, having applied every topology event up to R and drained the requests
 *      it had already sent, writes `actions/<seq>/acks/<proxyId>`.
 *   4. waitForAcks() returns when every named proxy acked, or at the timeout with the missing
 *      ones. The caller must fence each missing proxy at the backends (see the config
 *      package) before it goes on; trusting a silent proxy to behave is not fencing.
 *
 * Fencing records (`fences/<proxyId>`) make a fence visible to operators; the proxy deletes
 * its own record once it has re-registered, reloaded the table and re-enabled itself.
 */
import { CompareResult, CompareTarget, Range } from 'etcd3';
import { ConflictError } from './errors.js';
import { decodeJson, parseAction, type ActionInfo } from './models.js';
import type { Store } from './store.js';

// The action decoder lives with the other decoders (models.ts); re-exported for existing callers.
export { parseAction, type ActionInfo };

export interface AckInfo {
  readonly proxyId: string;
  readonly at: string;
}

export interface FenceInfo {
  readonly proxyId: string;
  readonly at: string;
  readonly reason: string;
  /** The action whose barrier the proxy failed to ack, when fenced by a barrier. */
  readonly action: number | null;
  /** Every redis server the proxy's ACL user was disabled on. */
  readonly servers: readonly string[];
}

export class Barrier {
  constructor(private readonly store: Store) {}

  /**
   * Writes the next action for `slots`, changed at `revision`, naming the proxies registered
   * now. With `keyMove`, the action is a key hold (kind `keys`): the move record written at
   * `revision` names the keys every proxy must hold before it acks. Retries by itself when a proxy registers or another action is written meanwhile.
   */
  async createAction(slots: readonly number[], revision: string, note: string, keyMove?: string): Promise<ActionInfo> {
    const { etcd, paths } = this.store;
    for (let attempt = 0; attempt < 20; attempt++) {
      const proxyRange = Range.prefix(paths.proxies);
      const memberRange = Range.prefix(paths.members);
      const read = await this.store.call('list proxies and members', () =>
        etcd.kv.txn({
          success: [
            { request_range: { key: proxyRange.start, range_end: proxyRange.end, keys_only: true } },
            { request_range: { key: memberRange.start, range_end: memberRange.end, keys_only: true } },
            { request_range: { key: Buffer.from(paths.actionSeq) } },
          ],
        }),
      );
      const readRevision = BigInt(read.header.revision);
      const ids = new Set<string>();
      for (const kv of read.responses[0]?.response_range.kvs ?? []) {
        const id = paths.proxyIdOf(kv.key.toString('utf8'));
        if (id !== null) ids.add(id);
      }
      for (const kv of read.responses[1]?.response_range.kvs ?? []) {
        const id = paths.memberIdOf(kv.key.toString('utf8'));
        if (id !== null) ids.add(id);
      }
      const proxies = [...ids].sort();
      const seqKv = read.responses[2]?.response_range.kvs[0];
      const seq = (seqKv ? Number(seqKv.value.toString('utf8')) : 0) + 1;
      const action: ActionInfo =
        keyMove === undefined
          ? { seq, kind: 'slots', slots: [...slots], revision, proxies, createdAt: new Date().toISOString(), note }
          : { seq, kind: 'keys', slots: [...slots], move: keyMove, revision, proxies, createdAt: new Date().toISOString(), note };
      const unchanged = (r: Range) => ({
        key: r.start,
        range_end: r.end,
        target: CompareTarget.Mod,
        result: CompareResult.Less,
        mod_revision: (readRevision + 1n).toString(),
      });
      const res = await this.store.call('write action', () =>
        etcd.kv.txn({
          compare: [
            unchanged(proxyRange),
            unchanged(memberRange),
            {
              key: Buffer.from(paths.actionSeq),
              target: CompareTarget.Mod,
              result: CompareResult.Equal,
              mod_revision: seqKv ? seqKv.mod_revision : '0',
            },
          ],
          success: [
            { request_put: { key: Buffer.from(paths.actionSeq), value: Buffer.from(String(seq)) } },
            { request_put: { key: Buffer.from(paths.action(seq)), value: Buffer.from(JSON.stringify(action)) } },
          ],
        }),
      );
      if (res.succeeded) return action;
    }
    throw new ConflictError('could not write the action: proxies or actions kept changing', { retryable: true });
  }

  async getAction(seq: number): Promise<ActionInfo | null> {
    const key = this.store.paths.action(seq);
    const res = await this.store.call(`get action ${seq}`, () => this.store.etcd.get(key).exec());
    const kv = res.kvs[0];
    return kv ? parseAction(decodeJson(kv.value, key), key) : null;
  }

  /** Actions still stored (not yet cleaned up), oldest first. */
  async listActions(): Promise<ActionInfo[]> {
    const { etcd, paths } = this.store;
    const res = await this.store.call('list actions', () => etcd.getAll().prefix(paths.actions).exec());
    const out: ActionInfo[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      if (paths.actionSeqOf(key) !== null) out.push(parseAction(decodeJson(kv.value, key), key));
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Writes the ack, only while the action still exists (a late ack of a finished barrier
   * would stay in etcd for good). Returns false when the action is gone.
   */
  async ack(seq: number, proxyId: string): Promise<boolean> {
    const ack: AckInfo = { proxyId, at: new Date().toISOString() };
    const { paths } = this.store;
    const res = await this.store.call(`ack action ${seq}`, () =>
      this.store.etcd.kv.txn({
        compare: [{ key: Buffer.from(paths.action(seq)), target: CompareTarget.Create, result: CompareResult.Greater, create_revision: '0' }],
        success: [{ request_put: { key: Buffer.from(paths.actionAck(seq, proxyId)), value: Buffer.from(JSON.stringify(ack)) } }],
      }),
    );
    return res.succeeded;
  }

  async listAcks(seq: number): Promise<string[]> {
    const { etcd, paths } = this.store;
    const res = await this.store.call(`list acks of ${seq}`, () => etcd.getAll().prefix(paths.actionAcks(seq)).keys());
    return res.map((k) => paths.ackOf(k)?.[1]).filter((id): id is string => id !== undefined).sort();
  }

  /**
   * Polls the acks of `action` until every named proxy acked or `timeoutMs` passed. Polling
   * (every 50 ms) rather than a watch keeps this simple and bounded when etcd flaps.
   */
  async waitForAcks(
    action: ActionInfo,
    timeoutMs: number,
    onProgress?: (acked: string[], missing: string[]) => void,
  ): Promise<{ acked: string[]; missing: string[] }> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    // Acks only accumulate (a proxy never takes one back): the union over every poll, so a
    // failed read at the deadline cannot turn proxies that acked into "missing" and get
    // them fenced. And the answer is given only after a read that succeeded.
    const acked = new Set<string>();
    for (;;) {
      let readOk = false;
      try {
        for (const p of await this.listAcks(action.seq)) acked.add(p);
        readOk = true;
      } catch {
        // etcd unavailable: keep waiting (past the deadline too, until a read succeeds).
      }
      const ackedList = action.proxies.filter((p) => acked.has(p));
      const missing = action.proxies.filter((p) => !acked.has(p));
      const sig = missing.join(',');
      if (sig !== last) {
        last = sig;
        onProgress?.(ackedList, missing);
      }
      if (missing.length === 0 || (readOk && Date.now() >= deadline)) return { acked: ackedList, missing };
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Removes an action and its acks once the step it guarded is complete. */
  async deleteAction(seq: number): Promise<void> {
    const { etcd, paths } = this.store;
    await this.store.call(`delete action ${seq}`, () => etcd.delete().prefix(paths.action(seq)).exec());
  }

  /** Records that `proxyId` may serve from now on (written by the proxy before it serves). */
  async putMember(proxyId: string, info: Record<string, unknown>): Promise<void> {
    const key = this.store.paths.member(proxyId);
    await this.store.call(`record member ${proxyId}`, () => this.store.etcd.put(key).value(JSON.stringify({ proxyId, ...info })).exec());
  }

  /** Forgets a member: after its clean shutdown, or once it has been fenced. */
  async deleteMember(proxyId: string): Promise<void> {
    const key = this.store.paths.member(proxyId);
    await this.store.call(`forget member ${proxyId}`, () => this.store.etcd.delete().key(key).exec());
  }

  async listMembers(): Promise<string[]> {
    const { etcd, paths } = this.store;
    const keys = await this.store.call('list members', () => etcd.getAll().prefix(paths.members).keys());
    return keys.map((k) => paths.memberIdOf(k)).filter((id): id is string => id !== null).sort();
  }

  async putFence(fence: FenceInfo): Promise<void> {
    const key = this.store.paths.fence(fence.proxyId);
    await this.store.call(`record fence of ${fence.proxyId}`, () => this.store.etcd.put(key).value(JSON.stringify(fence)).exec());
  }

  async listFences(): Promise<FenceInfo[]> {
    const { etcd, paths } = this.store;
    const res = await this.store.call('list fences', () => etcd.getAll().prefix(paths.fences).exec());
    return res.kvs.map((kv) => decodeJson(kv.value, kv.key.toString('utf8')) as FenceInfo);
  }

  /** The fence record's mod revision, or null when the proxy is not recorded as fenced. */
  async fenceRevision(proxyId: string): Promise<string | null> {
    const key = this.store.paths.fence(proxyId);
    const res = await this.store.call(`read fence of ${proxyId}`, () => this.store.etcd.get(key).exec());
    return res.kvs[0]?.mod_revision ?? null;
  }

  /**
   * Clears the fence record only if it is still the one read at `modRevision` (null: it was
   * absent). False means a newer fence landed meanwhile: the caller must not serve.
   */
  async clearFenceIfUnchanged(proxyId: string, modRevision: string | null): Promise<boolean> {
    const key = Buffer.from(this.store.paths.fence(proxyId));
    const res = await this.store.call(`clear fence of ${proxyId}`, () =>
      this.store.etcd.kv.txn({
        compare: [
          modRevision === null
            ? { key, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: '0' }
            : { key, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: modRevision },
        ],
        success: modRevision === null ? [] : [{ request_delete_range: { key } }],
      }),
    );
    return res.succeeded;
  }

  async deleteFence(proxyId: string): Promise<void> {
    const key = this.store.paths.fence(proxyId);
    await this.store.call(`clear fence of ${proxyId}`, () => this.store.etcd.delete().key(key).exec());
  }
}
