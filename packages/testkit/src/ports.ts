/**
 * Free TCP ports for servers under test. The kernel picks an unused port for a listener on
 * port 0; we read it and close. Another process could take the port before our server binds
 * it, so launchers retry with a fresh port when a server exits during startup.
 */
import { createServer } from 'node:net';

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('could not read the port of a listener on port 0'));
      });
    });
  });
}

/**
 * The first free port at or after `start` (of the next 200), for launchers that want stable,
 * memorable ports (`npm start`) yet must not fail on a busy one or a second cluster.
 * `except`: ports the caller already chose for another listener of the same start. They are
 * free too until that listener binds, so without it two scans can hand out the same port.
 */
export async function portFrom(start: number, host = '127.0.0.1', except: readonly number[] = []): Promise<number> {
  for (let port = start; port < start + 200; port++) {
    if (except.includes(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, host, () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port near ${start}`);
}
