import { open, type FileHandle } from 'node:fs/promises';
import { DataError } from './errors.js';

/** One line of a text file: its text, or null when it is too long or not UTF-8 (`tooLong` says which). */
export interface TextLine {
  /** 1-based. */
  number: number;
  text: string | null;
  tooLong: boolean;
}

const CHUNK_BYTES = 1 << 16;
const NEWLINE = 0x0a;

/**
 * The lines of a UTF-8 file, read in 64 KiB chunks, so memory stays at one line (at most `maxLineBytes`) plus a
 * chunk: a longer line is reported as too long without being kept. A byte order mark is kept (as U+FEFF).
 */
export async function* readLines(path: string, maxLineBytes: number): AsyncGenerator<TextLine> {
  const handle = await openTextFile(path);
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const chunk = new Uint8Array(CHUNK_BYTES);
  let parts: Uint8Array[] = [];
  let length = 0;
  let tooLong = false;
  let number = 1;
  const finish = (): TextLine => {
    const line: TextLine = { number, text: null, tooLong };
    if (!tooLong) {
      try {
        line.text = decoder.decode(concat(parts, length));
      } catch {
        line.text = null;
      }
    }
    parts = [];
    length = 0;
    tooLong = false;
    number++;
    return line;
  };
  try {
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, CHUNK_BYTES, null);
      if (bytesRead === 0) break;
      let start = 0;
      while (start < bytesRead) {
        const nl = chunk.subarray(start, bytesRead).indexOf(NEWLINE);
        const end = nl < 0 ? bytesRead : start + nl;
        if (!tooLong && length + (end - start) > maxLineBytes) {
          tooLong = true;
          parts = [];
        }
        if (!tooLong && end > start) parts.push(chunk.slice(start, end));
        if (!tooLong) length += end - start;
        if (nl < 0) break;
        yield finish();
        start = end + 1;
      }
    }
    if (length > 0 || tooLong) yield finish();
  } finally {
    await handle.close();
  }
}

async function openTextFile(path: string): Promise<FileHandle> {
  const folder = `${path} is a folder; pass a JSONL file with one training example per line.`;
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError(`${path} does not exist; pass a JSONL file with one training example per line.`);
    if (code === 'EISDIR') throw new DataError(folder);
    throw new DataError(`${path} cannot be read (${(err as Error).message}).`);
  }
  if ((await handle.stat()).isDirectory()) {
    await handle.close();
    throw new DataError(folder);
  }
  return handle;
}

function concat(parts: readonly Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
