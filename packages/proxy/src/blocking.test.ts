/**
 * BlockingCommands.unblock (the migration barrier's wake-up of blocked commands) against a
 * real redis-server: it must never lose what a blocked command popped, however early it is
 * asked — also before the dedicated connection's CLIENT ID has answered.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCommand } from '@reborn/protocol';
import { startRedis, type RedisServer } from '@reborn/testkit';
import type { BackendOptions } from './backend.js';
import { BackendPool } from './backend-pool.js';
import { BlockingCommands } from './blocking.js';
import { Flusher } from './flusher.js';
import type { Session } from './session.js';

let redis: RedisServer;
let options: BackendOptions;

/** The only part of a session BlockingCommands uses: close hooks (this client never goes away). */
const session = { whenClosed: () => undefined, forgetWhenClosed: () => undefined } as unknown as Session;

beforeAll(async () => {
  redis = await startRedis();
  options = { connectTimeoutMs: 2000, timeoutMs: 5000, logger: pino({ level: 'silent' }), flusher: new Flusher(), auth: null };
}, 30_000);

afterAll(async () => {
  await redis?.stop();
});

/** Runs one blocking command and resolves with its raw reply. */
function block(blocking: BlockingCommands, pool: BackendPool, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    blocking.run(session, pool, 7, { payload: encodeCommand(args), write: true, resolve: (reply) => resolve(reply.toString('latin1')) });
  });
}

describe('unblocking blocked commands for a barrier', () => {
  it('an unblock asked at once, before CLIENT ID answered, still delivers what BLPOP popped', async () => {
    const direct = redis.client();
    const pool = new BackendPool(redis.addr, 1, options);
    const blocking = new BlockingCommands(options, 10);
    try {
      for (let round = 0; round < 20; round++) {
        await direct.rpush('q', `job-${round}`);
        // A fresh connection each round (no idle one to reuse): CLIENT ID is still unanswered.
        blocking.closeAll();
        const reply = block(blocking, pool, ['BLPOP', 'q', '0']);
        await blocking.unblock(new Set([7]));
        expect(await reply).toBe(`*2\r\n$1\r\nq\r\n$${`job-${round}`.length}\r\njob-${round}\r\n`);
        expect(await direct.llen('q')).toBe(0);
      }
    } finally {
      blocking.closeAll();
      pool.close();
    }
  });

  it('a command still waiting is woken with its timeout reply and pops nothing', async () => {
    const direct = redis.client();
    const pool = new BackendPool(redis.addr, 1, options);
    const blocking = new BlockingCommands(options, 10);
    try {
      for (const fresh of [true, false]) {
        if (fresh) blocking.closeAll();
        const reply = block(blocking, pool, ['BLPOP', 'empty', '0']);
        await new Promise((r) => setTimeout(r, 50)); // blocked in redis by now
        await blocking.unblock(new Set([7]));
        expect(await reply).toBe('*-1\r\n');
      }
      await direct.rpush('empty', 'later');
      expect(await direct.lrange('empty', 0, -1)).toEqual(['later']);
    } finally {
      blocking.closeAll();
      pool.close();
    }
  });
});
