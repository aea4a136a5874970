import { resolvePretrained } from '../io/hub.js';
import { PeftError, PeftModel } from '../peft/index.js';
import { saveModelPretrained } from '../peft/export-checkpoint.js';
import { Linear4bit, mergeQloraToDense, saveQuantizedPretrained, type ComputeDType } from '../quant/index.js';
import type { DType } from '../tensor/dtype.js';
import { BUILTIN } from './builtin-example.js';
import { UsageError } from './errors.js';
import { baseModelFolder, loadModelFrom } from './model-source.js';
import { commandHelp, resolveOptions, splitArgs, type OptionSpecs } from './options.js';
import { runArtifacts } from './run-folder.js';

const MERGE_OPTIONS: OptionSpecs = {
  adapter: { kind: 'string', help: 'LoRA adapter folder (required)' },
  model: { kind: 'string', help: 'base model folder or Hub id (default: the one the adapter names)' },
  output: { kind: 'string', help: 'folder for the merged Hugging Face checkpoint (required)' },
  dtype: { kind: 'enum', values: ['auto', 'float32', 'bfloat16', 'float16'], default: 'auto', help: 'dtype of the merged weights' },
  device: { kind: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
  requantize: { kind: 'boolean', default: false, help: 'for a bnb-4bit base: write a bnb-4bit checkpoint (merged projections quantized to NF4 again) instead of a dense one' },
};

export const MERGE_HELP = commandHelp('merge --adapter DIR --output DIR [options]', 'Fold a LoRA adapter into its base model and write a Hugging Face checkpoint.', MERGE_OPTIONS);

export async function runMerge(argv: readonly string[]): Promise<number> {
  const { flags, positionals } = splitArgs(argv, MERGE_OPTIONS);
  if (positionals.length) throw new UsageError(`merge takes no positional arguments (got "${positionals[0]}").`);
  const v = resolveOptions(MERGE_OPTIONS, flags, null);
  const adapter = v['adapter'] as string | undefined;
  const output = v['output'] as string | undefined;
  if (adapter === undefined || output === undefined) throw new UsageError(`--${adapter === undefined ? 'adapter' : 'output'} is missing; merge needs --adapter DIR and --output DIR.`);
  if ((await runArtifacts(output)).length) throw new UsageError(`${output} holds a training run; write the merged model to another folder.`);
  const folder = await baseModelFolder(v['model'] as string | undefined, adapter);
  const base = await loadModelFrom(folder, v['dtype'] as DType | 'auto', String(v['device']));
  const peft = await PeftModel.fromPretrained(base, adapter);
  const copyFilesFrom = folder === 'builtin' ? BUILTIN.model : await resolvePretrained(folder);
  const requantize = v['requantize'] === true;
  const quantized = [...peft.model.namedModules()].some(([, m]) => m instanceof Linear4bit);
  if (quantized) {
    // A bnb-4bit base: each adapted projection dequantized, merged in float32, rounded to --dtype (auto: the model's).
    const dtype = (v['dtype'] === 'auto' ? peft.model.dtype : v['dtype']) as ComputeDType;
    const { model, report } = await mergeQloraToDense(peft.model, { dtype, requantize });
    if (requantize) await saveQuantizedPretrained(model, output, { copyFilesFrom });
    else await saveModelPretrained(model, output, { copyFilesFrom });
    console.log(`merge rounding error: max ${report.maxAbsError.toExponential(2)} abs, ${report.maxRelativeError.toExponential(2)} relative`);
  } else {
    if (requantize) throw new UsageError('--requantize applies to adapters of a bnb-4bit base, but this base model is not quantized.');
    // safeMerge: a weight that overflows (or NaN in a base weight too large to scan at load) is refused before writing.
    try {
      await peft.saveMergedPretrained(output, { copyFilesFrom, safeMerge: true });
    } catch (err) {
      // The merge's checks name the module and the adapter's name; say which folder that adapter came from.
      if (err instanceof PeftError) throw new PeftError(`${adapter}: ${err.message}`);
      throw err;
    }
  }
  console.log(`merged ${adapter} into ${folder === 'builtin' ? 'the built-in example model' : folder}; ${quantized && requantize ? 'bnb-4bit' : 'Hugging Face'} checkpoint written to ${output}`);
  return 0;
}
