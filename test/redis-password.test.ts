/**
 * A product whose every redis-server requires a password (requirepass + masterauth, as
 * reborn-agent starts them): nothing of reborn may rely on an open default user. Real etcd,
 * two groups of master + replica, a proxy and an HA agent, all given REBORN_REDIS_PASSWORD:
 *   - a client without the password is refused by the servers; the proxy serves (it creates
 *     its own ACL user with the password);
 *   - a request on a migrating slot moves its key (the proxy's MIGRATE logs in to the target);
 *   - `reborn-config slot migrate` moves every key (the runner's connections and MIGRATE);
 *   - `reborn-config server promote` switches a group over (replicas re-pointed with masterauth);
 *   - `reborn-config proxy offline` fences the proxy (ACL SETUSER … off needs the password);
 *   - the agent fails a killed master over (its health checks log in).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '@reborn/protocol';
import { proxyAclUser } from '@reborn/coordinator';
import { startCluster, stopAll, waitFor, type Cluster, type ProxyProcess } from '@reborn/testkit';
import { keysOfGroup } from './helpers.js';
import { startAgent, waitLeader, type AgentProcess } from './agent-helpers.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG_BIN = `${REPO}packages/config/bin/reborn-config.js`;
const PW = 'product-redis-secret';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ groups: 2, replicas: 1, proxies: 1, redisPassword: PW });
}, 60_000);

afterAll(async () => {
  await stopAll();
});

/** `reborn-config …` for this product with the password in its environment; rejects on a non-zero exit. */
function config(...args: string[]): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, REBORN_REDIS_PASSWORD: PW };
  const argv = [CONFIG_BIN, '--etcd', cluster.etcd.clientUrl, '--product', cluster.product, ...args];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, argv, { env, cwd: REPO, timeout: 90_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`reborn-config ${args.join(' ')} failed: ${stderr}${stdout}`));
      else resolve(stdout);
    });
  });
}

async function proxyId(p: ProxyProcess): Promise<string> {
  return (JSON.parse(await p.adminGet('/api/proxy')) as { id: string }).id;
}

/** A client of group `gid`'s master, closed after this test (a later test kills a master). */
const opened: Redis[] = [];
function master(gid: number): Redis {
  const c = cluster.groups.find((g) => g.id === gid)!.master.client();
  opened.push(c);
  return c;
}
afterEach(() => {
  for (const c of opened.splice(0)) c.disconnect();
});

describe('a product whose redis servers require a password', () => {
  it('refuses clients without it, and the proxy serves', async () => {
    const anonymous = new Redis({ host: '127.0.0.1', port: cluster.groups[0]!.master.port, lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false });
    anonymous.on('error', () => undefined);
    try {
      await anonymous.connect();
      await expect(anonymous.get('x')).rejects.toThrow(/NOAUTH/);
    } finally {
      anonymous.disconnect();
    }
    const c = cluster.proxies[0]!.client();
    const keys = [...keysOfGroup('pw:a:', 1, 50), ...keysOfGroup('pw:b:', 2, 50)];
    for (const k of keys) expect(await c.set(k, `v-${k}`)).toBe('OK');
    expect(await c.mget(...keys)).toEqual(keys.map((k) => `v-${k}`));
    // The proxy talks to redis as its own ACL user, created with the password.
    const user = proxyAclUser(cluster.product, await proxyId(cluster.proxies[0]!));
    expect(await master(1).call('ACL', 'GETUSER', user)).not.toBeNull();
  });

  it('moves the key of a request on a migrating slot (the proxy MIGRATE logs in to the target)', async () => {
    const key = '{pwmove}k';
    const slot = keySlot(Buffer.from(key));
    const from = (await cluster.store.getSlot(slot)).group;
    const to = from === 1 ? 2 : 1;
    await master(from).set(key, 'moved-by-proxy');
    await cluster.store.putSlots([{ id: slot, state: 'migrating', group: to, from, to }]);
    const proxy = cluster.proxies[0]!;
    await waitFor(async () => (JSON.parse(await proxy.adminGet('/api/proxy')) as { slots: Record<string, number> }).slots['migrating'] === 1, {
      what: 'the proxy to see the slot migrating',
    });
    expect(await proxy.client().get(key)).toBe('moved-by-proxy');
    expect(await master(from).exists(key)).toBe(0);
    expect(await master(to).get(key)).toBe('moved-by-proxy');
    await cluster.store.putSlots([{ id: slot, state: 'online', group: to }]);
  });

  it('slot migrate moves every key with the runner logging in to source and target', async () => {
    const c = cluster.proxies[0]!.client();
    const keys = keysOfGroup('pw:mig:', 1, 300).filter((k) => keySlot(Buffer.from(k)) < 64);
    expect(keys.length).toBeGreaterThan(10);
    for (const k of keys) await c.set(k, k);
    await config('slot', 'migrate', '0', '63', '2');
    const slots = await cluster.store.listSlots();
    expect(slots.slice(0, 64).every((s) => s.state === 'online' && s.group === 2)).toBe(true);
    expect(await c.mget(...keys)).toEqual(keys);
    expect(await master(2).exists(...keys)).toBe(keys.length);
    expect(await master(1).exists(...keys)).toBe(0);
  });

  it('server promote switches group 2 over, re-pointing the old master with masterauth', async () => {
    const g2 = cluster.groups.find((g) => g.id === 2)!;
    const replica = g2.replicas[0]!;
    await config('server', 'promote', '2', replica.addr);
    const group = await cluster.store.getGroup(2);
    expect(group?.servers.find((s) => s.role === 'master')?.addr).toBe(replica.addr);
    const old = master(2);
    await waitFor(async () => /master_link_status:up/.test(await old.info('replication')), { what: 'the old master replicating from the new one' });
    // Swap back so the rest of the file finds the masters where the cluster says.
    await config('server', 'promote', '2', g2.master.addr);
  });

  it('proxy offline fences the proxy (ACL user off), and the proxy re-enables it to come back', async () => {
    const extra = await cluster.addProxy();
    const c = extra.client({ maxRetriesPerRequest: 0 });
    expect(await c.set('pw:fence', '1')).toBe('OK');
    const id = await proxyId(extra);
    // The CLI exits 0 only once ACL SETUSER … off and CLIENT KILL USER ran on every master:
    // both need the password.
    await config('proxy', 'offline', id);
    // Its connections were killed: the next request reconnects, and the backend refuses its user.
    await c.get('pw:fence').catch(() => null);
    // The proxy finds itself refused at a backend: fenced. A live proxy then re-registers,
    // reloads, and re-enables its user (ACL SETUSER … on, with the password) before serving.
    await waitFor(() => extra.logs.some((l) => l.includes('proxy fenced: refusing data commands')), { what: 'the proxy to see its fence' });
    await waitFor(() => extra.logs.some((l) => l.includes('proxy unfenced: re-registered, table reloaded, serving again')), {
      timeoutMs: 30_000,
      what: 'the proxy to re-enable its user and serve again',
    });
    await waitFor(async () => (await c.get('pw:fence').catch(() => null)) === '1', { what: 'reads through the proxy again' });
    // Enabled on group 1's master: during the recovery, or — when that master was slow to
    // answer then (a loaded machine) — at the proxy's next connection to it, which finds the
    // user still off with no fence record in etcd and re-enables it (docs/proxy-recovery.md).
    const user = proxyAclUser(cluster.product, id);
    const [inGroup1] = keysOfGroup('pw:g1', 1, 1);
    const flagsOn1 = async (): Promise<boolean> => {
      await c.get(inGroup1!).catch(() => null);
      const flags = (await master(1).call('ACL', 'GETUSER', user)) as unknown[];
      return (flags[flags.findIndex((v) => String(v) === 'flags') + 1] as unknown[]).map(String).includes('on');
    };
    await waitFor(flagsOn1, { timeoutMs: 30_000, what: "the proxy's user on again on group 1's master" });
    c.disconnect();
  });

  it('the HA agent fails a killed master over', async () => {
    const agent: AgentProcess = await startAgent({
      etcd: cluster.etcd.clientUrl,
      product: cluster.product,
      id: 'pw-ha',
      args: ['--ha', '--down-after-ms', '1500', '--redis-password', PW],
    });
    try {
      await waitLeader(agent);
      // Only a leader that can log in sees the servers up: a failed login would look like a dead server.
      await waitFor(
        async () => {
          const servers = (await agent.api('GET', '/api/ha')).body.servers as { up: boolean }[];
          return servers.length === 4 && servers.every((s) => s.up);
        },
        { what: 'the leader to see all four servers up' },
      );
      const g1 = cluster.groups.find((g) => g.id === 1)!;
      await g1.master.kill('SIGKILL');
      const group = await waitFor(
        async () => {
          const g = await cluster.store.getGroup(1);
          return g?.servers.find((s) => s.role === 'master')?.addr === g1.replicas[0]!.addr ? g : null;
        },
        { timeoutMs: 20_000, what: 'group 1 failed over to its replica' },
      );
      expect(group.servers.filter((s) => s.role === 'master')).toHaveLength(1);
      const c = cluster.proxies[0]!.client();
      const key = keysOfGroup('pw:after:', 1, 1)[0]!;
      await waitFor(async () => (await c.set(key, 'after').catch(() => null)) === 'OK', { timeoutMs: 15_000, what: 'writes to group 1 again' });
    } finally {
      await agent.stop();
    }
  });
});
