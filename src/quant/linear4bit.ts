import { Module, type ForwardContext, type LinearLike } from '../nn/module.js';
import { frozenWeightLinear, to } from '../ops/index.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { DeviceNf4Weight, type Nf4WeightBytes } from './device-nf4-weight.js';
import { QuantError } from './errors.js';
import { quantizeNf4Weight, type Nf4SourceDType, type Nf4Weight } from './nf4-weight.js';

/** dtypes a 4-bit linear multiplies in (bitsandbytes' bnb_4bit_compute_dtype). */
export type ComputeDType = Nf4SourceDType;

export interface Linear4bitOptions {
  /** [out_features], kept in its own dtype and cast to the compute dtype per forward (as bitsandbytes does). */
  bias?: Tensor | null;
  /** Default bfloat16; float32 is for CPU runs and tests. */
  computeDtype?: ComputeDType;
  /** Default 'cpu'. */
  device?: string;
}

/**
 * bitsandbytes' Linear4bit: y = x W^T + b with W stored as NF4 codes and per-block scales on the device.
 * The forward pass casts x to the compute dtype, dequantizes W through the backend's nf4Dequantize kernel,
 * multiplies, and casts y back to x's dtype. W is frozen and never held densely between calls: the backward pass
 * dequantizes it again to send the gradient to x. The 4-bit weight is a buffer, not a parameter, so
 * namedParameters() lists only the bias and nothing here can be made trainable by accident.
 */
export class Linear4bit extends Module implements LinearLike {
  readonly weight4bit: DeviceNf4Weight;
  bias: Tensor | null;
  readonly computeDtype: ComputeDType;

  constructor(weight: Nf4Weight, options: Linear4bitOptions = {}) {
    super();
    const { shape } = weight.state;
    if (shape.length !== 2) throw new QuantError(`A 4-bit linear needs a 2-D [out, in] weight, but the quantized weight has shape ${formatShape(shape)}.`);
    const bias = options.bias ?? null;
    if (bias && (bias.rank !== 1 || bias.shape[0] !== shape[0])) {
      throw new QuantError(`A 4-bit linear of weight ${formatShape(shape)} needs a bias of shape [${shape[0]}], got ${formatShape(bias.shape)}.`);
    }
    this.weight4bit = new DeviceNf4Weight(weight, options.device ?? 'cpu');
    this.computeDtype = options.computeDtype ?? 'bfloat16';
    this.bias = bias;
    if (bias) {
      bias.requiresGrad = false;
      this.registerParameter('bias', bias);
    }
  }

  get inFeatures(): number {
    return this.weight4bit.shape[1]!;
  }

  get outFeatures(): number {
    return this.weight4bit.shape[0]!;
  }

  get device(): string {
    return this.weight4bit.device;
  }

  forward(x: Tensor, _ctx?: ForwardContext): Tensor {
    const input = x.dtype === this.computeDtype ? x : to(x, { dtype: this.computeDtype });
    const bias = this.bias && this.bias.dtype !== this.computeDtype ? to(this.bias, { dtype: this.computeDtype }) : this.bias;
    const y = frozenWeightLinear(input, () => this.weight4bit.dequantize(this.computeDtype), bias);
    return y.dtype === x.dtype ? y : to(y, { dtype: x.dtype });
  }

  /** The dense [out, in] weight in `dtype` (default: the compute dtype), freshly dequantized; the caller owns it. */
  dequantizedWeight(dtype: ComputeDType = this.computeDtype): Tensor {
    return this.weight4bit.dequantize(dtype);
  }

  /** The 4-bit weight in bitsandbytes' layout on the host, for serializeQuantState / saving. */
  quantizedWeight(): Promise<Nf4Weight> {
    return this.weight4bit.toHost();
  }

  quantizedBytes(): Nf4WeightBytes {
    return this.weight4bit.bytes();
  }

  /**
   * A Linear4bit quantized to NF4 from `weight` [out, in] with this layer's blocksize, double quantization, compute
   * dtype and device, sharing its bias: how PEFT's bnb merge re-creates Params4bit from the merged float32 weight
   * (whose quant_state dtype is then float32).
   */
  async requantized(weight: Tensor): Promise<Linear4bit> {
    const data = await to(weight, { dtype: 'float32' }).data();
    const nf4 = quantizeNf4Weight({ dtype: 'float32', data }, this.weight4bit.shape, { blocksize: this.weight4bit.blocksize, doubleQuant: this.weight4bit.doubleQuantized });
    return new Linear4bit(nf4, { bias: this.bias, computeDtype: this.computeDtype, device: this.device });
  }
}
