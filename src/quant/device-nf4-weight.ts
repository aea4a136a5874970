import { getBackend } from '../backend/registry.js';
import { addScalar, backendOf, embedding, fromHost, mul, reshape, to } from '../ops/index.js';
import { kernels } from '../ops/composed-kernels.js';
import type { HostArray } from '../tensor/buffer.js';
import { bytesPerElement } from '../tensor/dtype.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import { numelOf } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { NF4_CODE } from './nf4.js';
import type { Nf4Absmax, Nf4QuantState, Nf4SourceDType, Nf4Weight } from './nf4-weight.js';

/**
 * Per-block scales on the device. Double-quantized scales stay double-quantized (8-bit codes padded to whole
 * nested blocks, float32 nested scales and code) and are expanded to float32 at every dequantization, as
 * bitsandbytes does. Memory per weight element: 1/64 byte (codes) + 4/(64*256) byte (nested scales) ~ 0.127 bit,
 * against 4/64 byte = 0.5 bit for float32 absmax (for 70B parameters: 1.1 GB instead of 4.4 GB). The cost is a
 * transient float32 [blocks] tensor and four small kernels per dequantization.
 */
type DeviceScales =
  | { readonly nested: false; readonly absmax: Tensor }
  | {
      readonly nested: true;
      /** uint8 [nestedBlocks * nestedBlocksize]; entries past `blocks` are padding (code 0). */
      readonly codes: Tensor;
      /** float32 [nestedBlocks, 1]. */
      readonly nestedAbsmax: Tensor;
      /** float32 [256, 1]: the 8-bit code as an embedding table. */
      readonly nestedCode: Tensor;
      readonly nestedBlocksize: number;
      readonly offset: number;
    };

/** Bytes a 4-bit weight occupies on its device. */
export interface Nf4WeightBytes {
  /** The packed 4-bit codes. */
  readonly packed: number;
  /** Per-block scales (float32 or double-quantized), nested scales and code tables. */
  readonly constants: number;
}

function uploadScales(absmax: Nf4Absmax, blocks: number, device: string): DeviceScales {
  if (!absmax.nested) return { nested: false, absmax: fromHost(absmax.absmax, [blocks], 'float32', device) };
  const nestedBlocks = absmax.nestedAbsmax.length;
  const padded = new Uint8Array(nestedBlocks * absmax.nestedBlocksize);
  padded.set(absmax.codes);
  return {
    nested: true,
    codes: fromHost(padded, [padded.length], 'uint8', device),
    nestedAbsmax: fromHost(absmax.nestedAbsmax, [nestedBlocks, 1], 'float32', device),
    nestedCode: fromHost(absmax.nestedCode, [absmax.nestedCode.length, 1], 'float32', device),
    nestedBlocksize: absmax.nestedBlocksize,
    offset: absmax.offset,
  };
}

async function readBack(t: Tensor, length = t.numel): Promise<HostArray> {
  return backendOf(t).toHost(t.buffer, t.offset, length);
}

/** The frozen NF4 weight of one layer as device buffers: what a 4-bit linear multiplies with. */
export class DeviceNf4Weight {
  readonly device: string;
  /** Dense shape, [out_features, in_features] for a linear. */
  readonly shape: readonly number[];
  readonly blocksize: number;
  /** dtype the weight had when it was quantized; dequantization rounds to it first, as bitsandbytes does. */
  readonly sourceDType: Nf4SourceDType;
  private readonly packed: Tensor;
  private readonly code: Tensor;
  private readonly scales: DeviceScales;
  private readonly blocks: number;

  constructor(weight: Nf4Weight, device: string) {
    const { state } = weight;
    this.device = device;
    this.shape = [...state.shape];
    this.blocksize = state.blocksize;
    this.sourceDType = state.dtype;
    this.blocks = Math.ceil(numelOf(state.shape) / state.blocksize);
    this.packed = fromHost(weight.packed, [weight.packed.length], 'uint8', device);
    this.code = fromHost(NF4_CODE, [NF4_CODE.length], 'float32', device);
    this.scales = uploadScales(state.absmax, this.blocks, device);
    for (const t of this.ownTensors()) t.keep();
  }

  /** True when the per-block scales are double-quantized (bnb_4bit_use_double_quant). */
  get doubleQuantized(): boolean {
    return this.scales.nested;
  }

  get numel(): number {
    return numelOf(this.shape);
  }

  /** float32 [>= blocks] scales starting at element 0 of their buffer (what the nf4Dequantize kernel reads). */
  private blockAbsmax(): Tensor {
    const s = this.scales;
    if (!s.nested) return s.absmax;
    // bitsandbytes: fp32(nestedCode[c] * nestedAbsmax[block]), then fp32(+ offset).
    const levels = embedding(to(s.codes, { dtype: 'int32' }), s.nestedCode);
    return addScalar(reshape(mul(reshape(levels, [-1, s.nestedBlocksize]), s.nestedAbsmax), [-1]), s.offset);
  }

  /**
   * The dense weight in `dtype`, computed on the device: code * absmax in float32, rounded to the source dtype and
   * then to `dtype` (one rounding when the source is float32 or already `dtype`). Never requires grad.
   */
  dequantize(dtype: Nf4SourceDType): Tensor {
    return noGrad(() =>
      scope(() => {
        const direct = this.sourceDType === 'float32' || this.sourceDType === dtype;
        const first = direct ? dtype : this.sourceDType;
        const backend = getBackend(this.device);
        const out = backend.alloc(first, this.numel);
        kernels(backend).nf4Dequantize(this.packed.buffer, this.blockAbsmax().buffer, this.code.buffer, this.numel, this.blocksize, out);
        const dense = new Tensor(out, this.shape);
        return direct ? dense : to(dense, { dtype });
      }),
    );
  }

  /** Host copy in bitsandbytes' layout, for serializeQuantState. */
  async toHost(): Promise<Nf4Weight> {
    const s = this.scales;
    let absmax: Nf4Absmax;
    if (!s.nested) {
      absmax = { nested: false, absmax: (await readBack(s.absmax)) as Float32Array };
    } else {
      absmax = {
        nested: true,
        codes: (await readBack(s.codes, this.blocks)) as Uint8Array,
        nestedAbsmax: (await readBack(s.nestedAbsmax)) as Float32Array,
        nestedCode: (await readBack(s.nestedCode)) as Float32Array,
        nestedBlocksize: s.nestedBlocksize,
        offset: s.offset,
      };
    }
    const state: Nf4QuantState = { quantType: 'nf4', blocksize: this.blocksize, dtype: this.sourceDType, shape: [...this.shape], absmax };
    return { packed: (await readBack(this.packed)) as Uint8Array, state };
  }

  bytes(): Nf4WeightBytes {
    const constants = this.ownTensors()
      .filter((t) => t !== this.packed)
      .reduce((sum, t) => sum + t.numel * bytesPerElement(t.dtype), 0);
    return { packed: this.packed.numel, constants };
  }

  /** Releases the device buffers; the weight is unusable afterwards. */
  dispose(): void {
    for (const t of this.ownTensors()) t.dispose();
  }

  private ownTensors(): Tensor[] {
    const s = this.scales;
    return [this.packed, this.code, ...(s.nested ? [s.codes, s.nestedAbsmax, s.nestedCode] : [s.absmax])];
  }
}
