/**
 * How hard the runner may lean on a source master: the size of each chunk of small keys and a
 * pause between chunks, adapted so that the source's latency stays near the task's
 * `maxSourceLatencyMs` (`slot migrate --max-source-latency`, default 5 ms).
 *
 * Two signals:
 *   - each chunk's DUMP script time (send → reply), per key: the chunk is sized so one script
 *     blocks the source for about half the target. A client request arriving behind it waits
 *     at most that long;
 *   - a probe: its own connection, in a worker thread, PINGs the source every PROBE_EVERY_MS
 *     and keeps the round trips of the last PROBE_WINDOW_MS. That is what any client of the group sees — our
 *     scripts, the target's work competing for the same cores, the clients' own load. Above
 *     the target, chunks shrink and a pause between them grows (up to MAX_PAUSE_MS); well
 *     below it the pause shrinks away. Without client load the probe stays low and the
 *     runner goes as fast as the servers allow.
 *
 * Invariant: the chunk size stays within [MIN_KEYS, maxKeys] and changes by at most 2× per
 * chunk, so one odd measurement cannot swing it far. Nothing here talks to etcd.
 */
import { Worker } from 'node:worker_threads';
import { RUNNER_CONNECTION_NAME } from '@reborn/coordinator';
import { parseAddr } from '@reborn/coordinator/admin';

const MIN_KEYS = 16;
const PROBE_EVERY_MS = 20;
const PROBE_WINDOW_MS = 500;
const MAX_PAUSE_MS = 200;

/** PING round trips to one server, measured in a worker thread (latency-probe-worker.ts). */
export class LatencyProbe {
  private readonly shared = new SharedArrayBuffer(16);
  private readonly latest = new Float64Array(this.shared);
  private worker: Worker | null = null;

  constructor(private readonly addr: string, private readonly password: string | null) {}

  start(): this {
    const { host, port } = parseAddr(this.addr);
    this.worker = new Worker(new URL('./latency-probe-worker.js', import.meta.url), {
      workerData: { host, port, password: this.password, everyMs: PROBE_EVERY_MS, windowMs: PROBE_WINDOW_MS, runnerName: RUNNER_CONNECTION_NAME, shared: this.shared },
    });
    this.worker.on('error', () => undefined); // a probe that fails only stops measuring
    this.worker.unref();
    return this;
  }

  stop(): void {
    const w = this.worker;
    this.worker = null;
    if (w) void w.terminate();
  }

  /**
   * The second-longest round trip of the last PROBE_WINDOW_MS, ms (0 before two samples): one
   * outlier does not count.
   */
  recent(): number {
    return this.latest[0]!;
  }

  /** Whether some client (any connection but the runner's) sent the source a command within the last second. */
  clientsActive(): boolean {
    return this.latest[1] !== 0;
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
    // No client of the source is active: nobody waits behind our chunks, so go as fast as the
    // servers allow (chunks twice as long, latency not minded) until one is.
    const idle = this.probe !== null && !this.probe.clientsActive();
    const target = idle ? this.targetMs() * 2 : this.targetMs();
    const perKey = scriptMs / keys;
    this.perKeyMs = this.perKeyMs === 0 ? perKey : this.perKeyMs * 0.7 + perKey * 0.3;
    let next = target / 2 / Math.max(this.perKeyMs, 0.0005);
    const seen = idle ? 0 : this.sourceLatencyMs();
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
