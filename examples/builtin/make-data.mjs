#!/usr/bin/env node
// Writes train.jsonl and valid.jsonl of the built-in task: reverse a string of 3 to 6 letters. The letters are
// ones the bundled tokenizer never merges, so every letter is one token. Deterministic: same files every run.
// Usage: node examples/builtin/make-data.mjs   (from the project root, after `npm run build`)
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../dist/src/tensor/random.js';

const LETTERS = 'acdgijkpwx'.split('');
const TRAIN = 4000;
const VALID = 200;
const rng = new Rng(1234);
const seen = new Set();
const rows = [];
while (rows.length < TRAIN + VALID) {
  const length = 3 + rng.int(4);
  const word = Array.from({ length }, () => LETTERS[rng.int(LETTERS.length)]).join('');
  if (seen.has(word)) continue;
  seen.add(word);
  rows.push({ prompt: `${word}>`, completion: [...word].reverse().join('') });
}
const here = dirname(fileURLToPath(import.meta.url));
const write = (name, part) => writeFileSync(join(here, name), part.map((r) => JSON.stringify(r)).join('\n') + '\n');
write('train.jsonl', rows.slice(0, TRAIN));
write('valid.jsonl', rows.slice(TRAIN));
