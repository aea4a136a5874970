// Measures ops.loraLinear (src/ops/lora-linear.ts) inside a real training step before src/peft routes through
// it: with LORAFORGE_BENCH_FUSED_LORA=1, train_gpu.ts installs this forward on LoraLinear. It takes the fused
// path exactly where the fused op computes the same function: one active plain adapter (no DoRA, no lora bias,
// no per-row adapters, not merged, dropout 0) over a dense Linear of x's dtype or a 4-bit Linear4bit; everything
// else falls through to the library's own forward. Benchmark-only: the library keeps its forward otherwise.
import { Linear } from '../src/nn/layers.js';
import type { ForwardContext } from '../src/nn/module.js';
import { add, loraLinear, to } from '../src/ops/index.js';
import { LoraLinear } from '../src/peft/index.js';
import { Linear4bit } from '../src/quant/index.js';
import type { Tensor } from '../src/tensor/tensor.js';

export function installFusedLoraForward(activeAdapter: () => string | undefined): void {
  const libraryForward = LoraLinear.prototype.forward;
  LoraLinear.prototype.forward = function fusedForward(this: LoraLinear, x: Tensor, ctx?: ForwardContext): Tensor {
    const name = activeAdapter();
    const s = name === undefined ? undefined : this.settingsOf(name);
    const a = name === undefined ? undefined : this.lora_A.get(name)?.weight;
    const b = name === undefined ? undefined : this.lora_B.get(name)?.weight;
    const plain = s && a && b && !s.useDora && !s.loraBias && s.dropout === 0 && !this.merged && !ctx?.rowAdapters && this.adapterNames().length === 1;
    if (!plain) return libraryForward.call(this, x, ctx);
    const base = this.base_layer;
    if (base instanceof Linear && base.weight.dtype === x.dtype) {
      const y = loraLinear(x, base.weight, a, b, s.scaling);
      return base.bias ? add(y, base.bias) : y;
    }
    if (base instanceof Linear4bit) {
      const input = x.dtype === base.computeDtype ? x : to(x, { dtype: base.computeDtype });
      let y = loraLinear(input, () => base.dequantizedWeight(), a, b, s.scaling);
      if (base.bias) y = add(y, to(base.bias, { dtype: y.dtype }));
      return y.dtype === x.dtype ? y : to(y, { dtype: x.dtype });
    }
    return libraryForward.call(this, x, ctx);
  };
}
