/**
 * Commands the proxy answers itself or aggregates (PING, ECHO, QUIT, SELECT, HELLO, CLIENT,
 * TIME, INFO, DBSIZE, COMMAND), the refusals and their error texts, and inline commands typed
 * as into telnet — the latter over raw TCP, compared with a direct redis where it matters.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, startRedis, stopAll, type Cluster, type RedisServer } from '@reborn/testkit';
import { RawClient, RespError, cmd, dataReady, keysOfGroup, masterClients, plain, type Reply } from './helpers.js';

let cluster: Cluster;
let reference: RedisServer;
let proxy: Redis;
let port: number;

beforeAll(async () => {
  const [c, ref] = await Promise.all([startCluster({ groups: 2, proxies: 1 }), startRedis()]);
  cluster = c;
  reference = ref;
  proxy = c.proxies[0]!.client();
  port = c.proxies[0]!.port;
  await dataReady(port);
});

afterAll(stopAll);

/** Opens a raw connection to the proxy, or to the reference redis with `direct`. */
function raw(direct = false): Promise<RawClient> {
  return RawClient.connect(direct ? reference.port : port);
}

function errorText(r: Reply): string {
  if (!(r instanceof RespError)) throw new Error(`expected an error reply, got ${JSON.stringify(plain(r))}`);
  return r.message;
}

describe('connection commands', () => {
  it('PING, PING msg, ECHO', async () => {
    expect(await proxy.ping()).toBe('PONG');
    expect(await proxy.ping('hello world')).toBe('hello world');
    expect(await proxy.echo('a\r\nb')).toBe('a\r\nb');
    const bin = Buffer.from([0, 1, 2, 255, 13, 10]);
    expect(await proxy.echoBuffer(bin)).toEqual(bin);
  });

  it('QUIT answers +OK and then the connection closes (later requests are not run)', async () => {
    const c = await raw();
    c.write(Buffer.concat([cmd('PING'), cmd('QUIT'), cmd('SET', 'local:after-quit', '1')]));
    expect((await c.next(2)).map(plain)).toEqual(['PONG', 'OK']);
    await c.waitClosed();
    expect(c.replies).toHaveLength(2);
    expect(await proxy.exists('local:after-quit')).toBe(0);
    // ioredis' own quit() sees the same.
    const q = cluster.proxies[0]!.client();
    await q.ping();
    const ended = new Promise((resolve) => q.once('end', resolve));
    expect(await q.quit()).toBe('OK');
    await ended;
  });

  it('SELECT 0 is accepted, SELECT 1 is an error', async () => {
    expect(await proxy.select(0)).toBe('OK');
    await expect(proxy.select(1)).rejects.toThrow('ERR DB index is out of range');
    expect(await proxy.ping()).toBe('PONG');
  });

  it('HELLO and HELLO 2 answer the RESP2 map-as-array with proto 2', async () => {
    for (const args of [[], ['2']]) {
      const reply = (await proxy.call('HELLO', ...args)) as unknown[];
      expect(Array.isArray(reply)).toBe(true);
      expect(reply.length % 2).toBe(0);
      const map = new Map<unknown, unknown>();
      for (let i = 0; i < reply.length; i += 2) map.set(reply[i], reply[i + 1]);
      expect(map.get('proto')).toBe(2);
      expect(map.get('server')).toBe('redis');
      expect(typeof map.get('version')).toBe('string');
      expect(typeof map.get('id')).toBe('number');
    }
    const c = await raw();
    expect(plain(await c.call('HELLO', '2', 'SETNAME', 'hello-name'))).toContain('proto');
    expect(plain(await c.call('CLIENT', 'GETNAME'))).toBe('hello-name');
    c.destroy();
  });

  it('HELLO 4 answers -NOPROTO and the connection stays usable', async () => {
    const c = await raw();
    c.write('*2\r\n$5\r\nHELLO\r\n$1\r\n4\r\n');
    expect(errorText(await c.one())).toBe('NOPROTO unsupported protocol version');
    expect(plain(await c.call('PING'))).toBe('PONG');
    expect(errorText(await c.call('HELLO', 'x'))).toMatch(/^ERR Protocol version is not an integer/);
    c.destroy();
  });

  it('CLIENT SETNAME / GETNAME / ID', async () => {
    const a = cluster.proxies[0]!.client();
    const b = cluster.proxies[0]!.client();
    expect(await a.client('GETNAME')).toBeNull();
    expect(await a.client('SETNAME', 'worker-1')).toBe('OK');
    expect(await a.client('GETNAME')).toBe('worker-1');
    expect(await b.client('GETNAME')).toBeNull();
    await expect(a.client('SETNAME', 'has space')).rejects.toThrow(/^ERR Client names cannot contain spaces/);
    const [idA, idB] = [await a.client('ID'), await b.client('ID')];
    expect(typeof idA).toBe('number');
    expect(idA).not.toBe(idB);
    expect(await a.client('ID')).toBe(idA);
    await expect(a.client('KILL', 'ID', '1')).rejects.toThrow(/not supported by reborn/);
    // CLIENT INFO / LIST: Redis' line format, for this proxy's own connections.
    await a.client('SETINFO', 'LIB-NAME', 'mylib');
    const info = String(await a.client('INFO'));
    expect(info).toMatch(new RegExp(`^id=${idA} addr=127\\.0\\.0\\.1:\\d+ laddr=\\S+ fd=-1 name=worker-1 age=\\d+ idle=\\d+ flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 `));
    expect(info).toMatch(/ cmd=client\|info user=default redir=-1 resp=2 lib-name=mylib lib-ver=\S*\n$/);
    const list = String(await b.client('LIST'));
    expect(list.split('\n').filter((l) => l.startsWith(`id=${idA} `) || l.startsWith(`id=${idB} `))).toHaveLength(2);
    expect(String(await b.client('LIST', 'ID', String(idA)))).toBe(String(await b.client('LIST', 'ID', String(idA))).split('\n')[0] + '\n');
    await expect(b.client('LIST', 'TYPE', 'bogus')).rejects.toThrow(/^ERR Unknown client type 'bogus'/);
    await expect(a.client('SETINFO', 'LIB-FOO', 'x')).rejects.toThrow(/^ERR Unrecognized option 'LIB-FOO'/);
  });

  it('TIME is [seconds, microseconds] of the local clock', async () => {
    const master = masterClients(cluster)[0]!;
    const [before] = await master.time();
    const [sec, usec] = (await proxy.time()) as unknown as [string, string];
    const [after] = await master.time();
    expect(sec).toMatch(/^\d+$/);
    expect(usec).toMatch(/^\d{1,6}$/);
    expect(Number(sec)).toBeGreaterThanOrEqual(Number(before) - 1);
    expect(Number(sec)).toBeLessThanOrEqual(Number(after) + 1);
  });
});

describe('server commands aggregated over the groups', () => {
  it('INFO has # Server, connected_clients and a keyspace that sums both masters; DBSIZE too', async () => {
    const masters = masterClients(cluster);
    const keys = [...keysOfGroup('local:info:a', 1, 30), ...keysOfGroup('local:info:b', 2, 17)];
    await proxy.mset(...keys.flatMap((k) => [k, 'v']));
    await proxy.expire(keys[0]!, 1000);
    await proxy.expire(keys[40]!, 1000);
    const sizes = await Promise.all(masters.map((m) => m.dbsize()));
    expect(sizes.every((n) => n > 0)).toBe(true);
    const total = sizes.reduce((a, b) => a + b, 0);

    const info = await proxy.info();
    expect(info).toContain('# Server');
    expect(info).toMatch(/\r\nredis_version:\d+\.\d+\.\d+\r\n/);
    const clients = /\r\nconnected_clients:(\d+)\r\n/.exec(info);
    expect(Number(clients?.[1])).toBeGreaterThanOrEqual(1);
    const keyspace = /^db0:keys=(\d+),expires=(\d+)/m.exec(info);
    expect(keyspace?.[1]).toBe(String(total));
    const expires = await Promise.all(masters.map(async (m) => Number(/expires=(\d+)/.exec(await m.info('keyspace'))?.[1] ?? 0)));
    expect(Number(keyspace?.[2])).toBe(expires[0]! + expires[1]!);
    expect(await proxy.dbsize()).toBe(total);

    // Sections can be asked for one by one.
    expect(await proxy.info('keyspace')).toMatch(new RegExp(`# Keyspace\\r\\ndb0:keys=${total},`));
    expect(await proxy.info('server')).not.toContain('# Keyspace');
  });

  it('connected_clients counts the proxy clients', async () => {
    const count = async () => Number(/\r\nconnected_clients:(\d+)\r\n/.exec(await proxy.info('clients'))?.[1]);
    const before = await count();
    const extra = await Promise.all([raw(), raw(), raw()]);
    await Promise.all(extra.map((c) => c.call('PING')));
    expect(await count()).toBe(before + 3);
    extra.forEach((c) => c.destroy());
  });

  it('COMMAND COUNT and COMMAND INFO describe redis commands', async () => {
    expect(Number(await proxy.command('COUNT'))).toBeGreaterThan(200);
    const info = (await proxy.command('INFO', 'get')) as unknown[][];
    expect(info[0]?.[0]).toBe('get');
  });
});

describe('refusals and error texts', () => {
  it('an unknown command gets the redis error text', async () => {
    const viaProxy = await raw();
    const direct = await raw(true);
    for (const c of [viaProxy, direct]) c.write(cmd('FOOBAR', 'a', 'b c'));
    const [p, d] = [errorText(await viaProxy.one()), errorText(await direct.one())];
    expect(p).toMatch(/^ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b c'/);
    expect(p.trimEnd()).toBe(d.trimEnd());
    viaProxy.destroy();
    direct.destroy();
  });

  it('refused commands say "not supported by reborn" with a reason', async () => {
    const c = await raw();
    const refused: [string[], string][] = [
      [['CONFIG', 'RESETSTAT'], 'config resetstat'],
      [['CLIENT', 'PAUSE', '10'], 'client pause'],
      [['DEBUG', 'SLEEP', '0'], 'debug'],
    ];
    for (const [args, name] of refused) {
      const text = errorText(await c.call(...args));
      expect(text).toMatch(new RegExp(`^ERR command '${name}' (with BLOCK )?is not supported by reborn`));
      if (name !== 'xread') expect(text).toMatch(/not supported by reborn: \S.*/);
    }
    // The connection is still fine and was not put into a subscribed or MULTI state.
    expect(plain(await c.call('SET', 'local:after-refusals', 'ok'))).toBe('OK');
    expect(plain(await c.call('GET', 'local:after-refusals'))).toBe('ok');
    c.destroy();
  });

  it('CLIENT REPLY OFF / ON / SKIP silence replies exactly as redis does', async () => {
    const script = [
      ['CLIENT', 'REPLY', 'OFF'], ['PING', 'a'], ['SET', 'local:reply', '1'], ['CLIENT', 'REPLY', 'ON'], ['PING', 'c'],
      ['CLIENT', 'REPLY', 'SKIP'], ['PING', 'd'], ['PING', 'e'], ['CLIENT', 'REPLY', 'SKIP'], ['CLIENT', 'REPLY', 'ON'],
      ['CLIENT', 'REPLY', 'BOGUS'], ['GET', 'local:reply'],
    ];
    const replies: unknown[][] = [];
    for (const conn of [await raw(), await raw(true)]) {
      conn.write(Buffer.concat(script.map((args) => cmd(...args))));
      replies.push((await conn.next(6)).map(plain));
      conn.destroy();
    }
    expect(replies[0]).toEqual(['OK', 'c', 'e', 'OK', { err: 'ERR syntax error' }, '1']);
    expect(replies[0]).toEqual(replies[1]);
  });

  it('CLIENT REPLY OFF does not silence pub/sub confirmations and messages (Redis 7.0)', async () => {
    const got: unknown[][] = [];
    for (const [conn, pub] of [[await raw(), await raw()], [await raw(true), await raw(true)]] as const) {
      conn.write(Buffer.concat([cmd('CLIENT', 'REPLY', 'OFF'), cmd('SUBSCRIBE', 'local:reply-off')]));
      const confirmation = plain(await conn.one());
      expect(plain(await pub.call('PUBLISH', 'local:reply-off', 'hi'))).toBe(1);
      got.push([confirmation, plain(await conn.one())]);
      conn.destroy();
      pub.destroy();
    }
    expect(got[0]).toEqual([['subscribe', 'local:reply-off', 1], ['message', 'local:reply-off', 'hi']]);
    expect(got[0]).toEqual(got[1]);
  });

  it('a bad numkeys gets the text redis gives for that command', async () => {
    const viaProxy = await raw();
    const direct = await raw(true);
    const cases = [
      ['ZMPOP', 'a', 'z', 'MIN'], ['ZMPOP', '-1', 'z', 'MIN'], ['ZMPOP', '5', 'z', 'MIN'], ['LMPOP', '0', 'l', 'LEFT'],
      ['BLMPOP', '0', '-1', 'l', 'LEFT'], ['SINTERCARD', 'a', 's'], ['ZINTERCARD', '-1', 'z'], ['ZUNION', 'a', 'z'],
      ['ZUNIONSTORE', 'd', '-1', 'z'], ['EVAL', 'return 1', '-1'], ['EVAL', 'return 1', 'x'],
    ];
    const got: unknown[] = [];
    const want: unknown[] = [];
    for (const args of cases) {
      got.push([args.join(' '), plain(await viaProxy.call(...args))]);
      want.push([args.join(' '), plain(await direct.call(...args))]);
    }
    expect(want.every(([, w]) => typeof w === 'object' && w !== null && 'err' in w)).toBe(true);
    expect(got).toEqual(want);
    viaProxy.destroy();
    direct.destroy();
  });

  it('wrong arity gets the same text as redis', async () => {
    const viaProxy = await raw();
    const direct = await raw(true);
    const got: unknown[] = [];
    const want: unknown[] = [];
    for (const args of [['GET'], ['SET', 'k'], ['HSET', 'h', 'f'], ['MGET'], ['ECHO'], ['ECHO', 'a', 'b'], ['PING', 'a', 'b']]) {
      got.push([args.join(' '), plain(await viaProxy.call(...args))]);
      want.push([args.join(' '), plain(await direct.call(...args))]);
    }
    expect(want.every((w) => /wrong number of arguments/.test(JSON.stringify(w)))).toBe(true);
    expect(got).toEqual(want);
    viaProxy.destroy();
    direct.destroy();
  });
});

describe('inline commands over raw TCP, as typed in telnet', () => {
  it('PING, SET k "a b", GET k', async () => {
    const c = await raw();
    c.write('PING\r\n');
    expect(await c.one()).toBe('PONG');
    c.write('SET local:inline "a b"\r\n');
    expect(await c.one()).toBe('OK');
    c.write('GET local:inline\r\n');
    expect(plain(await c.one())).toBe('a b');
    // Typed one character at a time, as a slow telnet user would.
    for (const ch of 'ECHO \'single quoted\'\r\n') c.write(ch);
    expect(plain(await c.one())).toBe('single quoted');
    c.destroy();
    expect(await proxy.get('local:inline')).toBe('a b');
  });

  it('bare \\n line endings, empty lines and escapes are handled like redis', async () => {
    const input = 'PING\n\r\n\nECHO "tab\\there \\x41"\r\nSET local:inline2 v\nGET local:inline2\n';
    const viaProxy = await raw();
    const direct = await raw(true);
    viaProxy.write(input);
    direct.write(input);
    const [p, d] = [await viaProxy.next(4), await direct.next(4)];
    expect(p.map(plain)).toEqual(d.map(plain));
    expect(p.map(plain)).toEqual(['PONG', 'tab\there A', 'OK', 'v']);
    viaProxy.destroy();
    direct.destroy();
  });

  it('unbalanced quotes are a protocol error, as in redis', async () => {
    const c = await raw();
    c.write('SET k "unterminated\r\n');
    expect(errorText(await c.one())).toMatch(/^ERR Protocol error: unbalanced quotes/);
    await c.waitClosed();
  });

  it('commands piped in then half-closed (printf ... | nc) are all answered, as redis does', async () => {
    // A script that writes its commands and shuts down its sending side, then reads until
    // EOF, gets every reply from redis. The proxy must not drop replies still in flight.
    let input = 'SET local:piped hello\r\nGET local:piped\r\n';
    for (let i = 0; i < 300; i++) input += `INCR local:piped-n\r\nECHO e${i}\r\n`;
    const results: unknown[][] = [];
    for (const direct of [false, true]) {
      const c = await raw(direct);
      c.write(input);
      c.end();
      await c.waitClosed();
      results.push(c.replies.map(plain));
    }
    expect(results[1]).toHaveLength(602);
    expect(results[1]!.slice(0, 4)).toEqual(['OK', 'hello', 1, 'e0']);
    expect({ replies: results[0]!.length, first: results[0]!.slice(0, 4) }).toEqual({ replies: 602, first: results[1]!.slice(0, 4) });
    expect(results[0]).toEqual(results[1]);
  });
});
