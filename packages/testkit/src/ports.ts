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
