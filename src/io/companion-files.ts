import { copyFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathKind } from './path-kind.js';

/** Files next to the weights that a model folder carries along: tokenizer, chat template, generation defaults. */
const COMPANION_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
  'generation_config.json',
];

/** Copies the companion files present in `from` into `to`, each appearing atomically; returns their names. */
export async function copyCompanionFiles(from: string, to: string): Promise<string[]> {
  const copied: string[] = [];
  for (const name of COMPANION_FILES) {
    const source = join(from, name);
    if ((await pathKind(source)) !== 'file') continue;
    const temp = join(to, `.${name}.${process.pid}.tmp`);
    try {
      await copyFile(source, temp);
      await rename(temp, join(to, name));
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    copied.push(name);
  }
  return copied;
}
