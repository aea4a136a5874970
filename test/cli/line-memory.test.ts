import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODEL, tempDir } from './helpers.js';

const CHILD = fileURLToPath(new URL('./peak-rss-child.js', import.meta.url));
const TINY = ['--max-steps', '1', '--batch-size', '2', '--seq-len', '64', '--save-steps', '0', '--samples', '0'];

interface Outcome {
  code: number;
  stderr: string;
  peakMiB: number;
}

function trainMeasured(data: string, output: string): Outcome {
  const r = spawnSync(process.execPath, [CHILD, 'train', '--model', MODEL, '--data', data, '--output', output, ...TINY], { encoding: 'utf8', maxBuffer: 1 << 24 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Outcome;
}

const example = (completion: string) => JSON.stringify({ prompt: 'ab>', completion });

// Tokenizing the line's ~700k tokens before truncation costs ~34 MiB of peak RSS on this project's 2-core machines
// (measured 2026-12-08: 130-135 MiB against 96-100 MiB, on the landed main as well); 48 MiB still fails a reader that
// holds the line a few dozen times over, and the 50 MB case below checks the line limit itself.
test('a 1 MB JSONL line costs less than 48 MiB of peak memory over a file of short lines', async () => {
  const dir = await tempDir();
  const small = join(dir, 'small.jsonl');
  await writeFile(small, `${example('ba')}\n${example('ab')}\n`);
  const big = join(dir, 'big.jsonl');
  await writeFile(big, `${example('ab '.repeat(350_000))}\n${example('ab')}\n`);
  const baseline = trainMeasured(small, join(dir, 'run-small'));
  const measured = trainMeasured(big, join(dir, 'run-big'));
  assert.equal(measured.code, 0, measured.stderr);
  assert.ok(measured.peakMiB - baseline.peakMiB < 48, `peak ${measured.peakMiB.toFixed(0)} MiB against ${baseline.peakMiB.toFixed(0)} MiB with short lines`);
});

test('a 50 MB JSONL line is refused at the 16 MiB line limit, naming file and line, without holding the line', async () => {
  const dir = await tempDir();
  const data = join(dir, 'huge.jsonl');
  const file = await open(data, 'w');
  await file.write(`${example('ab')}\n{"prompt": "ab>", "completion": "`);
  const block = 'ab '.repeat(1 << 20);
  for (let written = 0; written < 50e6; written += block.length) await file.write(block);
  await file.write('"}\n');
  await file.close();
  const out = join(dir, 'run');
  const r = trainMeasured(data, out);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `loraforge: ${data}:2: the line is longer than the line limit of 16 MiB; split the example, raise --max-line-mib, or pass --skip-malformed to skip such lines.\n`);
  assert.ok(r.peakMiB < 160, `peak ${r.peakMiB.toFixed(0)} MiB`);
  assert.equal(existsSync(out), false);
});
