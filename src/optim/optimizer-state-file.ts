import { decodeTensor } from '../io/decode.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { writeSafetensors, type SafetensorsEntry } from '../io/safetensors-writer.js';
import { fromHost } from '../ops/index.js';
import type { HostArray } from '../tensor/buffer.js';
import type { AdamW } from './adamw.js';
import { tensorBytes } from '../peft/tensor-copy.js';

/**
 * AdamW state as one safetensors file: `<param>.exp_avg` and `<param>.exp_avg_sq` in the parameter's dtype (bit
 * exact, so a resumed run continues identically), and the per-parameter step counts in the metadata.
 */
export async function saveOptimizerState(path: string, optimizer: AdamW): Promise<void> {
  const entries: SafetensorsEntry[] = [];
  const steps: Record<string, number> = {};
  for (const name of optimizer.stateNames()) {
    const s = optimizer.stateOf(name)!;
    steps[name] = s.step;
    for (const [suffix, t] of [['exp_avg', s.expAvg], ['exp_avg_sq', s.expAvgSq]] as const) {
      entries.push({ name: `${name}.${suffix}`, dtype: t.dtype, shape: [...t.shape], data: () => tensorBytes(t) });
    }
  }
  await writeSafetensors(path, entries, { format: 'loraforge-adamw', steps: JSON.stringify(steps) });
}

/**
 * Restores what saveOptimizerState wrote. The step counts must be positive integers of this optimizer's
 * parameters, and each moment must match its parameter's size; each failure is one sentence naming the file.
 */
export async function loadOptimizerState(path: string, optimizer: AdamW, device: string): Promise<void> {
  const fail = (what: string): never => {
    throw new Error(`${path}: ${what}; the checkpoint is damaged or from another adapter, so resume from an earlier checkpoint or start again with --overwrite.`);
  };
  const file = await SafetensorsFile.open(path);
  try {
    let steps: unknown;
    try {
      steps = JSON.parse(file.metadata['steps'] ?? '{}');
    } catch {
      fail('the metadata "steps" is not JSON');
    }
    if (typeof steps !== 'object' || steps === null || Array.isArray(steps)) return fail('the metadata "steps" must map parameter names to step counts');
    for (const [name, step] of Object.entries(steps)) {
      if (!(Number.isInteger(step) && step >= 1)) fail(`the step count of "${name}" is ${JSON.stringify(step)}, not a positive integer`);
      const size = optimizer.parameterSize(name);
      if (size === null) return fail(`"${name}" is not a trainable parameter of this model`);
      const read = async (suffix: string) => {
        const { dtype, shape } = file.info(`${name}.${suffix}`);
        if (shape.reduce((a, b) => a * b, 1) !== size) fail(`"${name}.${suffix}" has shape [${shape.join(', ')}], not the parameter's ${size} elements`);
        return fromHost(decodeTensor(dtype, await file.read(`${name}.${suffix}`)) as HostArray, shape, dtype, device);
      };
      optimizer.setState(name, { step: step as number, expAvg: await read('exp_avg'), expAvgSq: await read('exp_avg_sq') });
    }
  } finally {
    await file.close();
  }
}
