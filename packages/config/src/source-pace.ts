/**
 * How hard the runner may lean on a source master: the size of each chunk of small keys and a
 * pause between chunks, adapted so that the source's latency stays near the task's
 * `maxSourceLatencyMs` (`slot migrate --max-source-latency`, default 10 ms).
 *
 * Two signals:
 *   - each chunk's DUMP script time (send → reply), per key: the chunk is sized so one script
 *     blocks the source for about half the target. A client request arriving behind it waits
 *     at most that long;
 *   - a probe: its own connection PINGs the source every PROBE_EVERY_MS and keeps the round
 *     trips of the last PROBE_WINDOW_MS. That is what any client of the group sees — our
 *     scripts, the target's work competing for the same cores, the clients' own load. Above
 *     the target, chunks shrink and a pause between them grows (up to MAX_PAUSE_MS); well
 *     below it the pause shrinks away. Without client load the probe stays low and the
 *     runner goes as fast as the servers allow.
 *
 * Invariant: the chunk size stays within [MIN_KEYS, maxKeys] and changes by at most 2× per
 * chunk, so one odd measurement cannot swing it far. Nothing here talks to etcd.
 */
import type { Redis } from 'ioredis';

const MIN_KEYS = 16;
const PROBE_EVERY_MS = 20;
const PROBE_WINDOW_MS = 500;
const MAX_PAUSE_MS = 200;

/** PING round trips to one server, the recent ones kept. */
export class LatencyProbe {
  private readonly samples: Array<[at: number, ms: number]> = [];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly conn: Redis) {}

  start(): this {
    const tick = (): void => {
      if (this.stopped) return;
      const sent = performance.now();
      this.conn.ping().then(
        () => this.add(performance.now() - sent),
        () => undefined, // a failing source is the task's business, not the probe's
      ).finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, PROBE_EVERY_MS);
      });
    };
    tick();
    return this;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.conn.disconnect();
  }

  private add(ms: number): void {
    const now = performance.now();
    this.samples.push([now, ms]);
    while (this.samples.length > 0 && now - this.samples[0]![0] > PROBE_WINDOW_MS) this.samples.shift();
  }

  /**
   * The second-longest round trip of the last PROBE_WINDOW_MS, ms (0 with fewer than two
   * samples): one outlier — a pause of this process, not of the source — does not count.
   */
  recent(): number {
    let first = 0;
    let second = 0;
    for (const [, ms] of this.samples) {
      if (ms > first) [first, second] = [ms, first];
      else if (ms > second) second = ms;
    }
    return second;
  }
}

export class SourcePace {
  /** Keys per chunk now. */
  batchKeys: number;
  /** ms to wait before the next chunk. */
  pauseMs = 0;
  private perKeyMs = 0;

  /** The probe of the scan pass under way (null between passes). */
  probe: LatencyProbe | null = null;

  constructor(
    /** The task's latency target, ms (re-read: an operator may change the task). */
    private readonly targetMs: () => number,
    /** The most keys a chunk may hold. */
    private readonly maxKeys: number,
  ) {
    this.batchKeys = Math.min(maxKeys, 256);
  }

  /** The source's latency as the probe sees it now, ms. */
  sourceLatencyMs(): number {
    return this.probe?.recent() ?? 0;
  }

  /** A chunk of `keys` keys took `scriptMs` on the source: size the next one. */
  onChunk(keys: number, scriptMs: number): void {
    if (keys <= 0) return;
    const target = this.targetMs();
    const perKey = scriptMs / keys;
    this.perKeyMs = this.perKeyMs === 0 ? perKey : this.perKeyMs * 0.7 + perKey * 0.3;
    let next = target / 2 / Math.max(this.perKeyMs, 0.0005);
    const seen = this.sourceLatencyMs();
    if (seen > target) {
      // Clients of the source wait longer than we may make them: lean less, and rest between chunks.
      next = Math.min(next, this.batchKeys * 0.7);
      this.pauseMs = Math.min(MAX_PAUSE_MS, this.pauseMs === 0 ? 2 : this.pauseMs * 1.5);
    } else if (seen < target / 2) {
      this.pauseMs = this.pauseMs < 1 ? 0 : this.pauseMs / 2;
    }
    next = Math.max(this.batchKeys / 2, Math.min(this.batchKeys * 2, next));
    this.batchKeys = Math.round(Math.max(MIN_KEYS, Math.min(this.maxKeys, next)));
  }
}
