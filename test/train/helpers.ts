import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import '../../src/index.js';
import { tokenizeExample, type TokenizedExample } from '../../src/data/index.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import { getPeftModel, type PeftModel } from '../../src/peft/index.js';
import { AutoTokenizer } from '../../src/tokenizer/index.js';
import { DEFAULT_TRAINING_ARGUMENTS, type TrainingArguments } from '../../src/train/training-args.js';
import { fixturePath } from '../helpers/fixtures.js';

/** A folder removed when the test file ends. */
export async function tempDir(prefix = 'loraforge-train-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Reversal examples of varying length on the fixture tokenizer, so batches need padding. */
export async function reversalExamples(count: number): Promise<TokenizedExample[]> {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  const letters = 'acdgkpwx';
  return Array.from({ length: count }, (_, i) => {
    const word = Array.from({ length: 2 + (i % 4) }, (_, j) => letters[(i * 7 + j * 3) % letters.length]).join('');
    return tokenizeExample({ kind: 'completion', prompt: `${word}>`, completion: [...word].reverse().join('') }, tok);
  });
}

/** tiny-llama with a fresh LoRA (seeded, with dropout so that resumes must restore the generator). */
export async function freshPeft(options: { loraDropout?: number } = {}): Promise<PeftModel> {
  const base = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32' });
  return getPeftModel(base, { r: 4, loraAlpha: 8, loraDropout: options.loraDropout ?? 0.1, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 3 });
}

export function testArgs(outputDir: string, overrides: Partial<TrainingArguments> = {}): TrainingArguments {
  return { ...DEFAULT_TRAINING_ARGUMENTS, outputDir, maxSteps: 6, batchSize: 3, gradAccum: 2, lr: 1e-2, warmupSteps: 2, loggingSteps: 1, saveSteps: 0, seed: 11, ...overrides };
}
