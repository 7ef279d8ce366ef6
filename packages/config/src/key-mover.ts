/**
 * The key mover of one migration task: chunks of small keys from the source master to the
 * target's by copy-then-delete under a copy lease (dump-restore.ts, coordinator's
 * copy-lease.ts), sized by the source's pace (source-pace.ts) and the task's throttle; the
 * copies confirmed on the target's in-sync replicas before the source copies go, the deletes
 * on the source's (WAIT on both); BUSYKEY resolution; the settling of chunks a dead runner
 * left; and the line between faults the task waits out and faults that need an operator.
 *
 * Faults. A restore that times out (a hung target) or any answer that will not change soon
 * (OOM on the target, READONLY from a master that no longer is one, LOADING, MASTERDOWN …)
 * throws MigrationWait: the task stays running, says what it waits for, and starts the pass
 * afresh from etcd — against the new master if the group failed over. A restore whose answer
 * was lost leaves its marks in place: they lapse, and reconcileExpired() settles those keys
 * from what both masters hold. Only answers that need an operator (BUSYKEY that is not
 * provably a leftover, authentication or permission errors, a bug) throw MigrationError,
 * which fails the task with a message saying what to do.
 *
 * Durable moves. The target's copies are confirmed first: `WAIT <n>` on our own connection
 * to the target (the RESTOREs went over it), n = the target's in-sync members; short of that
 * the in-sync set is re-read and WAIT asked again a few times, then the keys are counted in
 * progress.targetUnconfirmedKeys (on the target's master only when the source copy goes).
 * Then the source copies are deleted and `WAIT <n>` sent on the source connection, n = the
 * source group's in-sync members. Fewer confirmations do not lose data (the keys are on the
 * target) but a failover now could bring the source copies back: the keys go on the batch's
 * "may resurrect" list, the count into progress.unconfirmedKeys.
 *
 * BUSYKEY (a key on both sides; RESTORE and MIGRATE never overwrite) is a hard error naming
 * the key, except in two cases where the source copy provably is not the authoritative one:
 *   a. both copies are identical: deleting the source's loses nothing. The usual cause is a
 *      copy whose runner died before deleting the source copy, or a proxy's on-touch MIGRATE
 *      that timed out while the restore on the target went through later (redis' documented
 *      remedy: drop the source copy);
 *   b. the source group failed over (or its master restarted) after the key's slot became
 *      migrating (source-failover.ts decides). The argument: from the moment a slot is
 *      `migrating`, nothing writes it on the source — proxies MIGRATE a key to the target
 *      before serving it there, the runner only moves keys away. So a key of the slot reaches
 *      the target either by a move (a MIGRATE, or a copy whose source copy was then deleted),
 *      or by a write to the target after a move found nothing on the source. Either way the
 *      target holds the newest value, and a copy on the source can only be one the old
 *      master had already deleted (or never had) when its replica, missing that DEL, was
 *      promoted — or when it restarted from data saved before the DEL. Such a resurrected
 *      copy is deleted (that key only, on the group's master as etcd names it now), counted
 *      in progress.resurrectedDeleted, logged, and the move goes on. Without such a failover,
 *      a key on both sides means something wrote the target or the source outside the
 *      protocol: that stays a bug to surface.
 *
 * Invariant: never overwrites a key on the target (RESTORE without REPLACE) and never deletes
 * a source copy unless the target holds its copy (the chunk's own restore, under its lease)
 * or (a) or (b) proves the target's copy authoritative. See
 * docs/architecture.md (migration protocol) and docs/migration-failover.md.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { keySlot } from '@reborn/protocol';
import { COPY_LEASE_MS, type MigrationTask } from '@reborn/coordinator';
import { RedisAdminError, canonicalValue, existsAll, parseAddr, replyCode, showKey, withRedis, type RedisAdminOptions } from '@reborn/coordinator/admin';
import { BUSYKEY_RESOLUTIONS, MigrationError, MigrationWait, errText, nap, type RunnerTunables } from './migration-common.js';
import { dumpKeys, expiredMarks, restoreKeys, settleKeys, type Dumped, type Restored } from './dump-restore.js';
import type { SourcePace } from './source-pace.js';
import type { SourceFailoverWatch } from './source-failover.js';
import type { TargetWatch } from './target-watch.js';

/** Keys kept on a batch's "may resurrect" list at most (beyond it only the count grows). */
export const MAY_RESURRECT_MAX = 100_000;
/** At most one "not confirmed" log line per this many ms (a replica down would repeat it per chunk). */
const UNCONFIRMED_LOG_MS = 5000;

/** A warning logged at most every UNCONFIRMED_LOG_MS, with the count since the last one. */
class ThrottledWarn {
  private last = 0;
  private since = 0;
  add(n: number, log: (count: number) => void): void {
    this.since += n;
    const now = Date.now();
    if (now - this.last < UNCONFIRMED_LOG_MS) return;
    log(this.since);
    this.last = now;
    this.since = 0;
  }
}

/** The connections of one scan pass. */
export interface MovePass {
  /** The source master (SCAN, the dump and delete scripts, WAIT), as etcd named it when the pass began. */
  src: Redis;
  srcAddr: string;
  /** The target master (the restore script, WAIT), as etcd named it when the pass began. */
  dst: Redis;
  dstAddr: string;
}

/** What the mover keeps per batch, across the scan passes and retries of one TaskRun. */
export interface BatchMoveState {
  /** Keys of restores whose answer was lost (hex): they may be on both sides with equal copies. */
  suspects: Set<string>;
  /** Suspects sent to a target master that etcd no longer names: checked once the pass follows it (auditAfterTargetFailover). */
  unaudited: Map<string, string>;
  /** Keys (hex) whose source DEL no in-sync replica confirmed: a failover may bring them back. */
  mayResurrect: Set<string>;
  /** Whether the source group failed over since the batch's slots became migrating. */
  failover: SourceFailoverWatch;
  /** The target group as last read (its master, its in-sync set). */
  target: TargetWatch;
}

export function newBatchMoveState(failover: SourceFailoverWatch, target: TargetWatch): BatchMoveState {
  return { suspects: new Set(), unaudited: new Map(), mayResurrect: new Set(), failover, target };
}

export interface KeyMoverOptions {
  taskId: string;
  /** The task as last read (throttle, groups). */
  task: () => MigrationTask;
  opts: RunnerTunables;
  redis: RedisAdminOptions;
  log: Logger;
  /** Aborted when leadership is lost or the runner stops. */
  signal: AbortSignal;
  /** How many replicas must confirm a move: the source group's in-sync members, as last read. */
  confirmations: () => number;
  /** Keys that moved (counted for progress). */
  onMoved: (n: number) => void;
  /** Keys moved whose source DEL fewer in-sync replicas than asked confirmed. */
  onUnconfirmed: (n: number) => void;
  /** Keys moved whose copy on the target fewer of its in-sync replicas than asked confirmed. */
  onTargetUnconfirmed: (n: number) => void;
  /** Resurrected source copies deleted. */
  onResurrectedDeleted: (n: number) => void;
  /** Payload bytes of keys moved. */
  onBytes: (n: number) => void;
  /** Sizes the chunks (the task's latency target, the source's measured latency). */
  pace: () => SourcePace;
}

/** A chunk's DUMP payloads stop growing past this (one script reply, one restore script). */
const CHUNK_BYTES_CAP = 8 * 1024 * 1024;

export class KeyMover {
  private nextSendAt = 0;
  private readonly sourceWarn = new ThrottledWarn();
  private readonly targetWarn = new ThrottledWarn();
  /** Marks of this mover's chunks: unique per runner process and chunk. */
  private readonly tokenBase = `${process.pid}.${randomBytes(3).toString('hex')}.`;
  private chunkSeq = 0;

  constructor(private readonly o: KeyMoverOptions) {}

  /** After a pause: the throttle starts afresh instead of catching up. */
  resetPace(): void {
    this.nextSendAt = 0;
  }

  /** Keys per chunk: what the source's pace allows, smaller under a low throttle. */
  chunkSize(): number {
    const t = this.o.task().throttle;
    const paced = this.o.pace().batchKeys;
    return t > 0 ? Math.max(1, Math.min(paced, Math.floor(t / 10))) : paced;
  }

  /** Waits until `n` more keys may be sent under the task's throttle (keys/s; 0: none). */
  async throttle(n: number): Promise<void> {
    const rate = this.o.task().throttle;
    if (rate <= 0) return;
    const now = Date.now();
    this.nextSendAt = Math.max(this.nextSendAt, now);
    const wait = this.nextSendAt - now;
    this.nextSendAt += (n * 1000) / rate;
    if (wait > 0) await nap(wait, this.o.signal);
  }

  /**
   * Moves `keys` by copy-then-delete (dump-restore.ts): DUMP and mark on the source, RESTORE
   * on the target, WAIT for the target's in-sync replicas, then delete each source copy with
   * its mark and WAIT for the source's in-sync replicas. The byte cap may split `keys` into
   * several chunks; each chunk's DUMP time sizes the next (source-pace.ts). A fault that does
   * not pass at once (the target unreachable, out of memory, no longer master) throws
   * MigrationWait: the task waits and starts the pass afresh from etcd.
   */
  async moveChunk(pass: MovePass, keys: Buffer[], batch: BatchMoveState): Promise<void> {
    let rest = keys;
    while (rest.length > 0) {
      const sent = performance.now();
      const chunk = await dumpKeys(pass.src, rest, CHUNK_BYTES_CAP, `${this.tokenBase}${++this.chunkSeq}`);
      this.o.pace().onChunk(chunk.taken, performance.now() - sent);
      rest = rest.slice(chunk.taken);
      await this.copyThenDelete(pass, chunk, batch);
    }
  }

  private async copyThenDelete(pass: MovePass, chunk: Dumped, batch: BatchMoveState): Promise<void> {
    let pending = chunk.found;
    // Whether the target may hold copies we cannot account for (a restore whose answer was
    // lost): then the marks stay until their lease runs out and reconcileExpired() decides.
    let unknown = false;
    try {
      for (let attempt = 0; pending.length > 0; attempt++) {
        let res: Restored;
        try {
          res = await restoreKeys(pass.dst, { found: pending, restoreBy: chunk.restoreBy });
        } catch (err) {
          const code = replyCode(err);
          if (code === 'LEASE') {
            throw new MigrationWait(`waiting for group ${this.o.task().to}'s master ${pass.dstAddr} to answer in time`, `a copy to it took longer than its ${COPY_LEASE_MS} ms lease`, { cause: err });
          }
          if (code === null) {
            // Timed out or the connection failed: the restore may have happened.
            unknown = true;
            for (const f of pending) {
              batch.suspects.add(f.key.toString('hex'));
              batch.unaudited.set(f.key.toString('hex'), pass.dstAddr);
            }
          }
          await batch.failover.assertCurrentMaster(pass.srcAddr);
          await batch.target.assertCurrentMaster(pass.dstAddr);
          throw this.targetFault(code, pass, err) ?? this.refusal(pass, errText(err), err);
        }
        if (res.ok.length > 0) {
          // Until the source copies are gone, a failure leaves the marks: proxies keep waiting
          // for those keys and reconcileExpired() finishes them once the lease lapses.
          unknown = true;
          await this.commit(pass, chunk, res.ok, batch);
          unknown = false;
        }
        if (res.refused !== null) {
          const code = /^([A-Z]+)\b/.exec(res.refused.message)?.[1] ?? null;
          throw this.targetFault(code, pass, new Error(res.refused.message)) ?? this.refusal(pass, res.refused.message);
        }
        if (res.busy.length === 0) break;
        if (attempt >= BUSYKEY_RESOLUTIONS) throw new MigrationError('EBUSYKEY', `the copy from ${pass.srcAddr} to ${pass.dstAddr} kept answering BUSYKEY for ${res.busy.length} key(s)`);
        const again = new Set((await this.resolveBusyKeys(pass.srcAddr, pass.dstAddr, res.busy, batch)).map((k) => k.toString('latin1')));
        pending = pending.filter((f) => again.has(f.key.toString('latin1')));
      }
    } finally {
      // Marks of keys not moved (refused, busy, a failure) go, so proxies may move those keys
      // at once — unless the target may hold copies of them.
      if (!unknown) {
        await settleKeys(pass.src, chunk.found.map((f) => f.key), chunk.mark, false).catch((err: unknown) =>
          this.o.log.debug({ err: errText(err) }, 'copy marks not dropped; they lapse with their lease'),
        );
      }
    }
  }

  /** The target took `keys`: confirm them on its replicas, then delete the source copies (with their marks). */
  private async commit(pass: MovePass, chunk: Dumped, keys: Buffer[], batch: BatchMoveState): Promise<void> {
    await this.confirmOnTarget(pass, keys, batch);
    let removed: number;
    try {
      removed = await settleKeys(pass.src, keys, chunk.mark, true);
    } catch (err) {
      // The copies are on both sides, the marks in place: reconcileExpired() finishes them.
      for (const k of keys) batch.suspects.add(k.toString('hex'));
      throw err;
    }
    this.o.onMoved(removed);
    this.o.onBytes(chunk.found.reduce((n, f) => n + f.payload.length, 0));
    await this.confirmRemoval(pass, keys, batch);
  }

  /** An answer of the target that needs an operator. */
  private refusal(pass: MovePass, message: string, err?: unknown): MigrationError {
    return new MigrationError(
      'EMIGRATE',
      `copying keys from ${pass.srcAddr} to ${pass.dstAddr} refused: ${message}; this does not pass by itself: fix it, then run "reborn-config migration resume ${this.o.taskId}"`,
      err,
    );
  }

  /**
   * Chunks whose runner never settled them (it died, or lost the answer of a restore): once
   * their lease ran out, each key marked on the source is settled from what both masters hold
   * now. On both sides → the target's copy is the chunk's restore (while marked, no proxy
   * could move the key; after, a proxy's MIGRATE answers BUSYKEY, so nothing wrote it on the
   * target): the source copy goes. Anywhere else → the mark goes. Returns the keys finished.
   */
  async reconcileExpired(pass: MovePass): Promise<number> {
    let finished = 0;
    for (;;) {
      const marks = await expiredMarks(pass.src, 1000);
      if (marks.length === 0) return finished;
      const keys = marks.map(([k]) => k);
      const [onA, onB] = await Promise.all([existsAll(pass.src, keys), existsAll(pass.dst, keys)]);
      const byMark = new Map<string, { unlink: Buffer[]; drop: Buffer[] }>();
      marks.forEach(([k, mark], i) => {
        let e = byMark.get(mark);
        if (e === undefined) byMark.set(mark, (e = { unlink: [], drop: [] }));
        (onA[i] && onB[i] ? e.unlink : e.drop).push(k);
      });
      for (const [mark, e] of byMark) {
        const n = await settleKeys(pass.src, e.unlink, mark, true);
        await settleKeys(pass.src, e.drop, mark, false);
        finished += n;
        if (n > 0) this.o.onMoved(n);
      }
      this.o.log.warn({ src: pass.srcAddr, dst: pass.dstAddr, marks: marks.length }, 'settled copy marks a runner left behind');
    }
  }

  /** What the task waits for after the target refused a copy with `code` (null: a timeout); null when it needs an operator. */
  private targetFault(code: string | null, pass: MovePass, err: unknown): MigrationWait | null {
    const b = this.o.task().to;
    const detail = `copy from ${pass.srcAddr} to ${pass.dstAddr}: ${errText(err)}`;
    switch (code) {
      case null:
      case 'IOERR':
        return new MigrationWait(`waiting for group ${b} to have a reachable master`, detail, { cause: err });
      case 'OOM':
        return new MigrationWait(
          `waiting for room on group ${b}'s master ${pass.dstAddr}`,
          `it refuses new keys: used memory > maxmemory; free memory there or raise maxmemory`,
          { cause: err },
        );
      case 'READONLY':
        return new MigrationWait(`waiting for group ${b} to have a master`, `${pass.dstAddr} answers READONLY: it is a replica now while etcd still names it master`, { cause: err });
      case 'LOADING':
      case 'MASTERDOWN':
      case 'TRYAGAIN':
      case 'BUSY':
        return new MigrationWait(`waiting for group ${b}'s master ${pass.dstAddr} to take writes`, detail, { cause: err });
      default:
        return null;
    }
  }

  /**
   * WAIT until the source's in-sync replicas have the MIGRATE's deletes (WAIT covers every
   * earlier write of this connection). Fewer confirmations are logged and remembered, not
   * fatal: the keys are safe on the target; only a failover could bring source copies back.
   */
  private async confirmRemoval(pass: MovePass, keys: Buffer[], batch: BatchMoveState): Promise<void> {
    const wanted = this.o.confirmations();
    if (wanted <= 0) return;
    let confirmed: number;
    try {
      confirmed = Number(await pass.src.call('WAIT', String(wanted), String(this.o.opts.waitTimeoutMs)));
    } catch (err) {
      if (replyCode(err) === null) throw err; // the connection failed: the task waits for the source
      throw new RedisAdminError(pass.srcAddr, `WAIT after deleting moved keys: ${errText(err)}`, err);
    }
    if (confirmed >= wanted) return;
    for (const k of keys) {
      if (batch.mayResurrect.size >= MAY_RESURRECT_MAX) break;
      batch.mayResurrect.add(k.toString('hex'));
    }
    this.o.onUnconfirmed(keys.length);
    this.sourceWarn.add(keys.length, (n) =>
      this.o.log.warn(
        { src: pass.srcAddr, confirmed, wanted, keys: n, waitTimeoutMs: this.o.opts.waitTimeoutMs },
        'moved keys whose deletion on the source fewer in-sync replicas confirmed than asked: a source failover now may bring them back (the runner then deletes those copies)',
      ),
    );
  }

  /**
   * WAIT until the target's in-sync replicas have the restored keys (the restores went over
   * our own connection, so WAIT covers them). Short of that, the in-sync set is re-read (HA
   * drops a replica that stopped acknowledging) and WAIT asked again, a few times; the source
   * copies are still there meanwhile. Then the keys are counted
   * (progress.targetUnconfirmedKeys) and logged: deleting the source copy now leaves them on
   * the target's master only.
   */
  private async confirmOnTarget(pass: MovePass, keys: Buffer[], batch: BatchMoveState): Promise<void> {
    let wanted = batch.target.confirmations();
    let confirmed = 0;
    for (let attempt = 0; wanted > 0 && attempt < 3; attempt++) {
      try {
        confirmed = Number(await pass.dst.call('WAIT', String(wanted), String(this.o.opts.waitTimeoutMs)));
      } catch (err) {
        const b = this.o.task().to;
        if (replyCode(err) === null) {
          throw new MigrationWait(`waiting for group ${b} to have a reachable master`, `${pass.dstAddr} did not answer WAIT after a copy: ${errText(err)}`, { cause: err });
        }
        throw new RedisAdminError(pass.dstAddr, `WAIT after a copy: ${errText(err)}`, err);
      }
      if (confirmed >= wanted) return;
      await batch.target.refresh();
      wanted = batch.target.confirmations();
    }
    if (wanted <= 0 || confirmed >= wanted) return;
    this.o.onTargetUnconfirmed(keys.length);
    this.targetWarn.add(keys.length, (n) =>
      this.o.log.warn(
        { dst: pass.dstAddr, confirmed, wanted, keys: n, waitTimeoutMs: this.o.opts.waitTimeoutMs },
        'moved keys whose copy on the target fewer of its in-sync replicas confirmed than asked: a failover of the target now could lose them',
      ),
    );
  }

  /**
   * After the target failed over: keys of MIGRATEs that failed against its old master may have
   * been restored there, acknowledged to the source (which then deleted them) and lost with
   * that master before they replicated. Such a key is on neither the source nor the new
   * target master. It is logged (an error, with the key) — it may also have been deleted by a
   * client or have expired meanwhile, so it is not proof; nothing can bring it back here.
   * Returns how many keys were missing.
   */
  async auditAfterTargetFailover(src: string, dst: string, batch: BatchMoveState): Promise<number> {
    const gone = [...batch.unaudited].filter(([, sentTo]) => sentTo !== dst);
    if (gone.length === 0) return 0;
    const keys = gone.map(([hex]) => Buffer.from(hex, 'hex'));
    const exists = (addr: string) => withRedis(addr, (c) => existsAll(c, keys), this.o.redis);
    const [onA, onB] = await Promise.all([exists(src), exists(dst)]);
    const missing = keys.filter((_, i) => !onA[i] && !onB[i]);
    for (const [hex] of gone) batch.unaudited.delete(hex);
    if (missing.length > 0) {
      this.o.log.error(
        { keys: missing.slice(0, 20).map(showKey), count: missing.length, oldTarget: gone[0]![1], target: dst, source: src },
        'keys of a copy that failed against the old target master are in neither group after its failover: lost with it unless a client deleted them or they expired',
      );
    }
    return missing.length;
  }

  /**
   * MIGRATE refused because some keys already exist on the target. That is a bug to surface
   * (BUSYKEY) — unless (a) both copies are identical (a MIGRATE that timed out, here, in a
   * runner that died, or in a proxy), or (b) the source failed over since the key's slot became migrating (the
   * header says why the source copy is then a resurrected one). Returns the keys still to move
   * (on the source only); counts those the refused MIGRATE moved all the same.
   */
  private async resolveBusyKeys(src: string, dst: string, keys: Buffer[], batch: BatchMoveState): Promise<Buffer[]> {
    const exists = (addr: string) => withRedis(addr, (c) => existsAll(c, keys), this.o.redis);
    const [onA, onB] = await Promise.all([exists(src), exists(dst)]);
    // Gone from the source and on the target: moved by that MIGRATE (or, rarely, by a proxy just before).
    this.o.onMoved(keys.filter((_, i) => !onA[i] && onB[i]).length);
    const both = keys.filter((_, i) => onA[i] && onB[i]);
    for (const k of both) {
      const where = `key "${showKey(k)}" (slot ${keySlot(k)}) exists in both group ${this.o.task().from.join('/')} (${src}) and group ${this.o.task().to} (${dst})`;
      const suspect = batch.suspects.has(k.toString('hex'));
      // (b) first: after a source failover the copy is a resurrected one (counted as such),
      // identical or not.
      const failover = await batch.failover.changeSince(keySlot(k), src);
      if (failover !== null) {
        await this.deleteResurrected(src, dst, k, failover, batch);
        continue;
      }
      // (a) Identical copies: deleting the source's loses nothing, whoever left the other one
      // there. The usual author is a MIGRATE that timed out against a stalled target whose
      // RESTORE ran later — this runner's, a killed runner's, or a proxy's on-touch move — and
      // A is never written for a migrating slot, so nothing newer can be on A.
      if (await this.copiesIdentical(src, dst, k)) {
        await withRedis(src, (c) => c.del(k), this.o.redis);
        this.o.log.warn({ key: showKey(k), src, dst, timedOutHere: suspect }, 'key on both sides (a move that timed out, or a runner that died mid-copy), copies identical: removed the source copy');
        continue;
      }
      if (!suspect) {
        throw new MigrationError('EBUSYKEY', `BUSYKEY: ${where}; the runner never overwrites a key: find out how it got there, ${this.resolveHint(src, dst, k)}`);
      }
      throw new MigrationError('EBUSYKEY', `BUSYKEY: ${where} after a move that timed out, and the copies differ (or are too large to compare): ${this.resolveHint(src, dst, k)}`);
    }
    return keys.filter((_, i) => onA[i] && !onB[i]);
  }

  /** What the operator runs to resolve a key found in both groups. */
  private resolveHint(src: string, dst: string, k: Buffer): string {
    const del = (addr: string) => {
      const { host, port } = parseAddr(addr);
      // showKey escapes bytes as \xHH, which redis-cli reads back inside double quotes.
      return `redis-cli -h ${host} -p ${port} DEL "${showKey(k).replace(/"/g, '\\x22')}"`;
    };
    return `keep the right copy and delete the other — the source's: ${del(src)}, or the target's: ${del(dst)} — then run "reborn-config migration resume ${this.o.taskId}"`;
  }

  /** Same type, content and (within the MIGRATE's own duration) TTL on both sides. */
  private async copiesIdentical(src: string, dst: string, k: Buffer): Promise<boolean> {
    const copy = (addr: string) => withRedis(addr, async (c) => ({ value: await canonicalValue(c, k), pttl: await c.pttl(k) }), this.o.redis);
    const [x, y] = await Promise.all([copy(src), copy(dst)]);
    const sameTtl = (x.pttl < 0 && y.pttl < 0 && x.pttl === y.pttl) || (x.pttl >= 0 && y.pttl >= 0 && Math.abs(x.pttl - y.pttl) < this.o.opts.migrateTimeoutMs + 2000);
    return x.value !== null && x.value === y.value && sameTtl;
  }

  /** Case (b) of the header: the target's copy wins; the source's resurrected copy goes. */
  private async deleteResurrected(src: string, dst: string, k: Buffer, failover: string, batch: BatchMoveState): Promise<void> {
    // Only on the master etcd names now: the server we talk to could have been demoted meanwhile.
    await batch.failover.assertCurrentMaster(src);
    const removed = await withRedis(src, (c) => c.del(k), this.o.redis);
    if (removed > 0) this.o.onResurrectedDeleted(1);
    this.o.log.warn(
      { key: showKey(k), slot: keySlot(k), src, dst, failover, unconfirmedMove: batch.mayResurrect.has(k.toString('hex')) },
      'a source failover brought back a pre-move copy of a key the target holds: deleted the source copy (the target copy is authoritative)',
    );
  }
}
