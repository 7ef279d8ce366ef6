/**
 * Every etcd key of a product, in one place (docs/architecture.md §2 "etcd layout"). Nothing else in the
 * code base builds a key by hand, so the layout can be read (and changed) here.
 *
 *   /reborn/<p>/identity                   the product's generation id, written once at creation
 *   /reborn/<p>/restoring                  present while a saved topology is being written back
 *   /reborn/<p>/slots/<0000-1023>          slot ids zero-padded so keys sort in slot order
 *   /reborn/<p>/groups/<gid>               gid decimal, 1..9999
 *   /reborn/<p>/proxies/<proxyId>
 *   /reborn/<p>/actions/<seq>[/acks/<proxyId>]   seq zero-padded to 10 digits: sorts by seq
 *   /reborn/<p>/action-seq                 the last action sequence number (a counter)
 *   /reborn/<p>/fences/<proxyId>           proxies fenced at the backends (visible to operators)
 *   /reborn/<p>/members/<proxyId>          proxies that may be serving (no lease: see barrier.ts)
 *   /reborn/<p>/migrations/<id>
 *   /reborn/<p>/moves/<id>                 in-flight key moves of a migration (moves.ts)
 *   /reborn/<p>/redis-config               product-wide redis parameters (redis-config.ts)
 *   /reborn/<p>/runner                     election of the one migration runner of the product
 *   /reborn/<p>/agents/…
 */
import { ValidationError } from './errors.js';
import { SLOT_COUNT, assertGroupId, assertSlotId, isValidName } from './models.js';

const PRODUCT_RE = /^[A-Za-z0-9_-]{1,64}$/;
const SEQ_WIDTH = 10;

export function isValidProduct(name: string): boolean {
  return PRODUCT_RE.test(name);
}

export function assertProduct(name: string): string {
  if (!isValidProduct(name)) {
    throw new ValidationError(`invalid product name ${JSON.stringify(name)}: want [A-Za-z0-9_-]{1,64}`);
  }
  return name;
}

export function assertKeyName(what: string, name: string): string {
  if (!isValidName(name)) {
    throw new ValidationError(`invalid ${what} ${JSON.stringify(name)}: want [A-Za-z0-9_.:-]{1,128}`);
  }
  return name;
}

function assertSeq(seq: number): number {
  if (!Number.isSafeInteger(seq) || seq < 0 || seq >= 10 ** SEQ_WIDTH) {
    throw new ValidationError(`invalid action sequence ${seq}`);
  }
  return seq;
}

/** Every product's keys live under this prefix. */
export const PRODUCTS_PREFIX = '/reborn/';

/**
 * The product a key belongs to when the key is that product's slot 0 (a product has a slot
 * table once slot 0 exists), else null. For listing the products sharing an etcd.
 */
export function productOfFirstSlot(key: string): string | null {
  if (!key.startsWith(PRODUCTS_PREFIX)) return null;
  const product = key.slice(PRODUCTS_PREFIX.length, key.indexOf('/', PRODUCTS_PREFIX.length));
  return isValidProduct(product) && key === new Paths(product).slot(0) ? product : null;
}

/** Key paths of one product. Prefixes end with `/` so `groups/1` never matches `groups/10`. */
export class Paths {
  readonly product: string;
  readonly root: string;
  readonly slots: string;
  readonly groups: string;
  readonly proxies: string;
  readonly actions: string;
  readonly migrations: string;
  /**
   * In-flight key moves (moves.ts). Inside the range the topology watch covers, so a proxy
   * sees a move (and holds its keys) in revision order with the slot changes.
   */
  readonly moves: string;
  readonly agents: string;
  readonly fences: string;
  readonly members: string;
  readonly actionSeq: string;
  readonly runnerElection: string;
  /**
   * The product's identity (models.ts ProductIdentity). Inside the range the topology watch
   * covers (actions/ … slots/), so its changes arrive in order with slot and group changes.
   */
  readonly identity: string;
  /** The marker of a topology restore in progress (also inside the watched range). */
  readonly restoring: string;
  /**
   * The product-wide redis parameters every server gets (redis-config.ts). Inside the
   * topology watch's range too, which ignores it: the proxies watch this one key by itself.
   */
  readonly redisConfig: string;

  constructor(product: string) {
    this.product = assertProduct(product);
    this.root = `${PRODUCTS_PREFIX}${product}/`;
    this.slots = `${this.root}slots/`;
    this.groups = `${this.root}groups/`;
    this.proxies = `${this.root}proxies/`;
    this.actions = `${this.root}actions/`;
    this.migrations = `${this.root}migrations/`;
    this.moves = `${this.root}moves/`;
    this.agents = `${this.root}agents/`;
    this.fences = `${this.root}fences/`;
    this.members = `${this.root}members/`;
    this.actionSeq = `${this.root}action-seq`;
    this.runnerElection = `${this.root}runner`;
    this.identity = `${this.root}identity`;
    this.restoring = `${this.root}restoring`;
    this.redisConfig = `${this.root}redis-config`;
  }

  member(proxyId: string): string {
    return this.members + assertKeyName('proxy id', proxyId);
  }

  /** The proxy id of a member key, or null. */
  memberIdOf(key: string): string | null {
    if (!key.startsWith(this.members)) return null;
    const rest = key.slice(this.members.length);
    return isValidName(rest) ? rest : null;
  }

  fence(proxyId: string): string {
    return this.fences + assertKeyName('proxy id', proxyId);
  }

  /** The sequence number of an action key (not of its acks), or null. */
  actionSeqOf(key: string): number | null {
    if (!key.startsWith(this.actions)) return null;
    const rest = key.slice(this.actions.length);
    return /^\d{10}$/.test(rest) ? Number(rest) : null;
  }

  /** The [seq, proxyId] of an ack key, or null. */
  ackOf(key: string): [number, string] | null {
    if (!key.startsWith(this.actions)) return null;
    const m = /^(\d{10})\/acks\/(.+)$/.exec(key.slice(this.actions.length));
    return m && isValidName(m[2]!) ? [Number(m[1]), m[2]!] : null;
  }

  /** The migration id of a migration key, or null. */
  migrationIdOf(key: string): string | null {
    if (!key.startsWith(this.migrations)) return null;
    const rest = key.slice(this.migrations.length);
    return isValidName(rest) ? rest : null;
  }

  move(id: string): string {
    return this.moves + assertKeyName('move id', id);
  }

  /** The move id of a move key, or null. */
  moveIdOf(key: string): string | null {
    if (!key.startsWith(this.moves)) return null;
    const rest = key.slice(this.moves.length);
    return isValidName(rest) ? rest : null;
  }

  slot(id: number): string {
    return this.slots + String(assertSlotId(id)).padStart(4, '0');
  }

  group(gid: number): string {
    return this.groups + String(assertGroupId(gid));
  }

  proxy(proxyId: string): string {
    return this.proxies + assertKeyName('proxy id', proxyId);
  }

  action(seq: number): string {
    return this.actions + String(assertSeq(seq)).padStart(SEQ_WIDTH, '0');
  }

  actionAcks(seq: number): string {
    return `${this.action(seq)}/acks/`;
  }

  actionAck(seq: number, proxyId: string): string {
    return this.actionAcks(seq) + assertKeyName('proxy id', proxyId);
  }

  migration(id: string): string {
    return this.migrations + assertKeyName('migration id', id);
  }

  /** The slot id of a slot key, or null when `key` is not exactly a slot key. */
  slotIdOf(key: string): number | null {
    if (!key.startsWith(this.slots)) return null;
    const rest = key.slice(this.slots.length);
    if (!/^\d{4}$/.test(rest)) return null;
    const id = Number(rest);
    return id < SLOT_COUNT ? id : null;
  }

  /** The group id of a group key, or null when `key` is not exactly a group key. */
  groupIdOf(key: string): number | null {
    if (!key.startsWith(this.groups)) return null;
    const rest = key.slice(this.groups.length);
    // Canonical decimal only: `groups/007` is not group 7.
    if (!/^[1-9]\d{0,3}$/.test(rest)) return null;
    return Number(rest);
  }

  /** The proxy id of a proxy key, or null. */
  proxyIdOf(key: string): string | null {
    if (!key.startsWith(this.proxies)) return null;
    const rest = key.slice(this.proxies.length);
    return isValidName(rest) ? rest : null;
  }
}
