import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import '../../src/ops/index.js';
import '../../src/generate/index.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { buildCausalLM } from '../../src/models/build.js';
import { loadConfig } from '../../src/models/config.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { AdamW } from '../../src/optim/index.js';
import type { PeftModel } from '../../src/peft/index.js';
import { scopeAsync } from '../../src/tensor/scope.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { fixturePath, readFixtureMetadata, readFixtureTensor } from '../helpers/fixtures.js';

await prepareTestDevice();

export type BaseName =
  | 'tiny-llama' | 'tiny-qwen2' | 'tiny-qwen3' | 'tiny-gemma2' | 'tiny-gemma3' | 'tiny-phi3' | 'tiny-smollm3' | 'tiny-olmo2'
  | 'tiny-mixtral' | 'tiny-qwen3moe' | 'tiny-gptoss';

/** Every adapter variant of the reference files, by base model, in the order of their lora_variants metadata. */
export const VARIANTS: Readonly<Record<BaseName, readonly string[]>> = {
  'tiny-llama': ['lora', 'lora_qv', 'rslora', 'dora'],
  'tiny-qwen2': ['lora', 'lora_mlp'],
  'tiny-qwen3': ['lora', 'lora_qv'],
  'tiny-gemma2': ['lora', 'lora_mlp'],
  'tiny-gemma3': ['lora', 'lora_qv'],
  'tiny-phi3': ['lora', 'lora_qkv'],
  'tiny-smollm3': ['lora', 'lora_qv'],
  'tiny-olmo2': ['lora', 'lora_att'],
  'tiny-mixtral': ['lora', 'lora_experts'],
  'tiny-qwen3moe': ['lora', 'lora_experts'],
  'tiny-gptoss': ['lora', 'lora_experts'],
};

/** The mixture-of-experts bases. */
export const MOE_BASES: readonly BaseName[] = ['tiny-mixtral', 'tiny-qwen3moe', 'tiny-gptoss'];

/** Tolerance of the acceptance criteria: |a - e| <= 1e-4 * max(1, max|e|). */
export const TOLERANCE = 1e-4;

/** A float32 model from a Hugging Face folder (a fixture base model, or an exported one) on the test device. */
export async function loadModel(dir: string): Promise<CausalLM> {
  const source = await openCheckpoint(dir);
  try {
    return await buildCausalLM(await loadConfig(dir), source, 'float32', TEST_DEVICE);
  } finally {
    await source.close();
  }
}

export function loadBase(name: BaseName): Promise<CausalLM> {
  return loadModel(fixturePath(name));
}

export function refFile(base: BaseName): string {
  return `${base}-ref.safetensors`;
}

export function adapterDir(base: BaseName, variant: string): string {
  return fixturePath(`${base}-${variant}`);
}

export async function refValues(base: BaseName, name: string): Promise<Float32Array> {
  const t = await readFixtureTensor(refFile(base), name);
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** input_ids and labels [3, 24] of the reference batch as rows. */
export async function refBatch(base: BaseName): Promise<{ inputIds: number[][]; labels: number[][] }> {
  const rows = async (name: string) => {
    const t = await readFixtureTensor(refFile(base), name);
    const [b, s] = t.shape as [number, number];
    const flat = Array.from(t.data as BigInt64Array, Number);
    return Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
  };
  return { inputIds: await rows('input_ids'), labels: await rows('labels') };
}

/** Names of the reference tensors that start with `prefix` (e.g. "lora.merged."), in file order. */
export async function refNames(base: BaseName, prefix: string): Promise<string[]> {
  const st = await SafetensorsFile.open(fixturePath(refFile(base)));
  try {
    return st.names().filter((n) => n.startsWith(prefix));
  } finally {
    await st.close();
  }
}

export async function refInts(base: BaseName, name: string): Promise<number[]> {
  return Array.from((await readFixtureTensor(refFile(base), name)).data as BigInt64Array, Number);
}

/** The two variants that mixed.adapters [0, 1, -1] refers to: the first two of lora_variants. */
export async function mixedVariants(base: BaseName): Promise<[string, string]> {
  const names = Object.keys(JSON.parse((await readFixtureMetadata(refFile(base)))['lora_variants']!) as Record<string, unknown>);
  return [names[0]!, names[1]!];
}

/** Largest |a - e| and the scale it is judged against, max(1, max|e|). */
export function maxError(actual: ArrayLike<number>, expected: ArrayLike<number>): { abs: number; scale: number } {
  assert.equal(actual.length, expected.length, 'element counts differ');
  let abs = 0;
  let scale = 1;
  for (let i = 0; i < expected.length; i++) {
    abs = Math.max(abs, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return { abs, scale };
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tolerance = TOLERANCE): void {
  const { abs, scale } = maxError(actual, expected);
  assert.ok(abs <= tolerance * scale, `${what}: max abs error ${abs} exceeds ${tolerance} x ${scale}`);
}

export async function assertTensorClose(actual: Tensor, expected: ArrayLike<number>, what: string, tolerance = TOLERANCE): Promise<void> {
  assertClose(await actual.data(), expected, what, tolerance);
}

/** A fresh folder under the OS temp dir, removed when the test file finishes. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loraforge-peft-'));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Five torch.optim.AdamW steps (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01) on one batch, as the references ran them. */
export async function adamwFiveSteps(peft: PeftModel, batch: { inputIds: number[][]; labels: number[][] }): Promise<{ losses: number[]; params: Map<string, Tensor> }> {
  peft.train();
  const params = peft.trainableParameters();
  const optimizer = new AdamW(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  const losses: number[] = [];
  for (let step = 0; step < 5; step++) {
    await scopeAsync(async () => {
      const out = peft.run(batch);
      await out.loss!.backward();
      losses.push(await out.loss!.item());
      optimizer.step();
      optimizer.zeroGrad();
    });
  }
  return { losses, params };
}
