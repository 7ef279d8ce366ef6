/**
 * In-flight key moves (the record itself, KeyMove, is in models.ts), stored at `/reborn/<p>/moves/<id>` before a move starts and deleted
 * when it is over, so that whoever comes next (another runner, the same one restarted) finds
 * every move a crash interrupted and finishes or undoes it (docs/architecture.md, "Moving
 * data").
 *
 * Two kinds:
 *   - `batch`: small keys moved by one MIGRATE … KEYS. The record names the keys so that a
 *     MIGRATE whose answer was lost (timeout, dead runner) is audited by the next runner: a key
 *     on both sides with equal copies lost nothing, a key on neither is reported.
 *   - `big-key`: one key too large for a single MIGRATE, copied in chunks into `tmp` on the
 *     target, then renamed into place and unlinked on the source. With `hold` set, every proxy
 *     holds the requests naming the key while the record exists (the record sits inside the
 *     range the proxies' topology watch covers, so they see it in revision order with the
 *     slot table, and a barrier action of kind `keys` makes every proxy confirm it holds).
 *
 * States of a big-key move (the runner's own state machine is in config/src/big-key-move.ts):
 *   holding  → written; waiting until every proxy acked the hold
 *   copying  → chunks go into `tmp` on the target; the source copy is untouched
 *   swapping → the copy is complete: `tmp` becomes the key on the target, then the source
 *              copy is unlinked; a key on both sides in this state is ours, whole
 *
 * Invariant: keys are Buffers on the wire and hex in the record (keys are binary-safe); a
 * record is only ever written guarded (created if absent, updated on its mod revision), so two
 * runners cannot both own one move.
 */
import { ConflictError } from './errors.js';
import { decodeJson, parseMove, type KeyMove } from './models.js';
import { guard, guardedWrite, op, type WriteGuard } from './guarded-writes.js';
import type { Store } from './store.js';

/** A move as read, with the revision a compare-and-swap needs. */
export interface StoredMove {
  move: KeyMove;
  modRevision: string;
}

export class Moves {
  constructor(private readonly store: Store) {}

  /**
   * Writes a new move record, only if no record of that id exists and every guard holds (the
   * runner passes its leadership guard). Returns the revision of the write: a barrier action
   * for the hold names it. ConflictError when a guard failed.
   */
  async create(move: KeyMove, guards: readonly WriteGuard[] = []): Promise<string> {
    const key = this.store.paths.move(move.id);
    const checked = parseMove(move, key);
    const res = await guardedWrite(this.store, `create key move ${move.id}`, [...guards, guard.absent(key)], [op.put(key, JSON.stringify(checked))]);
    if (!res.succeeded) throw new ConflictError(`key move ${move.id} exists already, or this runner is no longer the leader`);
    return res.revision;
  }

  async get(id: string): Promise<StoredMove | null> {
    const key = this.store.paths.move(id);
    const res = await this.store.call(`get key move ${id}`, () => this.store.etcd.get(key).exec());
    const kv = res.kvs[0];
    return kv ? { move: parseMove(decodeJson(kv.value, key), key), modRevision: kv.mod_revision } : null;
  }

  /** Every move record, oldest first; `task` narrows to one task's. */
  async list(task?: string): Promise<StoredMove[]> {
    const { etcd, paths } = this.store;
    const res = await this.store.call('list key moves', () => etcd.getAll().prefix(paths.moves).exec());
    const out: StoredMove[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      if (paths.moveIdOf(key) === null) continue;
      const move = parseMove(decodeJson(kv.value, key), key);
      if (task === undefined || move.task === task) out.push({ move, modRevision: kv.mod_revision });
    }
    return out.sort((a, b) => Number(BigInt(a.modRevision) - BigInt(b.modRevision)));
  }

  /** Replaces the record if it is still at `stored.modRevision` and the guards hold; returns the new revision. */
  async update(stored: StoredMove, next: KeyMove, guards: readonly WriteGuard[] = []): Promise<StoredMove> {
    const key = this.store.paths.move(stored.move.id);
    const value = { ...parseMove(next, key), updatedAt: new Date().toISOString() };
    const res = await guardedWrite(this.store, `update key move ${next.id}`, [...guards, guard.modRevision(key, stored.modRevision)], [op.put(key, JSON.stringify(value))]);
    if (!res.succeeded) throw new ConflictError(`key move ${next.id} changed meanwhile, or this runner is no longer the leader`);
    return { move: value, modRevision: res.revision };
  }

  /** Deletes the record (the move is over) if the guards hold; returns the revision of the delete. */
  async remove(id: string, guards: readonly WriteGuard[] = []): Promise<string> {
    const res = await guardedWrite(this.store, `delete key move ${id}`, guards, [op.delete(this.store.paths.move(id))]);
    if (!res.succeeded) throw new ConflictError(`key move ${id} not deleted: this runner is no longer the leader`);
    return res.revision;
  }
}
