import { describe, expect, it } from 'vitest';
import { SCHEMAS, isLoopbackHost, validateBody } from './api.js';

describe('validateBody', () => {
  it('accepts a valid body', () => {
    expect(validateBody({ from: 0, to: 1023, group: 2 }, SCHEMAS.setSlots)).toEqual({ from: 0, to: 1023, group: 2 });
    expect(validateBody({}, SCHEMAS.initSlots)).toEqual({});
  });
  it.each([
    [[], SCHEMAS.setSlots, 'invalid request body: want a JSON object'],
    [null, SCHEMAS.setSlots, 'invalid request body: want a JSON object'],
    [{ from: 0, to: 1 }, SCHEMAS.setSlots, 'invalid request body: field "group" is required'],
    [{ from: 0, to: 1024, group: 1 }, SCHEMAS.setSlots, 'invalid request body: field "to" must be an integer in 0..1023, got 1024'],
    [{ from: '0', to: 1, group: 1 }, SCHEMAS.setSlots, 'invalid request body: field "from" must be an integer in 0..1023, got "0"'],
    [{ from: 0.5, to: 1, group: 1 }, SCHEMAS.setSlots, 'invalid request body: field "from" must be an integer in 0..1023, got 0.5'],
    [{ from: 0, to: 1, group: 1, extra: true }, SCHEMAS.setSlots, 'invalid request body: unknown field "extra"'],
    [{ from: 0, to: 1, group: 1, toString: 1 }, SCHEMAS.setSlots, 'invalid request body: unknown field "toString"'],
    [JSON.parse('{"from": 0, "to": 1, "group": 1, "__proto__": {}}'), SCHEMAS.setSlots, 'invalid request body: unknown field "__proto__"'],
    [{ addr: 7 }, SCHEMAS.addServer, 'invalid request body: field "addr" must be a string, got 7'],
    [{ force: 'yes' }, SCHEMAS.initSlots, 'invalid request body: field "force" must be a boolean, got "yes"'],
    [{ confirm: false }, SCHEMAS.rebalance, 'invalid request body: field "confirm" must be true, got false'],
    [{ from: 0, to: 1, group: 1, throttle: -1 }, SCHEMAS.migrate, 'invalid request body: field "throttle" must be an integer ≥ 0, got -1'],
  ])('%j', (body, schema, message) => {
    expect(() => validateBody(body, schema)).toThrow(message);
  });
});

it('isLoopbackHost', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) expect(isLoopbackHost(h)).toBe(true);
  for (const h of ['0.0.0.0', '10.0.0.1', '::', 'example.com', '']) expect(isLoopbackHost(h)).toBe(false);
});
