/**
 * The etcd client as the coordinator uses it: one `Etcd3` per Store, configured so that no
 * call can hang and reconnects are quick, plus the mapping of etcd3's errors onto ours.
 *
 * Why each setting:
 * - Unary calls carry a gRPC deadline (`callTimeoutMs`) and every Store operation is also
 *   raced against the same bound: etcd3's default retry policy re-runs a call up to three
 *   times, and the outer race is what guarantees the caller hears back in time.
 * - Streams (watch, lease keepalive) have no deadline — they are meant to live forever — but
 *   gRPC keepalive pings notice a silently dead connection (a partition, not only a refused
 *   connect). 10 s stays above etcd's default `--grpc-keepalive-min-time` (5 s), below which
 *   etcd would drop the connection for pinging too often.
 * - Watch reconnect backoff is capped at 2 s (etcd3's default grows to 30 s), so a proxy sees
 *   topology changes promptly once etcd is back; jitter spreads many proxies out.
 */
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { CoordinatorError, UnavailableError } from './errors.js';

type Backoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

const WATCH_BACKOFF_MIN_MS = 100;
const WATCH_BACKOFF_MAX_MS = 2000;

function jitteredBackoff(ms: number): Backoff {
  return {
    duration: ms * (0.5 + Math.random() / 2),
    next: () => jitteredBackoff(Math.min(ms * 2, WATCH_BACKOFF_MAX_MS)),
  };
}

export function createClient(endpoints: readonly string[], callTimeoutMs: number): Etcd3 {
  return new Etcd3({
    hosts: [...endpoints],
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: {
      // The factory's own duration is unused: the watch manager calls next() first.
      watchBackoff: { duration: 0, next: () => jitteredBackoff(WATCH_BACKOFF_MIN_MS) },
    },
    grpcOptions: {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      // Only while a call (a watch, a lease keepalive) is open: etcd's default policy refuses
      // pings without a stream ("excess pings") and would close the connection.
      'grpc.keepalive_permit_without_calls': 0,
    },
  });
}

/** Rejects with UnavailableError when `p` has not settled after `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UnavailableError(`${what}: etcd did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Maps anything etcd3 throws onto our classes. Connection-level failures (refused, deadline,
 * an open circuit breaker, a closed client) become UnavailableError: retry later.
 */
export function toCoordinatorError(err: unknown, what: string): CoordinatorError {
  if (err instanceof CoordinatorError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  // cockatiel's BrokenCircuitError (etcd3's per-host breaker) marks itself with this flag.
  const brokenCircuit = (e as { isBrokenCircuitError?: unknown }).isBrokenCircuitError === true;
  if (isRecoverableError(e) || brokenCircuit) {
    return new UnavailableError(`${what}: etcd unavailable: ${e.message}`, e);
  }
  return new CoordinatorError('EETCD', `${what}: ${e.message}`, { cause: e });
}

/** What Store, watches and registrations share: the client and the bounded call helper. */
export class Conn {
  constructor(
    readonly etcd: Etcd3,
    readonly callTimeoutMs: number,
  ) {}

  /** Runs one etcd operation with the call timeout, mapping its errors. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await withTimeout(fn(), this.callTimeoutMs, what);
    } catch (err) {
      throw toCoordinatorError(err, what);
    }
  }
}
