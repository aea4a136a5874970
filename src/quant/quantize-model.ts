import { readFile, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseWeightMap } from '../io/checkpoint.js';
import { writeAll, writeFileAtomically } from '../io/atomic-write.js';
import { FormatError } from '../io/errors.js';
import { resolvePretrained } from '../io/hub.js';
import { pathKind } from '../io/path-kind.js';
import { pythonJsonDumps } from '../io/python-json.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { tensorByteLength } from '../io/safetensors-layout.js';
import { writeSafetensors } from '../io/safetensors-writer.js';
import { decodeTensor } from '../io/decode.js';
import { isIgnorableTensor, openCheckedCheckpoint } from '../models/checkpoint-check.js';
import { loadConfig } from '../models/config.js';
import { assertFinite, convertHost } from '../models/weights.js';
import type { HostArray } from '../tensor/buffer.js';
import { quantizedConfigJson } from './bnb-config.js';
import { copyCompanionFiles } from '../io/companion-files.js';
import { QuantError } from './errors.js';
import type { ComputeDType } from './linear4bit.js';
import { assertNf4Blocksize } from './nf4.js';
import { quantizeNf4Weight, type HostFloatData } from './nf4-weight.js';
import { isDecoderProjectionWeight } from './projections.js';
import { serializeQuantState, type NamedRawTensor } from './quant-state.js';

export interface QuantizeModelOptions {
  /** dtype every weight is rounded to first, the dtype of the unquantized tensors and the compute dtype; default bfloat16. */
  dtype?: ComputeDType;
  /** Elements per absmax block; default 64 (the only blocksize transformers' BitsAndBytesConfig produces). */
  blocksize?: number;
  /** bnb_4bit_use_double_quant; default true. */
  doubleQuant?: boolean;
}

export interface QuantizeModelResult {
  /** Files written into the output folder, config.json last. */
  files: string[];
  /** Number of projection weights stored in 4 bits. */
  quantizedWeights: number;
  /** Tensor data bytes of the written weights. */
  totalSize: number;
  /**
   * A mixture-of-experts model's expert weights are written in `dtype`, not NF4, as transformers + bitsandbytes
   * leave fused expert parameters (loadIn4bit, train --qlora and serve --qlora quantize them on load instead).
   */
  denseExperts: boolean;
}

function asBytes(data: HostArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function hostFloat(dtype: ComputeDType, data: HostArray): HostFloatData {
  return dtype === 'float32' ? { dtype, data: data as Float32Array } : { dtype, data: data as Uint16Array };
}

/**
 * One stored tensor as transformers + bitsandbytes save it after `from_pretrained(dtype=D, load_in_4bit=True)`:
 * a decoder projection weight rounded to D then NF4-quantized (its quant-state tensors), any other tensor rounded
 * to D (checkCheckpoint has made sure every tensor is a float one). NaN and infinity are refused.
 */
async function convertTensor(shard: SafetensorsFile, name: string, options: Required<QuantizeModelOptions>): Promise<NamedRawTensor[]> {
  const { dtype, shape } = shard.info(name);
  const bytes = await shard.read(name);
  // Every tensor is scanned: one integer pass costs little next to quantizing it, and NaN would poison its absmax.
  assertFinite(shard.path, name, dtype, bytes);
  const rounded = convertHost(decodeTensor(dtype, bytes) as HostArray, dtype, options.dtype);
  if (!isDecoderProjectionWeight(name) || shape.length !== 2) return [{ name, dtype: options.dtype, shape: [...shape], data: asBytes(rounded) }];
  const weight = quantizeNf4Weight(hostFloat(options.dtype, rounded), shape, { blocksize: options.blocksize, doubleQuant: options.doubleQuant });
  return serializeQuantState(name, weight);
}

/** The weight files of a model folder: model.safetensors, or the shards its index lists (in index order). */
async function weightFiles(dir: string): Promise<string[]> {
  if ((await pathKind(join(dir, 'model.safetensors'))) === 'file') return ['model.safetensors'];
  const indexPath = join(dir, 'model.safetensors.index.json');
  if ((await pathKind(indexPath)) !== 'file') {
    throw new FormatError(dir, `${dir} has neither model.safetensors nor model.safetensors.index.json; point --model at a folder with safetensors weights.`);
  }
  return [...new Set(parseWeightMap(indexPath, await readFile(indexPath, 'utf8')).values())];
}

async function assertFreshOutput(modelDir: string, outDir: string): Promise<void> {
  if (resolve(modelDir) === resolve(outDir)) throw new QuantError(`The output folder ${outDir} is the model folder itself; choose another folder for the 4-bit model.`);
  const kind = await pathKind(outDir);
  if (kind === 'file') throw new QuantError(`The output ${outDir} is a file; choose a folder for the 4-bit model.`);
  if (kind === 'missing') return;
  const clash = (await readdir(outDir)).find((f) => f === 'config.json' || f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json'));
  if (clash !== undefined) throw new QuantError(`The output folder ${outDir} already holds ${clash}; choose an empty folder so no earlier model is mixed into the 4-bit one.`);
}

async function writeText(path: string, text: string): Promise<void> {
  await writeFileAtomically(path, (handle) => writeAll(handle, new TextEncoder().encode(text)));
}

/**
 * Writes a transformers + bitsandbytes 4-bit (NF4) checkpoint of the dense Llama-family model in `modelDir` (a
 * folder or a Hub id) to `outDir`, as `from_pretrained(dtype=bfloat16, quantization_config=BitsAndBytesConfig(
 * load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=bfloat16))`
 * followed by `save_pretrained` would. Streams shard by shard: each input shard becomes one output shard, and host
 * memory holds one input tensor plus the output of the current shard. A single-file model gives a single
 * model.safetensors (byte-identical to transformers' for the same weights). config.json is written last; if
 * anything fails, the files written so far are removed (and the output folder, when this call created it). The
 * checkpoint is checked against config.json first (checkCheckpoint), so nothing is written for weights that
 * contradict it.
 */
export async function quantizeModel(modelDir: string, outDir: string, options: QuantizeModelOptions = {}): Promise<QuantizeModelResult> {
  const opts: Required<QuantizeModelOptions> = { dtype: options.dtype ?? 'bfloat16', blocksize: options.blocksize ?? 64, doubleQuant: options.doubleQuant ?? true };
  assertNf4Blocksize(opts.blocksize);
  const dir = await resolvePretrained(modelDir);
  const config = await loadConfig(dir);
  if (config.raw['quantization_config'] !== undefined) {
    throw new QuantError(`${join(dir, 'config.json')} already has a quantization_config; quantize the dense model instead.`);
  }
  await (await openCheckedCheckpoint(dir, config)).close();
  const inputs = await weightFiles(dir);
  await assertFreshOutput(dir, outDir);
  const createsOutput = (await pathKind(outDir)) === 'missing';

  const written: string[] = [];
  try {
    const count = String(inputs.length).padStart(5, '0');
    const outputs = inputs.length === 1 ? ['model.safetensors'] : inputs.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${count}.safetensors`);
    const weightMap: Record<string, string> = {};
    let quantizedWeights = 0;
    let totalSize = 0;
    let totalParameters = 0;
    for (const [i, file] of inputs.entries()) {
      const shard = await SafetensorsFile.open(join(dir, file));
      const entries: NamedRawTensor[] = [];
      try {
        for (const name of shard.names().filter((n) => !isIgnorableTensor(n))) {
          const converted = await convertTensor(shard, name, opts);
          if (converted.length > 1) quantizedWeights++;
          entries.push(...converted);
        }
      } finally {
        await shard.close();
      }
      await writeSafetensors(join(outDir, outputs[i]!), entries, { format: 'pt' });
      written.push(outputs[i]!);
      for (const entry of entries) {
        weightMap[entry.name] = outputs[i]!;
        totalSize += tensorByteLength(entry);
        totalParameters += entry.shape.reduce((a, b) => a * b, 1);
      }
    }
    if (inputs.length > 1) {
      const index = { metadata: { total_parameters: totalParameters, total_size: totalSize }, weight_map: weightMap };
      await writeText(join(outDir, 'model.safetensors.index.json'), pythonJsonDumps(index, 2) + '\n');
      written.push('model.safetensors.index.json');
    }
    written.push(...(await copyCompanionFiles(dir, outDir)));
    await writeText(join(outDir, 'config.json'), quantizedConfigJson(config.raw, { dtype: opts.dtype, doubleQuant: opts.doubleQuant, computeDtype: opts.dtype }));
    written.push('config.json');
    return { files: written, quantizedWeights, totalSize, denseExperts: config.moe !== null };
  } catch (err) {
    await Promise.all(written.map((name) => rm(join(outDir, name), { force: true })));
    if (createsOutput) await rm(outDir, { recursive: true, force: true });
    throw err;
  }
}
