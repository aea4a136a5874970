import { MoeExperts, type ExpertsLike, type ExpertWeightName } from '../models/moe.js';
import { Linear } from '../nn/layers.js';
import { bumpParameterEpoch, Module, type ForwardContext } from '../nn/module.js';
import { add, cat, contiguous, embedding, fromHost, groupedMatmul, matmul, mulScalar, permute, reshape, scatterAddRows, sub, to, transpose, type ExpertRouting } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdapterDict } from './adapter-dict.js';
import { PeftError } from './errors.js';
import type { LoraAdapterWeights } from './lora-linear.js';
import type { LoraRuntimeState } from './runtime-state.js';
import { overwriteTensor } from './tensor-copy.js';

/** The expert parameters an adapter can target, in MoeExperts' (and transformers') registration order. */
export const EXPERT_PARAMETERS: readonly ExpertParameter[] = ['gate_up_proj', 'down_proj'];
export type ExpertParameter = ExpertWeightName;

/** One adapter's settings on a set of experts. */
export interface ExpertAdapterSettings {
  readonly r: number;
  readonly alpha: number;
  readonly scaling: number;
}

/** The factors of every adapter on one expert parameter: lora_A.<adapter> [r x E, in], lora_B.<adapter> [out, r x E]. */
class ParameterAdapters extends Module {
  readonly lora_A = new AdapterDict<Linear>();
  readonly lora_B = new AdapterDict<Linear>();
  constructor() {
    super();
    this.registerModule('lora_A', this.lora_A);
    this.registerModule('lora_B', this.lora_B);
  }
}

/**
 * LoRA on a mixture-of-experts layer's fused expert parameters, as PEFT 0.21's lora.ParamWrapper computes it: for
 * expert e, A_e = rows e*r .. e*r + r - 1 of A [r x E, in] (A reshaped [E, r, in]) and B_e = columns j*E + e of
 * B [out, r x E] (B reshaped [out, r, E]); the parameter becomes W_e + scaling * B_e A_e in its own orientation
 * ([out, in] for Mixtral/Qwen3-MoE, transposed for gpt-oss). The forward adds scaling * (x A_e^T) B_e^T to each
 * projection of the tokens routed to e, as grouped GEMMs, instead of materialising the deltas; merging adds them.
 * PEFT nests one ParamWrapper per parameter, the first parameter innermost, so its keys are
 * `experts.base_layer.lora_A.weight` (gate_up_proj) and `experts.lora_A.weight` (down_proj) when both are targeted.
 */
export class LoraExperts extends Module implements ExpertsLike {
  readonly base_layer: MoeExperts;
  private readonly adapters = new Map<ExpertParameter, ParameterAdapters>();
  private readonly settings = new Map<string, ExpertAdapterSettings>();
  private readonly mergedAdapters: string[] = [];

  constructor(
    base: MoeExperts,
    /** Module path in the base model, for messages. */
    readonly path: string,
    /** The targeted parameters, the same for every adapter of this layer (PEFT requires it). */
    readonly parameters: readonly ExpertParameter[],
    private readonly state: LoraRuntimeState,
  ) {
    super();
    this.base_layer = this.registerModule('base_layer', base);
    for (const p of EXPERT_PARAMETERS) {
      if (parameters.includes(p)) this.adapters.set(p, this.registerModule(p, new ParameterAdapters()));
    }
  }

  /** The key path of a parameter's factors: one `base_layer.` per parameter wrapped outside it (PEFT's nesting). */
  keyPath(path: string, parameter: ExpertParameter): string {
    const outer = this.parameters.length - 1 - this.parameters.indexOf(parameter);
    return `${path}${'.base_layer'.repeat(outer)}`;
  }

  /** [in, out] of a parameter's projection. */
  features(parameter: ExpertParameter): { inFeatures: number; outFeatures: number } {
    const [, d1, d2] = this.base_layer.shapeOf(parameter) as [number, number, number];
    return this.base_layer.layout === 'out-in' ? { inFeatures: d2, outFeatures: d1 } : { inFeatures: d1, outFeatures: d2 };
  }

  get numExperts(): number {
    return this.base_layer.moe.numExperts;
  }

  adapterNames(): string[] {
    return [...this.settings.keys()];
  }
  hasAdapter(name: string): boolean {
    return this.settings.has(name);
  }
  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }
  factor(parameter: ExpertParameter, which: 'A' | 'B', name: string): Linear | undefined {
    const dict = this.adapters.get(parameter);
    return which === 'A' ? dict?.lora_A.get(name) : dict?.lora_B.get(name);
  }

  addAdapter(name: string, settings: ExpertAdapterSettings, weights: ReadonlyMap<ExpertParameter, LoraAdapterWeights>): void {
    bumpParameterEpoch();
    this.settings.set(name, settings);
    for (const [p, dict] of this.adapters) {
      const w = weights.get(p)!;
      dict.lora_A.set(name, new Linear(w.a));
      dict.lora_B.set(name, new Linear(w.b));
    }
  }

  deleteAdapter(name: string): void {
    if (this.mergedAdapters.includes(name)) throw new PeftError(`Adapter "${name}" is merged into ${this.path}; call unmergeAdapter() before deleting it.`);
    for (const dict of this.adapters.values()) {
      for (const d of [dict.lora_A, dict.lora_B]) {
        const m = d.get(name);
        if (!m) continue;
        m.weight.dispose();
        d.delete(name);
      }
    }
    this.settings.delete(name);
    bumpParameterEpoch();
  }

  /** Drops every adapter (merged ones stay folded in) and returns the base experts. */
  unload(): MoeExperts {
    this.mergedAdapters.length = 0;
    for (const name of this.adapterNames()) this.deleteAdapter(name);
    return this.base_layer;
  }

  forward(xs: Tensor, routing: ExpertRouting, ctx: ForwardContext): Tensor {
    if (this.state.adaptersDisabled) return this.base_layer.forward(xs, routing, ctx);
    const rows = ctx.rowAdapters;
    if (rows && this.merged) throw new PeftError(`Per-row adapter names cannot be used while adapters are merged into ${this.path}; call unmergeAdapter() first.`);
    if (this.merged) return this.base_layer.forward(xs, routing, ctx);
    const names = (rows ? [...new Set(rows)] : this.state.activeAdapters).filter((n) => this.settings.has(n));
    if (names.length === 0) return this.base_layer.forward(xs, routing, ctx);
    // Every row on one adapter: all assignments through it. Otherwise each adapter's own assignments only.
    const groups = rows && !rows.every((n) => n === names[0]) ? this.rowGroups(names, rows, routing, xs) : null;
    const term = (parameter: ExpertParameter) => (x: Tensor, r: ExpertRouting) => {
      if (!groups) {
        let total: Tensor | null = null;
        for (const name of names) {
          const d = this.delta(name, parameter, x, r.groupSizes);
          total = total ? add(total, d) : d;
        }
        return total!;
      }
      const parts = groups.adapters.map((g) => this.delta(g.name, parameter, embedding(g.index, x), g.groupSizes));
      return scatterAddRows(parts.length === 1 ? parts[0]! : cat(parts, 0), groups.index, x.shape[0]!);
    };
    return this.base_layer.forward(xs, routing, ctx, {
      gateUp: this.adapters.has('gate_up_proj') ? term('gate_up_proj') : undefined,
      down: this.adapters.has('down_proj') ? term('down_proj') : undefined,
    });
  }

  /**
   * A mixed batch: per adapter, the grouped assignments whose token's batch row names it (an int32 index into the
   * grouped order, still sorted by expert) and their count per expert; `index` is all of them, adapter after
   * adapter, where the adapters' terms are scattered back (an assignment of a base row gets none). Tokens are
   * row-major over the batch, so token n sits in row floor(n / (tokens / batch rows)).
   */
  private rowGroups(names: readonly string[], rowAdapters: readonly string[], routing: ExpertRouting, xs: Tensor): { adapters: { name: string; index: Tensor; groupSizes: number[] }[]; index: Tensor } {
    if (routing.tokens % rowAdapters.length !== 0) {
      throw new PeftError(`${rowAdapters.length} adapter names were given for a batch of ${routing.tokens} tokens; pass one name per row.`);
    }
    const perRow = routing.tokens / rowAdapters.length;
    const positions = new Map(names.map((n) => [n, [] as number[]]));
    const sizes = new Map(names.map((n) => [n, new Array<number>(routing.experts).fill(0)]));
    let a = 0;
    routing.groupSizes.forEach((size, e) => {
      for (const end = a + size; a < end; a++) {
        const name = rowAdapters[Math.floor(routing.hostToken[a]! / perRow)]!;
        positions.get(name)?.push(a);
        const counts = sizes.get(name);
        if (counts) counts[e]!++;
      }
    });
    const used = names.filter((n) => positions.get(n)!.length > 0);
    const index = (list: readonly number[]) => fromHost(Int32Array.from(list), [list.length], 'int32', xs.device);
    return {
      adapters: used.map((name) => ({ name, index: index(positions.get(name)!), groupSizes: sizes.get(name)! })),
      index: index(used.flatMap((n) => positions.get(n)!)),
    };
  }

  /** scaling * (x A_e^T) B_e^T for the rows of x grouped by expert (`groupSizes` rows each): two grouped GEMMs. */
  private delta(name: string, parameter: ExpertParameter, x: Tensor, groupSizes: readonly number[]): Tensor {
    const { r, scaling } = this.settings.get(name)!;
    const a = this.factor(parameter, 'A', name)!.weight;
    const b = this.factor(parameter, 'B', name)!.weight;
    const low = groupedMatmul(to(x, { dtype: a.dtype }), this.stackedA(a, r), groupSizes, 'out-in');
    const out = groupedMatmul(low, this.stackedB(b, r), groupSizes, 'out-in');
    return to(mulScalar(out, scaling), { dtype: x.dtype });
  }

  /** A [r x E, in] as [E, r, in]: expert e's rows. */
  private stackedA(a: Tensor, r: number): Tensor {
    return reshape(a, [this.numExperts, r, a.shape[1]!]);
  }

  /** B [out, r x E] as [E, out, r]: column j * E + e of B is column j of expert e's. */
  private stackedB(b: Tensor, r: number): Tensor {
    return contiguous(permute(reshape(b, [b.shape[0]!, r, this.numExperts]), [2, 0, 1]));
  }

  /** scaling * B_e A_e for every expert, float32, in the parameter's stored orientation: what merging adds. */
  deltaWeight(name: string, parameter: ExpertParameter): Tensor {
    const { r, scaling } = this.settings.get(name)!;
    const a = to(this.factor(parameter, 'A', name)!.weight, { dtype: 'float32' });
    const b = to(this.factor(parameter, 'B', name)!.weight, { dtype: 'float32' });
    const outIn = mulScalar(matmul(this.stackedB(b, r), this.stackedA(a, r)), scaling);
    return this.base_layer.layout === 'out-in' ? outIn : contiguous(transpose(outIn, 1, 2));
  }

  /** Throws, before anything is merged anywhere, when a targeted weight is held quantized (merging needs it dense). */
  assertMergeable(): void {
    for (const p of this.adapters.keys()) this.base_layer.denseWeight(p, 'take merged adapters');
  }

  merge(names: readonly string[]): void {
    for (const name of names) {
      if (!this.settings.has(name) || this.mergedAdapters.includes(name)) continue;
      this.apply(name, add);
      this.mergedAdapters.push(name);
    }
  }

  unmerge(): void {
    while (this.mergedAdapters.length > 0) this.apply(this.mergedAdapters.pop()!, sub);
  }

  private apply(name: string, op: (w: Tensor, d: Tensor) => Tensor): void {
    noGrad(() =>
      scope(() => {
        for (const p of this.adapters.keys()) {
          const weight = this.base_layer.denseWeight(p, 'take merged adapters');
          overwriteTensor(weight, op(to(weight, { dtype: 'float32' }), this.deltaWeight(name, p)));
        }
      }),
    );
  }
}
