/**
 * The BCAST prefixes of client-side caching (CLIENT TRACKING ON BCAST PREFIX …): which
 * clients want an invalidated key, and Redis's rule that one client's prefixes must not
 * overlap.
 *
 * Invariant: finding the clients of a key costs one walk over the key's bytes, whatever the
 * number of prefixes or their lengths, and memory grows with the total bytes of the distinct
 * prefixes: the tree's edges carry runs of bytes (a radix tree), never one node per byte. So
 * a client with many long prefixes cannot make each invalidation, for every client, slow.
 */

const EMPTY = Buffer.alloc(0);

interface Node<T> {
  /** The bytes on the edge from the parent (empty for the root only). */
  label: Buffer;
  /** Children by the first byte of their label. */
  children: Map<number, Node<T>> | null;
  /** Who registered the prefix ending exactly here. */
  members: Set<T> | null;
}

/** Length of the common run of `label` and `bytes[from…]`. */
function commonLength(label: Buffer, bytes: Buffer, from: number): number {
  const max = Math.min(label.length, bytes.length - from);
  let n = 0;
  while (n < max && label[n] === bytes[from + n]) n++;
  return n;
}

export class PrefixTree<T> {
  private readonly root: Node<T> = { label: EMPTY, children: null, members: null };
  private distinct = 0;

  /** Distinct prefixes registered (by anyone). */
  get size(): number {
    return this.distinct;
  }

  add(prefix: Buffer, member: T): void {
    let node = this.root;
    let pos = 0;
    while (pos < prefix.length) {
      const first = prefix[pos]!;
      const child = node.children?.get(first);
      if (child === undefined) {
        const leaf: Node<T> = { label: Buffer.from(prefix.subarray(pos)), children: null, members: null };
        (node.children ??= new Map()).set(first, leaf);
        node = leaf;
        break;
      }
      const common = commonLength(child.label, prefix, pos);
      if (common < child.label.length) {
        // The prefix ends inside this edge, or leaves it: split the edge where they part.
        const middle: Node<T> = { label: child.label.subarray(0, common), children: new Map([[child.label[common]!, child]]), members: null };
        child.label = child.label.subarray(common);
        node.children!.set(first, middle);
        node = middle;
      } else {
        node = child;
      }
      pos += common;
    }
    if (node.members === null) {
      node.members = new Set();
      this.distinct++;
    }
    node.members.add(member);
  }

  remove(prefix: Buffer, member: T): void {
    const path: Node<T>[] = [this.root];
    let node = this.root;
    let pos = 0;
    while (pos < prefix.length) {
      const child = node.children?.get(prefix[pos]!);
      if (child === undefined || commonLength(child.label, prefix, pos) !== child.label.length) return;
      node = child;
      pos += child.label.length;
      path.push(node);
    }
    if (node.members === null || !node.members.delete(member) || node.members.size > 0) return;
    node.members = null;
    this.distinct--;
    // Prune: a node that ends no prefix needs two children to be worth keeping.
    for (let i = path.length - 1; i > 0; i--) {
      const n = path[i]!;
      const parent = path[i - 1]!;
      if (n.members !== null) return;
      const kids = n.children?.size ?? 0;
      if (kids === 0) {
        parent.children!.delete(n.label[0]!);
        if (parent.children!.size === 0) parent.children = null;
        continue;
      }
      if (kids === 1) {
        const only = n.children!.values().next().value!;
        only.label = Buffer.concat([n.label, only.label]);
        parent.children!.set(n.label[0]!, only);
      }
      return;
    }
  }

  /**
   * Calls `visit` for every member of every registered prefix of `key`, shortest first, with
   * that prefix's node (an identity: callers group keys per prefix by it).
   */
  match(key: Buffer, visit: (member: T, prefix: object) => void): void {
    let node = this.root;
    let pos = 0;
    for (;;) {
      if (node.members !== null) for (const m of node.members) visit(m, node);
      if (pos >= key.length) return;
      const child = node.children?.get(key[pos]!);
      if (child === undefined) return;
      const len = child.label.length;
      if (key.length - pos < len || key.compare(child.label, 0, len, pos, pos + len) !== 0) return;
      node = child;
      pos += len;
    }
  }
}

/** A prefix as Redis prints it with %s: up to its first NUL byte. */
function printed(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('latin1', 0, nul < 0 ? b.length : nul);
}

/** Redis's overlap rule: one of the two is a prefix of the other (equal ones overlap too). */
function overlap(a: Buffer, b: Buffer): boolean {
  const n = Math.min(a.length, b.length);
  return a.compare(b, 0, n, 0, n) === 0;
}

const TAIL = 'Prefixes for a single client must not overlap.';

/**
 * The error Redis 7 gives (tracking.c, checkPrefixCollisionsOrReply) when `given` prefixes
 * overlap the client's `existing` ones (sorted by bytes, overlapping none of each other) or
 * each other; null when none do. Redis looks at the given prefixes in order and, for each,
 * first at the existing ones (in sorted order), then at the given ones after it: the same
 * pair is named here, found in O(n log n) rather than Redis's O(n²).
 */
export function prefixConflict(existing: readonly Buffer[], given: readonly Buffer[]): string | null {
  // Existing prefixes overlap none of each other, so at most one is a prefix of `p` (the
  // greatest one ≤ p), and if none is, the first one ≥ p is the first to extend it, if any.
  const existingHit = (p: Buffer): Buffer | null => {
    let lo = 0;
    let hi = existing.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (Buffer.compare(existing[mid]!, p) <= 0) lo = mid + 1;
      else hi = mid;
    }
    const below = existing[lo - 1];
    if (below !== undefined && overlap(below, p)) return below;
    const above = existing[lo];
    return above !== undefined && overlap(above, p) ? above : null;
  };
  let firstExisting = -1;
  let hit: Buffer | null = null;
  for (let i = 0; i < given.length && firstExisting < 0; i++) {
    hit = existingHit(given[i]!);
    if (hit !== null) firstExisting = i;
  }
  const firstGiven = firstOverlappingLater(given);
  if (firstExisting >= 0 && (firstGiven < 0 || firstExisting <= firstGiven)) {
    return `ERR Prefix '${printed(given[firstExisting]!)}' overlaps with an existing prefix '${printed(hit!)}'. ${TAIL}`;
  }
  if (firstGiven < 0) return null;
  const p = given[firstGiven]!;
  for (let j = firstGiven + 1; j < given.length; j++) {
    if (overlap(p, given[j]!)) return `ERR Prefix '${printed(p)}' overlaps with another provided prefix '${printed(given[j]!)}'. ${TAIL}`;
  }
  return null; // unreachable: firstGiven has a later overlap
}

/**
 * The smallest index i such that some given prefix after it overlaps it; -1 if none. In
 * byte order every prefix of a string comes before it, and the stack holds exactly the
 * prefixes of the current string, each with the smallest and largest index on its chain.
 */
function firstOverlappingLater(given: readonly Buffer[]): number {
  const order = given.map((_, i) => i).sort((a, b) => Buffer.compare(given[a]!, given[b]!) || a - b);
  const stack: Array<{ p: Buffer; min: number; max: number }> = [];
  let best = -1;
  const consider = (i: number): void => {
    if (best < 0 || i < best) best = i;
  };
  for (const y of order) {
    const p = given[y]!;
    while (stack.length > 0 && !overlap(stack[stack.length - 1]!.p, p)) stack.pop();
    const top = stack[stack.length - 1];
    if (top !== undefined) {
      if (top.min < y) consider(top.min); // an earlier prefix of p: p comes after it
      if (top.max > y) consider(y); // a later prefix of p: it comes after p
    }
    stack.push({ p, min: Math.min(top?.min ?? y, y), max: Math.max(top?.max ?? y, y) });
  }
  return best;
}
