/**
 * Whether the source group of a migrating batch failed over (or its master restarted) after a
 * slot of the batch became `migrating`: the one condition under which the key mover may treat
 * a key found in both groups as a resurrected pre-move copy and delete the source's copy
 * (key-mover.ts says why that is then right).
 *
 * Two witnesses; either one is enough:
 *   1. etcd history. The slot key is written `migrating` once and not again until it goes
 *      online, so its mod revision is the moment keys of that slot could first move. The group
 *      as etcd held it at that revision names the master of that moment; a different master
 *      now is a failover since. Exact, and independent of this process: a runner that took
 *      over after the failover sees it too. Blind once etcd compacted that revision (a batch
 *      migrating for longer than the compaction retention).
 *   2. What this run saw. When this run began moving the batch it noted the source master's
 *      address, run_id and replication id; a change of any since is a failover (new address
 *      or new replication id — a promoted replica gets a new one, so a failover and back to
 *      the same address is seen too) or a restart in place (new run_id: its data went back to
 *      what it had persisted, which may predate the MIGRATEs' deletes).
 *
 * Invariant: answers "changed" only on evidence of a change after the slot became migrating;
 * when it cannot tell (history compacted and no change seen by this run), it answers
 * "unchanged", which keeps BUSYKEY a hard error — the side that never deletes data.
 */
import type { Logger } from 'pino';
import { groupMaster, decodeJson, inSyncMembers, parseGroup, type GroupInfo, type Store } from '@reborn/coordinator';
import { info, type RedisAdminOptions } from '@reborn/coordinator/admin';
import { errText, masterMoved } from './migration-common.js';

/** Who the source master is: a new address, run_id or replication id means another history. */
export interface MasterIdentity {
  addr: string;
  runId: string;
  replId: string;
}

export interface SourceFailoverOptions {
  store: Store;
  /** The source group of the batch. */
  group: number;
  redis: RedisAdminOptions;
  log: Logger;
}

/** INFO server + replication of `addr`: its identity as a master. */
export async function readMasterIdentity(addr: string, redis: RedisAdminOptions): Promise<MasterIdentity> {
  const opts = { ...redis, commandTimeoutMs: 3000 };
  const [server, repl] = await Promise.all([info(addr, 'server', opts), info(addr, 'replication', opts)]);
  return { addr, runId: server['run_id'] ?? '', replId: repl['master_replid'] ?? '' };
}

/** What differs between two identities of the source master, in words, or null when nothing does. */
export function identityChange(before: MasterIdentity, now: MasterIdentity): string | null {
  if (before.addr !== now.addr) return `its master was ${before.addr} and is now ${now.addr}`;
  if (before.runId !== now.runId) return `its master ${now.addr} restarted (run_id ${before.runId} → ${now.runId})`;
  if (before.replId !== now.replId) return `its master ${now.addr} took a new replication history (replid ${before.replId} → ${now.replId}: promoted again, or resynced)`;
  return null;
}

/**
 * One batch's failover watch (one per batch and TaskRun; see the header). It also keeps the
 * source group as last read: its in-sync set sizes the mover's WAIT, and its master is the one
 * the scan pass must read.
 */
export class SourceFailoverWatch {
  /** The source group as last read. */
  latest: GroupInfo | undefined;
  /** The source master the current scan pass reads ('' before the first pass). */
  passSource = '';
  private baseline: MasterIdentity | null = null;
  /** Slot → the group's master when that slot became migrating; null: etcd no longer knows. */
  private readonly masterAtMigrating = new Map<number, string | null>();

  constructor(private readonly o: SourceFailoverOptions) {}

  get group(): number {
    return this.o.group;
  }

  /** How many replicas must confirm a move: the members of the group's in-sync set. */
  confirmations(): number {
    return this.latest ? inSyncMembers(this.latest).length : 0;
  }

  /**
   * Re-reads the group (about every 200 ms while keys move). A master other than passSource
   * (a failover) throws MigrationWait: the pass restarts on the new master (or waits for one).
   */
  async refresh(): Promise<void> {
    const g = await this.o.store.getGroup(this.o.group);
    if (g === null) return; // the next pass's topology read reports it
    this.latest = g;
    const master = groupMaster(g)?.addr;
    if (this.passSource !== '' && master !== this.passSource) throw masterMoved(this.o.group, this.passSource, master);
  }

  /** Notes the source master's identity, once: the baseline of witness 2. */
  async noteMaster(addr: string): Promise<void> {
    if (this.baseline !== null) return;
    this.baseline = await readMasterIdentity(addr, this.o.redis);
  }

  /**
   * Why the source group counts as failed over since `slot` became migrating, given that
   * `current` is its master now; null when there is no evidence of it.
   */
  async changeSince(slot: number, current: string): Promise<string | null> {
    const then = await this.masterWhenMigrating(slot);
    if (then !== null && then !== current) {
      return `group ${this.o.group} failed over after slot ${slot} became migrating: its master was ${then}, now ${current}`;
    }
    if (this.baseline !== null) {
      const change = identityChange(this.baseline, await readMasterIdentity(current, this.o.redis));
      if (change !== null) return `group ${this.o.group} changed while this runner moved slot ${slot}: ${change}`;
    }
    return null;
  }

  /** Whether etcd names `addr` the master of the group now. */
  async isCurrentMaster(addr: string): Promise<boolean> {
    const g = await this.o.store.getGroup(this.o.group);
    return g !== null && groupMaster(g)?.addr === addr;
  }

  /** Throws MigrationWait when etcd no longer names `addr` the master (the pass restarts on the new one). */
  async assertCurrentMaster(addr: string): Promise<void> {
    const g = await this.o.store.getGroup(this.o.group);
    const master = g === null ? undefined : groupMaster(g)?.addr;
    if (g !== null && master !== addr) throw masterMoved(this.o.group, addr, master);
  }

  private async masterWhenMigrating(slot: number): Promise<string | null> {
    const known = this.masterAtMigrating.get(slot);
    if (known !== undefined) return known;
    const { store } = this.o;
    const slotKey = store.paths.slot(slot);
    const now = await store.call(`get slot ${slot}`, () => store.etcd.get(slotKey).exec());
    const rev = now.kvs[0]?.mod_revision;
    if (rev === undefined) return null; // not migrating any more: the caller's pass will see it
    const groupKey = store.paths.group(this.o.group);
    let master: string | null = null;
    try {
      const then = await store.call(`get group ${this.o.group} at revision ${rev}`, () => store.etcd.get(groupKey).revision(rev).exec());
      const kv = then.kvs[0];
      master = kv ? (groupMaster(parseGroup(decodeJson(kv.value, groupKey), this.o.group, groupKey))?.addr ?? null) : null;
    } catch (err) {
      if (!/compacted/i.test(errText(err))) throw err;
      this.o.log.warn({ slot, revision: rev, group: this.o.group }, 'etcd compacted the revision at which the slot became migrating: only a failover this runner saw itself is recognised');
    }
    this.masterAtMigrating.set(slot, master);
    return master;
  }
}
