/**
 * Long-lived admin clients, one per redis server, for loops that ask the same servers again
 * and again (the agent's health checks and failover). Every call has its own deadline — a
 * hung server (SIGSTOP, a partition) must not stall the loop — and a client that failed or
 * timed out is thrown away, so a later call never queues behind a stuck one.
 *
 * Invariant: a cached client never reconnects by itself (adminClient's retryStrategy → null);
 * the next call after a failure makes a new one. Error classes are the caller's (the agent
 * maps them to its own codes), so this module decides only *which* failure happened.
 * Once given a replication login (useReplicationLogin), every REPLICAOF it sends makes the
 * replica log in as that user, never as the default user.
 */
import type { Redis } from 'ioredis';
import { adminClient, hasPassword, replicaOfCommands, type ReplicationLogin } from './redis-admin.js';
import { parseReplicationInfo, type ReplicationInfo } from './redis-info.js';

export interface RedisAdminErrors {
  /** No answer within the deadline, or the connection failed. */
  timeout(message: string, cause?: unknown): Error;
  /** The server answered with an error reply. */
  command(message: string, cause?: unknown): Error;
}

export interface RedisAdminPoolOptions {
  /** The servers' default-user password (requirepass), or none. */
  password?: string | null;
  /** CLIENT SETNAME of every client. */
  connectionName?: string;
  errors: RedisAdminErrors;
}

export class RedisAdmin {
  private readonly clients = new Map<string, Redis>();
  private closed = false;
  private login: ReplicationLogin | null = null;

  constructor(private readonly opts: RedisAdminPoolOptions) {}

  /** Sends one command to `addr`; a timeout error if there is no answer within `timeoutMs`. */
  async call(addr: string, args: readonly string[], timeoutMs: number): Promise<unknown> {
    const { errors } = this.opts;
    if (this.closed) throw errors.timeout(`${addr}: admin client closed`);
    const c = this.client(addr, timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    let expired: Error | null = null;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject((expired = errors.timeout(`${addr}: no answer to ${args[0]} within ${timeoutMs} ms`))), timeoutMs);
    });
    try {
      return await Promise.race([c.call(args[0]!, ...args.slice(1)), deadline]);
    } catch (err) {
      const e = err as Error;
      if (e.name === 'ReplyError') throw errors.command(`${addr}: ${args[0]}: ${e.message}`, e);
      this.drop(addr, c);
      if (e === expired) throw e;
      throw errors.timeout(`${addr}: ${args[0]} failed: ${e.message}`, e);
    } finally {
      clearTimeout(timer);
    }
  }

  async info(addr: string, timeoutMs: number): Promise<ReplicationInfo> {
    const text = await this.call(addr, ['INFO', 'replication'], timeoutMs);
    return parseReplicationInfo(String(text));
  }

  /**
   * REPLICAOF NO ONE (`master` null) or REPLICAOF host port, after the login: the replication
   * user's when one is set (useReplicationLogin), else masterauth when a password is set.
   */
  async replicaOf(addr: string, master: string | null, timeoutMs: number): Promise<void> {
    for (const cmd of replicaOfCommands(master, this.opts.password, this.login)) await this.call(addr, cmd, timeoutMs);
  }

  /**
   * From now on replicaOf() makes replicas log in as `login` (null: the default user again).
   * Set once the product's replication secret is known, by whoever also provisions that user
   * on the masters — a replica pointed at a master without the user cannot sync.
   */
  useReplicationLogin(login: ReplicationLogin | null): void {
    this.login = login;
  }

  /** Forgets servers no longer of interest. */
  retain(addrs: ReadonlySet<string>): void {
    for (const [addr, c] of this.clients) if (!addrs.has(addr)) this.drop(addr, c);
  }

  close(): void {
    this.closed = true;
    for (const [addr, c] of this.clients) this.drop(addr, c);
  }

  private client(addr: string, timeoutMs: number): Redis {
    let c = this.clients.get(addr);
    if (c && (c.status === 'end' || c.status === 'close')) {
      this.drop(addr, c);
      c = undefined;
    }
    if (!c) {
      c = adminClient(addr, {
        ...(hasPassword(this.opts.password) ? { password: this.opts.password } : {}),
        ...(this.opts.connectionName === undefined ? {} : { connectionName: this.opts.connectionName }),
        connectTimeoutMs: timeoutMs,
        // Each call races its own deadline; the client connects on first use.
        commandTimeoutMs: null,
        queueUntilConnected: true,
      });
      this.clients.set(addr, c);
    }
    return c;
  }

  private drop(addr: string, c: Redis): void {
    if (this.clients.get(addr) === c) this.clients.delete(addr);
    c.disconnect();
  }
}
