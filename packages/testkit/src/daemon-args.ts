/**
 * The command lines of the daemons every launcher starts — etcd, redis-server, reborn-proxy,
 * reborn-agent, the reborn-config dashboard — in one place, so tests (etcd.ts, proxy.ts),
 * bench/lib.mjs and `npm start` (local-cluster.ts) start them the same way. (`npm start`
 * runs etcd, the agent and the dashboard from here; its redis-servers and proxy are started
 * by the agent, which builds their command lines itself.)
 * Invariant: builders only build argv; they spawn nothing and touch no file. Secrets (the
 * redis password, tokens) never appear here: they travel in files or the environment.
 */
import { fileURLToPath } from 'node:url';

/** The repo root, from this file's place: packages/testkit/{src,dist}/daemon-args.* */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PROXY_BIN = `${REPO_ROOT}packages/proxy/bin/reborn-proxy.js`;
export const AGENT_BIN = `${REPO_ROOT}packages/agent/bin/reborn-agent.js`;
export const CONFIG_BIN = `${REPO_ROOT}packages/config/bin/reborn-config.js`;

export interface EtcdArgsOptions {
  /** The member name (also its name in --initial-cluster). */
  name: string;
  dataDir: string;
  clientUrl: string;
  peerUrl: string;
  /** `name=peerUrl,…` of every member when this one is part of a larger cluster; default: itself alone. */
  initialCluster?: string;
}

/** An etcd member listening on `clientUrl` (clients) and `peerUrl` (peers); alone unless `initialCluster` names others. */
export function etcdArgs(o: EtcdArgsOptions): string[] {
  return [
    '--name', o.name,
    '--data-dir', o.dataDir,
    '--listen-client-urls', o.clientUrl,
    '--advertise-client-urls', o.clientUrl,
    '--listen-peer-urls', o.peerUrl,
    '--initial-advertise-peer-urls', o.peerUrl,
    '--initial-cluster', o.initialCluster ?? `${o.name}=${o.peerUrl}`,
  ];
}

export interface RedisArgsOptions {
  port: number;
  host?: string;
  dir: string;
  /** `none`: no RDB, no AOF (a fork mid-benchmark shows up as latency); `aof`: appendonly, no RDB. */
  persistence: 'none' | 'aof';
  /** A config file read first (e.g. a 0600 file with requirepass, keeping the password out of argv). */
  configFile?: string;
  /** `--protected-mode no` (servers without a password that tests reach from loopback anyway). */
  unprotected?: boolean;
  /** Start as a replica of this `host:port`. */
  replicaOf?: { host: string; port: number };
}

export function redisArgs(o: RedisArgsOptions): string[] {
  return [
    ...(o.configFile === undefined ? [] : [o.configFile]),
    '--port', String(o.port),
    '--bind', o.host ?? '127.0.0.1',
    '--dir', o.dir,
    '--save', '',
    '--appendonly', o.persistence === 'aof' ? 'yes' : 'no',
    ...(o.unprotected ? ['--protected-mode', 'no'] : []),
    ...(o.replicaOf === undefined ? [] : ['--replicaof', o.replicaOf.host, String(o.replicaOf.port)]),
  ];
}

export interface ProxyArgsOptions {
  addr: string;
  adminAddr: string;
  /** etcd client URL(s), comma-separated. */
  etcd: string;
  product: string;
  id?: string;
  /** `--cluster-addr`: the proxy also listens here as a Redis Cluster. */
  clusterAddr?: string;
}

/** reborn-proxy's flags (after the script path). */
export function proxyArgs(o: ProxyArgsOptions): string[] {
  return [
    '--addr', o.addr,
    '--admin-addr', o.adminAddr,
    '--etcd', o.etcd,
    '--product', o.product,
    ...(o.id === undefined ? [] : ['--id', o.id]),
    ...(o.clusterAddr === undefined ? [] : ['--cluster-addr', o.clusterAddr]),
  ];
}

export interface AgentArgsOptions {
  httpAddr: string;
  etcd: string;
  product: string;
  id: string;
  dataDir: string;
  ha: boolean;
}

/** reborn-agent's flags (after the script path). */
export function agentArgs(o: AgentArgsOptions): string[] {
  return [
    '--http-addr', o.httpAddr,
    ...(o.ha ? ['--ha'] : []),
    '--etcd', o.etcd,
    '--product', o.product,
    '--id', o.id,
    '--data-dir', o.dataDir,
  ];
}

/** `reborn-config … dashboard`'s flags (after the script path). */
export function dashboardArgs(o: { etcd: string; product: string; httpAddr: string }): string[] {
  return ['--etcd', o.etcd, '--product', o.product, 'dashboard', '--http-addr', o.httpAddr];
}
