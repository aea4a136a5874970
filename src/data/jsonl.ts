import { readFile } from 'node:fs/promises';
import { DataError } from './errors.js';

export interface JsonlRecord {
  /** 1-based line number in the file. */
  line: number;
  value: Record<string, unknown>;
}

export interface SkippedLine {
  line: number;
  reason: string;
}

export interface JsonlContents {
  records: JsonlRecord[];
  skipped: SkippedLine[];
}

/**
 * Reads a JSON Lines file: one JSON object per line, blank lines ignored. A line that is not a JSON object
 * throws a DataError naming path:line, unless `skipMalformed` is set, in which case it is listed in `skipped`.
 */
export async function readJsonl(path: string, options: { skipMalformed?: boolean } = {}): Promise<JsonlContents> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError(`${path} does not exist; pass a JSONL file with one training example per line.`);
    if (code === 'EISDIR') throw new DataError(`${path} is a folder; pass a JSONL file with one training example per line.`);
    throw new DataError(`${path} cannot be read (${(err as Error).message}).`);
  }
  const records: JsonlRecord[] = [];
  const skipped: SkippedLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    let reason: string | null = null;
    let value: unknown;
    try {
      value = JSON.parse(raw);
      if (typeof value !== 'object' || value === null || Array.isArray(value)) reason = 'is not a JSON object';
    } catch (err) {
      reason = `is not valid JSON (${(err as Error).message})`;
    }
    if (reason === null) {
      records.push({ line: i + 1, value: value as Record<string, unknown> });
    } else if (options.skipMalformed) {
      skipped.push({ line: i + 1, reason });
    } else {
      throw new DataError(`${path}:${i + 1}: the line ${reason}; fix it, or pass --skip-malformed to skip such lines.`);
    }
  }
  if (records.length === 0) throw new DataError(`${path} holds no examples${skipped.length ? ` (all ${skipped.length} lines were malformed)` : ''}; it needs one JSON object per line.`);
  return { records, skipped };
}
