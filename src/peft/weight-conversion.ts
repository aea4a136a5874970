import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAll, writeFileAtomically } from '../io/atomic-write.js';
import { loadTensor } from '../models/weights.js';
import { fromHost, to } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import type { Tensor } from '../tensor/tensor.js';
import { openAdapterWeights } from './adapter-files.js';
import type { ResolvedLoraConfig } from './config.js';
import { ADAPTER_CONFIG_NAME, loraConfigToJson } from './config-json.js';
import { PeftError } from './errors.js';

/**
 * PEFT's save_pretrained(path_initial_model_for_weight_conversion=...) (save_mutated_as_lora, then LoraModel's
 * subtract_mutated_init): a PiSSA / OLoRA adapter trained on a rewritten base (W_res + s B0 A0 = W) is saved as a
 * plain LoRA adapter on the original W: s (B A - B0 A0) = s [B | -B0] [A ; A0], so A' = cat(A, A0) (rows),
 * B' = cat(B, -B0) (columns), r doubled and alpha doubled (times sqrt 2 with rsLoRA) so the scaling stays, patterns
 * doubled, init_lora_weights true. As PEFT: the initial folder's adapter_config.json is first rewritten with
 * init_lora_weights true, and only lora_A / lora_B tensors are kept (no DoRA magnitudes, modules_to_save).
 * Returns the tensors to write (new ones, for the caller to dispose) and the config to write with them.
 */
export async function convertMutatedToLora(
  tensors: ReadonlyMap<string, Tensor>,
  config: ResolvedLoraConfig,
  initialDir: string,
): Promise<{ tensors: Map<string, Tensor>; config: ResolvedLoraConfig }> {
  const patterns = Object.keys(config.rankPattern).length > 0 || Object.keys(config.alphaPattern).length > 0;
  if (config.useRslora && patterns) {
    throw new PeftError(
      'Passing `pathInitialModelForWeightConversion` to `savePretrained` is not supported when using rankPattern or alphaPattern at the same time as useRslora (the scaling per layer cannot be recovered); train without one of them to convert.',
    );
  }
  if (!['pissa', 'corda', 'olora', 'true'].some((p) => String(config.initLoraWeights).toLowerCase().startsWith(p))) {
    process.emitWarning('`path_initial_model_for_weight_conversion` only works for converting a PiSSA/CorDA/OLoRA adapter to a LoRA adapter');
  }
  const initialConfig: ResolvedLoraConfig = { ...config, initLoraWeights: true, loftqConfig: null };
  await mkdir(initialDir, { recursive: true });
  const json = new TextEncoder().encode(loraConfigToJson(initialConfig, { inferenceMode: config.inferenceMode }));
  await writeFileAtomically(join(initialDir, ADAPTER_CONFIG_NAME), (handle) => writeAll(handle, json));

  const file = await openAdapterWeights(initialDir);
  const out = new Map<string, Tensor>();
  try {
    for (const [key, trained] of tensors) {
      const isA = key.includes('lora_A');
      if (!isA && !key.includes('lora_B')) continue;
      if (!file.has(key)) throw new PeftError(`${file.path} lacks ${key}; pass the folder saved from this adapter right after initialisation, before training.`);
      if (trained.shape.length !== 2) throw new PeftError(`${key} is not a matrix (lora_B's bias?); PEFT's conversion concatenates lora_A / lora_B matrices only.`);
      const initial = await loadTensor(file, key, 'float32', trained.device);
      const [rows, cols] = trained.shape as [number, number];
      const [iRows, iCols] = initial.shape as [number, number];
      if ((isA && iCols !== cols) || (!isA && iRows !== rows)) {
        throw new PeftError(`${file.path}: ${key} has shape [${initial.shape.join(', ')}], which does not fit the trained [${trained.shape.join(', ')}]; the folder holds another adapter's initial weights.`);
      }
      const t = await trained.data();
      const i0 = await initial.data();
      initial.dispose();
      let values: Float32Array;
      let shape: [number, number];
      if (isA) {
        values = new Float32Array((rows + iRows) * cols);
        values.set(t, 0);
        values.set(i0, rows * cols);
        shape = [rows + iRows, cols];
      } else {
        const w = cols + iCols;
        values = new Float32Array(rows * w);
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) values[r * w + c] = t[r * cols + c]!;
          for (let c = 0; c < iCols; c++) values[r * w + cols + c] = -i0[r * iCols + c]!;
        }
        shape = [rows, w];
      }
      const f32 = fromHost(values, shape, 'float32', trained.device);
      out.set(key, trained.dtype === 'float32' ? f32 : noGrad(() => to(f32, { dtype: trained.dtype })));
      if (trained.dtype !== 'float32') f32.dispose();
    }
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  } finally {
    await file.close();
  }
  const double = (m: Readonly<Record<string, number>>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, 2 * v]));
  return {
    tensors: out,
    config: {
      ...initialConfig,
      r: config.r * 2,
      loraAlpha: config.useRslora ? config.loraAlpha * 2 ** 0.5 : config.loraAlpha * 2,
      rankPattern: double(config.rankPattern),
      alphaPattern: double(config.alphaPattern),
    },
  };
}
