import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAll, writeFileAtomically } from './atomic-write.js';
import { pythonJsonDumps } from './python-json.js';
import { tensorByteLength } from './safetensors-layout.js';
import { writeSafetensors, type SafetensorsEntry } from './safetensors-writer.js';

export interface ShardedWriteOptions {
  /** Largest shard in tensor-data bytes (headers not counted), as transformers' `max_shard_size` ("5GB" = 5e9). */
  maxShardBytes: number;
  /** Metadata of every shard file; transformers writes {"format": "pt"}. */
  metadata?: Record<string, string>;
  /** The index's `metadata.total_parameters` (transformers: `model.num_parameters()`); defaults to the entries' element count. */
  totalParameters?: number;
  /** Single-file name; shards are `<stem>-00001-of-0000N.safetensors`, the index `<weightsName>.index.json`. */
  weightsName?: string;
}

export interface ShardedWriteResult {
  /** File names written into the folder, the index last when there is one. */
  files: string[];
  /** Sum of the tensor data bytes: the index's `metadata.total_size`. */
  totalSize: number;
}

/**
 * Splits tensors into shards exactly as huggingface_hub's `split_state_dict_into_shards_factory` does: in the given
 * order, a tensor larger than `maxShardBytes` gets a shard of its own (placed before the shard being filled), and
 * a tensor that would push the current shard past the limit closes it first.
 */
export function planShards<T extends SafetensorsEntry>(entries: readonly T[], maxShardBytes: number): T[][] {
  const shards: T[][] = [];
  let current: T[] = [];
  let currentBytes = 0;
  for (const entry of entries) {
    const size = tensorByteLength(entry);
    if (size > maxShardBytes) {
      shards.push([entry]);
      continue;
    }
    if (currentBytes + size > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(entry);
    currentBytes += size;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/**
 * Saves model weights the way transformers' `save_pretrained` does: one `model.safetensors` when everything fits in
 * `maxShardBytes`, otherwise `model-0000i-of-0000N.safetensors` plus `model.safetensors.index.json`
 * (`json.dumps(index, indent=2, sort_keys=True)` and a newline). Leftovers of an earlier save that would shadow or
 * confuse this one (other shards, a stale single file or index) are removed once the new files are in place.
 */
export async function writeShardedCheckpoint(
  dir: string,
  entries: readonly SafetensorsEntry[],
  options: ShardedWriteOptions,
): Promise<ShardedWriteResult> {
  const weightsName = options.weightsName ?? 'model.safetensors';
  const stem = weightsName.replace(/\.safetensors$/, '');
  const metadata = options.metadata ?? { format: 'pt' };
  if (!(options.maxShardBytes > 0)) throw new RangeError(`maxShardBytes must be positive, got ${options.maxShardBytes}.`);

  const shards = planShards(entries, options.maxShardBytes);
  const totalSize = entries.reduce((sum, e) => sum + tensorByteLength(e), 0);
  const indexName = `${weightsName}.index.json`;

  if (shards.length <= 1) {
    await writeSafetensors(join(dir, weightsName), entries, metadata);
    await removeStale(dir, stem, new Set([weightsName]), [indexName]);
    return { files: [weightsName], totalSize };
  }

  const count = String(shards.length).padStart(5, '0');
  const files = shards.map((_, i) => `${stem}-${String(i + 1).padStart(5, '0')}-of-${count}.safetensors`);
  const weightMap: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [i, shard] of shards.entries()) {
    await writeSafetensors(join(dir, files[i]!), shard, metadata);
    for (const entry of shard) weightMap[entry.name] = files[i]!;
  }
  const totalParameters = options.totalParameters ?? entries.reduce((sum, e) => sum + e.shape.reduce((a, b) => a * b, 1), 0);
  const index = pythonJsonDumps({ metadata: { total_parameters: totalParameters, total_size: totalSize }, weight_map: weightMap }, 2) + '\n';
  await writeFileAtomically(join(dir, indexName), (handle) => writeAll(handle, new TextEncoder().encode(index)));
  await removeStale(dir, stem, new Set(files), [weightsName]);
  return { files: [...files, indexName], totalSize };
}

/** Deletes `<stem>-NNNNN-of-NNNNN.safetensors` files not in `keep` (transformers' cleanup rule) and the named extras. */
async function removeStale(dir: string, stem: string, keep: Set<string>, extras: string[]): Promise<void> {
  const shardPattern = new RegExp(`^${escapeRegExp(stem)}.*?-\\d{5}-of-\\d{5}\\.safetensors$`);
  for (const name of await readdir(dir)) {
    if (keep.has(name)) continue;
    if (!shardPattern.test(name) && !extras.includes(name)) continue;
    if ((await stat(join(dir, name))).isFile()) await rm(join(dir, name));
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
