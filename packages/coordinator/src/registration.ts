/**
 * A proxy's registration: `/reborn/<p>/proxies/<id>` attached to a lease kept alive in the
 * background, so the key disappears on its own when the process dies (at most TTL seconds
 * later).
 *
 * Lease loss. etcd3 reports 'lost' when etcd says the lease expired, or when it could not
 * renew it for 2×TTL (the key is gone by then either way). We emit 'lost' at once — the owner
 * may stop trusting its view, e.g. stop serving until it reloads — and then register again
 * under a fresh lease, retrying with backoff until etcd answers, and emit 'registered'.
 *
 * Id ownership. The key is created only if absent (a txn on create_revision = 0), or if it
 * is still attached to our own previous lease (etcd restores leases after a restart, so after
 * an outage our old key may still be there). Anything else means another live process holds
 * the id: ConflictError. At start we wait up to one TTL for such a key to expire, because a
 * proxy restarted right after a crash meets its own predecessor's key.
 *
 * Taking over a dead predecessor. When that key names this host and a pid that does not run
 * here (`kill(pid, 0)` → ESRCH), its process is gone for sure: the key is deleted — only if it
 * is still the very record we judged (guarded by its mod revision) — and its lease revoked,
 * and we register at once instead of waiting the TTL out. A live pid, or another host (where
 * we cannot tell), keeps the wait: two live processes with one id must never both serve.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Lease } from 'etcd3';
import type { Conn } from './client.js';
import { ConflictError, ValidationError } from './errors.js';
import { encodeProxy, parseProxy, type ProxyInfo } from './models.js';
import type { Paths } from './paths.js';

export interface ProxyRegistrationEvents {
  /** The lease is gone (so is the key, or it soon will be). Re-registration has started. */
  lost: [err: Error];
  /** Registered again after a loss, under lease `leaseId`. */
  registered: [leaseId: string];
}

/** Whether process `pid` runs on this host (EPERM: it does, as another user). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

const RETRY_MIN_MS = 100;
const RETRY_WRITE_MS = 1000;

export class ProxyRegistration extends EventEmitter<ProxyRegistrationEvents> {
  private lease: Lease | null = null;
  private leaseIdValue: string | null = null;
  private closed = false;
  private readonly abort = new AbortController();
  /** The tail of the serialised registration writes (never rejects). */
  private writes: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | null = null;
  /** The pid of the crashed predecessor whose registration start() took over, if it did. */
  tookOverFrom: number | null = null;

  private constructor(
    private readonly conn: Conn,
    private readonly paths: Paths,
    private info: ProxyInfo,
    readonly ttlSeconds: number,
    private readonly onClose: () => void,
  ) {
    super();
  }

  /** Registers `info`; resolves once the key is written. */
  static async start(
    conn: Conn,
    paths: Paths,
    info: ProxyInfo,
    ttlSeconds: number,
    onClose: () => void = () => {},
  ): Promise<ProxyRegistration> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
      throw new ValidationError(`lease TTL must be a whole number of seconds ≥ 1, got ${ttlSeconds}`);
    }
    encodeProxy(info); // validate before touching etcd
    const reg = new ProxyRegistration(conn, paths, info, ttlSeconds, onClose);
    const deadline = Date.now() + ttlSeconds * 1000 + conn.callTimeoutMs;
    for (let delay = RETRY_MIN_MS; ; delay = Math.min(delay * 2, 1000)) {
      try {
        await reg.registerOnce(null);
        return reg;
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        if (await reg.takeOverDeadPredecessor()) continue;
        if (Date.now() + delay > deadline) throw err;
      }
      await sleep(delay);
    }
  }

  /**
   * Deletes the registration of our id when it names this host and a process that no longer
   * runs here (see the header). True when it did (or the key had gone already): register now.
   */
  private async takeOverDeadPredecessor(): Promise<boolean> {
    const etcd = this.conn.etcd;
    const key = this.paths.proxy(this.info.id);
    const res = await this.conn.call('read proxy registration', () => etcd.get(key).exec());
    const kv = res.kvs[0];
    if (kv === undefined) return true;
    let held: ProxyInfo;
    try {
      held = parseProxy(JSON.parse(kv.value.toString('utf8')), this.info.id, key);
    } catch {
      return false; // not a record we can judge: wait for its lease as before
    }
    const here = hostname();
    if (held.host !== here || this.info.host !== here || held.pid === this.info.pid || processRuns(held.pid)) return false;
    const res2 = await this.conn.call('take over proxy registration', () =>
      etcd.if(key, 'Mod', '==', kv.mod_revision).then(etcd.delete().key(key)).commit(),
    );
    if (!res2.succeeded) return false; // changed meanwhile: judged again on the next attempt
    if (kv.lease !== '0') {
      // Best effort: the key is gone already; the lease would only run out by itself.
      await this.conn.call('revoke predecessor lease', () => etcd.leaseClient.leaseRevoke({ ID: kv.lease })).catch(() => undefined);
    }
    this.tookOverFrom = held.pid;
    return true;
  }

  /** The current lease id, or null while re-registering. */
  get leaseId(): string | null {
    return this.leaseIdValue;
  }

  get proxy(): ProxyInfo {
    return this.info;
  }

  /**
   * Rewrites the registration (e.g. state starting → online) under the current lease.
   * Writes are serialised and each writes the newest info, so the key converges to the last
   * update even when two overlap. A failed write rejects and is retried in the background
   * (every RETRY_WRITE_MS until it lands or we close): `proxy` already says the new state, so
   * nobody else would ever notice that etcd still holds the old one.
   */
  async update(patch: Partial<Omit<ProxyInfo, 'id'>>): Promise<void> {
    const next: ProxyInfo = { ...this.info, ...patch, id: this.info.id };
    encodeProxy(next); // validate before it becomes ours
    this.info = next;
    await this.queueWrite();
  }

  private queueWrite(): Promise<void> {
    const write = this.writes.then(() => this.writeInfo());
    this.writes = write.catch(() => this.scheduleRetry());
    return write;
  }

  private async writeInfo(): Promise<void> {
    const id = this.leaseIdValue;
    // While re-registering there is no lease: the loop writes the newest info when it succeeds.
    if (id === null || this.closed) return;
    const value = encodeProxy(this.info);
    const etcd = this.conn.etcd;
    await this.conn.call('update proxy registration', () =>
      etcd.put(this.paths.proxy(this.info.id)).value(value).lease(id).exec(),
    );
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.queueWrite().catch(() => undefined);
    }, RETRY_WRITE_MS);
    this.retryTimer.unref();
  }

  /** Stops keepalives and revokes the lease, which deletes the key. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.onClose();
    const lease = this.lease;
    this.lease = null;
    this.leaseIdValue = null;
    if (lease) await this.conn.call('revoke proxy lease', () => lease.revoke());
  }

  /** Grants a lease and writes the key under it; `previous` is our last lease id, if any. */
  private async registerOnce(previous: string | null): Promise<void> {
    const etcd = this.conn.etcd;
    const lease = etcd.lease(this.ttlSeconds);
    lease.on('lost', (err) => this.onLost(lease, err));
    let id: string;
    try {
      id = await this.conn.call('grant proxy lease', () => lease.grant());
      const key = this.paths.proxy(this.info.id);
      const put = etcd.put(key).value(encodeProxy(this.info)).lease(id);
      let res = await this.conn.call('register proxy', () => etcd.if(key, 'Create', '==', 0).then(put).commit());
      if (!res.succeeded && previous !== null) {
        res = await this.conn.call('register proxy', () => etcd.if(key, 'Lease', '==', previous).then(put).commit());
      }
      if (!res.succeeded) {
        // Retryable: the holder may be a crashed process whose lease has not expired yet.
        throw new ConflictError(`proxy id ${this.info.id} is registered by another live process`, { retryable: true });
      }
    } catch (err) {
      // Best effort: an orphaned lease would only expire by itself after one TTL.
      lease.revoke().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      // close() ran while we were registering: take the key straight down again.
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.lease = lease;
    this.leaseIdValue = id;
    // etcd3 may have given up on this lease while we were writing the key.
    if (lease.revoked()) this.onLost(lease, new Error('lease lost during registration'));
  }

  private onLost(lease: Lease, err: Error): void {
    if (this.closed || lease !== this.lease) return;
    const previous = this.leaseIdValue;
    this.lease = null;
    this.leaseIdValue = null;
    this.emit('lost', err);
    void this.reregister(previous);
  }

  private async reregister(previous: string | null): Promise<void> {
    const maxDelay = Math.max(1000, (this.ttlSeconds * 1000) / 3);
    for (let delay = RETRY_MIN_MS; !this.closed; delay = Math.min(delay * 2, maxDelay)) {
      try {
        await this.registerOnce(previous);
        if (this.leaseIdValue !== null) this.emit('registered', this.leaseIdValue);
        return;
      } catch {
        // etcd still away, or our old key not yet expired: keep trying until closed.
      }
      try {
        await sleep(delay, undefined, { signal: this.abort.signal });
      } catch {
        return; // closed
      }
    }
  }
}
