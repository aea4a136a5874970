import { parseJsonText } from '../io/json-text.js';
import { QuantError } from './errors.js';
import type { Nf4SourceDType } from './nf4-weight.js';
import { pythonFloatRepr } from '../io/python-json.js';

/**
 * The non-tensor part of a bitsandbytes QuantState, which transformers stores as the uint8 tensor
 * `<weight>.quant_state.bitsandbytes__nf4`: the bytes of Python's `json.dumps` of
 * {quant_type, blocksize, dtype, shape[, nested_blocksize, nested_dtype, nested_offset]} in that key order,
 * with json's default ", " and ": " separators.
 */
export interface QuantStateFields {
  quantType: 'nf4';
  blocksize: number;
  dtype: Nf4SourceDType;
  shape: readonly number[];
  nested: { blocksize: number; dtype: 'float32'; offset: number } | null;
}

const SOURCE_DTYPES: readonly Nf4SourceDType[] = ['float32', 'bfloat16', 'float16'];
const KNOWN_KEYS = ['quant_type', 'blocksize', 'dtype', 'shape', 'nested_blocksize', 'nested_dtype', 'nested_offset'];
const NESTED_KEYS = ['nested_blocksize', 'nested_dtype', 'nested_offset'];

export function formatQuantStateJson(fields: QuantStateFields): string {
  let text = `{"quant_type": "${fields.quantType}", "blocksize": ${fields.blocksize}, "dtype": "${fields.dtype}", "shape": [${fields.shape.join(', ')}]`;
  if (fields.nested !== null) {
    // bnb writes offset.item(): the float32 offset widened to a Python float.
    text += `, "nested_blocksize": ${fields.nested.blocksize}, "nested_dtype": "${fields.nested.dtype}", "nested_offset": ${pythonFloatRepr(Math.fround(fields.nested.offset))}`;
  }
  return `${text}}`;
}

function isSourceDType(value: unknown): value is Nf4SourceDType {
  return SOURCE_DTYPES.includes(value as Nf4SourceDType);
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Parses and checks the quant-state JSON of weight `weightName` stored in `file` (both named in every error). */
export function parseQuantStateJson(weightName: string, text: string, file: string): QuantStateFields {
  function fail(what: string): never {
    throw new QuantError(`${file}: the bitsandbytes quant state of "${weightName}" ${what}.`);
  }
  const json = parseJsonText(text, `${file}: the bitsandbytes quant state of "${weightName}"`, 're-save the checkpoint with transformers and bitsandbytes');
  if ('problem' in json) throw new QuantError(json.problem);
  const parsed = json.value;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('is not a JSON object');
  const record = parsed as Record<string, unknown>;
  const unknownKey = Object.keys(record).find((key) => !KNOWN_KEYS.includes(key));
  if (unknownKey !== undefined) fail(`has an unknown field "${unknownKey}"; bitsandbytes writes only ${KNOWN_KEYS.join(', ')}`);
  const { quant_type: quantType, blocksize, dtype, shape } = record;
  if (quantType === 'fp4') fail('uses quant_type "fp4", which loraforge does not support; quantize the model with bnb_4bit_quant_type="nf4"');
  if (quantType !== 'nf4') fail(`has quant_type ${JSON.stringify(quantType)}; only "nf4" is supported`);
  if (!isIndex(blocksize)) fail(`has blocksize ${JSON.stringify(blocksize)}, which is not a non-negative integer`);
  if (!isSourceDType(dtype)) fail(`has dtype ${JSON.stringify(dtype)}; bitsandbytes 4-bit weights are ${SOURCE_DTYPES.join(', ')}`);
  if (!Array.isArray(shape) || !shape.every(isIndex)) fail(`has shape ${JSON.stringify(shape)}, which is not a list of non-negative integers`);

  const presentNested = NESTED_KEYS.filter((key) => key in record);
  let nested: QuantStateFields['nested'] = null;
  if (presentNested.length > 0) {
    if (presentNested.length !== NESTED_KEYS.length) fail(`has ${presentNested.join(', ')} but not all of ${NESTED_KEYS.join(', ')}`);
    const { nested_blocksize: nestedBlocksize, nested_dtype: nestedDtype, nested_offset: offset } = record;
    if (!isIndex(nestedBlocksize)) fail(`has nested_blocksize ${JSON.stringify(nestedBlocksize)}, which is not a non-negative integer`);
    if (nestedDtype !== 'float32') fail(`has nested_dtype ${JSON.stringify(nestedDtype)}; bitsandbytes double quantization keeps float32 statistics`);
    if (typeof offset !== 'number') fail(`has nested_offset ${JSON.stringify(offset)}, which is not a number`);
    nested = { blocksize: nestedBlocksize, dtype: 'float32', offset: Math.fround(offset) };
  }
  return { quantType: 'nf4', blocksize, dtype, shape, nested };
}
