import { asyncBufferFromFile, parquetReadObjects, toJson } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { DataError } from './errors.js';

/**
 * Every row of a parquet file as a plain object (nested lists and structs as arrays and objects, 64-bit integers as
 * numbers), read with hyparquet; snappy, gzip, zstd, brotli and lz4 pages are decompressed.
 */
export async function readParquetRows(path: string, label: string): Promise<Record<string, unknown>[]> {
  let rows: Record<string, unknown>[];
  try {
    const file = await asyncBufferFromFile(path);
    rows = (await parquetReadObjects({ file, compressors })).map((row) => toJson(row) as Record<string, unknown>);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError(`${label} does not exist; pass a parquet or JSONL file, a folder of them, or a Hub dataset id.`);
    throw new DataError(`${label} is not a parquet file loraforge can read (${(err as Error).message}); check that the file is complete, or convert it to JSONL.`);
  }
  if (rows.length === 0) throw new DataError(`${label} holds no rows; a parquet data file needs one example per row.`);
  return rows;
}
