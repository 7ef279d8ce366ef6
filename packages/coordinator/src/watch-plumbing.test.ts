/**
 * The shared watch plumbing on its own (no etcd needed): the retry loop returns the first
 * success and reports every failure, stops when the watch closes (before an attempt or while
 * it pauses), and the error sink never throws and keeps the handler's `this`.
 */
import { describe, expect, it } from 'vitest';
import { cancelWatcher, reportTo, retryUntilDone } from './watch-plumbing.js';

describe('retryUntilDone', () => {
  it('retries until an attempt succeeds, reporting each failure', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const got = await retryUntilDone(
      async () => {
        calls++;
        if (calls < 4) throw new Error(`fail ${calls}`);
        return { calls };
      },
      { signal: new AbortController().signal, minMs: 1, maxMs: 2, onError: (e) => errors.push(e) },
    );
    expect(got).toEqual({ calls: 4 });
    expect(errors.map((e) => (e as Error).message)).toEqual(['fail 1', 'fail 2', 'fail 3']);
  });

  it('makes no attempt once closed', async () => {
    const abort = new AbortController();
    abort.abort();
    let calls = 0;
    const got = await retryUntilDone(async () => ({ n: ++calls }), { signal: abort.signal, minMs: 1, maxMs: 1, onError: () => undefined });
    expect(got).toBeUndefined();
    expect(calls).toBe(0);
  });

  it('resolves undefined when closed during its pause, without another attempt', async () => {
    const abort = new AbortController();
    let calls = 0;
    // A pause far longer than any test: only the abort can end it.
    const pending = retryUntilDone(
      async () => {
        calls++;
        throw new Error('down');
      },
      { signal: abort.signal, minMs: 3_600_000, maxMs: 3_600_000, onError: () => setImmediate(() => abort.abort()) },
    );
    expect(await pending).toBeUndefined();
    expect(calls).toBe(1);
  });
});

describe('reportTo', () => {
  it('wraps what is not an Error, calls onError as a method, and swallows a sink that throws', () => {
    class Sink {
      readonly seen: string[] = [];
      onError(err: Error): void {
        this.seen.push(err.message);
      }
    }
    const sink = new Sink();
    reportTo(sink, 'plain text');
    reportTo(sink, new Error('an error'));
    expect(sink.seen).toEqual(['plain text', 'an error']);
    expect(() =>
      reportTo(
        {
          onError: () => {
            throw new Error('sink broke');
          },
        },
        new Error('x'),
      ),
    ).not.toThrow();
    expect(() => reportTo({}, new Error('nobody listens'))).not.toThrow();
  });
});

describe('cancelWatcher', () => {
  it('accepts no watcher', async () => {
    await expect(cancelWatcher(null)).resolves.toBeUndefined();
  });
});
