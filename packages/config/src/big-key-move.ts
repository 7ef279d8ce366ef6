/**
 * Moves one key too big for a single MIGRATE from the source group A to the target group B
 * without stalling either: a recorded, held, chunked copy into a temporary key on B, an atomic
 * rename into place, then a lazy delete on A. And the recovery that finishes or undoes any
 * such move a crash (runner, proxy, source, target) interrupted.
 *
 * The protocol (key K of slot S, migrating A→B; T = tempKeyName):
 *   1. holding:  the move record {kind big-key, hold, keys [K], tmp T} is written (guarded by the
 *      runner's leadership), then a barrier action of kind `keys` for [S] at that revision;
 *      every proxy acks once it holds K's requests (the rest of S keeps flowing). Proxies that
 *      do not ack in time are fenced, as for the slot barrier (fence.ts); a fence that fails
 *      rolls the move back (nothing was written to B yet).
 *   2. copying:  DEL T on B (a leftover), PEXPIRETIME K on A, then K is copied into T chunk by
 *      chunk (chunk-copy.ts). Nothing writes K on A meanwhile (the slot is migrating and the
 *      proxies hold K).
 *   3. swapping: written before the swap. On B, one Lua script: BUSYKEY if K exists there (a
 *      bug to surface), else T gets K's expiry and is renamed K (or both dropped when K expired
 *      meanwhile). WAIT until B's in-sync replicas have it (retried until they confirm or the
 *      group no longer counts them: A's copy is still there, nothing is lost meanwhile). Then
 *      UNLINK K on A (lazy free) and WAIT for A's in-sync replicas; then the record is deleted
 *      (proxies release the held requests: K is on B now).
 *   4. recovery (recover(), at the start of every batch and after any error), from what the
 *      masters etcd names NOW hold:
 *        holding  → rolled back: DEL T on B, record and its barrier action deleted;
 *        copying  → the copy restarts (DEL T first; the hold is in force: the acks were in);
 *        swapping → K on B (whole: renamed only after the full copy, replication is ordered)
 *                   → UNLINK K on A, finish; K on A only → back to copying (B failed over
 *                   before the rename replicated); K on neither → it expired, finish.
 *
 * Every etcd write is guarded by the runner's campaign key, so a runner that lost its lease
 * cannot act; every redis call goes to the masters etcd names at the start of the step, and a
 * master that changes under a copy stops it (the next recovery restarts it on the new one).
 *
 * Invariant: K is whole in exactly one group, or whole on A with a record that lets the next
 * runner finish: T is only ever renamed after a complete copy, A's copy is unlinked only after
 * B's in-sync replicas confirmed K (or the group has none), and no T outlives its record.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { hashTag, keySlot } from '@reborn/protocol';
import {
  ConflictError,
  Moves,
  MoveState,
  groupMaster,
  guard,
  inSyncMembers,
  readKey,
  type Barrier,
  type BigKeyProgress,
  type GroupInfo,
  type KeyMove,
  type StoredMove,
  type Store,
  INTERNAL_KEY_PREFIX,
  RUNNER_CONNECTION_NAME,
} from '@reborn/coordinator';
import { RedisAdminError, connectAdmin, replyCode, showKey, type RedisAdminOptions } from '@reborn/coordinator/admin';
import { findBigKeys, withoutBig, type BigKeyInfo } from './big-key-detect.js';
import { copyInChunks, streamHasPending } from './chunk-copy.js';
import { FenceError, fenceSilent } from './fence.js';
import { CHECK_INTERVAL_MS, Halt, MigrationError, MigrationWait, errText, isConnectionError, isRetryable, masterMoved, type Batch, type Lead, type RunnerTunables } from './migration-common.js';

const TEMP_PREFIX = `${INTERNAL_KEY_PREFIX}move:`; // the product's own keys: no scan moves or reports them
/** WAIT rounds on the target before the task says it waits for its replicas (and retries). */
const CONFIRM_ROUNDS = 5;

/**
 * The temporary key of move `id` for `key`: in K's slot (`{<K's hash tag>}`) whenever the tag
 * can be written between braces, so T lives where K will.
 */
export function tempKeyName(id: string, key: Buffer): Buffer {
  const tag = Buffer.from(hashTag(key));
  if (tag.includes(0x7d)) return Buffer.from(`${TEMP_PREFIX}${id}`);
  return Buffer.concat([Buffer.from(`${TEMP_PREFIX}${id}:{`), tag, Buffer.from('}')]);
}

/** Where a move can be stopped by a test (afterStep): each is durable when the hook runs. */
export type BigKeyStep = 'held' | 'copied' | 'swapped' | 'unlinked';

export interface BigKeyMoveOptions {
  store: Store;
  barrier: Barrier;
  taskId: string;
  lead: Lead;
  log: Logger;
  redis: RedisAdminOptions;
  /**
   * The runner's tunables used here: barrierTimeoutMs (the hold's acks), waitTimeoutMs (one
   * WAIT: B's replicas after the rename, A's after the unlink), maxSourceLatencyMs (the
   * task's latency target of one source read while copying, re-read per copy).
   */
  opts: Pick<RunnerTunables, 'barrierTimeoutMs' | 'waitTimeoutMs'> & { maxSourceLatencyMs: () => number };
  /** How often a copy re-reads both groups' masters from etcd, ms. Default CHECK_INTERVAL_MS (200). */
  masterCheckMs?: number;
  /** The big key being copied (undefined: none now), for progress.bigKey. */
  onBigKey?: (p: BigKeyProgress | undefined) => void;
  /** After each chunk: bytes it moved, the source read's latency, the next chunk size. */
  onChunk?: (p: { bytes: number; latencyMs: number; chunk: number }) => Promise<void> | void;
  /** A big key moved (whole on B, gone from A). */
  onMoved?: (bytes: number) => void;
  /** Test hook: runs once `step` is durable; throwing stops the move right there. */
  afterStep?: (step: BigKeyStep, move: KeyMove) => Promise<void> | void;
}

/** The two masters one step talks to, as etcd names them now. */
interface Masters {
  src: string;
  dst: string;
  dstGroup: GroupInfo;
  srcGroup: GroupInfo;
}

const SWAP_SCRIPT = `
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('BUSYKEY the key exists on the target already') end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'NOTMP' end
local at = tonumber(ARGV[1])
if at > 0 then
  redis.call('PEXPIREAT', KEYS[1], at)
  if redis.call('EXISTS', KEYS[1]) == 0 then return 'EXPIRED' end
end
redis.call('RENAME', KEYS[1], KEYS[2])
return 'OK'
`;

export class BigKeyMover {
  private readonly moves: Moves;

  constructor(private readonly o: BigKeyMoveOptions) {
    this.moves = new Moves(o.store);
  }

  /**
   * Moves `info.key` (its slot migrating from→to) through the whole protocol. Returns
   * 'migrate' when it must go by MIGRATE after all (a stream whose groups have pending
   * entries: its PEL cannot be copied with public commands), 'gone' when it was no longer on
   * the source, 'moved' otherwise.
   */
  async move(info: BigKeyInfo, from: number, to: number): Promise<'moved' | 'migrate' | 'gone'> {
    const m = await this.masters(from, to);
    if (info.type === 'stream' && (await this.withConn(m.src, (c) => this.onConn(m.src, () => streamHasPending(c, info.key))))) {
      this.o.log.warn({ key: showKey(info.key), entries: info.size }, 'big stream with pending entries: moved whole by MIGRATE (its pending lists cannot be copied); this may stall the source');
      return 'migrate';
    }
    const id = `${this.o.taskId}.${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
    const now = new Date().toISOString();
    const record: KeyMove = {
      id,
      task: this.o.taskId,
      kind: 'big-key',
      slots: [keySlot(info.key)],
      from,
      to,
      keys: [info.key.toString('hex')],
      hold: true,
      state: MoveState.Holding,
      tmp: tempKeyName(id, info.key).toString('hex'),
      src: m.src,
      dst: m.dst,
      type: info.type,
      size: info.size,
      createdAt: now,
      updatedAt: now,
    };
    const revision = await this.guarded(`record big-key move ${id}`, () => this.moves.create(record, this.guards()));
    this.o.log.info({ move: id, key: showKey(info.key), type: info.type, size: info.size, bytes: info.bytes }, 'big key: moving it in chunks');
    let stored: StoredMove = { move: record, modRevision: revision };
    try {
      await this.hold(stored, revision);
      await this.o.afterStep?.('held', stored.move);
      stored = await this.update(stored, MoveState.Copying);
      return await this.copyAndSwap(stored);
    } catch (err) {
      // Operator-level failures must not leave the key held by every proxy: undo the move
      // (nothing of it is on B but T). Transient ones keep the record for recover().
      if (err instanceof MigrationError) await this.rollBackQuietly(id, 'the move failed');
      throw err;
    }
  }

  /**
   * Of `chunk` (keys of `batch` about to be MIGRATEd from `src`), moves the big ones
   * (big-key-detect.ts) one by one. Returns the keys left for MIGRATE (the small ones, and a
   * stream that cannot be copied logically) and how many big keys moved.
   */
  async moveBigKeys(src: Redis, chunk: Buffer[], batch: Batch, bigKeyBytes: number): Promise<{ rest: Buffer[]; moved: number }> {
    const big = await findBigKeys(src, chunk, bigKeyBytes);
    if (big.length === 0) return { rest: chunk, moved: 0 };
    const whole: Buffer[] = [];
    let moved = 0;
    for (const info of big) {
      const outcome = await this.move(info, batch.from, batch.to);
      if (outcome === 'migrate') whole.push(info.key);
      else if (outcome === 'moved') moved++;
    }
    return { rest: [...withoutBig(chunk, big), ...whole], moved };
  }

  /**
   * Finishes or undoes every big-key move of this task that a crash or an error interrupted.
   * Returns how many there were.
   */
  async recover(): Promise<number> {
    const left = (await this.moves.list(this.o.taskId)).filter((s) => s.move.kind === 'big-key');
    for (const stored of left) {
      const { move } = stored;
      this.o.log.warn({ move: move.id, key: showKey(Buffer.from(move.keys[0]!, 'hex')), state: move.state }, 'big key: recovering an interrupted move');
      switch (move.state) {
        case MoveState.Holding:
          await this.rollBack(stored, 'interrupted before every proxy held the key');
          break;
        case MoveState.Copying:
          await this.copyAndSwap(stored);
          break;
        case MoveState.Swapping:
          await this.recoverSwapping(stored);
          break;
      }
    }
    return left.length;
  }

  /**
   * The task is failing: no key may stay held meanwhile. Moves not yet swapping are undone
   * (K is whole on A); a swapping one is finished when K is on B, undone otherwise. Best effort: what fails here
   * is left for recover() when the task is resumed.
   */
  async releaseForFailure(): Promise<void> {
    for (const stored of await this.moves.list(this.o.taskId)) {
      if (stored.move.kind !== 'big-key') continue;
      try {
        if (stored.move.state === MoveState.Swapping) await this.recoverSwapping(stored, false);
        else await this.rollBack(stored, 'the task failed');
      } catch (err) {
        this.o.log.warn({ move: stored.move.id, err: errText(err) }, 'big key: move left for the next recovery');
      }
    }
  }

  // --- the steps -------------------------------------------------------------------------------

  /** Step 1: the barrier action of kind `keys`; silent proxies fenced; a failed fence rolls back. */
  private async hold(stored: StoredMove, revision: string): Promise<void> {
    const { move } = stored;
    const label = `big key ${showKey(Buffer.from(move.keys[0]!, 'hex'))} (slot ${move.slots[0]}) ${move.from}→${move.to}`;
    // The note starts as the slot barrier's do: a stale action is cleared with the task's others.
    const action = await this.o.barrier.createAction(move.slots, revision, `migration ${this.o.taskId}: hold ${label}`, move.id);
    try {
      const { missing } = await this.o.barrier.waitForAcks(action, this.o.opts.barrierTimeoutMs);
      if (missing.length === 0) return;
      this.o.log.warn({ action: action.seq, missing, move: move.id }, 'proxies did not ack the key hold: fencing them');
      const failed = await fenceSilent(this.o.store, {
        missing,
        action: action.seq,
        reason: `did not ack action ${action.seq} (migration ${this.o.taskId}, hold of ${label}) within ${this.o.opts.barrierTimeoutMs} ms`,
        logger: this.o.log,
        redis: this.o.redis,
      });
      if (failed.length === 0) return;
      const why = failed.map(errText).join('; ');
      await this.rollBack(stored, `fencing failed: ${why}`);
      if (!failed.every((e) => e instanceof FenceError || isRetryable(e))) {
        throw new MigrationError('EBARRIER', `hold of ${label} failed: ${why}; fix the cause, then run "reborn-config migration resume ${this.o.taskId}"`);
      }
      throw new MigrationWait(`waiting to fence ${missing.join(', ')} (no ack of a key hold)`, `${why}; ${label} not moved yet`, { retryInMs: 2000 });
    } finally {
      await this.o.barrier.deleteAction(action.seq).catch((err: unknown) => this.o.log.warn({ err: errText(err), action: action.seq }, 'could not delete action'));
    }
  }

  /** Steps 2–3 from a record in state copying. */
  private async copyAndSwap(stored: StoredMove): Promise<'moved' | 'gone'> {
    const { move } = stored;
    const key = Buffer.from(move.keys[0]!, 'hex');
    const tmp = Buffer.from(move.tmp!, 'hex');
    const m = await this.masters(move.from, move.to);
    const type = move.type ?? 'unknown';
    const total = move.size ?? 0;
    const copied = await this.withBoth(m, async (src, dst) => {
      await this.onConn(m.dst, () => dst.unlink(tmp)); // lazy free: a leftover copy may be big
      const expireAt = Number(await this.onConn(m.src, () => src.call('PEXPIRETIME', key)));
      if (expireAt === -2) return null; // not on A (a proxy moved it before the hold, or it expired)
      let lastCheck = Date.now();
      this.o.onBigKey?.({ key: showKey(key), type, done: 0, total });
      const result = await copyInChunks({
        src,
        dst,
        srcAddr: m.src,
        dstAddr: m.dst,
        key,
        tmp,
        type,
        maxSourceLatencyMs: this.o.opts.maxSourceLatencyMs(),
        signal: this.o.lead.signal,
        onChunk: async (p) => {
          this.o.onBigKey?.({ key: showKey(key), type, done: Math.min(p.done, total), total });
          await this.o.onChunk?.(p);
          if (Date.now() - lastCheck >= (this.o.masterCheckMs ?? CHECK_INTERVAL_MS)) {
            lastCheck = Date.now();
            await this.assertMasters(move.from, move.to, m); // a failover stops the copy; recovery restarts it
          }
        },
      });
      return { ...result, expireAt };
    }).finally(() => this.o.onBigKey?.(undefined));
    if (copied === null) {
      await this.rollBack(stored, 'the key was no longer on the source');
      return 'gone';
    }
    await this.o.afterStep?.('copied', stored.move);
    const swapping = await this.update(stored, MoveState.Swapping);
    const outcome = await this.swap(swapping, m, copied.expireAt);
    if (outcome === 'again') return this.copyAndSwap(await this.update(swapping, MoveState.Copying));
    await this.finishOnSource(swapping);
    this.o.onMoved?.(copied.bytes);
    return 'moved';
  }

  /** Step 3 on B: rename T into K (with its expiry) and wait for B's in-sync replicas. 'again': T is gone, copy anew. */
  private async swap(stored: StoredMove, m: Masters, expireAt: number): Promise<'done' | 'again'> {
    const { move } = stored;
    const key = Buffer.from(move.keys[0]!, 'hex');
    const tmp = Buffer.from(move.tmp!, 'hex');
    return this.withConn(m.dst, async (dst) => {
      let answer: string;
      try {
        answer = String(await this.onConn(m.dst, () => dst.call('EVAL', SWAP_SCRIPT, '2', tmp, key, String(Math.max(0, expireAt)))));
      } catch (err) {
        if (replyCode(err) === 'BUSYKEY') {
          // Not renamed: A's copy is whole; T goes and the proxies stop holding K.
          await this.rollBack(stored, 'BUSYKEY on the target');
          throw new MigrationError(
            'EBUSYKEY',
            `BUSYKEY: big key "${showKey(key)}" (slot ${move.slots[0]}) exists in group ${move.to} (${m.dst}) while its copy there was being finished; the runner never overwrites a key: find out how it got there, keep the right copy, delete the other, then run "reborn-config migration resume ${this.o.taskId}"`,
          );
        }
        throw err;
      }
      if (answer === 'NOTMP') {
        this.o.log.warn({ move: move.id, dst: m.dst }, 'big key: the temporary copy is gone from the target (failover?): copying again');
        return 'again';
      }
      if (answer === 'EXPIRED') this.o.log.info({ move: move.id, key: showKey(key) }, 'big key expired while it was being copied: dropped');
      await this.o.afterStep?.('swapped', move);
      await this.confirmOnTarget(dst, m, move);
      return 'done';
    });
  }

  /** WAIT on B until its in-sync replicas (as etcd names them, re-read each round) confirm. */
  private async confirmOnTarget(dst: Redis, m: Masters, move: KeyMove): Promise<void> {
    for (let round = 0; ; round++) {
      if (this.o.lead.signal.aborted) throw new Halt('stopping');
      const group = await this.o.store.getGroup(move.to);
      const master = group ? groupMaster(group)?.addr : undefined;
      if (master !== m.dst) throw masterMoved(move.to, m.dst, master);
      const wanted = inSyncMembers(group!).length;
      if (wanted === 0) return;
      const confirmed = Number(await this.onConn(m.dst, () => dst.call('WAIT', String(wanted), String(this.o.opts.waitTimeoutMs))));
      if (confirmed >= wanted) return;
      if (round + 1 >= CONFIRM_ROUNDS) {
        // Said in the task's progress (waiting); recovery comes back here (state swapping).
        throw new MigrationWait(
          `waiting for group ${move.to}'s in-sync replicas to confirm a moved big key`,
          `${confirmed} of ${wanted} confirmed on ${m.dst}; the source copy is kept until they do (or HA drops them from the in-sync set)`,
        );
      }
    }
  }

  /** Step 3 on A: UNLINK K (lazy free), WAIT for A's in-sync replicas, delete the record. */
  private async finishOnSource(stored: StoredMove): Promise<void> {
    const { move } = stored;
    const key = Buffer.from(move.keys[0]!, 'hex');
    const group = await this.o.store.getGroup(move.from);
    const src = group ? groupMaster(group)?.addr : undefined;
    if (!src || !group) throw new MigrationWait(`waiting for group ${move.from} to have a master`, 'etcd names none: failover in progress');
    await this.withConn(src, async (c) => {
      await this.onConn(src, () => c.call('UNLINK', key));
      const wanted = inSyncMembers(group).length;
      if (wanted === 0) return;
      const confirmed = Number(await this.onConn(src, () => c.call('WAIT', String(wanted), String(this.o.opts.waitTimeoutMs))));
      if (confirmed < wanted) {
        // The key is whole on B; only a failover of A now could bring back A's old copy, and the
        // key mover deletes such resurrected copies (key-mover.ts, case b).
        this.o.log.warn({ move: move.id, src, confirmed, wanted }, 'big key: its deletion on the source fewer in-sync replicas confirmed than asked');
      }
    });
    await this.o.afterStep?.('unlinked', move);
    await this.guarded(`delete big-key move ${move.id}`, () => this.moves.remove(move.id, this.guards()));
    this.o.log.info({ move: move.id, key: showKey(key), from: move.from, to: move.to }, 'big key moved');
  }

  /** Recovery of a record in state swapping, from what both masters hold now. */
  private async recoverSwapping(stored: StoredMove, copyAgain = true): Promise<void> {
    const { move } = stored;
    const key = Buffer.from(move.keys[0]!, 'hex');
    const tmp = Buffer.from(move.tmp!, 'hex');
    const m = await this.masters(move.from, move.to);
    const [onA, onB, tmpOnB] = await this.withBoth(m, async (src, dst) => [
      (await this.onConn(m.src, () => src.exists(key))) === 1,
      (await this.onConn(m.dst, () => dst.exists(key))) === 1,
      (await this.onConn(m.dst, () => dst.exists(tmp))) === 1,
    ]);
    if (onB && !tmpOnB) {
      // Renamed: K on B is whole. Finish on A (its copy, if still there, is the pre-move one).
      await this.withConn(m.dst, (dst) => this.confirmOnTarget(dst, m, move));
      await this.finishOnSource(stored);
      return;
    }
    if (onA) {
      // Not renamed on the master B has now (never, or lost in its failover): copy again.
      this.o.log.warn({ move: move.id, key: showKey(key), onB, tmpOnB }, 'big key: rename not on the target, the source still holds the key: copying again');
      if (onB) {
        await this.rollBack(stored, 'BUSYKEY on the target');
        throw new MigrationError('EBUSYKEY', `BUSYKEY: big key "${showKey(key)}" exists in group ${move.from} (${m.src}) and group ${move.to} (${m.dst}) next to an unfinished copy; keep the right copy, delete the other, then run "reborn-config migration resume ${this.o.taskId}"`);
      }
      if (copyAgain) await this.copyAndSwap(await this.update(stored, MoveState.Copying));
      else await this.rollBack(stored, 'the task failed before the rename');
      return;
    }
    // On neither side: it expired (the swap drops an expired key; A's copy expires by itself).
    this.o.log.warn({ move: move.id, key: showKey(key), tmpOnB }, 'big key: on neither group after the swap: it expired');
    await this.rollBack(stored, 'the key expired');
  }

  /** Undoes a move: DEL T on B's master, delete the record and its barrier action. */
  private async rollBack(stored: StoredMove, why: string): Promise<void> {
    const { move } = stored;
    const group = await this.o.store.getGroup(move.to);
    const dst = group ? groupMaster(group)?.addr : undefined;
    if (!dst) throw new MigrationWait(`waiting for group ${move.to} to have a master`, 'etcd names none: failover in progress');
    if (move.tmp) await this.withConn(dst, (c) => this.onConn(dst, () => c.unlink(Buffer.from(move.tmp!, 'hex'))));
    for (const a of await this.o.barrier.listActions()) {
      if (a.kind === 'keys' && a.move === move.id) await this.o.barrier.deleteAction(a.seq);
    }
    await this.guarded(`delete big-key move ${move.id}`, () => this.moves.remove(move.id, this.guards()));
    this.o.log.info({ move: move.id, why }, 'big key: move rolled back (the key stays on the source)');
  }

  private async rollBackQuietly(id: string, why: string): Promise<void> {
    try {
      const stored = await this.moves.get(id);
      if (stored && stored.move.state !== MoveState.Swapping) await this.rollBack(stored, why);
    } catch (err) {
      this.o.log.warn({ move: id, err: errText(err) }, 'big key: could not roll the move back; the next recovery will');
    }
  }

  // --- plumbing --------------------------------------------------------------------------------

  private async update(stored: StoredMove, state: MoveState): Promise<StoredMove> {
    return this.guarded(`big-key move ${stored.move.id} → ${state}`, () => this.moves.update(stored, { ...stored.move, state }, this.guards()));
  }

  private guards() {
    return [guard.exists(this.o.lead.guardKey)];
  }

  /** A guarded etcd write; refused because our campaign key is gone → stop acting (Halt). */
  private async guarded<T>(what: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      if ((await readKey(this.o.store, 'check leadership', this.o.lead.guardKey)) === null) {
        this.o.log.warn({ what }, 'write refused: this runner no longer leads');
        this.o.lead.lose();
        throw new Halt('leadership lost');
      }
      throw err;
    }
  }

  /** Both masters as etcd names them now. */
  private async masters(from: number, to: number): Promise<Masters> {
    const [srcGroup, dstGroup] = await Promise.all([this.o.store.getGroup(from), this.o.store.getGroup(to)]);
    const src = srcGroup ? groupMaster(srcGroup)?.addr : undefined;
    const dst = dstGroup ? groupMaster(dstGroup)?.addr : undefined;
    for (const [gid, addr] of [[from, src], [to, dst]] as const) {
      if (!addr) throw new MigrationWait(`waiting for group ${gid} to have a master`, 'etcd names none: failover in progress');
    }
    return { src: src!, dst: dst!, srcGroup: srcGroup!, dstGroup: dstGroup! };
  }

  /** Throws (MigrationWait) when etcd names another master for A or B than `m`. */
  private async assertMasters(from: number, to: number, m: Masters): Promise<void> {
    if (this.o.lead.signal.aborted) throw new Halt('stopping');
    const now = await this.masters(from, to);
    if (now.src !== m.src) throw masterMoved(from, m.src, now.src);
    if (now.dst !== m.dst) throw masterMoved(to, m.dst, now.dst);
  }

  private connOpts() {
    return { ...this.o.redis, connectionName: RUNNER_CONNECTION_NAME, connectTimeoutMs: 3000, commandTimeoutMs: 30_000 + this.o.opts.waitTimeoutMs };
  }

  private async withConn<T>(addr: string, fn: (c: Redis) => Promise<T>): Promise<T> {
    const c = await this.onConn(addr, () => connectAdmin(addr, this.connOpts()));
    try {
      return await fn(c);
    } finally {
      c.disconnect();
    }
  }

  private async withBoth<T>(m: Masters, fn: (src: Redis, dst: Redis) => Promise<T>): Promise<T> {
    return this.withConn(m.src, (src) => this.withConn(m.dst, (dst) => fn(src, dst)));
  }

  /** A connection failure of `addr` becomes a RedisAdminError naming it: the task waits for its group. */
  private async onConn<T>(addr: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw isConnectionError(err) ? new RedisAdminError(addr, errText(err), err) : err;
    }
  }
}
