/**
 * The key mover of one migration task: MIGRATE batches from the source master to the
 * target's, paced by the task's throttle, retried through a target outage, and BUSYKEY
 * resolution — a key on both sides is dropped from the source only when a MIGRATE of this run
 * timed out on it and both copies are identical.
 *
 * Invariant: never overwrites a key on the target (MIGRATE without REPLACE) and never deletes
 * a source copy it cannot prove identical. See docs/architecture.md (migration protocol).
 */
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { keySlot } from '@reborn/protocol';
import { migrateAuthArgs, type MigrationTask } from '@reborn/coordinator';
import { canonicalValue, existsAll, replyCode, showKey, withRedis, type RedisAdminOptions } from '@reborn/coordinator/admin';
import { MIGRATE_OUTAGE_MS, MIGRATE_RETRIES, MigrationError, errText, nap, type RunnerTunables } from './migration-common.js';

export interface KeyMoverOptions {
  taskId: string;
  /** The task as last read (throttle, groups). */
  task: () => MigrationTask;
  opts: RunnerTunables;
  redis: RedisAdminOptions;
  log: Logger;
  /** Aborted when leadership is lost or the runner stops. */
  signal: AbortSignal;
  /** Keys that moved (counted for progress). */
  onMoved: (n: number) => void;
}

export class KeyMover {
  private nextSendAt = 0;

  constructor(private readonly o: KeyMoverOptions) {}

  /** After a pause: the throttle starts afresh instead of catching up. */
  resetPace(): void {
    this.nextSendAt = 0;
  }

  /** Keys per MIGRATE: the configured size, smaller under a low throttle. */
  chunkSize(): number {
    const t = this.o.task().throttle;
    return t > 0 ? Math.max(1, Math.min(this.o.opts.migrateKeys, Math.floor(t / 10))) : this.o.opts.migrateKeys;
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

  /** One MIGRATE of `keys` (KEYS form), retried through target outages and BUSYKEY resolution. */
  async migrateChunk(conn: Redis, src: string, dst: string, host: string, port: number, keys: Buffer[], suspects: Set<string>): Promise<void> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = await conn.callBuffer('MIGRATE', host, String(port), '', '0', String(this.o.opts.migrateTimeoutMs), ...migrateAuthArgs(this.o.redis.password ?? null), 'KEYS', ...keys);
        // OK: every key that still existed moved; NOKEY: none did (a proxy moved them, or they expired).
        if (String(reply) === 'OK') this.o.onMoved(keys.length);
        return;
      } catch (err) {
        const code = replyCode(err);
        const timedOut = code === 'IOERR' || (code === null && /timed out/i.test(errText(err)));
        if (timedOut) {
          // Some keys may now be on both sides (restored on B, reply lost): remember them.
          for (const k of keys) suspects.add(k.toString('hex'));
          // Retried for longer than a failover takes (the target restarted, or its agent
          // promoting a replica): a target outage alone must not fail the task.
          if (attempt >= MIGRATE_RETRIES && Date.now() - started >= MIGRATE_OUTAGE_MS) {
            throw new MigrationError('EMIGRATE', `MIGRATE from ${src} to ${dst} failed ${attempt + 1} times in ${Math.round((Date.now() - started) / 1000)} s: ${errText(err)}`, err);
          }
          this.o.log.warn({ err: errText(err), attempt: attempt + 1, src, dst }, 'MIGRATE timed out; retrying');
          await nap(Math.min(250 * 2 ** attempt, 2000), this.o.signal);
          continue;
        }
        if (code === 'BUSYKEY') {
          if (attempt >= MIGRATE_RETRIES) throw new MigrationError('EBUSYKEY', `MIGRATE from ${src} to ${dst} kept answering BUSYKEY: ${errText(err)}`, err);
          await this.resolveBusyKeys(src, dst, keys, suspects);
          continue;
        }
        if (code !== null) throw new MigrationError('EMIGRATE', `MIGRATE from ${src} to ${dst}: ${errText(err)}`, err);
        throw err; // the connection to the source failed: retried by execute()
      }
    }
  }

  /**
   * MIGRATE refused because some keys already exist on the target. That is a bug to surface
   * (BUSYKEY) — unless the key was in a MIGRATE of this run that timed out and both copies
   * are identical: then the restore on B went through and only the reply was lost, and
   * redis' documented remedy is to drop the source copy.
   */
  private async resolveBusyKeys(src: string, dst: string, keys: Buffer[], suspects: Set<string>): Promise<void> {
    const exists = (addr: string) => withRedis(addr, (c) => existsAll(c, keys), this.o.redis);
    const [onA, onB] = await Promise.all([exists(src), exists(dst)]);
    const both = keys.filter((_, i) => onA[i] && onB[i]);
    for (const k of both) {
      const where = `key "${showKey(k)}" (slot ${keySlot(k)}) exists in both group ${this.o.task().from.join('/')} (${src}) and group ${this.o.task().to} (${dst})`;
      if (!suspects.has(k.toString('hex'))) {
        throw new MigrationError('EBUSYKEY', `BUSYKEY: ${where}; the runner never overwrites a key: find out how it got there, delete one copy, then resume migration ${this.o.taskId}`);
      }
      const copy = (addr: string) =>
        withRedis(addr, async (c) => ({ value: await canonicalValue(c, k), pttl: await c.pttl(k) }), this.o.redis);
      const [x, y] = await Promise.all([copy(src), copy(dst)]);
      const sameTtl = (x.pttl < 0 && y.pttl < 0 && x.pttl === y.pttl) || (x.pttl >= 0 && y.pttl >= 0 && Math.abs(x.pttl - y.pttl) < this.o.opts.migrateTimeoutMs + 2000);
      if (!(x.value !== null && x.value === y.value && sameTtl)) {
        throw new MigrationError('EBUSYKEY', `BUSYKEY: ${where} after a MIGRATE timeout, and the copies differ (or are too large to compare); resolve by hand, then resume migration ${this.o.taskId}`);
      }
      await withRedis(src, (c) => c.del(k), this.o.redis);
      this.o.log.warn({ key: showKey(k), src, dst }, 'key on both sides after a MIGRATE timeout, copies identical: removed the source copy');
    }
  }
}
