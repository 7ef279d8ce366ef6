/**
 * The BCAST prefix tree and Redis's prefix-overlap rule (tracking-prefixes.ts), checked
 * against a plain list scan and against the cases of Redis's own tests/unit/tracking.tcl.
 */
import { describe, expect, it } from 'vitest';
import { PrefixTree, prefixConflict } from './tracking-prefixes.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function matches(tree: PrefixTree<string>, key: string): string[] {
  const out: string[] = [];
  tree.match(b(key), (m) => out.push(m));
  return out.sort();
}

describe('PrefixTree', () => {
  it('finds every member whose prefix starts the key, and only those', () => {
    const t = new PrefixTree<string>();
    t.add(b('user:'), 'a');
    t.add(b('user:1'), 'b');
    t.add(b('us'), 'c');
    t.add(b('order:'), 'a');
    t.add(b(''), 'd');
    expect(t.size).toBe(5);
    expect(matches(t, 'user:17')).toEqual(['a', 'b', 'c', 'd']);
    expect(matches(t, 'user:2')).toEqual(['a', 'c', 'd']);
    expect(matches(t, 'use')).toEqual(['c', 'd']);
    expect(matches(t, 'order:9')).toEqual(['a', 'd']);
    expect(matches(t, 'x')).toEqual(['d']);
    expect(matches(t, '')).toEqual(['d']);
  });

  it('removes members and prunes, leaving the other prefixes intact', () => {
    const t = new PrefixTree<string>();
    for (const p of ['ab', 'abc', 'abd', 'a', 'b']) t.add(b(p), p);
    t.remove(b('abc'), 'abc');
    t.remove(b('a'), 'a');
    t.remove(b('zz'), 'zz'); // never added: nothing happens
    t.remove(b('ab'), 'someone else'); // not a member of it
    expect(t.size).toBe(3);
    expect(matches(t, 'abcx')).toEqual(['ab']);
    expect(matches(t, 'abdx')).toEqual(['ab', 'abd']);
    expect(matches(t, 'bq')).toEqual(['b']);
    for (const p of ['ab', 'abd', 'b']) t.remove(b(p), p);
    expect(t.size).toBe(0);
    expect(matches(t, 'abd')).toEqual([]);
  });

  it('agrees with a plain scan over random binary prefixes and keys', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const word = (max: number): Buffer => Buffer.from(Array.from({ length: rnd(max) }, () => rnd(3)));
    const t = new PrefixTree<number>();
    const registered: Array<[Buffer, number]> = [];
    for (let i = 0; i < 300; i++) {
      const p = word(6);
      const m = rnd(20);
      t.add(p, m);
      registered.push([p, m]);
      if (rnd(4) === 0) {
        const [rp, rm] = registered.splice(rnd(registered.length), 1)[0]!;
        if (!registered.some(([q, n]) => q.equals(rp) && n === rm)) t.remove(rp, rm);
        else registered.push([rp, rm]);
      }
    }
    for (let i = 0; i < 500; i++) {
      const key = word(9);
      const got: number[] = [];
      t.match(key, (m) => got.push(m));
      const want = new Set(registered.filter(([p]) => key.subarray(0, p.length).equals(p)).map(([, m]) => m));
      expect(new Set(got)).toEqual(want);
    }
  });
});

describe('prefixConflict (Redis: Prefixes for a single client must not overlap)', () => {
  const tail = 'Prefixes for a single client must not overlap.';

  it('names the pairs Redis names (tests/unit/tracking.tcl)', () => {
    expect(prefixConflict([], [b('FOOBAR'), b('FOO')])).toBe(`ERR Prefix 'FOOBAR' overlaps with another provided prefix 'FOO'. ${tail}`);
    expect(prefixConflict([], [b('FOO'), b('FOOBAR')])).toBe(`ERR Prefix 'FOO' overlaps with another provided prefix 'FOOBAR'. ${tail}`);
    const existing = [b('BAR'), b('FOO')];
    expect(prefixConflict(existing, [b('FO')])).toBe(`ERR Prefix 'FO' overlaps with an existing prefix 'FOO'. ${tail}`);
    expect(prefixConflict(existing, [b('BARB')])).toBe(`ERR Prefix 'BARB' overlaps with an existing prefix 'BAR'. ${tail}`);
    expect(prefixConflict(existing, [b('BAR')])).toBe(`ERR Prefix 'BAR' overlaps with an existing prefix 'BAR'. ${tail}`);
    expect(prefixConflict([], [b('a'), b('b'), b('a')])).toBe(`ERR Prefix 'a' overlaps with another provided prefix 'a'. ${tail}`);
    expect(prefixConflict(existing, [b('x'), b('y')])).toBeNull();
    expect(prefixConflict([], [])).toBeNull();
  });

  it('reports the first given prefix in order, existing ones checked before later given ones', () => {
    // Redis checks prefix 0 against the existing set and then against 1, 2…; then prefix 1.
    expect(prefixConflict([b('q')], [b('a'), b('qq'), b('ab')])).toBe(`ERR Prefix 'a' overlaps with another provided prefix 'ab'. ${tail}`);
    expect(prefixConflict([b('a')], [b('ab'), b('abc')])).toBe(`ERR Prefix 'ab' overlaps with an existing prefix 'a'. ${tail}`);
    expect(prefixConflict([b('ab'), b('ac')], [b('a')])).toBe(`ERR Prefix 'a' overlaps with an existing prefix 'ab'. ${tail}`);
    // The empty prefix overlaps everything.
    expect(prefixConflict([], [b('x'), b('')])).toBe(`ERR Prefix 'x' overlaps with another provided prefix ''. ${tail}`);
  });

  it('agrees with Redis\'s O(n²) loop on random inputs', () => {
    let seed = 11;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const word = (): Buffer => b(Array.from({ length: rnd(4) }, () => 'ab'[rnd(2)]).join(''));
    const overlap = (x: Buffer, y: Buffer): boolean => x.subarray(0, y.length).equals(y.subarray(0, x.length));
    const redis = (existing: Buffer[], given: Buffer[]): string | null => {
      for (let i = 0; i < given.length; i++) {
        for (const e of existing) if (overlap(e, given[i]!)) return `ERR Prefix '${given[i]}' overlaps with an existing prefix '${e}'. ${tail}`;
        for (let j = i + 1; j < given.length; j++) {
          if (overlap(given[i]!, given[j]!)) return `ERR Prefix '${given[i]}' overlaps with another provided prefix '${given[j]}'. ${tail}`;
        }
      }
      return null;
    };
    for (let round = 0; round < 2000; round++) {
      const existing: Buffer[] = [];
      for (let i = rnd(4); i > 0; i--) {
        const w = word();
        if (!existing.some((e) => overlap(e, w))) existing.push(w);
      }
      existing.sort(Buffer.compare);
      const given = Array.from({ length: rnd(5) }, word);
      expect(prefixConflict(existing, given), JSON.stringify({ existing: existing.map(String), given: given.map(String) })).toBe(redis(existing, given));
    }
  });

  it('handles 100 000 prefixes (a sorted scan, not Redis\'s pairwise loop)', () => {
    const given = Array.from({ length: 100_000 }, (_, i) => b(`p:${i}:`));
    expect(prefixConflict([], given)).toBeNull();
    given.push(b('p:5'));
    expect(prefixConflict([], given)).toBe(`ERR Prefix 'p:5:' overlaps with another provided prefix 'p:5'. ${tail}`);
  });
});
