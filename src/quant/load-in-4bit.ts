import { resolvePretrained } from '../io/hub.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { buildCausalLM, type FromPretrainedOptions, type LinearLoader } from '../models/build.js';
import { openCheckedCheckpoint } from '../models/checkpoint-check.js';
import { loadConfig } from '../models/config.js';
import type { CausalLM } from '../models/causal-lm.js';
import { loadTensor } from '../models/weights.js';
import { Linear4bit } from './linear4bit.js';
import { quantizeNf4Weight } from './nf4-weight.js';
import { quantizeExpertsInPlace } from './nf4-experts.js';
import { hostFloatData, type QuantizeLinearsOptions } from './quantize-in-place.js';

/**
 * Loads each decoder projection of a dense checkpoint on the host in the load dtype, quantizes it there and
 * uploads only the 4-bit form, so the device never holds the dense weights (peak host memory: one projection).
 * buildCausalLM routes exactly the decoder projections through this loader; lm_head and embeddings stay dense.
 */
export function quantizeOnLoadLinearLoader(options: QuantizeLinearsOptions = {}): LinearLoader {
  return async (ctx) => {
    const expected = [ctx.outFeatures, ctx.inFeatures];
    const bias = ctx.bias ? await loadTensor(ctx.source, `${ctx.prefix}.bias`, ctx.dtype, ctx.device, [ctx.outFeatures]) : null;
    const host = await loadTensor(ctx.source, `${ctx.prefix}.weight`, ctx.dtype, 'cpu', expected);
    const weight = quantizeNf4Weight(await hostFloatData(host), expected, { blocksize: options.blocksize ?? 64, doubleQuant: options.doubleQuant ?? true });
    host.dispose();
    return new Linear4bit(weight, { bias, computeDtype: options.computeDtype ?? 'bfloat16', device: ctx.device });
  };
}

/**
 * transformers' `from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_4bit=True, nf4, ...))`: a dense
 * checkpoint loaded with its decoder projections in NF4 (what `train --qlora` does), and a mixture-of-experts
 * model's experts too, one NF4 weight per expert matrix (quantizeExpertsInPlace; transformers + bitsandbytes leave
 * fused expert parameters dense, so this goes beyond them). The load dtype defaults to
 * the compute dtype (bfloat16), so weights are rounded to it before quantization as transformers does. A
 * checkpoint that is already 4-bit loads as it is; gpt-oss's MXFP4 experts are decoded, then put in NF4.
 */
export async function loadIn4bit(idOrDir: string, options: FromPretrainedOptions & QuantizeLinearsOptions = {}): Promise<CausalLM> {
  const dir = await resolvePretrained(idOrDir, { revision: options.revision, token: options.token, cacheDir: options.cacheDir });
  const config = await loadConfig(dir, { attnImplementation: options.attnImplementation });
  // A checkpoint with 4-bit projections loads as it is. gpt-oss's MXFP4 is not one: it packs the experts alone, which
  // load dequantized to `dtype` and are quantized to NF4 below with the (dense) projections.
  if (config.raw['quantization_config'] !== undefined && config.moe?.expertFormat !== 'mxfp4') return AutoModelForCausalLM.fromPretrained(dir, options);
  const computeDtype = options.computeDtype ?? 'bfloat16';
  const dtype = !options.dtype || options.dtype === 'auto' ? computeDtype : options.dtype;
  const source = await openCheckedCheckpoint(dir, config);
  let model: CausalLM;
  try {
    model = await buildCausalLM(config, source, dtype, options.device ?? 'cpu', quantizeOnLoadLinearLoader({ ...options, computeDtype }));
  } finally {
    await source.close();
  }
  if (config.moe) await quantizeExpertsInPlace(model, options);
  return model;
}
