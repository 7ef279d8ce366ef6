import { describe, expect, it } from 'vitest';
import { Flusher, type Flushable } from './flusher.js';

describe('Flusher', () => {
  it('flushes every marked item once per turn, even when one of them throws', async () => {
    const errors: unknown[] = [];
    const flusher = new Flusher((err) => errors.push(err));
    const flushed: string[] = [];
    const item = (name: string, fails = false): Flushable => ({
      flushQueued: false,
      flush() {
        flushed.push(name);
        if (fails) throw new Error(`${name} broke`);
      },
    });
    const [a, b, c] = [item('a'), item('b', true), item('c')];
    for (const i of [a, b, c, a]) flusher.mark(i);
    await new Promise((r) => setImmediate(r));
    expect(flushed).toEqual(['a', 'b', 'c']);
    expect(errors.map((e) => (e as Error).message)).toEqual(['b broke']);
    // Nothing is left marked: the next turn flushes them again.
    for (const i of [a, b, c]) flusher.mark(i);
    await new Promise((r) => setImmediate(r));
    expect(flushed).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });
});
