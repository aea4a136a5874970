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

export async function loadOptimizerState(path: string, optimizer: AdamW, device: string): Promise<void> {
  const file = await SafetensorsFile.open(path);
  try {
    const steps = JSON.parse(file.metadata['steps'] ?? '{}') as Record<string, number>;
    for (const [name, step] of Object.entries(steps)) {
      const read = async (suffix: string) => {
        const { dtype, shape } = file.info(`${name}.${suffix}`);
        return fromHost(decodeTensor(dtype, await file.read(`${name}.${suffix}`)) as HostArray, shape, dtype, device);
      };
      optimizer.setState(name, { step, expAvg: await read('exp_avg'), expAvgSq: await read('exp_avg_sq') });
    }
  } finally {
    await file.close();
  }
}
