/**
 * The one reading of redis INFO text: `parseInfo` turns it into a record of `field → value`
 * (section headers and blank lines dropped), and `replicationInfo` gives the replication
 * section a typed shape. Pure functions, no connection: every admin client in the tree
 * (config's operations, the agent's health checks) reads INFO through here.
 *
 * Invariant: there is exactly one rule for "how far has this server got" — replicationOffset()
 * — so the switchover, the HA leader and the migration tools compare the same number.
 * See docs/architecture.md (control path).
 */
import { splitAddr } from './models.js';

/** INFO fields by name, values as redis sent them (untrimmed text after the first colon). */
export type InfoFields = Record<string, string>;

/** `INFO` text → record of its `field:value` lines (section headers and blanks dropped). */
export function parseInfo(text: string): InfoFields {
  const out: InfoFields = {};
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.indexOf(':');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

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

/** An integer field, or null when absent, not an integer, or beyond exact JS numbers. */
function num(v: string | undefined): number | null {
  if (v === undefined || !/^-?\d+$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

/** The replication section of parsed INFO fields, typed. */
export function replicationInfo(fields: InfoFields): ReplicationInfo {
  const get = (k: string): string | undefined => fields[k]?.trim();
  const link = get('master_link_status');
  return {
    role: get('role') ?? 'unknown',
    masterReplOffset: num(get('master_repl_offset')),
    slaveReplOffset: num(get('slave_repl_offset')),
    masterHost: get('master_host') ?? null,
    masterPort: num(get('master_port')),
    linkUp: link === undefined ? null : link === 'up',
    masterLastIoSecondsAgo: num(get('master_last_io_seconds_ago')),
    connectedReplicas: num(get('connected_slaves')) ?? 0,
  };
}

/** Parses the text of INFO replication. */
export function parseReplicationInfo(text: string): ReplicationInfo {
  return replicationInfo(parseInfo(text));
}

/** The offset a promotion compares: what a replica has processed, or a master's own stream. */
export function replicationOffset(info: ReplicationInfo): number | null {
  return info.role === 'slave' ? (info.slaveReplOffset ?? info.masterReplOffset) : info.masterReplOffset;
}

/** Whether `info` says the server replicates from `addr` (host:port). */
export function replicatesFrom(info: ReplicationInfo, addr: string): boolean {
  if (info.role !== 'slave' || info.masterHost === null || info.masterPort === null) return false;
  const { host, port } = splitAddr(addr);
  const mh = info.masterHost.replace(/^\[|\]$/g, '');
  return mh === host && info.masterPort === port;
}
