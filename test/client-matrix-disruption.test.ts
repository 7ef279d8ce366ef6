/**
 * The client compatibility matrix, part 2: every client × protocol under a write load while
 * the cluster changes under it. One event is shared by all columns (each column its own
 * client, keys and load, all running at once), then each column is checked and recorded on
 * its own: the client kept working (writes acknowledged after the event) and lost nothing it
 * was told was written.
 *
 * - Slot migration: `reborn-config slot migrate 0 255 2` (the binary, as an operator runs it)
 *   moves a quarter of the slots from group 1 to group 2 while the loads run through the two
 *   proxies. Then every key is counted: a SCAN through the proxy with the column's own client
 *   finds each of its keys exactly once, every preloaded value is there, and on the servers
 *   every key lives only in the group its slot names.
 * - Failover: group 1's master freezes (SIGSTOP: a host that hangs without closing its
 *   connections); its replica is promoted and the group rewritten in etcd, as reborn-agent
 *   does; the old master, back, becomes the new master's replica. The loads run through a
 *   third proxy started with --durable: a hard failover keeps every acknowledged write only
 *   when a write is acknowledged once a replica has it (without --durable, asynchronous
 *   replication may lose the last writes: see test/agent-failover.test.ts).
 *
 * Error replies while the cluster changes are allowed and counted (an in-flight write to the
 * frozen master fails); outages and counts are printed, never asserted against a time.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopAll, waitFor, type Cluster } from '@reborn/testkit';
import { matrixRow } from './client-matrix.js';
import { VARIANTS, label, type MatrixClient, type Variant } from './client-matrix-clients.js';
import { ClientLoad } from './client-matrix-load.js';
import { dataReady, promoteReplica, slotOf } from './helpers.js';
import { placement, type Placement } from './migration-helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG_BIN = `${REPO}packages/config/bin/reborn-config.js`;
const PRELOADED = 300;
/** Writes each column must get acknowledged before the event, and again after it. */
const ACKS = 200;
const EVENT_TIMEOUT_MS = 150_000;

let cluster: Cluster;
const opened: MatrixClient[] = [];

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 2 });
  await Promise.all(cluster.proxies.map((p) => dataReady(p.port)));
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(opened.map((c) => c.close()));
  for (const g of cluster?.groups ?? []) g.master.resume();
  await stopAll();
});

/** `reborn-config --etcd … --product … ...args` as a child process; never rejects. */
function config(args: readonly string[]): Promise<{ code: number | null; out: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REBORN_')) delete env[k];
  const argv = [CONFIG_BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { env, cwd: REPO, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, out: `${stdout}${stderr}` });
    });
  });
}

/** One column in an event: its client and load, or why its client could not connect. */
interface Column {
  variant: Variant;
  client?: MatrixClient;
  load?: ClientLoad;
  openError?: unknown;
  /** Writes acknowledged while the cluster changed. */
  ackedDuring: number;
  errorsDuring: number;
  preloaded: Record<string, string>;
}

async function openColumns(port: (i: number) => number, prefix: string, preload: boolean): Promise<Column[]> {
  return Promise.all(
    VARIANTS.map(async (variant, i): Promise<Column> => {
      const col: Column = { variant, ackedDuring: 0, errorsDuring: 0, preloaded: {} };
      try {
        col.client = await variant.open(port(i));
        opened.push(col.client);
        if (preload) {
          col.preloaded = Object.fromEntries(Array.from({ length: PRELOADED }, (_, n) => [`${prefix}:${variant.id}:k${n}`, `v${n}`]));
          const values = col.preloaded;
          await col.client.run({ nr: (c) => c.mSet(values), io: (c) => c.mset(values) });
        }
        col.load = new ClientLoad(col.client, `${prefix}:${variant.id}`);
      } catch (err) {
        col.openError = err;
      }
      return col;
    }),
  );
}

/** Runs the loads of every column that connected around `event`; the loads stop when it ends. */
async function underLoad(columns: Column[], event: (live: Column[]) => Promise<void>): Promise<void> {
  const live = columns.filter((c) => c.load);
  for (const c of live) c.load!.start();
  try {
    await Promise.all(live.map((c) => c.load!.waitForAcks(ACKS)));
    const before = live.map((c) => [c.load!.acked, c.load!.errors] as const);
    await event(live);
    live.forEach((c, n) => {
      c.ackedDuring = c.load!.acked - before[n]![0];
      c.errorsDuring = c.load!.errors - before[n]![1];
    });
    // Every client keeps working once the cluster has changed.
    await Promise.all(live.map((c) => c.load!.waitForAcks(ACKS)));
  } finally {
    await Promise.all(live.map((c) => c.load!.stop()));
  }
  for (const c of live) {
    console.log(`[client-matrix] ${label(c.variant)}: ${c.load!.summary()}; ${c.ackedDuring} acknowledged and ${c.errorsDuring} errors during the event`);
  }
}

/** The column of `v`, or its connection error thrown. */
function columnOf(columns: Column[], v: Variant): Required<Pick<Column, 'client' | 'load'>> & Column {
  const col = columns.find((c) => c.variant === v)!;
  if (col.openError !== undefined) throw col.openError;
  return col as Required<Pick<Column, 'client' | 'load'>> & Column;
}

// -----------------------------------------------------------------------------------------

interface MigrationResult {
  columns: Column[];
  after: Placement;
  cliOutput: string;
}

let migration: Promise<MigrationResult> | undefined;

async function migrateUnderLoad(): Promise<MigrationResult> {
  const columns = await openColumns((i) => cluster.proxies[i % 2]!.port, 'mig', true);
  let cliOutput = '';
  await underLoad(columns, async () => {
    const res = await config(['slot', 'migrate', '0', '255', '2', '--batch-slots', '32']);
    cliOutput = res.out;
    if (res.code !== 0) throw new Error(`reborn-config slot migrate exited ${res.code}:\n${res.out}`);
  });
  return { columns, after: await placement(cluster), cliOutput };
}

describe('slot migration under load', () => {
  it.each(VARIANTS.map((v) => [label(v), v] as const))('%s', async (_name, v) => {
    await matrixRow(v.client, v.protocol, 'slot migration under load')(async () => {
      const { columns, after, cliOutput } = await (migration ??= migrateUnderLoad());
      expect(cliOutput).toMatch(/done: slots 0-255 online in group 2/);
      const col = columnOf(columns, v);
      expect(col.ackedDuring, 'writes acknowledged while the slots moved').toBeGreaterThan(0);
      expect(await col.load.verify(col.client)).toEqual([]);

      // Every key counted: found by SCAN exactly once, preloaded values intact.
      const maybe = new Set(col.load.keysMaybeWritten());
      const want = [...Object.keys(col.preloaded), ...col.load.keysWritten()].sort();
      const found = (await col.client.scanAll(`mig:${v.id}:*`, 500)).filter((k) => !maybe.has(k));
      expect(found.length, 'keys SCAN returned (a key twice counts twice)').toBe(want.length);
      expect([...found].sort()).toEqual(want);
      const keys = Object.keys(col.preloaded);
      const values = await col.client.run({ nr: (c) => c.mGet(keys), io: (c) => c.mget(...keys) });
      expect(values).toEqual(Object.values(col.preloaded));

      // On the servers: each key only in the group its slot names now.
      expect(after.notOnline).toEqual([]);
      expect(after.misplaced.slice(0, 10)).toEqual([]);
      expect(after.duplicated.slice(0, 10)).toEqual([]);
    })();
  }, EVENT_TIMEOUT_MS);
});

// -----------------------------------------------------------------------------------------

let failover: Promise<Column[]> | undefined;

async function failoverUnderLoad(): Promise<Column[]> {
  const durable = await cluster.addProxy(['--durable', '--durable-timeout', '500']);
  await dataReady(durable.port);
  const columns = await openColumns(() => durable.port, 'fo', false);
  const slots = await cluster.store.listSlots();
  const inGroup1 = (key: string): boolean => slots[slotOf(key)]!.group === 1;
  const g1 = cluster.groups[0]!;
  const [oldMaster, replica] = [g1.master, g1.replicas[0]!];
  await underLoad(columns, async (live) => {
    await Promise.all(live.map((c) => c.load!.waitUntil(() => c.load!.firstAckAfter(0, inGroup1) !== null, `${label(c.variant)} writing to group 1`)));
    const frozenAt = Date.now();
    await oldMaster.pause();
    let switchedAt: number;
    try {
      await promoteReplica(cluster, 1, replica, oldMaster);
      switchedAt = Date.now();
      // Still frozen while the proxy switches: what is in flight to it must fail, not hang.
      await durable.waitForLog((r) => r['msg'] === 'group master changed' && r['group'] === 1);
    } finally {
      oldMaster.resume();
    }
    // Back, the old master becomes the new one's replica (reborn-agent does this when it
    // returns); until then no replica can confirm a --durable write to group 1.
    const back = oldMaster.client();
    await back.replicaof(replica.host, String(replica.port));
    await waitFor(async () => /^master_link_status:up\r?$/m.test(await back.info('replication')), {
      timeoutMs: 30_000,
      what: 'the old master replicating from the new one',
    });
    await Promise.all(
      live.map(async (c) => {
        await c.load!.waitUntil(() => c.load!.firstAckAfter(switchedAt, inGroup1) !== null, `${label(c.variant)} writing to group 1 again`);
        const again = c.load!.firstAckAfter(switchedAt, inGroup1)!;
        console.log(
          `[client-matrix] ${label(c.variant)}: the first write to group 1 acknowledged ${again - switchedAt} ms after the switch in etcd ` +
            `(${again - frozenAt} ms after the master froze)`,
        );
      }),
    );
  });
  return columns;
}

describe('failover under load', () => {
  it.each(VARIANTS.map((v) => [label(v), v] as const))('%s', async (_name, v) => {
    await matrixRow(v.client, v.protocol, 'failover under load')(async () => {
      const columns = await (failover ??= failoverUnderLoad());
      const col = columnOf(columns, v);
      expect(await col.load.verify(col.client)).toEqual([]);
    })();
  }, EVENT_TIMEOUT_MS);
});
