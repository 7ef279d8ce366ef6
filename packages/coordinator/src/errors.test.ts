import { EtcdPermissionDeniedError, GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { toCoordinatorError, withTimeout } from './client.js';
import { ConflictError, CoordinatorError, NotFoundError, UnavailableError, ValidationError } from './errors.js';

describe('errors', () => {
  it('have stable codes and say whether a retry can help', () => {
    const cases: [CoordinatorError, string, boolean][] = [
      [new ValidationError('x'), 'EINVALID', false],
      [new NotFoundError('x'), 'ENOTFOUND', false],
      [new ConflictError('x'), 'ECONFLICT', false],
      [new ConflictError('x', { retryable: true }), 'ECONFLICT', true],
      [new UnavailableError('x'), 'EUNAVAILABLE', true],
    ];
    for (const [err, code, retryable] of cases) {
      expect(err).toBeInstanceOf(CoordinatorError);
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe(code);
      expect(err.retryable).toBe(retryable);
      expect(err.name).toBe(err.constructor.name);
    }
  });

  it('map etcd3 failures by kind, keeping the cause', () => {
    const down = new GRPCUnavailableError('14 UNAVAILABLE: connect ECONNREFUSED');
    const mapped = toCoordinatorError(down, 'list groups');
    expect(mapped).toBeInstanceOf(UnavailableError);
    expect(mapped.message).toMatch(/^list groups: etcd unavailable/);
    expect(mapped.cause).toBe(down);
    expect(toCoordinatorError(new GRPCDeadlineExceededError('deadline'), 'x')).toBeInstanceOf(UnavailableError);
    const breaker = Object.assign(new Error('circuit open'), { isBrokenCircuitError: true });
    expect(toCoordinatorError(breaker, 'x')).toBeInstanceOf(UnavailableError);
    const denied = toCoordinatorError(new EtcdPermissionDeniedError('denied'), 'x');
    expect(denied.code).toBe('EETCD');
    expect(denied.retryable).toBe(false);
    const ours = new NotFoundError('x');
    expect(toCoordinatorError(ours, 'y')).toBe(ours);
  });

  it('withTimeout turns a hung call into UnavailableError', async () => {
    await expect(withTimeout(new Promise(() => {}), 20, 'get slot 1')).rejects.toThrow(
      /^get slot 1: etcd did not answer within 20 ms$/,
    );
    await expect(withTimeout(Promise.resolve(7), 20, 'x')).resolves.toBe(7);
  });
});
