/**
 * A write load through one matrix client (not a test file itself): `concurrency` workers
 * share the client's one connection (so the library's own pipelining is exercised), each with
 * one INCR or RPUSH in flight at a time, on a fixed set of keys. Every reply is kept: an
 * acknowledged write is one whose promise resolved, an error one that rejected (it may or may
 * not have been applied).
 *
 * verify() reads every key back (with a client of the same library) and states what was lost:
 * a counter must be at least its acknowledged INCRs and at most acknowledged + errors (more
 * would be a write applied twice); a list must hold every acknowledged RPUSH exactly once, no
 * element that was never sent, and each worker's elements in the order they were sent.
 *
 * Invariant: the load never retries a write on its own, so the counts above are exact.
 */
import { waitFor } from '@reborn/testkit';
import type { Dual, MatrixClient } from './client-matrix-clients.js';

interface KeyStats {
  acked: number;
  errors: number;
  /** When each acknowledgement arrived (ms epoch), in order. */
  ackTimes: number[];
}

export interface LoadOptions {
  counters?: number;
  lists?: number;
  concurrency?: number;
}

const incr = (k: string): Dual<Promise<unknown>> => ({ nr: (c) => c.incr(k), io: (c) => c.incr(k) });
const rpush = (k: string, e: string): Dual<Promise<unknown>> => ({ nr: (c) => c.rPush(k, e), io: (c) => c.rpush(k, e) });
const get = (k: string): Dual<Promise<unknown>> => ({ nr: (c) => c.get(k), io: (c) => c.get(k) });
const lrange = (k: string): Dual<Promise<unknown>> => ({ nr: (c) => c.lRange(k, 0, -1), io: (c) => c.lrange(k, 0, -1) });

export class ClientLoad {
  readonly counters: string[];
  readonly lists: string[];
  private readonly stats = new Map<string, KeyStats>();
  /** `${list}\n${element}` → acknowledged (true) or errored (false). */
  private readonly pushed = new Map<string, boolean>();
  private running = false;
  private workers: Promise<void>[] = [];
  acked = 0;
  errors = 0;
  readonly errorSamples: string[] = [];
  lastError = '';
  /** What each worker waits for now: its command and since when. */
  private readonly waiting = new Map<number, { what: string; since: number }>();

  constructor(
    private readonly client: MatrixClient,
    readonly prefix: string,
    private readonly opts: LoadOptions = {},
  ) {
    this.counters = Array.from({ length: opts.counters ?? 40 }, (_, i) => `${prefix}:c${i}`);
    this.lists = Array.from({ length: opts.lists ?? 10 }, (_, i) => `${prefix}:l${i}`);
    for (const k of [...this.counters, ...this.lists]) this.stats.set(k, { acked: 0, errors: 0, ackTimes: [] });
  }

  start(): void {
    this.running = true;
    this.workers = Array.from({ length: this.opts.concurrency ?? 8 }, (_, w) => this.work(w));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }

  /** When the first write to a key that `which` accepts was acknowledged after time `t`, or null. */
  firstAckAfter(t: number, which: (key: string) => boolean = () => true): number | null {
    let first: number | null = null;
    for (const [k, s] of this.stats) {
      if (!which(k)) continue;
      const at = s.ackTimes.find((x) => x > t);
      if (at !== undefined && (first === null || at < first)) first = at;
    }
    return first;
  }

  /** Waits until `n` more writes are acknowledged than when called. */
  async waitForAcks(n: number, timeoutMs = 30_000): Promise<void> {
    const target = this.acked + n;
    await this.waitUntil(() => this.acked >= target, `${n} acknowledged writes`, timeoutMs);
  }

  /** waitFor(cond); on a timeout the error tells where the load stands then. */
  async waitUntil(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    try {
      await waitFor(cond, { timeoutMs, what });
    } catch (err) {
      throw new Error(`${(err as Error).message}; the load: ${this.summary()}`);
    }
  }

  summary(): string {
    const samples = this.errors === 0 ? '' : ` (first: ${this.errorSamples[0]}; last: ${this.lastError})`;
    const now = Date.now();
    const waiting = [...this.waiting.values()].filter((x) => now - x.since > 1000).map((x) => `${x.what} for ${now - x.since} ms`);
    return `${this.acked} acknowledged, ${this.errors} errors${samples}${waiting.length ? `; waiting: ${waiting.join(', ')}` : ''}`;
  }

  private async work(w: number): Promise<void> {
    let seq = 0;
    let pick = w + 1;
    while (this.running) {
      // xorshift32: a cheap deterministic walk over the keys, different per worker.
      pick ^= pick << 13;
      pick ^= pick >>> 17;
      pick ^= pick << 5;
      pick >>>= 0;
      // The low bits choose the kind, the others the key: every key gets used.
      const isList = pick % 4 === 0;
      const n = Math.floor(pick / 4);
      const key = isList ? this.lists[n % this.lists.length]! : this.counters[n % this.counters.length]!;
      const element = `${w}:${seq++}`;
      const s = this.stats.get(key)!;
      this.waiting.set(w, { what: isList ? `RPUSH ${key} ${element}` : `INCR ${key}`, since: Date.now() });
      try {
        await this.client.run(isList ? rpush(key, element) : incr(key));
        s.acked++;
        s.ackTimes.push(Date.now());
        this.acked++;
        if (isList) this.pushed.set(`${key}\n${element}`, true);
      } catch (err) {
        s.errors++;
        this.errors++;
        if (isList) this.pushed.set(`${key}\n${element}`, false);
        this.lastError = `${key}: ${(err as Error).message}`;
        if (this.errorSamples.length < 5) this.errorSamples.push(this.lastError);
      } finally {
        this.waiting.delete(w);
      }
    }
  }

  /** Keys that got at least one acknowledged write: they must exist. */
  keysWritten(): string[] {
    return [...this.stats].filter(([, s]) => s.acked > 0).map(([k]) => k);
  }

  /** Keys whose only writes failed: they may exist or not. */
  keysMaybeWritten(): string[] {
    return [...this.stats].filter(([, s]) => s.acked === 0 && s.errors > 0).map(([k]) => k);
  }

  /** What was lost or applied twice, read through `reader`; empty when all is well. */
  async verify(reader: MatrixClient): Promise<string[]> {
    const problems: string[] = [];
    for (const k of this.counters) {
      const s = this.stats.get(k)!;
      const value = Number((await reader.run(get(k))) ?? 0);
      if (value < s.acked) problems.push(`${k}: ${value}, but ${s.acked} INCRs were acknowledged (${s.errors} errors): acknowledged writes lost`);
      if (value > s.acked + s.errors) problems.push(`${k}: ${value}, more than ${s.acked} acknowledged + ${s.errors} errors: a write applied twice`);
    }
    for (const k of this.lists) {
      const list = ((await reader.run(lrange(k))) as unknown[]).map(String);
      const present = new Set(list);
      if (present.size !== list.length) problems.push(`${k}: an element twice`);
      const lastSeq = new Map<string, number>();
      for (const e of list) {
        if (!this.pushed.has(`${k}\n${e}`)) problems.push(`${k}: ${e} was never pushed`);
        const [w, q] = e.split(':');
        if (Number(q) <= (lastSeq.get(w!) ?? -1)) problems.push(`${k}: worker ${w}'s ${e} after a later one`);
        lastSeq.set(w!, Number(q));
      }
      for (const [ke, ok] of this.pushed) {
        const [key, e] = ke.split('\n') as [string, string];
        if (ok && key === k && !present.has(e)) problems.push(`${k}: acknowledged RPUSH ${e} lost`);
      }
    }
    return problems;
  }
}
