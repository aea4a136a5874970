import { readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { FormatError } from './errors.js';
import { pathKind } from './path-kind.js';
import { SafetensorsFile } from './safetensors.js';
import type { TensorInfo, TensorSource } from './tensor-source.js';

export interface OpenCheckpointOptions {
  /** File name of the single-file checkpoint; its sharded index is `<weightsName>.index.json`. */
  weightsName?: string;
}

/**
 * Opens the weights of a Hugging Face model folder: `model.safetensors`, or else the shards that
 * `model.safetensors.index.json` lists (transformers checks in the same order). A path to a .safetensors file is
 * opened directly.
 */
export async function openCheckpoint(dirOrFile: string, options: OpenCheckpointOptions = {}): Promise<TensorSource> {
  const weightsName = options.weightsName ?? 'model.safetensors';
  const kind = await pathKind(dirOrFile);
  if (kind === 'file') return SafetensorsFile.open(dirOrFile);
  if (kind === 'missing') throw new FormatError(dirOrFile, `${dirOrFile} does not exist; pass a model folder or a .safetensors file.`);
  const single = join(dirOrFile, weightsName);
  if ((await pathKind(single)) === 'file') return SafetensorsFile.open(single);
  const indexPath = join(dirOrFile, `${weightsName}.index.json`);
  if ((await pathKind(indexPath)) === 'file') return ShardedCheckpoint.open(dirOrFile, indexPath);
  throw new FormatError(
    dirOrFile,
    `${dirOrFile} has neither ${weightsName} nor ${weightsName}.index.json; save the model with safe_serialization (safetensors) or point at the folder that holds the weights.`,
  );
}

/** Tensors spread over shard files, found through the index's `weight_map` (tensor name -> shard file name). */
export class ShardedCheckpoint implements TensorSource {
  readonly indexPath: string;
  private readonly shardOf: Map<string, SafetensorsFile>;
  private readonly shards: SafetensorsFile[];

  private constructor(indexPath: string, shardOf: Map<string, SafetensorsFile>, shards: SafetensorsFile[]) {
    this.indexPath = indexPath;
    this.shardOf = shardOf;
    this.shards = shards;
  }

  static async open(dir: string, indexPath: string): Promise<ShardedCheckpoint> {
    const weightMap = parseWeightMap(indexPath, await readFile(indexPath, 'utf8'));
    const shardNames = [...new Set(weightMap.values())];
    for (const file of shardNames) {
      const shardPath = join(dir, file);
      if ((await pathKind(shardPath)) !== 'file') {
        throw new FormatError(shardPath, `${shardPath}, listed in ${indexPath}, does not exist; download the missing shard again.`);
      }
    }
    const opened = await Promise.allSettled(shardNames.map((file) => SafetensorsFile.open(join(dir, file))));
    const shards = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failure = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure !== undefined) {
      await Promise.all(shards.map((s) => s.close()));
      throw failure.reason;
    }
    const byFile = new Map(shardNames.map((file, i) => [file, shards[i]!]));
    const shardOf = new Map<string, SafetensorsFile>();
    for (const [name, file] of weightMap) {
      const shard = byFile.get(file)!;
      if (!shard.has(name)) {
        await Promise.all(shards.map((s) => s.close()));
        throw new FormatError(shard.path, `Tensor "${name}" is listed in ${indexPath} but missing from ${shard.path}; the index and its shards do not match, download them again.`);
      }
      shardOf.set(name, shard);
    }
    return new ShardedCheckpoint(indexPath, shardOf, shards);
  }

  get path(): string {
    return this.indexPath;
  }

  names(): string[] {
    return [...this.shardOf.keys()];
  }

  has(name: string): boolean {
    return this.shardOf.has(name);
  }

  info(name: string): TensorInfo {
    return this.shardFor(name).info(name);
  }

  read(name: string): Promise<Uint8Array> {
    return this.shardFor(name).read(name);
  }

  /** The shard file that holds `name` (TensorInfo.dataOffset is relative to that file). */
  pathOf(name: string): string {
    return this.shardFor(name).path;
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }

  private shardFor(name: string): SafetensorsFile {
    const shard = this.shardOf.get(name);
    if (shard === undefined) {
      throw new FormatError(this.indexPath, `Tensor "${name}" is not in the checkpoint indexed by ${this.indexPath}; check the name against its weight_map.`);
    }
    return shard;
  }
}

/** Reads `weight_map` of a sharded index; shard names must stay inside the folder (indexes come from the network). */
export function parseWeightMap(indexPath: string, text: string): Map<string, string> {
  const fail = (what: string): never => {
    throw new FormatError(indexPath, `${indexPath} is not a valid sharded-checkpoint index: ${what}; download or save it again.`);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return fail(`it is not JSON (${(err as Error).message})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) return fail('it has no "weight_map" object');
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof file !== 'string' || file === '') return fail(`"weight_map.${name}" is not a file name`);
    if (isAbsolute(file) || normalize(file).split(sep).includes('..')) return fail(`shard "${file}" points outside the checkpoint folder`);
    out.set(name, file);
  }
  return out;
}
