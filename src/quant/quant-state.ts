import { decodeTensor } from '../io/decode.js';
import type { DType } from '../tensor/dtype.js';
import { formatShape, numelOf } from '../tensor/shape.js';
import { BLOCKWISE_BLOCKSIZES } from './blockwise.js';
import { QuantError } from './errors.js';
import { NF4_BLOCKSIZES, NF4_CODE } from './nf4.js';
import type { Nf4Absmax, Nf4Weight } from './nf4-weight.js';
import { formatQuantStateJson, parseQuantStateJson } from './quant-state-json.js';

/**
 * A 4-bit weight as transformers + bitsandbytes save it in a state dict / safetensors file, for weight name W:
 *   W                                  uint8   [ceil(n/2), 1]   packed NF4 codes
 *   W.absmax                           float32 [blocks]         (uint8 [blocks] when double-quantized)
 *   W.quant_map                        float32 [16]             the NF4 code
 *   W.nested_absmax                    float32 [ceil(blocks/256)]   double quant only
 *   W.nested_quant_map                 float32 [256]            double quant only
 *   W.quant_state.bitsandbytes__nf4    uint8   [len]            JSON bytes (see quant-state-json.ts)
 */

/** Little-endian tensor bytes with their dtype and shape (what a safetensors reader returns). */
export interface RawTensor {
  dtype: DType;
  shape: readonly number[];
  data: Uint8Array;
}

export interface NamedRawTensor extends RawTensor {
  name: string;
  shape: number[];
}

const SUFFIXES = {
  absmax: '.absmax',
  quantMap: '.quant_map',
  nestedAbsmax: '.nested_absmax',
  nestedQuantMap: '.nested_quant_map',
  quantState: '.quant_state.bitsandbytes__nf4',
  fp4QuantState: '.quant_state.bitsandbytes__fp4',
} as const;

/** Every tensor name that may belong to the 4-bit weight `weightName`, the weight itself first. */
export function quantStateTensorNames(weightName: string): string[] {
  return [weightName, ...Object.values(SUFFIXES).map((suffix) => weightName + suffix)];
}

function bytesOf(values: Float32Array | Uint8Array): Uint8Array {
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

/** The tensors bitsandbytes' `QuantState.as_dict(packed=True)` yields for this weight, in bnb's order. */
export function serializeQuantState(weightName: string, weight: Nf4Weight): NamedRawTensor[] {
  const { state, packed } = weight;
  const { absmax } = state;
  const json = formatQuantStateJson({
    quantType: state.quantType,
    blocksize: state.blocksize,
    dtype: state.dtype,
    shape: state.shape,
    nested: absmax.nested ? { blocksize: absmax.nestedBlocksize, dtype: 'float32', offset: absmax.offset } : null,
  });
  const tensors: NamedRawTensor[] = [
    { name: weightName, dtype: 'uint8', shape: [packed.length, 1], data: bytesOf(packed) },
    absmax.nested
      ? { name: weightName + SUFFIXES.absmax, dtype: 'uint8', shape: [absmax.codes.length], data: bytesOf(absmax.codes) }
      : { name: weightName + SUFFIXES.absmax, dtype: 'float32', shape: [absmax.absmax.length], data: bytesOf(absmax.absmax) },
    { name: weightName + SUFFIXES.quantMap, dtype: 'float32', shape: [NF4_CODE.length], data: bytesOf(NF4_CODE) },
  ];
  if (absmax.nested) {
    tensors.push(
      { name: weightName + SUFFIXES.nestedAbsmax, dtype: 'float32', shape: [absmax.nestedAbsmax.length], data: bytesOf(absmax.nestedAbsmax) },
      { name: weightName + SUFFIXES.nestedQuantMap, dtype: 'float32', shape: [absmax.nestedCode.length], data: bytesOf(absmax.nestedCode) },
    );
  }
  const jsonBytes = new TextEncoder().encode(json);
  tensors.push({ name: weightName + SUFFIXES.quantState, dtype: 'uint8', shape: [jsonBytes.length], data: jsonBytes });
  return tensors;
}

/**
 * Reads a bitsandbytes NF4 weight back from its tensors (`lookup` returns undefined for an absent name) and
 * checks that every part agrees with the quant state; `file` (the safetensors file holding them) is named in
 * every error. As in bitsandbytes, the stored quant_map is checked for shape only: NF4 dequantization always
 * uses the built-in NF4 code.
 */
export function parseQuantState(weightName: string, lookup: (name: string) => RawTensor | undefined, file: string): Nf4Weight {
  function fail(what: string): never {
    throw new QuantError(`${file}: the 4-bit weight "${weightName}" ${what}.`);
  }
  function expectTensor(suffix: string, dtype: DType, numel: number, role: string): Uint8Array {
    const name = weightName + suffix;
    const tensor = lookup(name);
    if (tensor === undefined) fail(`has no "${name}" tensor (${role})`);
    const count = numelOf(tensor.shape);
    if (tensor.dtype !== dtype || count !== numel) {
      fail(`has "${name}" as ${tensor.dtype} ${formatShape(tensor.shape)}, but its quant state needs ${dtype} with ${numel} elements`);
    }
    return tensor.data;
  }

  if (lookup(weightName + SUFFIXES.fp4QuantState) !== undefined) {
    fail('is quantized as bitsandbytes fp4, which loraforge does not support; quantize the model with bnb_4bit_quant_type="nf4"');
  }
  const stateTensor = lookup(weightName + SUFFIXES.quantState);
  if (stateTensor === undefined) fail(`has no "${weightName}${SUFFIXES.quantState}" tensor, so it is not a bitsandbytes NF4 weight`);
  if (stateTensor.dtype !== 'uint8') fail(`has its quant state stored as ${stateTensor.dtype} instead of uint8 JSON bytes`);
  const fields = parseQuantStateJson(weightName, new TextDecoder().decode(stateTensor.data), file);
  if (!NF4_BLOCKSIZES.includes(fields.blocksize)) {
    fail(`uses blocksize ${fields.blocksize}; bitsandbytes 4-bit blocksizes are ${NF4_BLOCKSIZES.join(', ')}`);
  }

  const n = numelOf(fields.shape);
  const blocks = Math.ceil(n / fields.blocksize);
  const packedTensor = lookup(weightName);
  if (packedTensor === undefined) fail('has a quant state but no packed weight tensor');
  if (packedTensor.dtype !== 'uint8') {
    fail(`is packed as ${packedTensor.dtype}; only bnb_4bit_quant_storage="uint8" is supported`);
  }
  if (numelOf(packedTensor.shape) !== Math.ceil(n / 2)) {
    fail(`has ${numelOf(packedTensor.shape)} packed bytes ${formatShape(packedTensor.shape)}, but its quant state shape ${formatShape(fields.shape)} needs ${Math.ceil(n / 2)}`);
  }
  expectTensor(SUFFIXES.quantMap, 'float32', NF4_CODE.length, 'the NF4 code');

  const hasNestedTensors = lookup(weightName + SUFFIXES.nestedAbsmax) !== undefined;
  if (hasNestedTensors !== (fields.nested !== null)) {
    fail(hasNestedTensors ? 'has nested_absmax but its quant state has no nested_offset' : 'has nested_offset in its quant state but no nested_absmax tensor');
  }
  let absmax: Nf4Absmax;
  if (fields.nested === null) {
    absmax = { nested: false, absmax: decodeTensor('float32', expectTensor(SUFFIXES.absmax, 'float32', blocks, 'per-block scales')).slice() };
  } else {
    const nestedBlocksize = fields.nested.blocksize;
    if (!BLOCKWISE_BLOCKSIZES.includes(nestedBlocksize)) {
      fail(`uses nested_blocksize ${nestedBlocksize}; bitsandbytes 8-bit blocksizes are ${BLOCKWISE_BLOCKSIZES.join(', ')}`);
    }
    const codes = expectTensor(SUFFIXES.absmax, 'uint8', blocks, 'double-quantized per-block scales').slice();
    const nestedAbsmaxBytes = expectTensor(SUFFIXES.nestedAbsmax, 'float32', Math.ceil(blocks / nestedBlocksize), 'nested scales');
    const nestedCodeBytes = expectTensor(SUFFIXES.nestedQuantMap, 'float32', 256, 'the 8-bit code of the nested scales');
    absmax = {
      nested: true,
      codes,
      nestedAbsmax: decodeTensor('float32', nestedAbsmaxBytes).slice(),
      nestedCode: decodeTensor('float32', nestedCodeBytes).slice(),
      nestedBlocksize,
      offset: fields.nested.offset,
    };
  }
  return {
    packed: packedTensor.data.slice(),
    state: { quantType: 'nf4', blocksize: fields.blocksize, dtype: fields.dtype, shape: fields.shape, absmax },
  };
}
