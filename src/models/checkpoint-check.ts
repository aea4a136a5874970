import { join } from 'node:path';
import { openCheckpoint } from '../io/checkpoint.js';
import { FormatError } from '../io/errors.js';
import { sourcePath, tensorFile, type TensorSource } from '../io/tensor-source.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { projectionFormatFor } from './build.js';
import type { ModelConfig } from './config.js';
import { checkpointLayout, checkpointName, decoderPrefix } from './layout.js';
import { assertFloatTensor } from './weights.js';

/**
 * How a quantized format stores one projection weight that is not a float tensor: checks, from the tensors'
 * headers alone, that the stored form can hold a weight of `shape` ([out, in]) and returns the names of every
 * tensor that makes it up; throws a FormatError naming the file otherwise. Registered with the format's loader.
 */
export type StoredWeightCheck = (source: TensorSource, weightName: string, shape: readonly [number, number]) => string[];

export interface CheckpointCheckOptions {
  /** config.json's path, for messages; default "config.json". */
  readonly configPath?: string;
  /** The checkpoint's quantized format; absent, every projection weight must be a float tensor. */
  readonly quantized?: StoredWeightCheck;
}

/** Buffers that older transformers versions saved and that every version drops on load without a word. */
const IGNORABLE = /(^|\.)rotary_emb\.inv_freq$/;

/** True for stored buffers that are not weights and that loading (and quantizing) drops. */
export function isIgnorableTensor(name: string): boolean {
  return IGNORABLE.test(name);
}

/** How many unexpected names a message quotes. */
const QUOTED = 3;

/**
 * Checks a checkpoint against its config.json from the headers alone, before anything is allocated: every tensor
 * the config implies (layout.ts) is present, has the implied shape and a float dtype (or, for a projection of a
 * quantized checkpoint, a stored form `quantized` accepts), and no other tensor is present apart from rotary
 * inv_freq buffers and, for a multimodal checkpoint, the towers that are not loaded. Throws one FormatError naming
 * the file and the first problem.
 */
export function checkCheckpoint(config: ModelConfig, source: TensorSource, options: CheckpointCheckOptions = {}): void {
  const configPath = options.configPath ?? 'config.json';
  const where = sourcePath(source);
  const fail = (file: string, what: string): never => {
    throw new FormatError(file, `${file} ${what}.`);
  };
  const { prefix, lmHead } = decoderPrefix(config, source);
  const accounted = new Set<string>();
  for (const t of checkpointLayout(config)) {
    const name = checkpointName(t, prefix, lmHead);
    if (!source.has(name)) {
      if (t.kind === 'head') fail(where, `has no ${name} but ${configPath} sets tie_word_embeddings to false; add the output head's weights or set "tie_word_embeddings": true`);
      fail(where, `has no tensor "${name}", which ${configPath} implies; the weights do not belong to this config.json or the file is incomplete`);
    }
    const info = source.info(name);
    const file = tensorFile(source, name);
    if (t.kind === 'projection' && t.param === 'weight' && options.quantized && info.dtype === 'uint8') {
      for (const part of options.quantized(source, name, t.shape as [number, number])) accounted.add(part);
      continue;
    }
    if (!shapesEqual(info.shape, t.shape)) {
      fail(file, `stores "${name}" with shape ${formatShape(info.shape)}, but ${configPath} implies ${formatShape(t.shape)}; the weights do not belong to this config.json`);
    }
    if (t.bytes) {
      if (info.dtype !== 'uint8') fail(file, `stores "${name}" as ${info.dtype}, but ${configPath}'s quantization_config implies uint8 MXFP4 blocks and scales; the weights do not belong to this config.json`);
    } else {
      assertFloatTensor(file, name, info.dtype);
    }
    accounted.add(name);
  }
  const belongs = (name: string) => !config.skippedTower || name.startsWith(`${prefix}.`) || name === lmHead;
  const unexpected = source.names().filter((n) => !accounted.has(n) && !isIgnorableTensor(n) && belongs(n));
  if (unexpected.length === 0) return;
  if (unexpected.includes(lmHead) && config.tieWordEmbeddings) {
    fail(tensorFile(source, lmHead), `holds ${lmHead} but ${configPath} sets tie_word_embeddings to true, so that head would be ignored; set "tie_word_embeddings": false to use it, or remove the tensor`);
  }
  const layerOf = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.layers\\.(\\d+)\\.`);
  const beyond = unexpected.find((n) => Number(layerOf.exec(n)?.[1] ?? -1) >= config.numHiddenLayers);
  if (beyond !== undefined) {
    fail(tensorFile(source, beyond), `holds "${beyond}" of layer ${layerOf.exec(beyond)![1]}, but ${configPath} sets num_hidden_layers to ${config.numHiddenLayers}; use the config.json the weights were saved with`);
  }
  const quoted = unexpected.slice(0, QUOTED).map((n) => `"${n}"`).join(', ');
  const one = unexpected.length === 1;
  fail(where, `holds ${unexpected.length} tensor${one ? '' : 's'} that ${configPath} does not describe (${quoted}${unexpected.length > QUOTED ? ', ...' : ''}); remove ${one ? 'it' : 'them'} or use the config.json the weights were saved with`);
}

/**
 * Opens the weights of model folder `dir` and checks them against its parsed config.json (checkCheckpoint, with
 * the quantized format config.json names); the caller closes the source.
 */
export async function openCheckedCheckpoint(dir: string, config: ModelConfig): Promise<TensorSource> {
  const { quantized } = projectionFormatFor(config, dir);
  const source = await openCheckpoint(dir);
  try {
    checkCheckpoint(config, source, { configPath: join(dir, 'config.json'), quantized });
    return source;
  } catch (err) {
    await source.close();
    throw err;
  }
}
