import { describe, expect, it } from 'vitest';
import { parseMigration } from './migrations.js';

describe('parseMigration', () => {
  const task = (progress: Record<string, unknown>) => ({ id: 'm-1', slots: [0, 1], from: [1], to: 2, state: 'running', progress });

  it('keeps numeric progress as stored', () => {
    const p = parseMigration(task({ slotsTotal: 2, slotsDone: 1, keysMoved: 42, keysLeft: 7, rate: 3.5, etaSeconds: 2, currentSlots: [1], phase: 'moving' }), 'k').progress;
    expect(p).toEqual({ slotsTotal: 2, slotsDone: 1, keysMoved: 42, keysLeft: 7, rate: 3.5, etaSeconds: 2, currentSlots: [1], phase: 'moving' });
  });

  it('never lets a non-number through a numeric field (the dashboard writes them into HTML)', () => {
    const p = parseMigration(task({ keysMoved: '<img src=x onerror=alert(1)>', slotsDone: '1', etaSeconds: 'soon', currentSlots: ['<b>'], rate: Infinity }), 'k').progress;
    expect(p.keysMoved).toBe(0);
    expect(p.slotsDone).toBe(0);
    expect(p.etaSeconds).toBeNull();
    expect(p.currentSlots).toEqual([]);
    expect(p.rate).toBe(0);
    expect(p.slotsTotal).toBe(2);
  });
});
