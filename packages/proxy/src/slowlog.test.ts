/**
 * SlowLog entries are made in the reply path: whatever request they describe, they must not
 * throw (a throw there used to tear down the backend connection of every client on it).
 */
import { describe, expect, it } from 'vitest';
import { encodeCommand } from '@reborn/protocol';
import { SlowLog } from './slowlog.js';

describe('SlowLog.consider', () => {
  it('records a request with more arguments than the default parser allows, shortened', () => {
    const n = 1_100_000; // over the parser's default 1 048 576, allowed by a raised --max-multibulk-length
    const args = ['EXISTS', ...Array.from({ length: n }, (_, i) => `k${i}`)];
    const log = new SlowLog(0, 10);
    expect(() => log.consider(2_000_000, encodeCommand(args), 'exists', '127.0.0.1:1', null)).not.toThrow();
    const reply = log.command('get', []).toString('latin1');
    expect(reply).toContain('$6\r\nEXISTS\r\n');
    expect(reply).toContain(`... (${n + 1 - 31} more arguments)`);
  });

  it('records an unparseable payload by its command name alone', () => {
    const log = new SlowLog(0, 10);
    expect(() => log.consider(100, Buffer.from('*2\r\n$3\r\nGET\r\n$-5\r\n'), 'get', '127.0.0.1:1', null)).not.toThrow();
    expect(log.command('get', []).toString('latin1')).toContain('$3\r\nget\r\n');
  });
});
