import type { CausalLM } from '../models/causal-lm.js';
import { LoraLinear, ModulesToSaveWrapper, PeftModel } from '../peft/index.js';
import type { DType } from '../tensor/dtype.js';
import type { AdapterBackend } from './adapter-backend.js';

/**
 * Adapters as PEFT LoRA layers injected into the one base model. Rows pick their adapter through the forward
 * context (adapterNames), so the base projection runs once per batch and every row's low-rank product follows in
 * one gathered call per group of projections that read the same input (q, k, v; o; gate, up; down: ops'
 * multiLoraLinearGroup); nothing is ever merged into the base weights. Adapters
 * are loaded in inference mode (frozen), their tensors in `adapterDtype`.
 */
export function peftAdapterBackend(model: CausalLM, options: { adapterDtype: DType }): AdapterBackend {
  let peft: PeftModel | null = null;
  const dtype = options.adapterDtype;
  return {
    async load(name, dir) {
      if (peft) return peft.loadAdapter(dir, name, { dtype });
      try {
        peft = await PeftModel.fromPretrained(model, dir, { adapterName: name, dtype });
      } catch (error) {
        // A failed first load may leave empty LoRA layers in the model, which would refuse every later PeftModel.
        removePeftLayers(model);
        throw error;
      }
    },
    async unload(name) {
      peft?.deleteAdapter(name);
    },
  };
}

/** Puts the original layers back wherever PEFT wrapped one. */
function removePeftLayers(model: CausalLM): void {
  for (const [path, module] of [...model.namedModules()]) {
    if (!(module instanceof LoraLinear) && !(module instanceof ModulesToSaveWrapper)) continue;
    const dot = path.lastIndexOf('.');
    const parent = model.getSubmodule(dot < 0 ? '' : path.slice(0, dot));
    parent.replaceChild(path.slice(dot + 1), module instanceof LoraLinear ? module.unload() : module.original_module);
  }
}
