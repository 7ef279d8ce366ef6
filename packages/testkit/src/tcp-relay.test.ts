import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { stopAll } from './cleanup.js';
import { TcpRelay } from './tcp-relay.js';
import { waitFor } from './wait.js';

afterAll(stopAll);

/** An echo server that records every byte it received. */
async function echoServer(): Promise<{ port: number; received: () => string; close: () => Promise<void> }> {
  let received = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('data', (d) => {
      received += d.toString();
      s.write(d);
    });
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => received,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

function connect(port: number): Promise<{ socket: net.Socket; got: () => string; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let got = '';
    let closed = false;
    const socket = net.connect({ host: '127.0.0.1', port }, () => resolve({ socket, got: () => got, closed: () => closed }));
    socket.on('data', (d) => (got += d.toString()));
    socket.on('close', () => (closed = true));
    socket.on('error', reject);
  });
}

describe('TcpRelay', () => {
  it('forwards, passes nothing while cut, and closes the frozen connections on heal', async () => {
    const echo = await echoServer();
    const relay = await TcpRelay.start({ port: echo.port });
    try {
      const a = await connect(relay.port);
      a.socket.write('one');
      await waitFor(() => a.got() === 'one', { what: 'the echo through the relay' });
      relay.cut();
      a.socket.write('two');
      const late = await connect(relay.port); // accepted, never forwarded
      late.socket.write('three');
      // A write that makes the full round trip proves earlier bytes had their chance.
      const direct = await connect(echo.port);
      direct.socket.write('x');
      await waitFor(() => direct.got() === 'x', { what: 'a direct echo' });
      direct.socket.destroy();
      expect(echo.received()).toBe('onex');
      expect(a.got()).toBe('one');
      expect(a.closed()).toBe(false);
      relay.heal();
      await waitFor(() => a.closed() && late.closed(), { what: 'frozen connections closed on heal' });
      const b = await connect(relay.port);
      b.socket.write('four');
      await waitFor(() => b.got() === 'four', { what: 'a new connection forwarded after heal' });
      b.socket.destroy();
    } finally {
      await relay.stop();
      await echo.close();
    }
  });
});
