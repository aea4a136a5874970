import { Ajv } from 'ajv';

/**
 * The acceptance schema: objects (one nested), an array, enums, numbers, strings, a nullable field, required and
 * optional fields. Strings are bounded so that a random-weight model's runs end within the fixture's context.
 */
export const ACCEPTANCE_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 8 },
    code: { type: 'string', minLength: 2, maxLength: 4 },
    age: { type: 'integer' },
    score: { type: 'number' },
    kind: { enum: ['cat', 'dog', 'bird'] },
    active: { type: 'boolean' },
    tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, maxItems: 3 },
    owner: {
      type: 'object',
      properties: { id: { type: 'integer' }, nick: { anyOf: [{ type: 'string', maxLength: 6 }, { type: 'null' }] } },
      required: ['id', 'nick'],
      additionalProperties: false,
    },
    note: { type: 'string', maxLength: 4 },
  },
  required: ['name', 'code', 'age', 'score', 'kind', 'active', 'tags', 'owner'],
  additionalProperties: false,
} as const;

/** Ajv's errors for `text` parsed as JSON against `schema`, or [] when it validates (a parse failure is an error). */
export function schemaErrors(schema: object, text: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return [`not JSON: ${(error as Error).message}`];
  }
  const validate = new Ajv({ strict: true }).compile(schema);
  return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
}
