/**
 * Module paths of the decoder projections that transformers + bitsandbytes replace with Linear4bit in a
 * decoder (every nn.Linear except lm_head, Phi-3's fused qkv_proj and gate_up_proj included), relative to the causal LM ("model.layers.3.mlp.up_proj")
 * or to its inner model ("layers.3.mlp.up_proj").
 */
const DECODER_PROJECTION = /(^|\.)layers\.\d+\.(self_attn\.(q|k|v|o|qkv)_proj|mlp\.(gate|up|down|gate_up)_proj)$/;

export function isDecoderProjection(modulePath: string): boolean {
  return DECODER_PROJECTION.test(modulePath);
}

/** True for the stored weight tensor of a decoder projection ("model.layers.0.self_attn.q_proj.weight"). */
export function isDecoderProjectionWeight(tensorName: string): boolean {
  return tensorName.endsWith('.weight') && isDecoderProjection(tensorName.slice(0, -'.weight'.length));
}
