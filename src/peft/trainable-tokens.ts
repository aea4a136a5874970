import { Embedding } from '../nn/layers.js';
import { Module, type ForwardContext } from '../nn/module.js';
import { cat, embedding, narrow, to, writeSlice } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdapterDict } from './adapter-dict.js';
import { PeftError } from './errors.js';
import { AdapterParameter } from './lora-embedding.js';
import { mapRowsByAdapter } from './row-groups.js';
import type { LoraRuntimeState } from './runtime-state.js';
import { cloneTensor } from './tensor-copy.js';

/**
 * PEFT's TrainableTokensLayer: per adapter, the rows `token_indices` of the table as a trainable [n, hidden] tensor
 * (`trainable_tokens_delta`, initialised to a copy of those rows) that replaces those rows (index_copy, not an
 * addition) wherever the table is read.
 */
export class TrainableTokensLayer extends Module {
  readonly trainable_tokens_delta = new AdapterDict<AdapterParameter>();
  readonly tokenIndices = new Map<string, readonly number[]>();

  constructor() {
    super();
    this.registerModule('trainable_tokens_delta', this.trainable_tokens_delta);
  }
}

/**
 * PEFT's TrainableTokensWrapper around the input embedding: children original_module and token_adapter, so the
 * delta is saved as `<path>.token_adapter.trainable_tokens_delta`. Its `weight` is the table with the active
 * adapters' rows replaced, so a tied output head (which reads the embedding's weight) follows the trained tokens as
 * PEFT's tied TrainableTokensWrapper on lm_head does.
 */
export class TrainableTokensWrapper extends Module {
  readonly original_module: Embedding;
  readonly token_adapter = new TrainableTokensLayer();
  private readonly mergedAdapters: string[] = [];
  /** Rows as they were before each merge, to restore on unmerge. */
  private readonly originals = new Map<string, Tensor>();

  constructor(
    original: Embedding,
    readonly path: string,
    private readonly state: LoraRuntimeState,
  ) {
    super();
    this.original_module = this.registerModule('original_module', original);
    this.registerModule('token_adapter', this.token_adapter);
  }

  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }
  hasAdapter(name: string): boolean {
    return this.token_adapter.tokenIndices.has(name);
  }
  indicesOf(name: string): readonly number[] | undefined {
    return this.token_adapter.tokenIndices.get(name);
  }

  /** New adapter: `delta` [n, hidden], or (PEFT's init_weights true) a copy of the table's rows `indices`. */
  addAdapter(name: string, indices: readonly number[], delta?: Tensor): void {
    const vocab = this.original_module.weight.shape[0]!;
    for (const i of indices) {
      if (!Number.isInteger(i) || i < 0 || i >= vocab) throw new PeftError(`trainable_token_indices holds ${i}, but ${this.path} has ${vocab} tokens; give indices in [0, ${vocab}).`);
    }
    if (new Set(indices).size !== indices.length) throw new PeftError(`trainable_token_indices ${JSON.stringify(indices)} repeats an index; give each token once.`);
    const values = delta ?? noGrad(() => cat(indices.map((i) => cloneTensor(narrow(this.original_module.weight, 0, i, 1))), 0));
    this.token_adapter.tokenIndices.set(name, [...indices]);
    this.token_adapter.trainable_tokens_delta.set(name, new AdapterParameter(values));
  }

  deleteAdapter(name: string): void {
    if (this.mergedAdapters.includes(name)) throw new PeftError(`Adapter "${name}" is merged into ${this.path}; call unmergeAdapter() before deleting it.`);
    this.token_adapter.trainable_tokens_delta.get(name)?.weight.dispose();
    this.token_adapter.trainable_tokens_delta.delete(name);
    this.token_adapter.tokenIndices.delete(name);
  }

  /** The table forward reads: the base one, or with the active adapters' rows replaced. */
  get weight(): Tensor {
    if (this.state.adaptersDisabled || this.merged) return this.original_module.weight;
    return this.weightWith(this.state.activeAdapters.filter((n) => this.hasAdapter(n)));
  }

  forward(ids: Tensor, ctx?: ForwardContext): Tensor {
    const rows = ctx?.rowAdapters;
    if (!rows || this.state.adaptersDisabled) return embedding(ids, this.weight);
    if (this.merged) throw new PeftError(`Per-row adapter names cannot be used while adapters are merged into ${this.path}; call unmergeAdapter() first.`);
    if (rows.length !== ids.shape[0]) throw new PeftError(`${rows.length} adapter names were given for a batch of ${ids.shape[0]} rows; pass one name per row.`);
    return mapRowsByAdapter(rows, ids, (name, idRows) => embedding(idRows, this.weightWith(this.hasAdapter(name) ? [name] : [])));
  }

  /** PEFT's get_merged_weights: the table with each named adapter's rows replaced by its delta (index_copy). */
  weightWith(names: readonly string[]): Tensor {
    const base = this.original_module.weight;
    if (names.length === 0) return base;
    this.checkDisjoint(names);
    const rows: { index: number; delta: Tensor; row: number }[] = [];
    for (const name of names) {
      const delta = this.token_adapter.trainable_tokens_delta.get(name)!.weight;
      this.indicesOf(name)!.forEach((index, row) => rows.push({ index, delta, row }));
    }
    rows.sort((a, b) => a.index - b.index);
    const pieces: Tensor[] = [];
    let next = 0;
    for (const { index, delta, row } of rows) {
      if (index > next) pieces.push(narrow(base, 0, next, index - next));
      pieces.push(to(narrow(delta, 0, row, 1), { dtype: base.dtype }));
      next = index + 1;
    }
    if (next < base.shape[0]!) pieces.push(narrow(base, 0, next, base.shape[0]! - next));
    return cat(pieces, 0);
  }

  /** PEFT's _check_overlapping_tokens, merged adapters first. */
  private checkDisjoint(names: readonly string[]): void {
    const seen = new Set<number>();
    for (const name of [...new Set([...this.mergedAdapters, ...names])]) {
      const indices = this.indicesOf(name) ?? [];
      if (indices.some((i) => seen.has(i))) {
        throw new PeftError(`Token indices of adapter ${name} are already defined and would result in undefined merging behavior. Only disjunct token indices are currently supported.`);
      }
      for (const i of indices) seen.add(i);
    }
  }

  /** Writes the named adapters' rows into the table in place (PEFT's merge). */
  merge(names: readonly string[]): void {
    const todo = names.filter((n) => this.hasAdapter(n) && !this.mergedAdapters.includes(n));
    if (todo.length === 0) return;
    this.checkDisjoint(todo);
    const weight = this.original_module.weight;
    noGrad(() => {
      for (const name of todo) {
        const indices = this.indicesOf(name)!;
        const delta = this.token_adapter.trainable_tokens_delta.get(name)!.weight;
        this.originals.set(name, cat(indices.map((i) => cloneTensor(narrow(weight, 0, i, 1))), 0).keep());
        indices.forEach((index, row) => writeSlice(weight, 0, index, narrow(delta, 0, row, 1)));
        this.mergedAdapters.push(name);
      }
    });
  }

  unmerge(): void {
    const weight = this.original_module.weight;
    noGrad(() => {
      while (this.mergedAdapters.length > 0) {
        const name = this.mergedAdapters.pop()!;
        const original = this.originals.get(name)!;
        this.indicesOf(name)!.forEach((index, row) => writeSlice(weight, 0, index, narrow(original, 0, row, 1)));
        original.dispose();
        this.originals.delete(name);
      }
    });
  }

  /** Drops every adapter (merged ones stay written into the table) and returns the Embedding. */
  unload(): Embedding {
    this.mergedAdapters.length = 0;
    for (const t of this.originals.values()) t.dispose();
    this.originals.clear();
    for (const name of [...this.token_adapter.tokenIndices.keys()]) this.deleteAdapter(name);
    return this.original_module;
  }
}
