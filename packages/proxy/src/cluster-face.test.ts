/**
 * The cluster face's replies, byte for byte against a real redis-server 7 running as a
 * one-node cluster (CLUSTER ADDSLOTSRANGE 0 16383), in RESP2 and RESP3: the face announces
 * that server's own address, so only what must differ (the node id, the bus port, the config
 * epoch) is normalised before comparing.
 */
import net from 'node:net';
import pino from 'pino';
import { encodeCommand } from '@reborn/protocol';
import { freePort, startRedis, waitFor, type RedisServer } from '@reborn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterFace, answerCluster, isClusterSession } from './cluster-face.js';
import { nodeIdOf } from './cluster-map.js';
import type { Session } from './session.js';

/** The end of the RESP2/RESP3 frame starting at `pos`, or -1 when incomplete. */
function frameEnd(buf: Buffer, pos: number): number {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return -1;
  const line = buf.toString('latin1', pos + 1, eol);
  const next = eol + 2;
  switch (String.fromCharCode(buf[pos]!)) {
    case '$':
    case '=':
    case '!':
      if (line === '-1') return next;
      return buf.length >= next + Number(line) + 2 ? next + Number(line) + 2 : -1;
    case '*':
    case '~':
    case '>':
    case '%': {
      const items = line === '-1' ? 0 : Number(line) * (buf[pos] === 0x25 ? 2 : 1);
      let p = next;
      for (let i = 0; i < items && p >= 0; i++) p = frameEnd(buf, p);
      return p;
    }
    default:
      return next; // + - : _ , # (
  }
}

/** Sends `commands` on one connection and returns each reply's raw bytes. */
async function rawReplies(port: number, commands: Array<Array<string | Buffer>>): Promise<Buffer[]> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (buf = Buffer.concat([buf, chunk])));
  socket.write(Buffer.concat(commands.map((c) => encodeCommand(c))));
  try {
    return await waitFor(() => {
      const out: Buffer[] = [];
      for (let pos = 0; out.length < commands.length; ) {
        const end = frameEnd(buf, pos);
        if (end < 0) return null;
        out.push(buf.subarray(pos, end));
        pos = end;
      }
      return out;
    }, { what: 'replies from redis' });
  } finally {
    socket.destroy();
  }
}

const stubSession = (resp: 2 | 3): Session => ({ resp }) as unknown as Session;
const logger = pino({ level: 'silent' });

describe('cluster face replies match a redis-server cluster node', () => {
  let redis: RedisServer;
  let face: ClusterFace;
  let redisId: string;
  const ourId = nodeIdOf('prod', 'proxy-1');

  beforeAll(async () => {
    // The bus port must be free as well; announce-ip makes the node list its own address.
    redis = await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-port', String(await freePort()), '--cluster-announce-ip', '127.0.0.1'] });
    const admin = redis.client();
    await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    await waitFor(async () => /cluster_state:ok/.test(String(await admin.call('CLUSTER', 'INFO'))), { what: 'cluster_state:ok' });
    redisId = String(await admin.call('CLUSTER', 'MYID'));
    face = new ClusterFace({ product: 'prod', proxyId: 'proxy-1', logger, serving: () => true });
    face.announceAt(`127.0.0.1:${redis.port}`);
  }, 30_000);
  afterAll(async () => {
    await redis?.stop();
  });

  const ask = (resp: 2 | 3, ...args: string[]): Buffer => {
    const session = stubSession(resp);
    face.adopt(session);
    return answerCluster(session, `cluster|${args[0]!.toLowerCase()}`, ['CLUSTER', ...args].map((a) => Buffer.from(a)));
  };
  /** Redis' replies to `commands` (after HELLO 3 for RESP3), its node id swapped for ours. */
  const fromRedis = async (resp: 2 | 3, commands: string[][]): Promise<string[]> => {
    const hello = resp === 3 ? [['HELLO', '3']] : [];
    const replies = await rawReplies(redis.port, [...hello, ...commands]);
    return replies.slice(hello.length).map((r) => r.toString('latin1').replaceAll(redisId, ourId));
  };

  for (const resp of [2, 3] as const) {
    it(`RESP${resp}: SLOTS, SHARDS, MYID, REPLICAS, KEYSLOT and errors are byte-identical`, async () => {
      const commands = [['SLOTS'], ['SHARDS'], ['MYID'], ['REPLICAS', redisId], ['REPLICAS', 'nope'], ['KEYSLOT', '{user1}:x']];
      const expected = await fromRedis(resp, commands.map((c) => ['CLUSTER', ...c]));
      const ours = commands.map((c) => ask(resp, ...c.map((a) => (a === redisId ? ourId : a))).toString('latin1'));
      expect(ours).toEqual(expected);
    });

    it(`RESP${resp}: NODES and INFO are text of the same lines (bus port and epochs aside)`, async () => {
      const [nodes, info] = await fromRedis(resp, [['CLUSTER', 'NODES'], ['CLUSTER', 'INFO']]);
      const norm = (s: string): string =>
        s.replace(/^=\d+\r\ntxt:|^\$\d+\r\n/, resp === 3 ? 'VERBATIM:' : 'BULK:')
          .replace(/@\d+ /g, '@BUS ')
          .replace(/ - 0 (\d+) \d+ connected/g, ' - 0 $1 EPOCH connected')
          .replace(/(cluster_(current|my)_epoch):\d+/g, '$1:EPOCH');
      expect(norm(ask(resp, 'NODES').toString('latin1'))).toBe(norm(nodes!));
      expect(norm(ask(resp, 'INFO').toString('latin1'))).toBe(norm(info!));
      expect(norm(nodes!)).toMatch(resp === 3 ? /^VERBATIM:/ : /^BULK:/);
    });
  }

  it('KEYSLOT agrees with redis on tags, empty tags, binary keys', async () => {
    const keys = ['', 'a', 'foo', '{user1}:x', '{}x', 'x{}', '{a}{b}', 'a{b', 'a}b{c}', '\u00ff\u0000bin', ...Array.from({ length: 200 }, (_, i) => `key:${i * 7919}`)];
    const expected = await rawReplies(redis.port, keys.map((k) => ['CLUSTER', 'KEYSLOT', Buffer.from(k, 'latin1')]));
    const ours = keys.map((k) => answerCluster(stubSession(2), 'cluster|keyslot', [Buffer.from('CLUSTER'), Buffer.from('KEYSLOT'), Buffer.from(k, 'latin1')]));
    expect(ours.map((b) => b.toString('latin1'))).toEqual(expected.map((b) => b.toString('latin1')));
  });
});

describe('cluster and plain sessions', () => {
  const face = new ClusterFace({ product: 'prod', proxyId: 'proxy-1', logger, serving: () => false });
  face.announceAt('127.0.0.1:7000');
  const args = (...a: string[]): Buffer[] => a.map((x) => Buffer.from(x));

  it('a plain session answers KEYSLOT and has cluster support disabled otherwise', () => {
    const plain = stubSession(2);
    expect(isClusterSession(plain)).toBe(false);
    expect(answerCluster(plain, 'cluster|keyslot', args('CLUSTER', 'KEYSLOT', 'foo')).toString()).toBe(':12182\r\n');
    for (const sub of ['slots', 'shards', 'nodes', 'info', 'myid']) {
      expect(answerCluster(plain, `cluster|${sub}`, args('CLUSTER', sub)).toString()).toBe('-ERR This instance has cluster support disabled\r\n');
    }
  });

  it('an adopted session is a cluster session; INFO says fail while the proxy does not serve', () => {
    const session = stubSession(2);
    face.adopt(session);
    expect(isClusterSession(session)).toBe(true);
    expect(answerCluster(session, 'cluster|info', args('CLUSTER', 'INFO')).toString()).toContain('cluster_state:fail\r\n');
    expect(answerCluster(session, 'cluster|myid', args('CLUSTER', 'MYID')).toString()).toBe(`$40\r\n${nodeIdOf('prod', 'proxy-1')}\r\n`);
  });

  it('a host name is announced as the endpoint and as hostname metadata', () => {
    const named = new ClusterFace({ product: 'prod', proxyId: 'proxy-1', logger, serving: () => true });
    named.announceAt('proxy-1.example:7000');
    const slots = named.answer(3, 'cluster|slots', args('CLUSTER', 'SLOTS')).toString();
    expect(slots).toContain('$15\r\nproxy-1.example\r\n:7000\r\n');
    expect(slots).toContain('%1\r\n$8\r\nhostname\r\n$15\r\nproxy-1.example\r\n');
    expect(named.answer(2, 'cluster|nodes', args('CLUSTER', 'NODES')).toString()).toContain(' proxy-1.example:7000@0,proxy-1.example myself,master ');
  });
});
