/**
 * Input checks shared by reborn-config's CLI and REST API: ids, slot ranges, addresses.
 *
 * Invariant: a value that passes is in range; one that does not is a ValidationError whose
 * message names the value and what is wanted, the same words on both front ends.
 */
import { MAX_GROUP_ID, SLOT_COUNT, ValidationError, isValidAddr, isValidGroupId, isValidName, isValidSlotId } from '@reborn/coordinator';

// ---------------------------------------------------------------------------------------------
// Input checks shared by the CLI and the API. Messages name the value and what is wanted.

export function checkGroupId(id: number): number {
  if (!isValidGroupId(id)) throw new ValidationError(`invalid group id ${id}: want 1..${MAX_GROUP_ID}`);
  return id;
}

export function checkSlotId(id: number): number {
  if (!isValidSlotId(id)) throw new ValidationError(`slot ${id} is out of range 0..${SLOT_COUNT - 1}`);
  return id;
}

export function checkSlotRange(first: number, last: number): void {
  checkSlotId(first);
  checkSlotId(last);
  if (first > last) throw new ValidationError(`invalid slot range ${first}-${last}: from must not be greater than to`);
}

export function checkAddr(addr: string): string {
  if (!isValidAddr(addr)) throw new ValidationError(`invalid server address ${JSON.stringify(addr)}: want host:port`);
  return addr;
}

export function checkMigrationId(id: string): string {
  if (!isValidName(id)) throw new ValidationError(`invalid migration id ${JSON.stringify(id)}`);
  return id;
}

export function checkProxyId(id: string): string {
  if (!isValidName(id)) throw new ValidationError(`invalid proxy id ${JSON.stringify(id)}`);
  return id;
}
