/**
 * Validation of the supervisor's HTTP request bodies (POST /api/start_redis, start_proxy, …).
 *
 * Invariant: each failure is a BadRequestError that says which field and what is wrong; a
 * value that passes has the type and range the supervisor relies on.
 */
import { isValidAddr, splitAddr } from '@reborn/coordinator';
import { BadRequestError } from './errors.js';

export function asBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequestError('the body must be a JSON object');
  return body as Record<string, unknown>;
}

export function allowOnly(o: Record<string, unknown>, names: string[]): void {
  const extra = Object.keys(o).filter((k) => !names.includes(k));
  if (extra.length > 0) throw new BadRequestError(`unknown field(s) ${extra.join(', ')}; allowed: ${names.join(', ')}`);
}

export function portField(o: Record<string, unknown>, name: string): number {
  const v = o[name];
  if (v === undefined) throw new BadRequestError(`missing ${name}`);
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new BadRequestError(`${name} must be a number, got ${JSON.stringify(v)}`);
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw new BadRequestError(`${name} must be an integer 1..65535, got ${v}`);
  return v;
}

export function stringField(o: Record<string, unknown>, name: string): string {
  const v = o[name];
  if (v === undefined) throw new BadRequestError(`missing ${name}`);
  if (typeof v !== 'string' || v.length === 0) throw new BadRequestError(`${name} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

export function addrField(o: Record<string, unknown>, name: string): string {
  const v = stringField(o, name);
  if (!isValidAddr(v)) throw new BadRequestError(`${name} must be host:port, got ${JSON.stringify(v)}`);
  return v;
}

export function portOf(addr: string): number {
  return splitAddr(addr).port;
}
