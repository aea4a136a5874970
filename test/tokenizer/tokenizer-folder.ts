import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fixturePath, readFixtureTensor } from '../helpers/fixtures.js';

/**
 * A temporary tokenizer folder (removed when the test file ends) holding the tiny fixture's tokenizer.json plus
 * `files`: a string is written as is, anything else as JSON; null leaves that file out.
 */
export async function tokenizerFolder(files: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loraforge-tokenizer-'));
  after(() => rm(dir, { recursive: true, force: true }));
  if (!('tokenizer.json' in files)) await copyFile(fixturePath('tiny-llama', 'tokenizer.json'), join(dir, 'tokenizer.json'));
  for (const [name, content] of Object.entries(files)) {
    if (content === null) continue;
    await writeFile(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

/** An int64 id tensor from a `<model>-ref.safetensors` file, as plain numbers. */
export async function referenceIds(file: string, name: string): Promise<number[]> {
  const { dtype, data } = await readFixtureTensor(file, name);
  if (dtype !== 'int64') throw new Error(`${file}:${name} is ${dtype}, expected int64 token ids.`);
  return Array.from(data as BigInt64Array, Number);
}
