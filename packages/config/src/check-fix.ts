/**
 * `check --fix`: moves stray keys home, never overwriting anything.
 *
 * For each page of strays found on one group's master:
 *   1. read the slots, tasks and barriers again (check-state.ts, one etcd revision);
 *   2. per key, moveVerdict(): only a slot plainly `online` in another group, with no active
 *      migration and no open barrier on it, qualifies; anything else is left, with the reason;
 *   3. `MIGRATE <owner master> "" 0 <timeout> KEYS <key>` from the group the key is in —
 *      without REPLACE, so an owner that holds (or meanwhile got) a key of that name answers
 *      BUSYKEY and nothing is overwritten: the key is left as a conflict. MIGRATE carries the
 *      TTL with the value and is atomic on both servers;
 *   4. read the slots again: a slot whose key changed since step 1 may have started moving
 *      while its key was in flight, so the move is reported as needing another check.
 * Duplicates are never touched: they are reported as conflicts for a human.
 *
 * Invariant: a key is moved only into the group that owned its slot, online and with nothing
 * running on it, both before and after the move (same etcd mod revision of the slot key) —
 * or the result says so.
 */
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { migrateAuthArgs, type Store } from '@reborn/coordinator';
import { moveVerdict, type LeftKey, type LeftReason, type MovedKey, type StrayKey } from './check-model.js';
import { busyWith, masterAddr, readControlState } from './check-state.js';
import { parseAddr, replyCode } from '@reborn/coordinator/admin';

export interface MoveOutcome {
  moved: MovedKey[];
  left: LeftKey[];
  gone: StrayKey[];
  /** Slots that changed while a key of them was being moved: check them again. */
  changedSlots: number[];
}

export class KeyMover {
  constructor(
    private readonly store: Store,
    private readonly migrateTimeoutMs: number,
    /** The servers' password: MIGRATE logs in to the owner with it. */
    private readonly redisPassword: string | null,
    private readonly log: Logger,
  ) {}

  /**
   * Moves the strays of one page, all found on group `group`, through `source` (a connection
   * to that group's master). Throws only when the source connection fails (the caller reports
   * the group as unreachable); every other failure leaves the key, with its reason.
   */
  async moveHome(group: number, source: Redis, strays: readonly StrayKey[]): Promise<MoveOutcome> {
    const out: MoveOutcome = { moved: [], left: [], gone: [], changedSlots: [] };
    if (strays.length === 0) return out;
    const leave = (k: StrayKey, reason: LeftReason, detail: string) =>
      out.left.push({ key: k.key, keyBase64: k.keyBase64, slot: k.slot, group, reason, detail });

    let before;
    try {
      before = await readControlState(this.store);
    } catch (err) {
      for (const k of strays) leave(k, 'error', `could not re-read the slot before moving: ${errText(err)}`);
      return out;
    }

    for (const k of strays) {
      const verdict = moveVerdict(before.slots[k.slot]!, group, busyWith(before, k.slot));
      if (!verdict.ok) {
        leave(k, verdict.reason, verdict.detail);
        continue;
      }
      const target = masterAddr(before, verdict.to);
      if (target === null) {
        leave(k, 'no-master', `group ${verdict.to} (owner of slot ${k.slot}) has no master`);
        continue;
      }
      const result = await this.migrate(source, target, Buffer.from(k.keyBase64, 'base64'));
      if (result === 'moved') {
        out.moved.push({ key: k.key, keyBase64: k.keyBase64, slot: k.slot, from: group, to: verdict.to });
        this.log.info({ key: k.key, slot: k.slot, from: group, to: verdict.to }, 'check: stray key moved home');
      } else if (result === 'gone') {
        out.gone.push(k);
      } else if (result === 'busy') {
        leave(k, 'conflict', `group ${verdict.to} (owner of slot ${k.slot}) has a key of that name: never overwritten`);
      } else {
        leave(k, 'error', result.error);
      }
    }

    if (out.moved.length > 0) {
      const movedSlots = [...new Set(out.moved.map((m) => m.slot))];
      try {
        const after = await readControlState(this.store);
        out.changedSlots = movedSlots.filter((s) => after.slotRevisions[s] !== before.slotRevisions[s]);
      } catch (err) {
        this.log.warn({ err: errText(err) }, 'check: could not re-read the slots after moving keys');
        out.changedSlots = movedSlots;
      }
      if (out.changedSlots.length > 0) {
        this.log.warn({ slots: out.changedSlots }, 'check: slots changed while their stray keys were moved');
      }
    }
    return out;
  }

  /** One MIGRATE without REPLACE. Source connection failures are thrown; the rest is an outcome. */
  private async migrate(source: Redis, target: string, key: Buffer): Promise<'moved' | 'gone' | 'busy' | { error: string }> {
    const { host, port } = parseAddr(target);
    try {
      const reply = await source.callBuffer('MIGRATE', host, String(port), '', '0', String(this.migrateTimeoutMs), ...migrateAuthArgs(this.redisPassword), 'KEYS', key);
      // NOKEY: the key expired or was deleted since the scan.
      return String(reply) === 'OK' ? 'moved' : 'gone';
    } catch (err) {
      const code = replyCode(err);
      if (code === 'BUSYKEY') return 'busy';
      if (code === 'IOERR') {
        return { error: `MIGRATE to ${target} timed out or failed (${errText(err)}): the key may now be in both groups; run check again` };
      }
      if (code !== null) return { error: `MIGRATE to ${target}: ${errText(err)}` };
      throw err; // the source connection failed: the caller reports the group
    }
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
