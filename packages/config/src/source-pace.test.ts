import { describe, expect, it } from 'vitest';
import { SourcePace, type LatencyProbe } from './source-pace.js';

/** A probe that reports a fixed latency. */
const probeAt = (ms: number, clients = true): LatencyProbe => ({ recent: () => ms, clientsActive: () => clients }) as unknown as LatencyProbe;

describe('SourcePace', () => {
  it('grows chunks until one DUMP script takes about half the target, at most 2x per chunk', () => {
    const pace = new SourcePace(() => 10, 5000);
    expect(pace.batchKeys).toBe(256);
    pace.onChunk(256, 0.5); // 2 µs a key: 2500 keys would take 5 ms
    expect(pace.batchKeys).toBe(512);
    for (let i = 0; i < 10; i++) pace.onChunk(pace.batchKeys, pace.batchKeys * 0.002);
    expect(Math.abs(pace.batchKeys - 2500)).toBeLessThan(25); // the per-key time is an average
    expect(pace.pauseMs).toBe(0);
  });

  it('never exceeds the configured maximum nor goes below the minimum', () => {
    const pace = new SourcePace(() => 10, 1000);
    for (let i = 0; i < 10; i++) pace.onChunk(pace.batchKeys, 0.01);
    expect(pace.batchKeys).toBe(1000);
    for (let i = 0; i < 20; i++) pace.onChunk(pace.batchKeys, 500);
    expect(pace.batchKeys).toBe(16);
  });

  it('leans less and pauses while the source answers slower than the target, and recovers', () => {
    const pace = new SourcePace(() => 10, 5000);
    pace.probe = probeAt(25);
    pace.onChunk(256, 0.5);
    expect(pace.batchKeys).toBeLessThan(256);
    expect(pace.pauseMs).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) pace.onChunk(pace.batchKeys, pace.batchKeys * 0.002);
    expect(pace.pauseMs).toBe(200);
    pace.probe = probeAt(1);
    for (let i = 0; i < 20; i++) pace.onChunk(pace.batchKeys, pace.batchKeys * 0.002);
    expect(pace.pauseMs).toBe(0);
    expect(Math.abs(pace.batchKeys - 2500)).toBeLessThan(25);
  });

  it('follows a target the operator changes', () => {
    let target = 10;
    const pace = new SourcePace(() => target, 5000);
    for (let i = 0; i < 10; i++) pace.onChunk(pace.batchKeys, pace.batchKeys * 0.002);
    target = 2;
    for (let i = 0; i < 10; i++) pace.onChunk(pace.batchKeys, pace.batchKeys * 0.002);
    expect(Math.abs(pace.batchKeys - 500)).toBeLessThan(5);
  });

  it('with no client active on the source, ignores its latency and makes chunks twice as long', () => {
    const pace = new SourcePace(() => 10, 5000);
    pace.probe = probeAt(25, false);
    for (let i = 0; i < 10; i++) pace.onChunk(pace.batchKeys, pace.batchKeys * 0.002);
    expect(pace.pauseMs).toBe(0);
    expect(Math.abs(pace.batchKeys - 5000)).toBeLessThan(50);
    pace.probe = probeAt(25, true);
    pace.onChunk(pace.batchKeys, pace.batchKeys * 0.002);
    expect(pace.pauseMs).toBeGreaterThan(0);
    expect(pace.batchKeys).toBeLessThan(4000);
  });
});
