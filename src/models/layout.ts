import { FormatError } from '../io/errors.js';
import { sourcePath, type TensorSource } from '../io/tensor-source.js';
import type { ModelConfig } from './config.js';
import { LAYER_NORM_NAMES } from './causal-lm.js';

/** One tensor a checkpoint of this config holds: its name under the decoder's module path, and shape. */
export interface LayoutTensor {
  /** Module path relative to the decoder ("layers.0.self_attn.q_proj"), or "lm_head" for the output head. */
  readonly module: string;
  /** "weight" or "bias", or a fused expert tensor's own name ("gate_up_proj", gpt-oss's checkpoint). */
  readonly param: string;
  readonly shape: readonly number[];
  readonly kind: 'embedding' | 'projection' | 'norm' | 'head' | 'router' | 'expert' | 'sink';
  /** Stored as raw bytes rather than floats (gpt-oss's MXFP4 expert blocks and scales). */
  readonly bytes?: true;
}

/** A linear projection of one decoder layer: its module path under the layer, and [out, in]. */
export interface LayerProjection {
  readonly path: string;
  readonly outFeatures: number;
  readonly inFeatures: number;
  readonly bias: boolean;
}

/**
 * The projections of layer `layer`'s modules as transformers names them, for this config's family: attention,
 * and the dense MLP unless the layer is a sparse mixture-of-experts block (moeLayerTensors).
 */
export function layerProjections(c: ModelConfig, layer = 0): LayerProjection[] {
  const H = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const I = c.intermediateSize;
  const attention: LayerProjection[] = c.fusedProjections
    ? [
        { path: 'self_attn.o_proj', outFeatures: H, inFeatures: q, bias: c.oBias },
        { path: 'self_attn.qkv_proj', outFeatures: q + 2 * kv, inFeatures: H, bias: c.qkvBias },
      ]
    : [
        { path: 'self_attn.q_proj', outFeatures: q, inFeatures: H, bias: c.qkvBias },
        { path: 'self_attn.k_proj', outFeatures: kv, inFeatures: H, bias: c.qkvBias },
        { path: 'self_attn.v_proj', outFeatures: kv, inFeatures: H, bias: c.qkvBias },
        { path: 'self_attn.o_proj', outFeatures: H, inFeatures: q, bias: c.oBias },
      ];
  const mlp: LayerProjection[] = c.fusedProjections
    ? [{ path: 'mlp.gate_up_proj', outFeatures: 2 * I, inFeatures: H, bias: c.mlpBias }]
    : [
        { path: 'mlp.gate_proj', outFeatures: I, inFeatures: H, bias: c.mlpBias },
        { path: 'mlp.up_proj', outFeatures: I, inFeatures: H, bias: c.mlpBias },
      ];
  if (c.moe?.sparseLayers[layer]) return attention;
  return [...attention, ...mlp, { path: 'mlp.down_proj', outFeatures: H, inFeatures: I, bias: c.mlpBias }];
}

/**
 * One tensor of a sparse layer as the checkpoint stores it (path relative to the layer), and where it goes in
 * the fused expert parameters transformers 5.17 computes with (experts.gate_up_proj, experts.down_proj): rows
 * `part` of expert `expert`'s slice, or the whole parameter (expert null).
 */
export interface StoredMoeTensor {
  readonly path: string;
  readonly shape: readonly number[];
  readonly kind: 'router' | 'expert';
  /** The parameter it fills: router "weight"/"bias", or the experts' fused one. */
  readonly target: 'weight' | 'bias' | 'gate_up_proj' | 'down_proj' | 'gate_up_proj_bias' | 'down_proj_bias';
  readonly expert: number | null;
  /** Mixtral and Qwen3-MoE fuse [gate; up] along the output rows (chunk(2) splits them back). */
  readonly part: 'gate' | 'up' | 'all';
  /** A float tensor, or one half of an MXFP4 parameter (uint8 blocks [E, out, in / 32, 16], scales [E, out, in / 32]). */
  readonly encoding: 'float' | 'mxfp4-blocks' | 'mxfp4-scales';
}

/** The module names of a sparse block under the layer: mlp.gate (Mixtral, Qwen3-MoE) or mlp.router (gpt-oss), and mlp.experts. */
export function moeRouterPath(c: ModelConfig): 'mlp.gate' | 'mlp.router' {
  return c.moe?.family === 'gpt_oss' ? 'mlp.router' : 'mlp.gate';
}

/**
 * The tensors of one sparse layer in checkpoint order: Mixtral's block_sparse_moe.experts.N.w1/w3/w2 and Qwen3-MoE's
 * mlp.experts.N.gate_proj/up_proj/down_proj one by one, gpt-oss's fused [E, H, 2I] / [E, I, H] with biases.
 */
export function moeLayerTensors(c: ModelConfig): StoredMoeTensor[] {
  const moe = c.moe!;
  const { numExperts: E, expertIntermediateSize: I } = moe;
  const H = c.hiddenSize;
  const whole = { expert: null, part: 'all', encoding: 'float' } as const;
  if (moe.family === 'gpt_oss') {
    // [E, in, out] as floats, or MXFP4 of the transposed [E, out, in] (blocks along in).
    const weight = (name: 'gate_up_proj' | 'down_proj', inF: number, outF: number): StoredMoeTensor[] =>
      moe.expertFormat === 'mxfp4'
        ? [
            { path: `mlp.experts.${name}_blocks`, shape: [E, outF, inF / 32, 16], kind: 'expert', target: name, expert: null, part: 'all', encoding: 'mxfp4-blocks' },
            { path: `mlp.experts.${name}_scales`, shape: [E, outF, inF / 32], kind: 'expert', target: name, expert: null, part: 'all', encoding: 'mxfp4-scales' },
          ]
        : [{ path: `mlp.experts.${name}`, shape: [E, inF, outF], kind: 'expert', target: name, ...whole }];
    return [
      { path: 'mlp.router.weight', shape: [E, H], kind: 'router', target: 'weight', ...whole },
      { path: 'mlp.router.bias', shape: [E], kind: 'router', target: 'bias', ...whole },
      ...weight('gate_up_proj', H, 2 * I),
      { path: 'mlp.experts.gate_up_proj_bias', shape: [E, 2 * I], kind: 'expert', target: 'gate_up_proj_bias', ...whole },
      ...weight('down_proj', I, H),
      { path: 'mlp.experts.down_proj_bias', shape: [E, H], kind: 'expert', target: 'down_proj_bias', ...whole },
    ];
  }
  const mixtral = moe.family === 'mixtral';
  const block = mixtral ? 'block_sparse_moe' : 'mlp';
  const [gate, up, down] = mixtral ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
  const out: StoredMoeTensor[] = [{ path: `${block}.gate.weight`, shape: [E, H], kind: 'router', target: 'weight', ...whole }];
  for (let e = 0; e < E; e++) {
    const p = `${block}.experts.${e}`;
    out.push(
      { path: `${p}.${gate}.weight`, shape: [I, H], kind: 'expert', target: 'gate_up_proj', expert: e, part: 'gate', encoding: 'float' },
      { path: `${p}.${up}.weight`, shape: [I, H], kind: 'expert', target: 'gate_up_proj', expert: e, part: 'up', encoding: 'float' },
      { path: `${p}.${down}.weight`, shape: [H, I], kind: 'expert', target: 'down_proj', expert: e, part: 'all', encoding: 'float' },
    );
  }
  return out;
}

/** Widths of the q and k norms, or null when the family has none. */
export function qkNormWidths(c: ModelConfig): { q: number; k: number } | null {
  if (c.qkNorm === 'head') return { q: c.headDim, k: c.headDim };
  if (c.qkNorm === 'projection') return { q: c.numAttentionHeads * c.headDim, k: c.numKeyValueHeads * c.headDim };
  return null;
}

/** Every tensor a dense checkpoint of `c` holds (the output head only when untied), in transformers' order. */
export function checkpointLayout(c: ModelConfig): LayoutTensor[] {
  const out: LayoutTensor[] = [{ module: 'embed_tokens', param: 'weight', shape: [c.vocabSize, c.hiddenSize], kind: 'embedding' }];
  const qk = qkNormWidths(c);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `layers.${i}`;
    for (const proj of layerProjections(c, i)) {
      out.push({ module: `${p}.${proj.path}`, param: 'weight', shape: [proj.outFeatures, proj.inFeatures], kind: 'projection' });
      if (proj.bias) out.push({ module: `${p}.${proj.path}`, param: 'bias', shape: [proj.outFeatures], kind: 'projection' });
    }
    if (c.attentionSinks) out.push({ module: `${p}.self_attn`, param: 'sinks', shape: [c.numAttentionHeads], kind: 'sink' });
    if (c.moe?.sparseLayers[i]) {
      for (const t of moeLayerTensors(c)) {
        const dot = t.path.lastIndexOf('.');
        out.push({ module: `${p}.${t.path.slice(0, dot)}`, param: t.path.slice(dot + 1), shape: t.shape, kind: t.kind, ...(t.encoding === 'float' ? {} : { bytes: true as const }) });
      }
    }
    if (qk) {
      out.push({ module: `${p}.self_attn.q_norm`, param: 'weight', shape: [qk.q], kind: 'norm' });
      out.push({ module: `${p}.self_attn.k_norm`, param: 'weight', shape: [qk.k], kind: 'norm' });
    }
    for (const n of LAYER_NORM_NAMES[c.normPlacement]) out.push({ module: `${p}.${n}`, param: 'weight', shape: [c.hiddenSize], kind: 'norm' });
  }
  out.push({ module: 'norm', param: 'weight', shape: [c.hiddenSize], kind: 'norm' });
  if (!c.tieWordEmbeddings) out.push({ module: 'lm_head', param: 'weight', shape: [c.vocabSize, c.hiddenSize], kind: 'head' });
  return out;
}

/** The checkpoint name of a layout tensor, with the decoder under `prefix` ("model"). */
export function checkpointName(t: LayoutTensor, prefix: string, lmHeadName = 'lm_head.weight'): string {
  return t.kind === 'head' ? lmHeadName : `${prefix}.${t.module}.${t.param}`;
}

/**
 * Where the decoder's tensors sit in this checkpoint: "model" for a causal LM; a Gemma 3 multimodal checkpoint
 * keeps them under "language_model.model" (as released) or "model.language_model" (as transformers 5 saves it).
 */
export function decoderPrefix(config: ModelConfig, source: TensorSource): { prefix: string; lmHead: string } {
  if (!config.skippedTower) return { prefix: 'model', lmHead: 'lm_head.weight' };
  for (const [prefix, lmHead] of [['language_model.model', 'language_model.lm_head.weight'], ['model.language_model', 'lm_head.weight']] as const) {
    if (source.has(`${prefix}.embed_tokens.weight`)) return { prefix, lmHead };
  }
  const where = sourcePath(source);
  throw new FormatError(where, `${where} has no language_model.model.embed_tokens.weight nor model.language_model.embed_tokens.weight, so it does not hold the language model of this ${config.architecture}; point at the checkpoint its config.json came with.`);
}
