/**
 * SourceFailoverWatch against real etcd and redis: a failover is recognised from etcd history
 * (the group at the revision the slot became migrating), from what the run itself saw (a new
 * replication id after a failover and back), and nothing else counts — no change, or a history
 * etcd has compacted, answers "no evidence" so that BUSYKEY stays a hard error.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerRole, SlotState, Store, onlineSlot, type GroupInfo } from '@reborn/coordinator';
import { startEtcd, startRedis, stopAll, waitFor, type EtcdServer, type RedisServer } from '@reborn/testkit';
import { SourceFailoverWatch, identityChange } from './source-failover.js';

let etcd: EtcdServer;
let store: Store;
let x: RedisServer;
let y: RedisServer;
const warnings: string[] = [];
const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });

const group = (master: RedisServer, replica: RedisServer): GroupInfo => ({
  id: 1,
  servers: [
    { addr: master.addr, role: ServerRole.Master },
    { addr: replica.addr, role: ServerRole.Replica },
  ],
});
const watch = () => new SourceFailoverWatch({ store, group: 1, redis: {}, log });

beforeAll(async () => {
  [etcd, x, y] = await Promise.all([startEtcd(), startRedis(), startRedis()]);
  store = await Store.open({ endpoints: [etcd.clientUrl], product: 'sfw' });
  await store.putGroup(group(x, y));
  await store.putGroup({ id: 2, servers: [{ addr: y.addr, role: ServerRole.Master }] });
  await store.putSlots([onlineSlot(7, 1)]);
  // Slot 7 becomes migrating while x is group 1's master.
  await store.putSlots([{ id: 7, state: SlotState.Migrating, group: 2, from: 1, to: 2 }]);
}, 60_000);

afterAll(async () => {
  await store?.close();
  await stopAll();
});

describe('identityChange', () => {
  const id = { addr: 'h:1', runId: 'r1', replId: 'p1' };
  it('names what changed, or null', () => {
    expect(identityChange(id, { ...id })).toBeNull();
    expect(identityChange(id, { ...id, addr: 'h:2' })).toMatch(/was h:1 and is now h:2/);
    expect(identityChange(id, { ...id, runId: 'r2' })).toMatch(/restarted/);
    expect(identityChange(id, { ...id, replId: 'p2' })).toMatch(/new replication history/);
  });
});

describe('SourceFailoverWatch', () => {
  it('no change since the slot became migrating: no evidence', async () => {
    const w = watch();
    await w.noteMaster(x.addr);
    expect(await w.changeSince(7, x.addr)).toBeNull();
    expect(await w.isCurrentMaster(x.addr)).toBe(true);
    await expect(w.assertCurrentMaster(y.addr)).rejects.toThrow(/no longer the master of group 1/);
  });

  it('a failover after the slot became migrating is read from etcd history, even by a watch that did not see it', async () => {
    await store.putGroup(group(y, x));
    const w = watch();
    await w.noteMaster(y.addr); // a runner that started after the failover
    expect(await w.changeSince(7, y.addr)).toBe(`group 1 failed over after slot 7 became migrating: its master was ${x.addr}, now ${y.addr}`);
    await store.putGroup(group(x, y));
  });

  it('a failover and back to the same address is seen by the run that watched it (new replication id)', async () => {
    const w = watch();
    await w.noteMaster(x.addr);
    const c = x.client();
    await c.replicaof(y.host, String(y.port));
    await waitFor(async () => /master_link_status:up/.test(await c.info('replication')), { what: 'x replicating y' });
    await c.replicaof('NO', 'ONE');
    expect(await w.changeSince(7, x.addr)).toMatch(/took a new replication history/);
    c.disconnect();
  });

  it('a compacted history is no evidence (logged); the run\'s own observation still counts', async () => {
    const watching = watch();
    await watching.noteMaster(x.addr);
    await store.putGroup(group(y, x));
    const head = await store.etcd.get(store.paths.group(1)).exec();
    await store.etcd.kv.compact({ revision: head.header.revision });
    const blind = watch();
    expect(await blind.changeSince(7, y.addr)).toBeNull();
    expect(warnings.some((l) => l.includes('etcd compacted the revision'))).toBe(true);
    expect(await watching.changeSince(7, y.addr)).toBe(`group 1 changed while this runner moved slot 7: its master was ${x.addr} and is now ${y.addr}`);
    await store.putGroup(group(x, y));
  });
});
