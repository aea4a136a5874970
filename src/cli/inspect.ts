import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../io/checkpoint.js';
import { resolvePretrained } from '../io/hub.js';
import type { TensorSource } from '../io/tensor-source.js';
import { openCheckedCheckpoint } from '../models/checkpoint-check.js';
import { loadConfig, type ModelConfig } from '../models/config.js';
import { layerProjections } from '../models/layout.js';
import { ADAPTER_CONFIG_NAME, readAdapterConfig } from '../peft/index.js';
import { checkAdapterFile } from '../peft/adapter-check.js';
import { openAdapterWeights } from '../peft/adapter-files.js';
import { isDecoderProjectionWeight } from '../quant/index.js';
import { BUILTIN } from './builtin-example.js';
import { UsageError } from './errors.js';
import { baseModelFolder } from './model-source.js';
import { commandHelp, resolveOptions, splitArgs, type OptionSpecs } from './options.js';

const INSPECT_OPTIONS: OptionSpecs = {
  r: { kind: 'number', integer: true, min: 1, default: 8, help: 'LoRA rank for the estimate of a model folder' },
};

export const INSPECT_HELP = commandHelp('inspect DIR [options]', 'Parameters, trainable share and memory estimate of a model or adapter folder ("builtin": the built-in example model).', INSPECT_OPTIONS);

/** Parameter counts of a checkpoint from its headers alone (packed 4-bit weights count two per byte). */
interface CheckpointCounts {
  params: number;
  storedBytes: number;
  /** Weights of the decoder projections (what LoRA targets and QLoRA quantizes). */
  projectionParams: number;
}

const QUANT_AUX = /\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\..*)$/;

function countCheckpoint(source: TensorSource): CheckpointCounts {
  const c: CheckpointCounts = { params: 0, storedBytes: 0, projectionParams: 0 };
  for (const name of source.names()) {
    const info = source.info(name);
    c.storedBytes += info.byteLength;
    if (QUANT_AUX.test(name)) continue;
    const numel = info.shape.reduce((a, b) => a * b, 1) * (info.dtype === 'uint8' ? 2 : 1);
    c.params += numel;
    if (isDecoderProjectionWeight(name)) c.projectionParams += numel;
  }
  return c;
}

const n = (x: number) => x.toLocaleString('en-US');
function bytes(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

async function withCheckpoint<S extends TensorSource, T>(opened: Promise<S>, fn: (s: S) => T): Promise<T> {
  const source = await opened;
  try {
    return fn(source);
  } finally {
    await source.close();
  }
}

async function inspectModel(dir: string, r: number): Promise<void> {
  const config = await loadConfig(dir);
  console.log(`model: ${dir} (${config.architecture})`);
  console.log(`  ${config.numHiddenLayers} layers, hidden ${config.hiddenSize}, ${config.numAttentionHeads} heads / ${config.numKeyValueHeads} KV heads, intermediate ${config.intermediateSize}, vocab ${config.vocabSize}${config.tieWordEmbeddings ? ', tied embeddings' : ''}`);
  console.log(`  ${describeArchitecture(config)}`);
  if (dir === BUILTIN.model) {
    console.log('  weights: random, created from loraforge_init_seed when loaded (nothing stored)');
    return;
  }
  const c = await withCheckpoint(openCheckedCheckpoint(dir, config), countCheckpoint);
  // QLoRA quantizes the projections and, on a mixture-of-experts model, every expert matrix (loadIn4bit).
  const quantized = c.projectionParams + expertWeightParams(config);
  const other = c.params - quantized;
  // QLoRA: 4 bits per quantized weight plus one absmax byte per 64 weights and an fp32 per 256 absmax (double quant); the rest bf16.
  const nf4 = quantized * (0.5 + 1 / 64 + 4 / (64 * 256)) + other * 2;
  // LoRA's A [r, in] and B [out, r] per projection, from the config's shapes (a 4-bit checkpoint stores packed bytes).
  const lora = config.numHiddenLayers * layerProjections(config).reduce((s, p) => s + r * (p.outFeatures + p.inFeatures), 0);
  console.log(`  parameters: ${n(c.params)} (${bytes(c.storedBytes)} as stored)`);
  console.log(`  weights in memory: float32 ${bytes(c.params * 4)}, bfloat16 ${bytes(c.params * 2)}, NF4 (QLoRA) ${bytes(nf4)}`);
  console.log(`  LoRA r=${r} on all linear layers: ${n(lora)} trainable parameters (${((100 * lora) / (c.params + lora)).toFixed(4)}% of ${n(c.params + lora)}); adapter ${bytes(lora * 4)} + AdamW state ${bytes(lora * 8)} in float32`);
}

/** The expert matrices of every sparse layer (gate, up and down of each expert; biases and routers aside). */
function expertWeightParams(c: ModelConfig): number {
  if (!c.moe) return 0;
  return c.moe.sparseLayers.filter(Boolean).length * 3 * c.moe.numExperts * c.moe.expertIntermediateSize * c.hiddenSize;
}

/** One line on what sets this family's computation apart: attention pattern, RoPE, norms, soft-capping. */
export function describeArchitecture(c: ModelConfig): string {
  const sliding = c.layerTypes.filter((t) => t === 'sliding_attention').length;
  const parts = [
    `${c.family} family`,
    `head_dim ${c.headDim}`,
    sliding ? `sliding window ${c.slidingWindow} on ${sliding} of ${c.numHiddenLayers} layers` : 'full attention on every layer',
    `RoPE ${[...new Set(Object.values(c.rope).map((r) => `${r.type} theta ${r.theta}`))].join(' / ')}${c.rotaryDim < c.headDim ? ` on ${c.rotaryDim} of ${c.headDim} dims` : ''}`,
  ];
  if (c.moe) parts.push(`${c.moe.numExperts} experts (top ${c.moe.topK}, intermediate ${c.moe.expertIntermediateSize}) on ${c.moe.sparseLayers.filter(Boolean).length} of ${c.numHiddenLayers} layers`);
  const nope = c.ropeLayers.filter((r) => !r).length;
  if (nope) parts.push(`${nope} NoPE layers`);
  if (c.qkNorm !== 'none') parts.push(`q/k norm per ${c.qkNorm}`);
  if (c.normPlacement !== 'pre') parts.push(`${c.normPlacement} norms`);
  if (c.configuredAttnLogitSoftcap) parts.push(`attention soft-cap ${c.configuredAttnLogitSoftcap} (${c.attnLogitSoftcap ? 'applied: eager attention' : 'not applied: sdpa attention, as transformers by default'})`);
  if (c.finalLogitSoftcap) parts.push(`logit soft-cap ${c.finalLogitSoftcap}`);
  if (c.fusedProjections) parts.push('fused qkv_proj and gate_up_proj');
  parts.push(`activation ${c.hiddenAct}`);
  if (c.skippedTower) parts.push(`language model only (the ${c.skippedTower} is not loaded)`);
  return parts.join(', ');
}

async function inspectAdapter(dir: string): Promise<void> {
  const config = await readAdapterConfig(dir);
  const adapter = await withCheckpoint(openAdapterWeights(dir), (s) => {
    checkAdapterFile(config, s, join(dir, ADAPTER_CONFIG_NAME));
    let params = 0;
    let stored = 0;
    for (const name of s.names()) {
      const info = s.info(name);
      params += info.shape.reduce((a, b) => a * b, 1);
      stored += info.byteLength;
    }
    return { params, stored, tensors: s.names().length, dtype: s.names().length ? s.info(s.names()[0]!).dtype : 'float32' };
  });
  const modules = typeof config.targetModules === 'string' ? [config.targetModules] : (config.targetModules ?? []);
  const targets = [...modules, ...(config.targetParameters ?? [])].join(', ');
  const flags = [config.useRslora ? 'rsLoRA' : '', config.useDora ? 'DoRA' : ''].filter(Boolean).join(', ');
  console.log(`adapter: ${dir} (LoRA r ${config.r}, alpha ${config.loraAlpha}${flags ? `, ${flags}` : ''}; targets ${targets})`);
  console.log(`  ${adapter.tensors} tensors, ${n(adapter.params)} parameters (${bytes(adapter.stored)}, ${adapter.dtype})`);
  const folder = await baseModelFolder(undefined, dir).catch(() => null);
  const local = folder === 'builtin' ? null : folder && (await resolvePretrained(folder).catch(() => null));
  if (local && existsSync(join(local, 'config.json'))) {
    const base = await withCheckpoint(openCheckpoint(local), countCheckpoint);
    console.log(`  base model ${folder}: ${n(base.params)} parameters; trainable share ${((100 * adapter.params) / (base.params + adapter.params)).toFixed(4)}%`);
  } else if (folder) {
    console.log(`  base model: ${folder === 'builtin' ? 'the built-in example model' : folder}`);
  }
  console.log(`  training memory for the adapter: weights ${bytes(adapter.params * 4)} + gradients ${bytes(adapter.params * 4)} + AdamW state ${bytes(adapter.params * 8)} (float32)`);
}

export async function runInspect(argv: readonly string[]): Promise<number> {
  const { flags, positionals } = splitArgs(argv, INSPECT_OPTIONS);
  const v = resolveOptions(INSPECT_OPTIONS, flags, null);
  if (positionals.length !== 1) throw new UsageError('inspect needs one folder: a model folder, an adapter folder, or "builtin".');
  const target = positionals[0]!;
  if (target === 'builtin') await inspectModel(BUILTIN.model, v['r'] as number);
  else if (existsSync(join(target, ADAPTER_CONFIG_NAME))) await inspectAdapter(target);
  else await inspectModel(await resolvePretrained(target), v['r'] as number);
  return 0;
}
