/**
 * The `check` engine (checkProduct) end to end: a real cluster (etcd, two redis groups with
 * the slots split between them, one reborn-proxy).
 *
 * - A stray is born the way clients make them: an EVAL through the proxy that writes a key it
 *   did not declare; the key lands in the group of the declared key. A duplicate and a key of
 *   an offline slot are made by hand. check reports exactly those three, and nothing else.
 * - check --fix moves the stray home (readable through the proxy afterwards, TTL kept),
 *   leaves the duplicate (a conflict) and the offline slot's key, and says so.
 * - Slot states: a migrating slot without a task, a migrating slot whose task has no runner,
 *   a stray of a slot that an active migration holds (left alone by the fix).
 * - A master down: reported, the rest still checked, the result says incomplete.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MigrationState, Migrations, SlotState, offlineSlot } from '@reborn/coordinator';
import { assignSlots, startCluster, stopAll, type Cluster } from '@reborn/testkit';
import { CHECK_EXIT, checkExitCode, checkProduct, createMigration, formatCheckReport, type CheckResult } from '@reborn/config';
import { dataReady, keysOfGroup, masterClients, slotOf } from './helpers.js';

let cluster: Cluster;
let proxy: Redis;
let masters: Redis[];

const SCAN_COUNT = 50; // small pages: the 300 filler keys take several SCAN calls per group
const TTL_MS = 600_000;

const declared = keysOfGroup('check:declared:', 1, 1)[0]!;
const stray = keysOfGroup('check:stray:', 2, 1)[0]!; // its slot belongs to group 2
const dup = keysOfGroup('check:dup:', 1, 1)[0]!; // group 1 owns it; a copy goes to group 2
const offline = keysOfGroup('check:offline:', 1, 1)[0]!; // its slot is taken offline
// Background keys, none in the slot taken offline (each would be one more finding).
const filler1 = keysOfGroup('check:f1:', 1, 150).filter((k) => slotOf(k) !== slotOf(offline));
const filler2 = keysOfGroup('check:f2:', 2, 150);

const keyOf = (r: { keyBase64: string }) => Buffer.from(r.keyBase64, 'base64').toString();

async function check(opts: Parameters<typeof checkProduct>[1] = {}): Promise<CheckResult> {
  const r = await checkProduct(cluster.store, { scanCount: SCAN_COUNT, ...opts });
  // Whatever it found, the result goes through --json and the human report without loss.
  expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  expect(formatCheckReport(r)).toContain(`check of product ${cluster.product}`);
  return r;
}

beforeAll(async () => {
  const slots = [declared, stray, dup, offline].map(slotOf);
  expect(new Set(slots).size).toBe(4);
  cluster = await startCluster({ groups: 2, proxies: 1 });
  await dataReady(cluster.proxies[0]!.port);
  proxy = cluster.proxies[0]!.client();
  masters = masterClients(cluster);
  const p = proxy.pipeline();
  for (const k of [...filler1, ...filler2]) p.set(k, 'x');
  await p.exec();
});

afterAll(stopAll);

describe('reborn-config check', () => {
  it('a clean product: every key scanned, nothing found, exit 0', async () => {
    const r = await check();
    expect(r.complete).toBe(true);
    expect(r.groups.map((g) => [g.group, g.keysScanned])).toEqual([
      [1, filler1.length],
      [2, filler2.length],
    ]);
    expect(r.strays.count + r.duplicates.count + r.slotProblems.length).toBe(0);
    expect(checkExitCode(r)).toBe(CHECK_EXIT.clean);
  });

  it('finds the EVAL stray, a duplicate and a key of an offline slot — exactly those', async () => {
    // The finding: a script writes a key it did not declare; it lands with the declared one.
    await proxy.eval(`redis.call('set', KEYS[1], 1) redis.call('set', ARGV[1], 'home', 'PX', ${TTL_MS})`, 1, declared, stray);
    expect(await proxy.get(stray)).toBeNull(); // the proxy asks group 2, the key is in group 1
    expect(await masters[0]!.exists(stray)).toBe(1);

    await proxy.set(dup, 'at-home');
    await masters[1]!.set(dup, 'elsewhere');
    await proxy.set(offline, 'unreachable');
    await cluster.store.putSlots([offlineSlot(slotOf(offline))]);

    const r = await check();
    expect(r.complete).toBe(true);
    expect(r.strays.count).toBe(2);
    expect(r.strays.examples.map((s) => [keyOf(s), s.group, s.slotState, s.homes]).sort()).toEqual(
      [
        [stray, 1, SlotState.Online, [2]],
        [offline, 1, SlotState.Offline, []],
      ].sort(),
    );
    expect(r.straySlots).toBe(2);
    expect(r.duplicates.count).toBe(1);
    expect(r.duplicates.examples.map((d) => [keyOf(d), d.group, d.alsoIn])).toEqual([[dup, 2, [1]]]);
    expect(r.slotProblems.map((p) => [p.kind, p.slots, p.keys])).toEqual([['offline-with-keys', [slotOf(offline)], [{ group: 1, count: 1 }]]]);
    expect(r.fixed).toBeNull();
    expect(r.groups.map((g) => [g.group, g.strays, g.duplicates])).toEqual([
      [1, 2, 0],
      [2, 0, 1],
    ]);
    expect(checkExitCode(r)).toBe(CHECK_EXIT.problems);
    const text = formatCheckReport(r);
    expect(text).toContain(`"${stray}" slot ${slotOf(stray)} in group 1: belongs to group 2`);
    expect(text).toContain(`"${dup}" slot ${slotOf(dup)} in group 2, and at home in group 1`);
  });

  it('--fix moves the stray home with its TTL, leaves the duplicate and the offline key', async () => {
    const r = await check({ fix: true });
    expect(r.fixed!.moved.examples.map((m) => [keyOf(m), m.from, m.to])).toEqual([[stray, 1, 2]]);
    expect(r.fixed!.left.examples.map((l) => [keyOf(l), l.group, l.reason]).sort()).toEqual(
      [
        [dup, 2, 'conflict'],
        [offline, 1, 'slot-offline'],
      ].sort(),
    );
    expect(r.fixed!.gone).toBe(0);
    expect(checkExitCode(r)).toBe(CHECK_EXIT.problems);
    expect(formatCheckReport(r)).toContain(`moved "${stray}" slot ${slotOf(stray)}: group 1 → group 2`);

    // Home: the proxy serves it, with the TTL it had.
    expect(await proxy.get(stray)).toBe('home');
    const ttl = await proxy.pttl(stray);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TTL_MS);
    expect(await masters[0]!.exists(stray)).toBe(0);
    // Nothing overwritten.
    expect([await masters[0]!.get(dup), await masters[1]!.get(dup)]).toEqual(['at-home', 'elsewhere']);
    expect(await masters[0]!.get(offline)).toBe('unreachable');

    // The slot back online where its key is: only the conflict is left.
    await assignSlots(cluster.store, slotOf(offline), slotOf(offline), 1);
    const again = await check();
    expect(again.strays.count).toBe(0);
    expect(again.slotProblems).toEqual([]);
    expect(again.duplicates.examples.map((d) => [keyOf(d), d.group])).toEqual([[dup, 2]]);
    expect(checkExitCode(again)).toBe(CHECK_EXIT.problems);

    // A human keeps one copy; then all is clean.
    await masters[1]!.del(dup);
    expect(checkExitCode(await check())).toBe(CHECK_EXIT.clean);
  });

  it('slot states: migrating without a task, without a runner; --fix leaves a slot an active migration holds', async () => {
    const { store } = cluster;
    const lonelyKey = keysOfGroup('check:lonely:', 1, 1)[0]!;
    const lonely = slotOf(lonelyKey); // migrating 1→2 by hand, no task
    const held = keysOfGroup('check:held:', 2, 1)[0]!; // its slot is in a pending migration to group 1
    const heldSlot = slotOf(held);
    await store.putSlots([{ id: lonely, state: SlotState.Migrating, group: 2, from: 1, to: 2 }]);
    const task = await createMigration(store, { first: heldSlot, last: heldSlot, to: 1 });
    expect(task.state).toBe(MigrationState.Pending); // no runner alive here: it stays pending
    await masters[0]!.set(held, 'stray-of-a-slot-about-to-move');
    await masters[0]!.set(lonelyKey, 'not yet moved'); // at home: group 1 is where it moves from
    try {
      const r = await check({ fix: true });
      expect(r.strays.examples.map((s) => [keyOf(s), s.homes])).toEqual([[held, [2]]]);
      expect(r.fixed!.moved.count).toBe(0);
      expect(r.fixed!.left.examples.map((l) => [keyOf(l), l.reason])).toEqual([[held, 'slot-moving']]);
      expect(r.fixed!.left.examples[0]!.detail).toContain(task.id);
      expect(await masters[0]!.get(held)).toBe('stray-of-a-slot-about-to-move');
      expect(r.slotProblems.map((p) => [p.kind, p.slots, p.from, p.to, p.migration])).toEqual([['transition-without-task', [lonely], 1, 2, null]]);

      // As if its runner had died after the barrier: the slot migrating, the task active.
      // Its keys are at home in both groups now, so the stray is none any more.
      await store.putSlots([{ id: heldSlot, state: SlotState.Migrating, group: 1, from: 2, to: 1 }]);
      const r2 = await check();
      expect(r2.strays.count).toBe(0);
      expect(r2.slotProblems.map((p) => [p.kind, p.slots, p.migration?.id ?? null]).sort()).toEqual(
        [
          ['transition-without-task', [lonely], null],
          ['transition-without-runner', [heldSlot], task.id],
        ].sort(),
      );
      expect(checkExitCode(r2)).toBe(CHECK_EXIT.problems);
    } finally {
      await new Migrations(store).delete(task.id);
      await assignSlots(store, lonely, lonely, 1);
      await assignSlots(store, heldSlot, heldSlot, 2);
      await masters[0]!.del(held, lonelyKey);
    }
    expect(checkExitCode(await check())).toBe(CHECK_EXIT.clean);
  });

  it('a master down: reported, the other group still checked, the result incomplete', async () => {
    const down = cluster.groups[1]!.master;
    const addr = down.addr;
    await down.stop();
    const r = await check({ connectTimeoutMs: 2000, commandTimeoutMs: 2000 });
    expect(r.complete).toBe(false);
    expect(r.groups.map((g) => [g.group, g.complete])).toEqual([
      [1, true],
      [2, false],
    ]);
    expect(r.groups[0]!.keysScanned).toBe(filler1.length + 3); // + the EVAL's declared key, dup, offline
    expect(r.errors.map((e) => [e.group, e.addr, e.code])).toEqual([[2, addr, 'EUNREACHABLE']]);
    expect(checkExitCode(r)).toBe(CHECK_EXIT.incomplete);
    expect(formatCheckReport(r)).toContain('INCOMPLETE');
  });
});
