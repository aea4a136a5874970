import { resolvePretrained } from '../io/hub.js';
import { PeftModel } from '../peft/index.js';
import type { DType } from '../tensor/dtype.js';
import { BUILTIN } from './builtin-example.js';
import { UsageError } from './errors.js';
import { baseModelFolder, loadModelFrom } from './model-source.js';
import { optionsHelp, resolveOptions, splitArgs, type OptionSpecs } from './options.js';
import { runArtifacts } from './run-folder.js';

const MERGE_OPTIONS: OptionSpecs = {
  adapter: { kind: 'string', help: 'LoRA adapter folder (required)' },
  model: { kind: 'string', help: 'base model folder or Hub id (default: the one the adapter names)' },
  output: { kind: 'string', help: 'folder for the merged Hugging Face checkpoint (required)' },
  dtype: { kind: 'enum', values: ['auto', 'float32', 'bfloat16', 'float16'], default: 'auto', help: 'dtype of the merged weights' },
  device: { kind: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
};

export const MERGE_HELP = `loraforge merge --adapter DIR --output DIR [options]: fold an adapter into its base model.\n\n${optionsHelp(MERGE_OPTIONS)}`;

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
  await peft.saveMergedPretrained(output, { copyFilesFrom: folder === 'builtin' ? BUILTIN.model : await resolvePretrained(folder) });
  console.log(`merged ${adapter} into ${folder === 'builtin' ? 'the built-in example model' : folder}; Hugging Face checkpoint written to ${output}`);
  return 0;
}
