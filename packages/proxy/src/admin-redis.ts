/**
 * One-off admin commands to a redis server over a fresh connection (outside the shared
 * pools), bounded by a timeout. Used off the hot path: re-enabling this proxy's ACL user
 * after it was fenced.
 */
import net from 'node:net';
import { encodeCommand, ReplyScanner } from '@reborn/protocol';

export function redisCommand(addr: string, args: (string | Buffer)[], timeoutMs = 2000): Promise<Buffer> {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)) });
    const scanner = new ReplyScanner();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${addr}: no reply in ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (err: Error | null, reply?: Buffer): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    socket.on('connect', () => socket.write(encodeCommand(args)));
    socket.on('data', (chunk: Buffer) => {
      try {
        scanner.feed(chunk, (reply) => finish(null, Buffer.from(reply)));
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('error', (err) => finish(new Error(`${addr}: ${err.message}`)));
    socket.on('close', () => finish(new Error(`${addr}: connection closed`)));
  });
}
