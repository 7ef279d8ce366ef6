/**
 * Request bodies of the REST API: a small JSON schema, enough to say which field is wrong and
 * why, and the schema of every route that takes a body. Invariant: validateBody either returns
 * the body as an object whose fields all match the schema, or throws a ValidationError whose
 * message names the first bad field (HTTP 400 with `{error, code}`).
 */
import { MAX_GROUP_REPLICAS, PRODUCT_CONFIG_VALUE_MAX, SLOT_COUNT, SOURCE_LATENCY_RANGE, ValidationError } from '@reborn/coordinator';

export type FieldSchema =
  /** nullable: `null` is accepted too (a PATCH clearing the field). */
  | { type: 'integer'; minimum?: number; maximum?: number; nullable?: boolean; description?: string }
  | { type: 'string'; minLength?: number; maxLength?: number; description?: string }
  | { type: 'boolean'; const?: boolean; description?: string };

export interface BodySchema {
  properties: Record<string, FieldSchema>;
  required?: readonly string[];
}

/** Checks `body` against `schema`; throws ValidationError naming the first bad field. */
export function validateBody(body: unknown, schema: BodySchema): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('invalid request body: want a JSON object');
  }
  const o = body as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    // Own properties only: "toString" or "__proto__" are not fields of any schema.
    if (!Object.hasOwn(schema.properties, name)) throw new ValidationError(`invalid request body: unknown field "${name}"`);
  }
  for (const name of schema.required ?? []) {
    if (o[name] === undefined) throw new ValidationError(`invalid request body: field "${name}" is required`);
  }
  for (const [name, f] of Object.entries(schema.properties)) {
    const v = o[name];
    if (v === undefined) continue;
    const bad = (want: string): never => {
      throw new ValidationError(`invalid request body: field "${name}" must be ${want}, got ${JSON.stringify(v)}`);
    };
    switch (f.type) {
      case 'integer': {
        if (v === null && f.nullable) break;
        const range = integerRange(f) + (f.nullable ? ' or null' : '');
        if (typeof v !== 'number' || !Number.isSafeInteger(v)) bad(`an integer${range}`);
        const n = v as number;
        if ((f.minimum !== undefined && n < f.minimum) || (f.maximum !== undefined && n > f.maximum)) bad(`an integer${range}`);
        break;
      }
      case 'string':
        if (typeof v !== 'string') bad('a string');
        if (f.minLength !== undefined && (v as string).length < f.minLength) bad(`a string of at least ${f.minLength} characters`);
        if (f.maxLength !== undefined && (v as string).length > f.maxLength) bad(`a string of at most ${f.maxLength} characters`);
        break;
      case 'boolean':
        if (typeof v !== 'boolean') bad('a boolean');
        if (f.const !== undefined && v !== f.const) bad(String(f.const));
        break;
    }
  }
  return o;
}

/** The range part of an integer field's message: " in 0..1023", " ≥ 0", " ≤ 9" or "". */
function integerRange(f: { minimum?: number; maximum?: number }): string {
  if (f.minimum !== undefined && f.maximum !== undefined) return ` in ${f.minimum}..${f.maximum}`;
  if (f.minimum !== undefined) return ` ≥ ${f.minimum}`;
  if (f.maximum !== undefined) return ` ≤ ${f.maximum}`;
  return '';
}

const slotField: FieldSchema = { type: 'integer', minimum: 0, maximum: SLOT_COUNT - 1 };
const groupField: FieldSchema = { type: 'integer', minimum: 1, maximum: 9999 };
const addrField: FieldSchema = { type: 'string', minLength: 1, maxLength: 300 };
/** A replica count setting: a number sets it, null clears it. */
const replicaSettingField: FieldSchema = { type: 'integer', minimum: 0, maximum: MAX_GROUP_REPLICAS, nullable: true };

export const SCHEMAS = {
  addGroup: { properties: { id: groupField }, required: ['id'] },
  groupSettings: { properties: { minInSync: replicaSettingField, wantReplicas: replicaSettingField, force: { type: 'boolean' } } },
  addServer: { properties: { addr: addrField }, required: ['addr'] },
  promote: { properties: { addr: addrField }, required: ['addr'] },
  initSlots: { properties: { force: { type: 'boolean' } } },
  setSlots: { properties: { from: slotField, to: slotField, group: groupField }, required: ['from', 'to', 'group'] },
  migrate: {
    properties: {
      from: slotField,
      to: slotField,
      group: groupField,
      throttle: { type: 'integer', minimum: 0 },
      batchSlots: { type: 'integer', minimum: 1, maximum: SLOT_COUNT },
      maxSourceLatencyMs: { type: 'integer', minimum: SOURCE_LATENCY_RANGE.min, maximum: SOURCE_LATENCY_RANGE.max },
    },
    required: ['from', 'to', 'group'],
  },
  rebalance: { properties: { confirm: { type: 'boolean', const: true } }, required: ['confirm'] },
  check: {
    properties: {
      fix: { type: 'boolean' },
      scanCount: { type: 'integer', minimum: 1, maximum: 100_000 },
      throttle: { type: 'integer', minimum: 0 },
      maxExamples: { type: 'integer', minimum: 0, maximum: 10_000 },
    },
  },
  redisConfig: { properties: { value: { type: 'string', maxLength: PRODUCT_CONFIG_VALUE_MAX } }, required: ['value'] },
  empty: { properties: {} },
} satisfies Record<string, BodySchema>;
