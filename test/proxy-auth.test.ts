/**
 * Client authentication on the proxy (`--auth`): the replies before and after AUTH, the
 * AUTH forms (password, default user, HELLO ... AUTH), per-connection state, and AUTH on a
 * proxy without a password. Error texts are compared with a redis-server run with
 * `--requirepass`, since clients match on them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, startRedis, stopAll, type ProxyProcess, type RedisServer } from '@reborn/testkit';
import { RawClient, RespError, dataReady, plain, type Reply } from './helpers.js';

let secured: ProxyProcess;
let open: ProxyProcess;
let redisWithPassword: RedisServer;
let redisWithout: RedisServer;

beforeAll(async () => {
  const [c, r1, r2] = await Promise.all([startCluster({ groups: 2, proxies: 0 }), startRedis(), startRedis()]);
  // The password is set after the start: startRedis() waits for a +PONG, which a server
  // started with --requirepass never gives to an unauthenticated PING.
  await r1.client().config('SET', 'requirepass', 'secret');
  redisWithPassword = r1;
  redisWithout = r2;
  [secured, open] = await Promise.all([c.addProxy(['--auth', 'secret']), c.addProxy([])]);
  await Promise.all([dataReady(secured.port, 'secret'), dataReady(open.port)]);
});

afterAll(stopAll);

function text(r: Reply): string {
  if (!(r instanceof RespError)) throw new Error(`expected an error reply, got ${JSON.stringify(plain(r))}`);
  return r.message;
}

describe('proxy started with --auth', () => {
  it('commands before AUTH get -NOAUTH (the redis text) and do nothing', async () => {
    const c = await RawClient.connect(secured.port);
    const direct = await RawClient.connect(redisWithPassword.port);
    for (const args of [['PING'], ['GET', 'auth:k'], ['SET', 'auth:k', 'v'], ['MGET', 'auth:k', 'auth:j'], ['DBSIZE']]) {
      const [p, d] = [await c.call(...args), await direct.call(...args)];
      expect([args.join(' '), text(p)]).toEqual([args.join(' '), text(d)]);
      expect(text(p)).toBe('NOAUTH Authentication required.');
    }
    c.destroy();
    direct.destroy();
    const ok = await RawClient.connect(secured.port);
    expect(plain(await ok.call('AUTH', 'secret'))).toBe('OK');
    expect(plain(await ok.call('EXISTS', 'auth:k'))).toBe(0);
    ok.destroy();
  });

  it('a wrong password gets -WRONGPASS and the connection stays unauthenticated', async () => {
    const c = await RawClient.connect(secured.port);
    const direct = await RawClient.connect(redisWithPassword.port);
    for (const args of [['AUTH', 'nope'], ['AUTH', 'default', 'nope'], ['AUTH', 'someone', 'secret']]) {
      const [p, d] = [await c.call(...args), await direct.call(...args)];
      expect([args.join(' '), text(p)]).toEqual([args.join(' '), text(d)]);
      expect(text(p)).toMatch(/^WRONGPASS /);
    }
    // Too many arguments: redis's syntax error, even with the right password last.
    const tooMany = ['AUTH', 'x', 'y', 'secret'];
    expect(text(await c.call(...tooMany))).toBe(text(await direct.call(...tooMany)));
    expect(text(await c.call('PING'))).toMatch(/^NOAUTH /);
    c.destroy();
    direct.destroy();
  });

  it('AUTH secret and AUTH default secret authenticate; data commands then work', async () => {
    for (const args of [['AUTH', 'secret'], ['AUTH', 'default', 'secret']]) {
      const c = await RawClient.connect(secured.port);
      expect(plain(await c.call(...args))).toBe('OK');
      expect(plain(await c.call('SET', `auth:${args.length}`, 'v'))).toBe('OK');
      expect(plain(await c.call('GET', `auth:${args.length}`))).toBe('v');
      expect(plain(await c.call('PING'))).toBe('PONG');
      c.destroy();
    }
  });

  it('RESET signs the connection out, as redis does with a password on the default user', async () => {
    const c = await RawClient.connect(secured.port);
    const direct = await RawClient.connect(redisWithPassword.port);
    for (const conn of [c, direct]) {
      expect(plain(await conn.call('RESET'))).toBe('RESET'); // allowed before AUTH
      expect(plain(await conn.call('AUTH', 'secret'))).toBe('OK');
      expect(plain(await conn.call('RESET'))).toBe('RESET');
      expect(text(await conn.call('GET', 'auth:1'))).toMatch(/^NOAUTH /);
    }
    c.destroy();
    direct.destroy();
  });

  it('authentication is per connection', async () => {
    const a = await RawClient.connect(secured.port);
    const b = await RawClient.connect(secured.port);
    expect(plain(await a.call('AUTH', 'secret'))).toBe('OK');
    expect(plain(await a.call('PING'))).toBe('PONG');
    expect(text(await b.call('PING'))).toMatch(/^NOAUTH /);
    a.destroy();
    b.destroy();
  });

  it('HELLO 2 AUTH default secret authenticates and answers the hello map', async () => {
    const c = await RawClient.connect(secured.port);
    const direct = await RawClient.connect(redisWithPassword.port);
    // HELLO without AUTH on an unauthenticated connection: the redis error.
    const [p, d] = [await c.call('HELLO', '2'), await direct.call('HELLO', '2')];
    expect(text(p)).toBe(text(d));
    expect(text(await c.call('HELLO', '2', 'AUTH', 'default', 'wrong'))).toMatch(/^WRONGPASS /);
    const hello = plain(await c.call('HELLO', '2', 'AUTH', 'default', 'secret')) as unknown[];
    expect(hello[hello.indexOf('proto') + 1]).toBe(2);
    expect(plain(await c.call('SET', 'auth:hello', 'v'))).toBe('OK');
    c.destroy();
    direct.destroy();
  });

  it('QUIT works before AUTH', async () => {
    const c = await RawClient.connect(secured.port);
    expect(plain(await c.call('QUIT'))).toBe('OK');
    await c.waitClosed();
  });

  it('ioredis with a password (and with username default) works; without one it gets NOAUTH', async () => {
    const withPass = secured.client({ password: 'secret' });
    expect(await withPass.set('auth:ioredis', 'x')).toBe('OK');
    expect(await withPass.get('auth:ioredis')).toBe('x');
    const withUser = secured.client({ username: 'default', password: 'secret' });
    expect(await withUser.get('auth:ioredis')).toBe('x');
    const without = secured.client({ enableReadyCheck: false, maxRetriesPerRequest: 0 });
    await expect(without.get('auth:ioredis')).rejects.toThrow(/^NOAUTH/);
  });
});

describe('proxy without --auth', () => {
  it('AUTH gets the "without any password configured" error, like redis', async () => {
    const c = await RawClient.connect(open.port);
    const direct = await RawClient.connect(redisWithout.port);
    const [p, d] = [await c.call('AUTH', 'secret'), await direct.call('AUTH', 'secret')];
    expect(text(p)).toMatch(/without any password configured/);
    expect(text(p)).toBe(text(d));
    // Nothing needs AUTH here.
    expect(plain(await c.call('SET', 'auth:open', 'v'))).toBe('OK');
    c.destroy();
    direct.destroy();
    expect(await open.client().get('auth:open')).toBe('v');
  });
});
