import { FormatError } from '../io/errors.js';
import { sourcePath, type TensorSource } from '../io/tensor-source.js';
import type { ModelConfig } from './config.js';
import { LAYER_NORM_NAMES } from './causal-lm.js';

/** One tensor a checkpoint of this config holds: its name under the decoder's module path, and shape. */
export interface LayoutTensor {
  /** Module path relative to the decoder ("layers.0.self_attn.q_proj"), or "lm_head" for the output head. */
  readonly module: string;
  /** "weight" or "bias". */
  readonly param: 'weight' | 'bias';
  readonly shape: readonly number[];
  readonly kind: 'embedding' | 'projection' | 'norm' | 'head';
}

/** A linear projection of one decoder layer: its module path under the layer, and [out, in]. */
export interface LayerProjection {
  readonly path: string;
  readonly outFeatures: number;
  readonly inFeatures: number;
  readonly bias: boolean;
}

/** The projections of layer modules as transformers names them, for this config's family. */
export function layerProjections(c: ModelConfig): LayerProjection[] {
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
  return [...attention, ...mlp, { path: 'mlp.down_proj', outFeatures: H, inFeatures: I, bias: c.mlpBias }];
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
    for (const proj of layerProjections(c)) {
      out.push({ module: `${p}.${proj.path}`, param: 'weight', shape: [proj.outFeatures, proj.inFeatures], kind: 'projection' });
      if (proj.bias) out.push({ module: `${p}.${proj.path}`, param: 'bias', shape: [proj.outFeatures], kind: 'projection' });
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
