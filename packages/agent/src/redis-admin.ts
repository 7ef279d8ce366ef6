/**
 * Talking to redis servers from the agent: health checks (INFO replication) and the few admin
 * commands of a failover (REPLICAOF). Every call has a deadline — a hung server (SIGSTOP, a
 * partition) must not stall the HA loop — and a client that failed or timed out is thrown
 * away, so a later call never queues behind a stuck one.
 *
 * One ioredis client per server is kept while the server answers; it never reconnects by
 * itself (retryStrategy → null): the next call makes a new one.
 */
import { Redis } from 'ioredis';
import { RedisCommandError, RedisTimeoutError } from './errors.js';

export interface ReplicationInfo {
  /** `master` or `slave` (redis's word for replica). */
  role: string;
  /** master_repl_offset: how far this server's replication stream goes. */
  masterReplOffset: number | null;
  /** slave_repl_offset (replicas): how much of its master's stream it has processed. */
  slaveReplOffset: number | null;
  masterHost: string | null;
  masterPort: number | null;
  /** master_link_status (replicas): up or not. */
  linkUp: boolean | null;
  masterLastIoSecondsAgo: number | null;
  connectedReplicas: number;
}

function num(v: string | undefined): number | null {
  if (v === undefined || !/^-?\d+$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

/** Parses the text of INFO replication. */
export function parseReplicationInfo(text: string): ReplicationInfo {
  const m = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  const link = m.get('master_link_status');
  return {
    role: m.get('role') ?? 'unknown',
    masterReplOffset: num(m.get('master_repl_offset')),
    slaveReplOffset: num(m.get('slave_repl_offset')),
    masterHost: m.get('master_host') ?? null,
    masterPort: num(m.get('master_port')),
    linkUp: link === undefined ? null : link === 'up',
    masterLastIoSecondsAgo: num(m.get('master_last_io_seconds_ago')),
    connectedReplicas: num(m.get('connected_slaves')) ?? 0,
  };
}

/** The offset a promotion compares: what a replica has processed, or a master's own stream. */
export function replicationOffset(info: ReplicationInfo): number | null {
  return info.role === 'slave' ? (info.slaveReplOffset ?? info.masterReplOffset) : info.masterReplOffset;
}

/** Whether `info` says the server replicates from `addr` (host:port). */
export function replicatesFrom(info: ReplicationInfo, addr: string): boolean {
  if (info.role !== 'slave' || info.masterHost === null || info.masterPort === null) return false;
  const [host, port] = splitAddr(addr);
  const mh = info.masterHost.replace(/^\[|\]$/g, '');
  return mh === host && info.masterPort === port;
}

/** `host:port` → [host, port]; IPv6 hosts come in brackets (`[::1]:6379`) and leave without. */
export function splitAddr(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
  return [host, Number(addr.slice(i + 1))];
}

export class RedisAdmin {
  private readonly clients = new Map<string, Redis>();
  private closed = false;

  constructor(private readonly opts: { password?: string } = {}) {}

  /** Sends one command to `addr`; RedisTimeoutError if there is no answer within `timeoutMs`. */
  async call(addr: string, args: readonly string[], timeoutMs: number): Promise<unknown> {
    if (this.closed) throw new RedisTimeoutError(`${addr}: admin client closed`);
    const c = this.client(addr, timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RedisTimeoutError(`${addr}: no answer to ${args[0]} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([c.call(args[0]!, ...args.slice(1)), deadline]);
    } catch (err) {
      const e = err as Error;
      if (e.name === 'ReplyError') throw new RedisCommandError(`${addr}: ${args[0]}: ${e.message}`, e);
      this.drop(addr, c);
      if (e instanceof RedisTimeoutError) throw e;
      throw new RedisTimeoutError(`${addr}: ${args[0]} failed: ${e.message}`, e);
    } finally {
      clearTimeout(timer);
    }
  }

  async info(addr: string, timeoutMs: number): Promise<ReplicationInfo> {
    const text = await this.call(addr, ['INFO', 'replication'], timeoutMs);
    return parseReplicationInfo(String(text));
  }

  /** REPLICAOF NO ONE (`master` null) or REPLICAOF host port. */
  async replicaOf(addr: string, master: string | null, timeoutMs: number): Promise<void> {
    if (master === null) {
      await this.call(addr, ['REPLICAOF', 'NO', 'ONE'], timeoutMs);
      return;
    }
    const [host, port] = splitAddr(master);
    // The new master asks for the password too; a server not started by the agent may lack it.
    if (this.opts.password !== undefined) await this.call(addr, ['CONFIG', 'SET', 'masterauth', this.opts.password], timeoutMs);
    await this.call(addr, ['REPLICAOF', host, String(port)], timeoutMs);
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
      const [host, port] = splitAddr(addr);
      c = new Redis({
        host,
        port,
        ...(this.opts.password === undefined ? {} : { password: this.opts.password }),
        lazyConnect: true,
        connectTimeout: timeoutMs,
        enableReadyCheck: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        autoResubscribe: false,
        connectionName: 'reborn-agent',
      });
      // Errors reach the caller through the command; this only keeps 'error' from throwing.
      c.on('error', () => undefined);
      this.clients.set(addr, c);
    }
    return c;
  }

  private drop(addr: string, c: Redis): void {
    if (this.clients.get(addr) === c) this.clients.delete(addr);
    c.disconnect();
  }
}
