import { Embedding } from '../nn/layers.js';
import { Module, type ForwardContext } from '../nn/module.js';
import { add, embedding, matmul, mulScalar, sub, to, transpose } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdapterDict } from './adapter-dict.js';
import { PeftError } from './errors.js';
import { routeRowsByAdapter } from './row-groups.js';
import type { LoraRuntimeState } from './runtime-state.js';
import { overwriteTensor } from './tensor-copy.js';

/** One adapter's tensor held directly (PEFT's nn.ParameterDict entry: saved as `<dict>`, without ".weight"). */
export class AdapterParameter extends Module {
  weight: Tensor;
  constructor(weight: Tensor) {
    super();
    this.weight = weight;
    this.registerParameter('weight', weight);
  }
}

/** How one adapter acts on an embedding: scaling multiplies the lookup of A^T rows times B^T. */
export interface LoraEmbeddingSettings {
  readonly r: number;
  readonly alpha: number;
  readonly scaling: number;
}

/**
 * PEFT's lora.Embedding: y = base(ids) + embedding(ids, A^T) B^T * scaling per active adapter, with A [r, vocab] and
 * B [hidden, r] (`lora_embedding_A` / `lora_embedding_B`, parameters of ParameterDicts, keyed without ".weight").
 * No dropout (PEFT applies none to embeddings). Merge adds (B A)^T * scaling to the table in place.
 */
export class LoraEmbedding extends Module {
  readonly base_layer: Embedding;
  readonly lora_embedding_A = new AdapterDict<AdapterParameter>();
  readonly lora_embedding_B = new AdapterDict<AdapterParameter>();
  private readonly settings = new Map<string, LoraEmbeddingSettings>();
  private readonly mergedAdapters: string[] = [];

  constructor(
    base: Embedding,
    readonly path: string,
    private readonly state: LoraRuntimeState,
  ) {
    super();
    this.base_layer = this.registerModule('base_layer', base);
    this.registerModule('lora_embedding_A', this.lora_embedding_A);
    this.registerModule('lora_embedding_B', this.lora_embedding_B);
  }

  /** The table: the base weight (merged adapters included), which a tied output head reads as PEFT's does. */
  get weight(): Tensor {
    return this.base_layer.weight;
  }
  get numEmbeddings(): number {
    return this.base_layer.weight.shape[0]!;
  }
  get embeddingDim(): number {
    return this.base_layer.weight.shape[1]!;
  }
  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }
  adapterNames(): string[] {
    return [...this.settings.keys()];
  }
  hasAdapter(name: string): boolean {
    return this.settings.has(name);
  }
  settingsOf(name: string): LoraEmbeddingSettings | undefined {
    return this.settings.get(name);
  }

  /** a: A [r, vocab], b: B [hidden, r]. */
  addAdapter(name: string, settings: LoraEmbeddingSettings, a: Tensor, b: Tensor): void {
    this.settings.set(name, settings);
    this.lora_embedding_A.set(name, new AdapterParameter(a));
    this.lora_embedding_B.set(name, new AdapterParameter(b));
  }

  deleteAdapter(name: string): void {
    if (this.mergedAdapters.includes(name)) throw new PeftError(`Adapter "${name}" is merged into ${this.path}; call unmergeAdapter() before deleting it.`);
    for (const dict of [this.lora_embedding_A, this.lora_embedding_B]) {
      dict.get(name)?.weight.dispose();
      dict.delete(name);
    }
    this.settings.delete(name);
  }

  forward(ids: Tensor, ctx?: ForwardContext): Tensor {
    const base = this.base_layer.forward(ids);
    if (this.state.adaptersDisabled) return base;
    const rows = ctx?.rowAdapters;
    if (rows) {
      if (this.merged) throw new PeftError(`Per-row adapter names cannot be used while adapters are merged into ${this.path}; call unmergeAdapter() first.`);
      if (rows.length !== ids.shape[0]) throw new PeftError(`${rows.length} adapter names were given for a batch of ${ids.shape[0]} rows; pass one name per row.`);
      return routeRowsByAdapter(rows, ids, base, (name) => this.settings.has(name), (name, idRows, baseRows) => this.withAdapter(name, idRows, baseRows));
    }
    if (this.merged) return base;
    let result = base;
    for (const name of this.state.activeAdapters) if (this.settings.has(name)) result = this.withAdapter(name, ids, result);
    return result;
  }

  private withAdapter(name: string, ids: Tensor, result: Tensor): Tensor {
    const a = this.lora_embedding_A.get(name)!.weight;
    const b = this.lora_embedding_B.get(name)!.weight;
    const afterA = embedding(ids, transpose(a, 0, 1));
    const term = mulScalar(matmul(afterA, transpose(b, 0, 1)), this.settings.get(name)!.scaling);
    return add(result, to(term, { dtype: result.dtype }));
  }

  /** (B A)^T * scaling in float32 [vocab, hidden]: what merging adds to the table. */
  deltaWeight(name: string): Tensor {
    const s = this.settings.get(name);
    if (!s) throw new PeftError(`${this.path} has no adapter "${name}".`);
    const a = to(this.lora_embedding_A.get(name)!.weight, { dtype: 'float32' });
    const b = to(this.lora_embedding_B.get(name)!.weight, { dtype: 'float32' });
    return mulScalar(transpose(matmul(b, a), 0, 1), s.scaling);
  }

  merge(names: readonly string[]): void {
    const weight = this.base_layer.weight;
    for (const name of names) {
      if (!this.settings.has(name) || this.mergedAdapters.includes(name)) continue;
      noGrad(() => scope(() => overwriteTensor(weight, add(to(weight, { dtype: 'float32' }), this.deltaWeight(name)))));
      this.mergedAdapters.push(name);
    }
  }

  unmerge(): void {
    const weight = this.base_layer.weight;
    while (this.mergedAdapters.length > 0) {
      const name = this.mergedAdapters.pop()!;
      noGrad(() => scope(() => overwriteTensor(weight, sub(to(weight, { dtype: 'float32' }), this.deltaWeight(name)))));
    }
  }

  /** Drops every adapter (merged ones stay folded in) and returns the base Embedding. */
  unload(): Embedding {
    this.mergedAdapters.length = 0;
    for (const name of this.adapterNames()) this.deleteAdapter(name);
    return this.base_layer;
  }
}
