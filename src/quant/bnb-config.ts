import { QuantError } from './errors.js';
import type { ComputeDType } from './linear4bit.js';

/** What a transformers `quantization_config` with quant_method "bitsandbytes" asks of the 4-bit loader. */
export interface BnbQuantConfig {
  /** bnb_4bit_compute_dtype; transformers' default is float32. */
  readonly computeDtype: ComputeDType;
  /** bnb_4bit_use_double_quant as declared; each weight's own quant state is what dequantization follows. */
  readonly doubleQuant: boolean;
}

const COMPUTE_DTYPES: readonly ComputeDType[] = ['bfloat16', 'float16', 'float32'];

/**
 * Checks a bitsandbytes `quantization_config` block (`configPath` names the file in errors). Only 4-bit NF4 with
 * uint8 storage is supported; 8-bit (LLM.int8) and fp4 checkpoints are refused with one sentence each.
 */
export function parseBnbQuantConfig(q: Readonly<Record<string, unknown>>, configPath: string): BnbQuantConfig {
  const fail = (what: string): never => {
    throw new QuantError(`${configPath}: quantization_config ${what}.`);
  };
  if (q['load_in_8bit'] === true) fail('asks for 8-bit bitsandbytes (load_in_8bit), which loraforge does not support; use a 4-bit NF4 checkpoint or quantize the dense model with `loraforge quantize`');
  if (q['load_in_4bit'] !== true) fail('has neither load_in_4bit nor load_in_8bit set to true, so it describes no bitsandbytes quantization');
  const quantType = q['bnb_4bit_quant_type'];
  if (quantType !== undefined && quantType !== 'nf4') {
    fail(`has bnb_4bit_quant_type ${JSON.stringify(quantType)}; loraforge supports only "nf4" (quantize the dense model with bnb_4bit_quant_type="nf4")`);
  }
  const storage = q['bnb_4bit_quant_storage'];
  if (storage !== undefined && storage !== null && storage !== 'uint8') {
    fail(`has bnb_4bit_quant_storage ${JSON.stringify(storage)}; only "uint8" is supported`);
  }
  const rawDtype = q['bnb_4bit_compute_dtype'] ?? 'float32';
  const computeDtype = typeof rawDtype === 'string' ? rawDtype.replace(/^torch\./, '') : rawDtype;
  if (!COMPUTE_DTYPES.includes(computeDtype as ComputeDType)) {
    fail(`has bnb_4bit_compute_dtype ${JSON.stringify(rawDtype)}; supported compute dtypes are ${COMPUTE_DTYPES.join(', ')}`);
  }
  return { computeDtype: computeDtype as ComputeDType, doubleQuant: q['bnb_4bit_use_double_quant'] === true };
}

/**
 * The `"quantization_config": {...}` member exactly as transformers writes it into config.json for
 * BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", ...), at the indent of a top-level key.
 * Returned as text because llm_int8_threshold is the Python float 6.0, which JSON.stringify would write as 6.
 */
export function bnbQuantizationConfigMember(options: { doubleQuant: boolean; computeDtype: ComputeDType }): string {
  const fields: [string, string][] = [
    ['quant_method', '"bitsandbytes"'],
    ['load_in_4bit', 'true'],
    ['load_in_8bit', 'false'],
    ['bnb_4bit_quant_type', '"nf4"'],
    ['bnb_4bit_use_double_quant', String(options.doubleQuant)],
    ['bnb_4bit_compute_dtype', `"${options.computeDtype}"`],
    ['bnb_4bit_quant_storage', '"uint8"'],
    ['llm_int8_skip_modules', 'null'],
    ['llm_int8_threshold', '6.0'],
  ];
  return `"quantization_config": {\n${fields.map(([k, v]) => `    "${k}": ${v}`).join(',\n')}\n  }`;
}

/**
 * config.json text of a 4-bit model: `raw` (key order kept, 2-space indent) with `dtype` set to the load dtype and
 * transformers' quantization_config block last, replacing any earlier one.
 */
export function quantizedConfigJson(raw: Readonly<Record<string, unknown>>, options: { dtype: ComputeDType; doubleQuant: boolean; computeDtype: ComputeDType }): string {
  const config: Record<string, unknown> = { ...raw, dtype: options.dtype };
  delete config['quantization_config'];
  if ('torch_dtype' in config) config['torch_dtype'] = options.dtype;
  const body = JSON.stringify(config, null, 2);
  return `${body.slice(0, -2)},\n  ${bnbQuantizationConfigMember(options)}\n}\n`;
}
