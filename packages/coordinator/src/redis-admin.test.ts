import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { freePort, startRedis, stopAll, type RedisServer } from '@reborn/testkit';
import {
  RedisAdminError,
  canonicalValue,
  info,
  parseAddr,
  ping,
  replicaOfCommands,
  readReplicationOffset as replicationOffset,
  replyCode,
  showKey,
  withRedis,
} from './redis-admin.js';
import { parseInfo } from './redis-info.js';

describe('pure helpers', () => {
  it('parses host:port, with IPv6 in brackets', () => {
    expect(parseAddr('127.0.0.1:6379')).toEqual({ host: '127.0.0.1', port: 6379 });
    expect(parseAddr('redis-1.local:7000')).toEqual({ host: 'redis-1.local', port: 7000 });
    expect(parseAddr('[::1]:6380')).toEqual({ host: '::1', port: 6380 });
    for (const bad of ['127.0.0.1', ':6379', 'h:0', 'h:65536', '::1:6379']) expect(() => parseAddr(bad)).toThrow(RedisAdminError);
  });

  it('parses INFO text into a record', () => {
    expect(parseInfo('# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n# CPU\r\nused_cpu_sys:1.5\r\n')).toEqual({
      role: 'master',
      connected_slaves: '0',
      used_cpu_sys: '1.5',
    });
  });

  it('reads the code of redis error replies, including the target error MIGRATE wraps', () => {
    const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });
    expect(replyCode(reply('BUSYKEY Target key name already exists.'))).toBe('BUSYKEY');
    expect(replyCode(reply('ERR Target instance replied with error: BUSYKEY Target key name already exists.'))).toBe('BUSYKEY');
    expect(replyCode(reply('IOERR error or timeout reading to target instance'))).toBe('IOERR');
    expect(replyCode(new Error('Connection is closed.'))).toBeNull();
    expect(replyCode('nope')).toBeNull();
  });

  it('REPLICAOF logs in as the replication user when given one, else as the default user', () => {
    expect(replicaOfCommands('10.0.0.1:7000', 'pw', { user: 'reborn-repl', password: 's3' })).toEqual([
      ['CONFIG', 'SET', 'masterauth', 's3'],
      ['CONFIG', 'SET', 'masteruser', 'reborn-repl'],
      ['REPLICAOF', '10.0.0.1', '7000'],
    ]);
    expect(replicaOfCommands('[::1]:7000', 'pw')).toEqual([['CONFIG', 'SET', 'masterauth', 'pw'], ['REPLICAOF', '::1', '7000']]);
    expect(replicaOfCommands('h:1', null)).toEqual([['REPLICAOF', 'h', '1']]);
    expect(replicaOfCommands(null, 'pw', { user: 'u', password: 'p' })).toEqual([['REPLICAOF', 'NO', 'ONE']]);
  });

  it('shows binary keys safely', () => {
    expect(showKey(Buffer.from('user:1'))).toBe('user:1');
    expect(showKey(Buffer.from([0xff, 0x00, 0x41, 0x5c]))).toBe('\\xff\\x00A\\x5c');
    expect(showKey(Buffer.alloc(300, 0x61))).toMatch(/^a{200}…\(300 bytes\)$/);
  });
});

describe('against redis-server', () => {
  let master: RedisServer;
  let replica: RedisServer;
  let c: Redis;

  beforeAll(async () => {
    [master, replica] = await Promise.all([startRedis(), startRedis()]);
    c = master.client();
  });
  afterAll(stopAll);

  it('ping, info, replicationOffset', async () => {
    expect(await ping(master.addr)).toBeGreaterThanOrEqual(0);
    expect((await info(master.addr, 'server'))['tcp_port']).toBe(String(master.port));
    await withRedis(replica.addr, (r) => r.replicaof(master.host, master.port));
    await c.set('k', 'v');
    const offset = await replicationOffset(master.addr);
    expect(typeof offset).toBe('bigint');
    const deadline = Date.now() + 10_000;
    while ((await replicationOffset(replica.addr)) < offset && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await replicationOffset(replica.addr)).toBeGreaterThanOrEqual(offset);
  });

  it('fails fast and cleanly when a server does not answer', async () => {
    const port = await freePort();
    const t0 = Date.now();
    await expect(ping(`127.0.0.1:${port}`)).rejects.toBeInstanceOf(RedisAdminError);
    await master.pause(); // a hung server: connects, never answers
    try {
      const err = await ping(master.addr, { commandTimeoutMs: 300 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisAdminError);
      expect((err as RedisAdminError).code).toBe('EUNREACHABLE');
    } finally {
      master.resume();
    }
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('compares values independently of encoding and element order', async () => {
    const k = Buffer.from([0x01, 0xfe, 0x7b]);
    await c.del(k);
    await c.sadd(k, 'b', 'a', 'c');
    const a = await canonicalValue(c, k);
    await c.del(k);
    await c.sadd(k, 'c', 'a', 'b');
    expect(await canonicalValue(c, k)).toBe(a);
    await c.sadd(k, 'd');
    expect(await canonicalValue(c, k)).not.toBe(a);
    await c.hset('h', 'x', '1', 'y', '2');
    expect(await canonicalValue(c, Buffer.from('h'))).toMatch(/^hash:/);
    expect(await canonicalValue(c, Buffer.from('missing'))).toBe('none');
  });
});
