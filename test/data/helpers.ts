import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { AutoTokenizer, type PreTrainedTokenizer } from '../../src/tokenizer/index.js';
import { fixturePath } from '../helpers/fixtures.js';

/** The tiny fixture tokenizer: byte-level BPE, <|endoftext|> = 0 is bos/eos/pad, ChatML template. */
export function fixtureTokenizer(): Promise<PreTrainedTokenizer> {
  return AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
}

/** Writes `lines` (objects as JSON, strings as they are) to a .jsonl file in a folder removed after the test file. */
export async function jsonlFile(lines: readonly unknown[], name = 'data.jsonl'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loraforge-data-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, name);
  await writeFile(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return path;
}
