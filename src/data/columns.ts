import { DataError } from './errors.js';

/** The record fields the data formats read, which a column mapping may fill. */
export const DATA_FIELDS = ['text', 'prompt', 'completion', 'messages', 'conversations', 'instruction', 'input', 'output'] as const;
export type DataField = (typeof DATA_FIELDS)[number];

/** Which column of the dataset fills each field (--data-columns prompt=question,completion=answer). */
export type ColumnMapping = Readonly<Partial<Record<DataField, string>>>;

/** Parses the flag's text, `field=column` pairs separated by commas; the message names the flag and the bad pair. */
export function parseColumnMapping(text: string): ColumnMapping {
  const mapping: Partial<Record<DataField, string>> = {};
  for (const pair of text.split(',').map((s) => s.trim())) {
    const eq = pair.indexOf('=');
    const field = pair.slice(0, eq).trim();
    const column = pair.slice(eq + 1).trim();
    if (eq < 0 || field === '' || column === '') throw new DataError(`--data-columns must be field=column pairs separated by commas, such as prompt=question,completion=answer; got "${pair}".`);
    if (!(DATA_FIELDS as readonly string[]).includes(field)) throw new DataError(`--data-columns names the field "${field}", which no data format reads; the fields are ${DATA_FIELDS.join(', ')}.`);
    if (field in mapping) throw new DataError(`--data-columns maps the field "${field}" twice; give it one column.`);
    mapping[field as DataField] = column;
  }
  return mapping;
}

/** The record with each mapped field set to its column's value; a column the record lacks is an error listing the columns it has. */
export function mapColumns(value: Record<string, unknown>, mapping: ColumnMapping, where: string): Record<string, unknown> {
  const entries = Object.entries(mapping) as [DataField, string][];
  if (entries.length === 0) return value;
  const out: Record<string, unknown> = { ...value };
  for (const [field, column] of entries) {
    if (!(column in value)) {
      const columns = Object.keys(value).map((k) => JSON.stringify(k)).join(', ') || 'none';
      throw new DataError(`${where}: --data-columns maps ${field} to the column "${column}", which is not there; the columns are ${columns}.`);
    }
    out[field] = value[column];
  }
  return out;
}
