/**
 * What reborn-config tells the operator when etcd does not answer: while a wait goes on
 * (etcdTrouble: after 3 s, then every 5 s, once when etcd answers again, and a give-up after
 * a bound), and when an operation ends on it (explainEtcdSilence: which endpoints, how many of
 * them accept a connection, and whether anything may have changed).
 * Invariant: every sentence here names the endpoints and says what state was left behind;
 * probing the endpoints is bounded (PROBE_MS), so explaining a failure can never hang either.
 */
import net from 'node:net';
import { UnavailableError } from '@reborn/coordinator';

/** Bound of reborn-config's connect to etcd and of each of its etcd calls. */
export const ETCD_CALL_TIMEOUT_MS = 5000;

/** How long one endpoint probe (a TCP connect) may take. */
const PROBE_MS = 1000;

export interface GiveUp {
  /** Give up once etcd has not answered for this long. */
  afterMs: number;
  /** Called once, with how long etcd has been silent and its last error. */
  onGiveUp(silentMs: number, err: Error): void;
}

/**
 * While a wait goes on through etcd failures, tells the operator so: after 3 s without an
 * answer, then every 5 s, and once etcd answers again. (A silent CLI looks hung.) With
 * `giveUp`, calls it once when etcd has been silent for its bound.
 */
export function etcdTrouble(say: (line: string) => void, hint: string, giveUp?: GiveUp): (err: Error | null) => void {
  let since: number | null = null;
  let saidAt = 0;
  let gaveUp = false;
  return (err) => {
    const now = Date.now();
    if (err === null) {
      if (saidAt > 0) say('etcd answers again');
      since = null;
      saidAt = 0;
      return;
    }
    since ??= now;
    if (giveUp && !gaveUp && now - since >= giveUp.afterMs) {
      gaveUp = true;
      giveUp.onGiveUp(now - since, err);
      return;
    }
    if (now - since >= 3000 && now - saidAt >= 5000) {
      saidAt = now;
      say(`etcd has not answered for ${Math.round((now - since) / 1000)} s (${err.message}); still waiting (${hint})`);
    }
  };
}

/** Whether something accepts a TCP connection at the endpoint URL within PROBE_MS. */
function accepts(endpoint: string): Promise<boolean> {
  let host: string;
  let port: number;
  try {
    const u = new URL(endpoint);
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = Number(u.port || (u.protocol === 'https:' ? 443 : 2379));
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(PROBE_MS, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** "(no quorum? 1 of 3 endpoints reachable)" and its variants, from TCP probes of each endpoint. */
export async function reachability(endpoints: readonly string[]): Promise<string> {
  const up = (await Promise.all(endpoints.map(accepts))).filter(Boolean).length;
  const n = endpoints.length;
  if (up === 0) return n === 1 ? '(its endpoint is not reachable: is etcd running?)' : `(none of the ${n} endpoints reachable: is etcd running?)`;
  if (up < n) return `(no quorum? ${up} of ${n} endpoints reachable)`;
  return n === 1 ? '(its endpoint is reachable: overloaded, or a member without quorum?)' : `(all ${n} endpoints reachable: overloaded, or without quorum?)`;
}

/**
 * The operator's sentence for etcd not answering: `etcd at <endpoints> did not answer within
 * <s> s (<reachability>)`.
 */
export async function describeEtcdSilence(endpoints: readonly string[], waitedMs: number): Promise<string> {
  return `etcd at ${endpoints.join(',')} did not answer within ${Math.max(1, Math.round(waitedMs / 1000))} s ${await reachability(endpoints)}`;
}

/** An UnavailableError whose message already says everything (explainEtcdSilence's result). */
export class EtcdSilentError extends UnavailableError {
  constructor(message: string, cause?: unknown) {
    super(message, cause);
    this.name = 'EtcdSilentError';
  }
}

/**
 * Rewrites an etcd-unavailable failure of one operation for the operator: the endpoints, how
 * many are reachable, and `outcome` (what was left behind: "nothing was changed", or how to
 * check a write whose outcome is unknown). Any other error is returned as it is.
 */
export async function explainEtcdSilence(err: unknown, endpoints: readonly string[], waitedMs: number, outcome: string): Promise<unknown> {
  if (!(err instanceof UnavailableError) || err instanceof EtcdSilentError) return err;
  return new EtcdSilentError(`${await describeEtcdSilence(endpoints, waitedMs)}: ${outcome}`, err);
}
