/**
 * The exactly-once bookkeeping between a group's active (master) feed and its standby
 * (replica) feeds, stream by stream: what is delivered, when, and how often.
 */
import { describe, expect, it } from 'vitest';
import { FeedMatcher, type MatcherLimits } from './feed-matcher.js';

function setup(limits?: MatcherLimits): { m: FeedMatcher<string>; delivered: string[] } {
  const delivered: string[] = [];
  const m = new FeedMatcher<string>((msg) => delivered.push(msg.toString()), limits);
  m.addStandby('r1');
  return { m, delivered };
}

const b = (s: string): Buffer => Buffer.from(s);
const active = (m: FeedMatcher<string>, ...msgs: string[]): void => msgs.forEach((x) => m.fromActive(b(x)));
const standby = (m: FeedMatcher<string>, feed: string, ...msgs: string[]): void => msgs.forEach((x) => m.fromStandby(feed, b(x)));

describe('FeedMatcher', () => {
  it('delivers the active stream once, whether the standby is behind or ahead', () => {
    const { m, delivered } = setup();
    active(m, 'a', 'b');
    standby(m, 'r1', 'a', 'b', 'c');
    active(m, 'c');
    expect(delivered).toEqual(['a', 'b', 'c']);
    expect(m.promote('r1')).toBe(0);
    expect(delivered).toEqual(['a', 'b', 'c']);
  });

  it('on promotion delivers what only the replica received, then the new master stream', () => {
    const { m, delivered } = setup();
    active(m, 'a', 'b');
    standby(m, 'r1', 'a', 'b', 'c', 'd'); // c, d never reached us from the old master
    expect(m.promote('r1')).toBe(2);
    active(m, 'e');
    expect(delivered).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('drops a late copy of a message delivered before the switch, until settled', () => {
    const { m, delivered } = setup();
    active(m, 'a', 'b');
    standby(m, 'r1', 'a'); // b is still on its way to the replica
    m.promote('r1');
    active(m, 'b'); // the replicated copy of b: already delivered
    m.settle();
    active(m, 'b'); // a new publish with the same bytes
    expect(delivered).toEqual(['a', 'b', 'b']);
  });

  it('keeps repeated identical messages apart by position', () => {
    const { m, delivered } = setup();
    active(m, 'x', 'x');
    standby(m, 'r1', 'x', 'x', 'x');
    expect(m.promote('r1')).toBe(1);
    expect(delivered).toEqual(['x', 'x', 'x']);
  });

  it('recovers what the active feed missed while it reconnected, in order, once', () => {
    const { m, delivered } = setup();
    m.addStandby('r2');
    active(m, 'a');
    standby(m, 'r1', 'a', 'b', 'c');
    standby(m, 'r2', 'a', 'b');
    // The master's feed comes back: its first message is d.
    active(m, 'd');
    standby(m, 'r1', 'd');
    standby(m, 'r2', 'c', 'd');
    // b and c come after d (d was delivered before anyone knew), but each exactly once.
    expect(delivered).toEqual(['a', 'd', 'b', 'c']);
    // Neither replica holds anything undelivered: promoting one delivers nothing again.
    expect(m.promote('r2')).toBe(0);
    expect(delivered).toEqual(['a', 'd', 'b', 'c']);
  });

  it('recovers in order when the replica already has the reconnected feed\'s first message', () => {
    const { m, delivered } = setup();
    active(m, 'a');
    standby(m, 'r1', 'a', 'b', 'c', 'd');
    active(m, 'd');
    expect(delivered).toEqual(['a', 'b', 'c', 'd']);
    expect(m.promote('r1')).toBe(0);
  });

  it('a lagging replica whose expected entries were evicted does not cause duplicates at failover', () => {
    const { m, delivered } = setup({ maxEntries: 3, maxBytes: 1 << 20, scan: 256 });
    active(m, '1', '2', '3', '4', '5', '6'); // 1, 2, 3 evicted from the replica's expected queue
    standby(m, 'r1', '1', '2', '3', '4', '5', '6', '7');
    expect(m.promote('r1')).toBe(1); // only 7 is new
    expect(delivered).toEqual(['1', '2', '3', '4', '5', '6', '7']);
  });

  it('bounds what a standby holds, and counts what it had to drop', () => {
    const { m, delivered } = setup({ maxEntries: 4, maxBytes: 1 << 20, scan: 256 });
    standby(m, 'r1', 'a', 'b', 'c', 'd', 'e', 'f');
    expect(m.lostOn('r1')).toBe(2);
    expect(m.promote('r1')).toBe(4);
    expect(delivered).toEqual(['c', 'd', 'e', 'f']);
  });

  it('a reconnected standby starts with no history', () => {
    const { m, delivered } = setup();
    standby(m, 'r1', 'a');
    m.addStandby('r1');
    active(m, 'b');
    expect(m.promote('r1')).toBe(0);
    expect(delivered).toEqual(['b']);
  });
});
