/**
 * The target group of a migrating batch, as etcd last named it: its master (where MIGRATE
 * sends the keys) and its in-sync set (how many of its replicas must confirm the moved keys,
 * WAIT on the target — the rule the proxies follow: coordinator's inSyncMembers).
 *
 * Re-read with the source group about every 200 ms while keys move, and after every error.
 * A master other than the one the scan pass sends to means the target failed over (or was
 * switched over): the pass stops and the next one sends to the new master.
 *
 * Invariant: a pass sends only to the master etcd named when it started, and stops within one
 * re-read once etcd names another; a MIGRATE to a demoted server is refused by that server
 * (READONLY), so nothing lands on a replica.
 */
import { groupMaster, inSyncMembers, type GroupInfo, type Store } from '@reborn/coordinator';
import { masterMoved } from './migration-common.js';

export class TargetWatch {
  /** The target group as last read. */
  latest: GroupInfo | undefined;
  /** The target master the current scan pass sends to ('' before the first pass). */
  passTarget = '';

  constructor(
    private readonly store: Store,
    readonly group: number,
  ) {}

  /** How many replicas must confirm the moved keys on the target: its in-sync members. */
  confirmations(): number {
    return this.latest ? inSyncMembers(this.latest).length : 0;
  }

  /** Re-reads the group; throws MigrationWait (retry at once) when etcd names another master than the pass's. */
  async refresh(): Promise<void> {
    const g = await this.store.getGroup(this.group);
    if (g === null) return; // the next pass's topology read reports it
    this.latest = g;
    this.assertMaster(g);
  }

  /** After an error sending to `addr`: throws MigrationWait when etcd no longer names it the master. */
  async assertCurrentMaster(addr: string): Promise<void> {
    const g = await this.store.getGroup(this.group);
    if (g === null) return;
    this.latest = g;
    const master = groupMaster(g)?.addr;
    if (master !== addr) throw masterMoved(this.group, addr, master);
  }

  private assertMaster(g: GroupInfo): void {
    const master = groupMaster(g)?.addr;
    if (this.passTarget !== '' && master !== this.passTarget) throw masterMoved(this.group, this.passTarget, master);
  }
}
