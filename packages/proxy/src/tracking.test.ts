/**
 * The tracking hub (tracking.ts) without redis: fake clients record what is pushed to them,
 * fake listeners say which groups are live and feed invalidations. Checks Redis's replies
 * and error texts, the CLIENT CACHING flag's lifetime, reads queued in MULTI, the message
 * shapes per protocol and REDIRECT, and the proxy's own rules (not-live groups, lost
 * listeners, moved slots, the table bound).
 */
import { describe, expect, it } from 'vitest';
import { keySlot, resolveCommand, type Protocol } from '@reborn/protocol';
import type { ClientRequest } from './request.js';
import { Tracking, type TrackingClient, type ClientTracking } from './tracking.js';
import type { ListenerEvents, Listeners } from './tracking-listener.js';

class FakeClient implements TrackingClient {
  pubsub: object | null = null;
  tx: object | null = null;
  isClosed = false;
  /** After QUIT, before the socket closes. */
  quitting = false;
  get isEnding(): boolean {
    return this.isClosed || this.quitting;
  }
  tracking: ClientTracking | null = null;
  readonly pushed: string[] = [];
  private readonly hooks = new Set<() => void>();
  constructor(
    readonly id: number,
    public resp: Protocol = 3,
  ) {}
  gates = 0;
  push(frame: Buffer): void {
    this.pushed.push(frame.toString('latin1'));
  }
  gate(): void {
    this.gates++;
  }
  ungate(): void {
    this.gates--;
  }
  whenClosed(hook: () => void): void {
    this.hooks.add(hook);
  }
  forgetWhenClosed(hook: () => void): void {
    this.hooks.delete(hook);
  }
  close(): void {
    this.isClosed = true;
    for (const h of [...this.hooks]) h();
  }
  /** Pushes so far, then forgets them. */
  take(): string[] {
    return this.pushed.splice(0);
  }
}

class FakeListeners implements Listeners {
  readonly live = new Set<number>([1, 2]);
  started = 0;
  idled = 0;
  events!: ListenerEvents;
  start(): void {
    this.started++;
  }
  idle(): void {
    this.idled++;
  }
  groupsChanged(): void {}
  isLive(gid: number): boolean {
    return this.live.has(gid);
  }
  whenListening(): Promise<void> {
    return Promise.resolve();
  }
  states(): Map<number, boolean> {
    return new Map([...this.live].map((g) => [g, true]));
  }
  close(): void {}
}

/** Slots 0–511 in group 1, the rest in group 2. */
const groupOf = (slot: number): number[] => [slot < 512 ? 1 : 2];

function setup(maxKeys = 0): { hub: Tracking; listeners: FakeListeners; clients: Map<number, FakeClient>; client(id: number, resp?: Protocol): FakeClient } {
  const listeners = new FakeListeners();
  const clients = new Map<number, FakeClient>();
  const hub = new Tracking({ maxKeys, maxPrefixes: 3 }, groupOf, () => clients.values(), (events) => {
    listeners.events = events;
    return listeners;
  });
  const client = (id: number, resp: Protocol = 3): FakeClient => {
    const c = new FakeClient(id, resp);
    clients.set(id, c);
    return c;
  };
  return { hub, listeners, clients, client };
}

const args = (...a: string[]): Buffer[] => a.map((s) => Buffer.from(s, 'latin1'));

/** Runs a CLIENT subcommand and returns its reply as text (after the listeners' round trip). */
async function run(hub: Tracking, c: FakeClient, ...a: string[]): Promise<string> {
  c.tracking?.beforeCommand(resolveCommand(args(...a)), args(...a)); // as the dispatcher does
  let reply: Buffer | null = null;
  const req = { resolve: (r: Buffer) => (reply = r) } as unknown as ClientRequest;
  hub.command(c, req, `client|${a[1]!.toLowerCase()}`, args(...a));
  await Promise.resolve();
  await Promise.resolve();
  return (reply as Buffer | null)?.toString('latin1') ?? '(no reply)';
}

/** What the dispatcher does for each command of a tracking client. */
function command(c: FakeClient, ...a: string[]): void {
  c.tracking?.beforeCommand(resolveCommand(args(...a)), args(...a));
}

const push3 = (keys: string[] | null): string =>
  `>2\r\n$10\r\ninvalidate\r\n${keys === null ? '_\r\n' : `*${keys.length}\r\n${keys.map((k) => `$${k.length}\r\n${k}\r\n`).join('')}`}`;
const message2 = (payload: string): string => `*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n${payload}`;

/** Two keys in group 1 (slot < 512) and one in group 2. */
const CANDIDATES = Array.from({ length: 50 }, (_, i) => `k${i}`);
const [K1, K2] = CANDIDATES.filter((k) => keySlot(Buffer.from(k)) < 512) as [string, string];
const K3 = CANDIDATES.find((k) => keySlot(Buffer.from(k)) >= 512)!;

describe('CLIENT TRACKING and friends: Redis 7 replies', () => {
  it('answers GETREDIR, TRACKINGINFO (RESP2 and RESP3) and CACHING like Redis', async () => {
    const { hub, client } = setup();
    const c = client(5, 2);
    expect(await run(hub, c, 'CLIENT', 'GETREDIR')).toBe(':-1\r\n');
    expect(await run(hub, c, 'CLIENT', 'TRACKINGINFO')).toBe('*6\r\n$5\r\nflags\r\n*1\r\n$3\r\noff\r\n$8\r\nredirect\r\n:-1\r\n$8\r\nprefixes\r\n*0\r\n');
    expect(await run(hub, c, 'CLIENT', 'CACHING', 'YES')).toBe('-ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled\r\n');
    expect(await run(hub, c, 'CLIENT', 'TRACKING', 'on', 'optin', 'noloop')).toBe('+OK\r\n');
    expect(c.gates).toBe(0); // later commands waited for the listeners, and go on
    expect(await run(hub, c, 'CLIENT', 'GETREDIR')).toBe(':0\r\n');
    expect(await run(hub, c, 'CLIENT', 'CACHING', 'no')).toBe('-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.\r\n');
    expect(await run(hub, c, 'CLIENT', 'CACHING', 'maybe')).toBe('-ERR syntax error\r\n');
    expect(await run(hub, c, 'CLIENT', 'CACHING', 'yes')).toBe('+OK\r\n');
    c.resp = 3;
    expect(await run(hub, c, 'CLIENT', 'TRACKINGINFO')).toBe(
      '%3\r\n$5\r\nflags\r\n~4\r\n$2\r\non\r\n$5\r\noptin\r\n$11\r\ncaching-yes\r\n$6\r\nnoloop\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n',
    );
  });

  it('refuses what Redis refuses, with its words, and changes nothing then', async () => {
    const { hub, client } = setup();
    const c = client(1);
    client(9);
    const err = async (...a: string[]): Promise<string> => (await run(hub, c, 'CLIENT', 'TRACKING', ...a)).replace(/\r\n$/, '');
    expect(await err('maybe')).toBe('-ERR syntax error');
    expect(await err('on', 'bogus')).toBe('-ERR syntax error');
    expect(await err('on', 'redirect')).toBe('-ERR syntax error');
    expect(await err('on', 'redirect', 'x')).toBe('-ERR value is not an integer or out of range');
    expect(await err('on', 'redirect', '-0')).toBe('-ERR value is not an integer or out of range');
    expect(await err('on', 'redirect', '77')).toBe('-ERR The client ID you want redirect to does not exist');
    expect(await err('off', 'redirect', '0')).toBe('-ERR The client ID you want redirect to does not exist');
    expect(await err('on', 'redirect', '9', 'redirect', '9')).toBe('-ERR A client can only redirect to a single other client');
    expect(await err('on', 'prefix', 'a')).toBe('-ERR PREFIX option requires BCAST mode to be enabled');
    expect(await err('on', 'bcast', 'optin')).toBe('-ERR OPTIN and OPTOUT are not compatible with BCAST');
    expect(await err('on', 'optin', 'optout')).toBe("-ERR You can't specify both OPTIN mode and OPTOUT mode");
    expect(await err('on', 'bcast', 'prefix', 'ab', 'prefix', 'a')).toBe("-ERR Prefix 'ab' overlaps with another provided prefix 'a'. Prefixes for a single client must not overlap.");
    expect(c.tracking).toBeNull();
    expect(await err('on', 'optin')).toBe('+OK');
    expect(await err('on', 'optout')).toBe("-ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
    expect(await err('on', 'bcast')).toBe("-ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
    expect(await err('on')).toBe('+OK'); // OPTIN → plain is allowed
    expect(await err('off')).toBe('+OK');
    expect(await err('on', 'bcast', 'prefix', 'a', 'prefix', 'b')).toBe('+OK');
    expect(await err('on', 'bcast', 'prefix', 'ab')).toBe("-ERR Prefix 'ab' overlaps with an existing prefix 'a'. Prefixes for a single client must not overlap.");
    expect(await err('on', 'bcast', 'prefix', 'c')).toBe('+OK'); // adds
    expect(await err('on', 'bcast', 'prefix', 'd')).toBe('-ERR too many tracking prefixes: this proxy allows at most 3 per client (--tracking-max-prefixes)');
    expect(await err('on', 'bcast', 'prefix', 'w', 'prefix', 'x', 'prefix', 'y', 'prefix', 'z')).toBe(
      '-ERR too many tracking prefixes: this proxy allows at most 3 per client (--tracking-max-prefixes)',
    );
    expect([...c.tracking!.prefixes.keys()].sort()).toEqual(['a', 'b', 'c']);
    expect(await err('off')).toBe('+OK');
    expect(await err('on', 'bcast', 'prefix', 'x'.repeat(600_000), 'prefix', 'y'.repeat(600_000))).toBe(
      '-ERR tracking prefixes too long: at most 1048576 bytes of prefixes per client',
    );
    expect(c.tracking).toBeNull();
  });
});

describe('invalidations', () => {
  it('RESP3: a read key gets one push per write, then is forgotten; unread keys get none', async () => {
    const { hub, listeners, client } = setup();
    const c = client(1);
    await run(hub, c, 'CLIENT', 'TRACKING', 'on');
    command(c, 'GET', K1);
    command(c, 'MGET', K2, K3);
    command(c, 'SET', 'unread', 'v');
    listeners.events.keys(1, args(K1, K2, 'unread'));
    expect(c.take()).toEqual([push3([K1]), push3([K2])]);
    listeners.events.keys(1, args(K1));
    listeners.events.keys(2, args(K3));
    expect(c.take()).toEqual([push3([K3])]);
    expect(hub.stats().keys).toBe(0);
  });

  it('CLIENT CACHING covers the next command only, or a whole MULTI, as in Redis', async () => {
    const { hub, listeners, client } = setup();
    const c = client(1);
    await run(hub, c, 'CLIENT', 'TRACKING', 'on', 'optin');
    command(c, 'GET', K1); // OPTIN without CACHING YES: not tracked
    await run(hub, c, 'CLIENT', 'CACHING', 'yes');
    command(c, 'CLIENT', 'ID'); // a CLIENT command keeps the flag
    command(c, 'GET', K2); // tracked
    command(c, 'GET', K3); // flag gone: not tracked
    listeners.events.keys(1, args(K1, K2));
    listeners.events.keys(2, args(K3));
    expect(c.take()).toEqual([push3([K2])]);

    await run(hub, c, 'CLIENT', 'CACHING', 'yes');
    command(c, 'MULTI');
    c.tx = {};
    command(c, 'GET', K1);
    command(c, 'GET', K2);
    listeners.events.keys(1, args(K1)); // not recorded before EXEC: nothing yet
    expect(c.take()).toEqual([]);
    command(c, 'EXEC');
    c.tx = null;
    command(c, 'GET', K3); // after the transaction the flag is gone
    listeners.events.keys(1, args(K1, K2));
    listeners.events.keys(2, args(K3));
    expect(c.take()).toEqual([push3([K1]), push3([K2])]);
  });

  it('OPTOUT with CACHING NO skips one read', async () => {
    const { hub, listeners, client } = setup();
    const c = client(1);
    await run(hub, c, 'CLIENT', 'TRACKING', 'on', 'optout');
    await run(hub, c, 'CLIENT', 'CACHING', 'no');
    command(c, 'GET', K1);
    command(c, 'GET', K2);
    listeners.events.keys(1, args(K1, K2));
    expect(c.take()).toEqual([push3([K2])]);
  });

  it('RESP2 with REDIRECT: a pub/sub message at a subscribed target; broken when it is gone', async () => {
    const { hub, listeners, client } = setup();
    const c = client(1, 2);
    const target = client(2, 2);
    await run(hub, c, 'CLIENT', 'TRACKING', 'on', 'redirect', '2');
    command(c, 'GET', K1);
    listeners.events.keys(1, args(K1)); // target not subscribed: nothing (as Redis)
    expect(target.take()).toEqual([]);
    target.pubsub = {};
    command(c, 'GET', K1);
    listeners.events.keys(1, args(K1));
    listeners.events.flush(1); // it read from group 1: flushed (its cache may hold more)
    listeners.events.flush(1); // nothing read since: nothing to flush
    expect(target.take()).toEqual([message2(`*1\r\n$${K1.length}\r\n${K1}\r\n`), message2('$-1\r\n')]);
    expect(c.take()).toEqual([]);
    target.close();
    command(c, 'GET', K1);
    listeners.events.keys(1, args(K1));
    expect(await run(hub, c, 'CLIENT', 'TRACKINGINFO')).toContain('$15\r\nbroken_redirect\r\n');
    // A RESP3 client is told, as Redis does.
    c.resp = 3;
    command(c, 'GET', K1);
    listeners.events.keys(1, args(K1));
    expect(c.take()).toEqual(['>2\r\n$21\r\ntracking-redir-broken\r\n:2\r\n']);
  });

  it('BCAST: keys under the prefixes, from any group, without reads', async () => {
    const { hub, listeners, client } = setup();
    const c = client(1);
    await run(hub, c, 'CLIENT', 'TRACKING', 'on', 'bcast', 'prefix', 'user:', 'prefix', 'o');
    listeners.events.keys(1, args('user:1', 'x', 'order'));
    listeners.events.keys(2, args('user:2'));
    // As Redis frames them: one message per prefix, with the keys under it.
    expect(c.take()).toEqual([push3(['user:1']), push3(['order']), push3(['user:2'])]);
    await run(hub, c, 'CLIENT', 'TRACKING', 'off');
    listeners.events.keys(1, args('user:1'));
    expect(c.take()).toEqual([]);
    expect(hub.stats().prefixes).toBe(0);
  });

  it('a read of a group that is not live is invalidated at once; a lost listener flushes its readers', async () => {
    const { hub, listeners, client } = setup();
    const [c1, c2, bcast] = [client(1), client(2), client(3)];
    for (const c of [c1, c2]) await run(hub, c, 'CLIENT', 'TRACKING', 'on');
    await run(hub, bcast, 'CLIENT', 'TRACKING', 'on', 'bcast');
    listeners.live.delete(2);
    command(c1, 'GET', K3);
    expect(c1.take()).toEqual([push3([K3])]);
    command(c1, 'GET', K1);
    command(c2, 'GET', K3); // group 2 only, and not recorded
    c2.take();
    listeners.events.lost(1);
    expect(c1.take()).toEqual([push3(null)]);
    expect(c2.take()).toEqual([]);
    expect(bcast.take()).toEqual([push3(null)]);
    // Flushed clients hold nothing any more.
    listeners.events.keys(1, args(K1));
    expect(c1.take()).toEqual([]);
  });

  it('a moved slot invalidates its keys; the table bound invalidates the oldest', async () => {
    const { hub, listeners, client } = setup(2);
    const c = client(1);
    await run(hub, c, 'CLIENT', 'TRACKING', 'on');
    command(c, 'GET', K1);
    hub.slotMoved(keySlot(Buffer.from(K1)));
    expect(c.take()).toEqual([push3([K1])]);
    command(c, 'GET', K1);
    command(c, 'GET', K2);
    command(c, 'GET', K3);
    expect(c.take()).toEqual([push3([K1])]);
    expect(hub.stats().keys).toBe(2);
    expect(Object.fromEntries(hub.stats().invalidations)).toMatchObject({ slot_moved: 1, evicted: 1 });
    void listeners;
  });

  it('tracking ends with the connection: state dropped, listeners told when nobody is left', async () => {
    const { hub, listeners, client } = setup();
    const c = client(1);
    await run(hub, c, 'CLIENT', 'TRACKING', 'on');
    command(c, 'GET', K1);
    expect(listeners.started).toBe(1);
    c.close();
    expect(c.tracking).toBeNull();
    expect(hub.stats()).toMatchObject({ clients: 0, keys: 0 });
    expect(listeners.idled).toBe(1);
  });
});
