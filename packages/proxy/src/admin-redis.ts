/**
 * One-off admin commands to a redis server over a fresh connection (outside the shared
 * pools), bounded by a timeout. Used off the hot path: re-enabling this proxy's ACL user
 * after it was fenced, CLIENT KILL of a failed connection.
 *
 * With `password` (the servers' default-user password) the command is pipelined behind
 * `AUTH password`; the command's own reply is returned (a wrong password shows as its
 * -NOAUTH). A server without a password answers that AUTH with an error and runs the command.
 */
import net from 'node:net';
import { encodeCommand, ReplyScanner } from '@reborn/protocol';
import { splitAddr } from '@reborn/coordinator';

export function redisCommand(addr: string, args: (string | Buffer)[], timeoutMs = 2000, password: string | null = null): Promise<Buffer> {
  // An IPv6 host comes bracketed (`[::1]:6379`); net.connect wants it bare.
  const { host, port } = splitAddr(addr);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
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
    // Replies to skip before the command's own: the AUTH's.
    let skip = password === null ? 0 : 1;
    socket.on('connect', () => {
      if (password !== null) socket.write(encodeCommand(['AUTH', password]));
      socket.write(encodeCommand(args));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        scanner.feed(chunk, (reply) => {
          if (skip > 0) skip--;
          else finish(null, Buffer.from(reply));
        });
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('error', (err) => finish(new Error(`${addr}: ${err.message}`)));
    socket.on('close', () => finish(new Error(`${addr}: connection closed`)));
  });
}
