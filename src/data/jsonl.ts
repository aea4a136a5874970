import { DataError } from './errors.js';
import { readLines } from './line-reader.js';

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

export interface ReadJsonlOptions {
  skipMalformed?: boolean;
  /** Longest line read, in bytes; a longer one is malformed (it is never held in memory whole). Default 16 MiB. */
  maxLineBytes?: number;
}

export const DEFAULT_MAX_LINE_BYTES = 16 * 2 ** 20;

/**
 * Reads a JSON Lines file line by line: one JSON object per line, blank lines ignored, white space around it
 * (a byte order mark included: String.prototype.trim removes U+FEFF) allowed. A line that is too long, not UTF-8 or not a JSON object throws a DataError naming path:line,
 * unless `skipMalformed` is set, in which case it is listed in `skipped`. Memory: one line at a time on top of the
 * records returned.
 */
export async function readJsonl(path: string, options: ReadJsonlOptions = {}): Promise<JsonlContents> {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const records: JsonlRecord[] = [];
  const skipped: SkippedLine[] = [];
  for await (const line of readLines(path, maxLineBytes)) {
    let reason: string | null;
    let fix = 'fix it';
    let value: unknown;
    if (line.text === null) {
      [reason, fix] = line.tooLong
        ? [`is longer than the line limit of ${describeBytes(maxLineBytes)}`, 'split the example, raise --max-line-mib']
        : ['is not valid UTF-8', 'save the file as UTF-8'];
    } else {
      const raw = line.text.trim();
      if (raw === '') continue;
      reason = null;
      try {
        value = JSON.parse(raw);
        if (typeof value !== 'object' || value === null || Array.isArray(value)) reason = 'is not a JSON object';
      } catch (err) {
        reason = `is not valid JSON (${(err as Error).message})`;
      }
    }
    if (reason === null) {
      records.push({ line: line.number, value: value as Record<string, unknown> });
    } else if (options.skipMalformed) {
      skipped.push({ line: line.number, reason });
    } else {
      throw new DataError(`${path}:${line.number}: the line ${reason}; ${fix}, or pass --skip-malformed to skip such lines.`);
    }
  }
  if (records.length === 0) throw new DataError(`${path} holds no examples${skipped.length ? ` (all ${skipped.length} lines were malformed)` : ''}; it needs one JSON object per line.`);
  return { records, skipped };
}

function describeBytes(bytes: number): string {
  return bytes % 2 ** 20 === 0 ? `${bytes / 2 ** 20} MiB` : `${bytes} bytes`;
}
