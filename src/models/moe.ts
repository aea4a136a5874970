/**
 * The sparse mixture-of-experts MLP of Mixtral, Qwen3-MoE and gpt-oss, as transformers 5.17 computes it
 * (MixtralSparseMoeBlock, Qwen3MoeSparseMoeBlock, GptOssMLP), with its fused expert parameters
 * (experts.gate_up_proj, experts.down_proj) so that PEFT's target_parameters names line up:
 * - the router's logits [tokens, experts]; Mixtral/Qwen3-MoE take the top k of their softmax (renormalised
 *   when normTopkProb), gpt-oss the softmax of its top k logits;
 * - the assignments grouped by expert (ops/moe-routing.ts), each expert's tokens through its two projections
 *   as grouped GEMMs (ops/grouped-matmul.ts), and the outputs, times their routing weights, added back to their
 *   tokens (ops/scatter-add.ts: index_add_).
 * The router is a frozen model weight like every other; gradients reach the input through the routing weights.
 */
import {
  add,
  addScalar,
  clamp,
  div,
  embedding,
  gatedActivation,
  groupedMatmul,
  linear,
  mul,
  mulScalar,
  narrow,
  reshape,
  routeTopK,
  scatterAddRows,
  sigmoid,
  softmax,
  sum,
  to,
  type ExpertRouting,
  type GroupedWeightLayout,
} from '../ops/index.js';
import { Module, type ForwardContext } from '../nn/module.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { MoeConfig } from './config.js';

/** gpt-oss's SwiGLU slope (GptOssExperts.alpha). */
const GPT_OSS_ALPHA = 1.702;

/** The router: logits = x W^T (+ b for gpt-oss), W [experts, hidden]. */
export class MoeRouter extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(weight: Tensor, bias: Tensor | null) {
    super();
    this.weight = weight;
    this.bias = bias;
    this.registerParameter('weight', weight);
    if (bias) this.registerParameter('bias', bias);
  }
}

/**
 * Terms an adapter adds to the experts' projections (PEFT's ParamWrapper on experts.gate_up_proj and
 * experts.down_proj): each takes the grouped rows entering that projection and returns [rows, out] to add.
 */
export interface ExpertDeltas {
  readonly gateUp?: (x: Tensor, routing: ExpertRouting) => Tensor;
  readonly down?: (x: Tensor, routing: ExpertRouting) => Tensor;
}

/** The two expert weights a sparse block multiplies with, by their transformers names. */
export type ExpertWeightName = 'gate_up_proj' | 'down_proj';

/** An expert weight [E, ., .] held quantized (QLoRA's per-expert NF4, src/quant): dense on demand, never trained. */
export interface QuantizedExpertWeight {
  readonly shape: readonly number[];
  /** The dense weight in `dtype`, outside the autograd graph. */
  dequantize(dtype: DType): Tensor;
  dispose(): void;
}

/** What a sparse block calls for its experts: the base experts, or an adapter wrapping them (src/peft). */
export interface ExpertsLike extends Module {
  /** Outputs [rows, hidden] for rows [rows, hidden] grouped by expert as `routing` says. */
  forward(xs: Tensor, routing: ExpertRouting, ctx: ForwardContext): Tensor;
}

/**
 * The experts' fused parameters as transformers 5.17 holds them: Mixtral/Qwen3-MoE gate_up_proj [E, 2I, H] ([gate;
 * up] rows) and down_proj [E, H, I], multiplied as nn.Linear weights; gpt-oss gate_up_proj [E, H, 2I] (gate and up
 * interleaved: columns 2j and 2j + 1) and down_proj [E, I, H], multiplied as stored, plus their biases.
 */
export class MoeExperts extends Module implements ExpertsLike {
  /** null once quantized (quantizeWeight): the weight then lives in `quantized`. */
  gate_up_proj: Tensor | null;
  down_proj: Tensor | null;
  gate_up_proj_bias: Tensor | null;
  down_proj_bias: Tensor | null;
  readonly layout: GroupedWeightLayout;
  private readonly quantized = new Map<ExpertWeightName, QuantizedExpertWeight>();
  constructor(
    readonly moe: MoeConfig,
    readonly hiddenAct: string,
    params: { gateUp: Tensor; down: Tensor; gateUpBias: Tensor | null; downBias: Tensor | null },
  ) {
    super();
    this.gate_up_proj = params.gateUp;
    this.down_proj = params.down;
    this.gate_up_proj_bias = params.gateUpBias;
    this.down_proj_bias = params.downBias;
    this.registerParameter('gate_up_proj', params.gateUp);
    if (params.gateUpBias) this.registerParameter('gate_up_proj_bias', params.gateUpBias);
    this.registerParameter('down_proj', params.down);
    if (params.downBias) this.registerParameter('down_proj_bias', params.downBias);
    this.layout = moe.family === 'gpt_oss' ? 'in-out' : 'out-in';
  }

  /** The dense parameter, or the quantized form's shape. */
  shapeOf(name: ExpertWeightName): readonly number[] {
    return this[name]?.shape ?? this.quantized.get(name)!.shape;
  }

  isQuantized(name: ExpertWeightName): boolean {
    return this.quantized.has(name);
  }

  /** The dense parameter; refused once it is quantized (merging and exporting need the dense experts). */
  denseWeight(name: ExpertWeightName, purpose: string): Tensor {
    const t = this[name];
    if (!t) throw new Error(`The experts' ${name} is held in 4 bits, so it cannot ${purpose}; load the model unquantized for that.`);
    return t;
  }

  /** Replaces a dense weight by its quantized form and frees the dense one (the parameter stays, as null). */
  quantizeWeight(name: ExpertWeightName, q: QuantizedExpertWeight): void {
    this.denseWeight(name, 'be quantized again').dispose();
    this.setParameter(name, null);
    this.quantized.set(name, q);
  }

  /** The weight to multiply with, in the input's dtype when it is quantized. */
  private weight(name: ExpertWeightName, dtype: DType): Tensor {
    return this[name] ?? this.quantized.get(name)!.dequantize(dtype);
  }

  forward(xs: Tensor, routing: ExpertRouting, _ctx: ForwardContext, deltas: ExpertDeltas = {}): Tensor {
    const sizes = routing.groupSizes;
    let gateUp = groupedMatmul(xs, this.weight('gate_up_proj', xs.dtype), sizes, this.layout);
    if (deltas.gateUp) gateUp = add(gateUp, deltas.gateUp(xs, routing));
    if (this.gate_up_proj_bias) gateUp = add(gateUp, embedding(routing.expert, this.gate_up_proj_bias));
    const hidden = this.moe.family === 'gpt_oss' ? clampedSwiglu(gateUp, this.moe.swigluLimit) : this.gated(gateUp);
    let out = groupedMatmul(hidden, this.weight('down_proj', hidden.dtype), sizes, this.layout);
    if (deltas.down) out = add(out, deltas.down(hidden, routing));
    if (this.down_proj_bias) out = add(out, embedding(routing.expert, this.down_proj_bias));
    return out;
  }

  /** act(gate) * up with [gate; up] = gate_up.chunk(2, dim=-1). */
  private gated(gateUp: Tensor): Tensor {
    const I = this.moe.expertIntermediateSize;
    return gatedActivation(this.hiddenAct, narrow(gateUp, 1, 0, I), narrow(gateUp, 1, I, I));
  }
}

/**
 * GptOssExperts' activation over interleaved [rows, 2I] (gate = [..., ::2], up = [..., 1::2]): gate clamped
 * above at `limit`, up to [-limit, limit], then (up + 1) * gate * sigmoid(1.702 gate).
 */
function clampedSwiglu(gateUp: Tensor, limit: number): Tensor {
  const [rows, width] = gateUp.shape as [number, number];
  const I = width / 2;
  const pairs = reshape(gateUp, [rows, I, 2]);
  const gate = clamp(reshape(narrow(pairs, 2, 0, 1), [rows, I]), -Infinity, limit);
  const up = clamp(reshape(narrow(pairs, 2, 1, 1), [rows, I]), -limit, limit);
  const glu = mul(gate, sigmoid(mulScalar(gate, GPT_OSS_ALPHA)));
  return mul(addScalar(up, 1), glu);
}

/** The sparse MLP of one layer: `gate` (Mixtral, Qwen3-MoE) or `router` (gpt-oss), then `experts`. */
export class SparseMoeBlock extends Module {
  experts: ExpertsLike;
  constructor(
    readonly moe: MoeConfig,
    readonly router: MoeRouter,
    experts: ExpertsLike,
  ) {
    super();
    this.registerModule(moe.family === 'gpt_oss' ? 'router' : 'gate', router);
    this.experts = this.registerModule('experts', experts);
  }

  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const H = x.shape[x.rank - 1]!;
    const N = x.numel / H;
    const { numExperts: E, topK: k } = this.moe;
    const flat = reshape(x, [N, H]);
    const logits = linear(flat, this.router.weight, this.router.bias);
    let routing: ExpertRouting;
    let top: Tensor;
    if (this.moe.routing === 'softmax-topk') {
      const probs = softmax(to(logits, { dtype: 'float32' }));
      routing = routeTopK(probs, k);
      top = reshape(embedding(routing.choice, reshape(probs, [N * E, 1])), [N, k]);
      if (this.moe.normTopkProb) top = div(top, sum(top, -1, true));
    } else {
      routing = routeTopK(logits, k);
      top = softmax(reshape(embedding(routing.choice, reshape(logits, [N * E, 1])), [N, k]));
    }
    // Routing weights in the hidden dtype, in the grouped order: one per assignment.
    const weights = embedding(routing.slot, reshape(to(top, { dtype: x.dtype }), [N * k, 1]));
    const out = this.experts.forward(embedding(routing.token, flat), routing, ctx);
    return reshape(scatterAddRows(mul(out, weights), routing.token, N), x.shape);
  }
}
