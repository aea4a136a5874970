import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';

/** One ShareGPT turn as a parquet struct. */
export interface Turn {
  from: string;
  value: string;
}

/** Writes string columns (snappy, as pyarrow and the Hub's converter write them) to `path`. */
export async function writeStringParquet(path: string, columns: Record<string, string[]>): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  parquetWriteFile({ filename: path, columnData: Object.entries(columns).map(([name, data]) => ({ name, data, type: 'STRING' as const })) });
}

/**
 * Writes a ShareGPT table as `datasets` stores one: an `id` string and `conversations`, a list<struct<from, value>>
 * (the 3-level LIST layout of the parquet spec).
 */
export async function writeShareGptParquet(path: string, rows: { id: string; conversations: Turn[] }[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  parquetWriteFile({
    filename: path,
    columnData: [
      { name: 'id', data: rows.map((r) => r.id) },
      { name: 'conversations', data: rows.map((r) => r.conversations) },
    ],
    schema: [
      { name: 'root', num_children: 2 },
      { name: 'id', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'conversations', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'from', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'value', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
  });
}
