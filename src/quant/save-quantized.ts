import { join } from 'node:path';
import { writeAll, writeFileAtomically } from '../io/atomic-write.js';
import type { SafetensorsEntry } from '../io/safetensors-writer.js';
import { writeShardedCheckpoint } from '../io/sharded-writer.js';
import type { CausalLM } from '../models/causal-lm.js';
import { loraLayers } from '../peft/module-walk.js';
import { tensorBytes } from '../peft/tensor-copy.js';
import { isFloatDType } from '../tensor/dtype.js';
import { quantizedConfigJson } from './bnb-config.js';
import { copyCompanionFiles } from '../io/companion-files.js';
import { QuantError } from './errors.js';
import { Linear4bit } from './linear4bit.js';
import { serializeQuantState } from './quant-state.js';

export interface SaveQuantizedOptions {
  /** Largest shard in tensor-data bytes; default 5e9, transformers' historical max_shard_size. */
  maxShardBytes?: number;
  /** A model folder whose tokenizer, chat template and generation config are copied next to the weights. */
  copyFilesFrom?: string;
}

/**
 * Host copies of one 4-bit layer's serialized tensors at a time. The safetensors writer asks for a layer's tensors
 * consecutively within each dtype group, so each layer is read back about twice and host memory holds one layer.
 */
class LayerReader {
  private current: { layer: Linear4bit; tensors: Map<string, Uint8Array> } | null = null;

  async read(layer: Linear4bit, weightName: string, tensorName: string): Promise<Uint8Array> {
    if (this.current?.layer !== layer) {
      const tensors = serializeQuantState(weightName, await layer.quantizedWeight());
      this.current = { layer, tensors: new Map(tensors.map((t) => [t.name, t.data])) };
    }
    return this.current.tensors.get(tensorName)!;
  }
}

/**
 * Saves a model with Linear4bit projections as transformers + bitsandbytes save a 4-bit model: the packed weights
 * and quant states in bitsandbytes' layout, every other parameter in its own dtype, config.json with transformers'
 * quantization_config (double quant and compute dtype as the layers have them). Python loads the folder with
 * `AutoModelForCausalLM.from_pretrained`; a model loaded from such a checkpoint saves back byte-identical weights.
 * LoRA layers are refused: merge them (mergeQloraToDense with requantize) or save the adapter on its own; so are
 * mixture-of-experts models.
 */
export async function saveQuantizedPretrained(model: CausalLM, dir: string, options: SaveQuantizedOptions = {}): Promise<void> {
  if (loraLayers(model).length > 0) {
    throw new QuantError('The model still has LoRA layers; merge them first (mergeQloraToDense with requantize) or save the adapter on its own.');
  }
  if (model.config.moe) {
    throw new QuantError(`Saving a 4-bit ${model.config.architecture} is not supported (bitsandbytes checkpoints leave experts unquantized and this layout stores them fused); quantize on load instead (loadIn4bit, train --qlora).`);
  }
  const layers = [...model.namedModules()].filter((e): e is [string, Linear4bit] => e[1] instanceof Linear4bit);
  if (layers.length === 0) throw new QuantError('The model has no 4-bit layers; save it with saveModelPretrained instead.');
  const reader = new LayerReader();
  const entries: SafetensorsEntry[] = [];
  for (const [name, t] of model.namedParameters()) entries.push({ name, dtype: t.dtype, shape: [...t.shape], data: () => tensorBytes(t) });
  for (const [path, layer] of layers) {
    const weightName = `${path}.weight`;
    for (const spec of serializeQuantState(weightName, await layer.quantizedWeight())) {
      entries.push({ name: spec.name, dtype: spec.dtype, shape: spec.shape, data: () => reader.read(layer, weightName, spec.name) });
    }
  }
  await writeShardedCheckpoint(dir, entries, { maxShardBytes: options.maxShardBytes ?? 5e9, metadata: { format: 'pt' } });
  const first = layers[0]![1];
  const dtype = isFloatDType(model.dtype) ? (model.dtype as Linear4bit['computeDtype']) : first.computeDtype;
  const config = quantizedConfigJson(model.config.raw, { dtype, doubleQuant: first.weight4bit.doubleQuantized, computeDtype: first.computeDtype });
  await writeFileAtomically(join(dir, 'config.json'), (handle) => writeAll(handle, new TextEncoder().encode(config)));
  if (options.copyFilesFrom) await copyCompanionFiles(options.copyFilesFrom, dir);
}
