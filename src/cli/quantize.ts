import { FormatError, HubError } from '../io/errors.js';
import { ConfigError } from '../models/config.js';
import { QuantError } from '../quant/errors.js';
import { quantizeModel, type QuantizeModelOptions } from '../quant/quantize-model.js';
import { UsageError } from './errors.js';
import { commandHelp, resolveOptions, splitArgs, type OptionSpecs } from './options.js';

const QUANTIZE_OPTIONS: OptionSpecs = {
  model: { kind: 'string', help: 'dense model folder or Hugging Face repo id (required)' },
  output: { kind: 'string', help: 'new folder for the 4-bit model, which must not hold a model already (required)' },
  blocksize: { kind: 'number', integer: true, min: 1, default: 64, help: 'elements per NF4 scale block, as transformers' },
  'no-double-quant': { kind: 'boolean', default: false, help: 'keep the per-block scales in float32 instead of double quantization' },
  dtype: { kind: 'enum', values: ['bfloat16', 'float16', 'float32'], default: 'bfloat16', help: 'weights are rounded to this before quantizing' },
  help: { kind: 'boolean', help: 'show this help' },
};

export const QUANTIZE_HELP = commandHelp(
  'quantize --model DIR --output DIR [options]',
  'Write a transformers + bitsandbytes 4-bit (NF4) checkpoint of a dense model, loadable by from_pretrained in Python and by loraforge (train --qlora, serve, generate).',
  QUANTIZE_OPTIONS,
);

function parseOptions(argv: string[]): { model: string; output: string; options: QuantizeModelOptions } | null {
  const { flags, positionals } = splitArgs(argv, QUANTIZE_OPTIONS);
  if (positionals.length) throw new UsageError(`quantize takes no positional arguments (got "${positionals[0]}"); give the model with --model.`);
  const values = resolveOptions(QUANTIZE_OPTIONS, flags, null);
  if (values['help']) return null;
  if (values['model'] === undefined) throw new UsageError('--model is required: the folder (or Hub id) of the dense model to quantize.');
  if (values['output'] === undefined) throw new UsageError('--output is required: a new folder for the 4-bit model.');
  const options: QuantizeModelOptions = {
    doubleQuant: values['no-double-quant'] !== true,
    blocksize: values['blocksize'] as number,
    dtype: values['dtype'] as NonNullable<QuantizeModelOptions['dtype']>,
  };
  return { model: String(values['model']), output: String(values['output']), options };
}

/** `loraforge quantize ...`; argv holds the arguments after the command name. Returns the exit code. */
export async function quantizeCommand(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    // One sentence and exit code 2; the help only on --help.
    process.stderr.write(`loraforge quantize: ${err.message}\n`);
    return 2;
  }
  if (parsed === null) {
    process.stdout.write(`${QUANTIZE_HELP}\n`);
    return 0;
  }
  try {
    const result = await quantizeModel(parsed.model, parsed.output, parsed.options);
    const mib = (result.totalSize / 2 ** 20).toFixed(1);
    process.stdout.write(`Quantized ${result.quantizedWeights} projection weights to NF4; wrote ${result.files.join(', ')} (${mib} MiB of weights) to ${parsed.output}.\n`);
    if (result.denseExperts) {
      process.stdout.write(`The experts stay in ${parsed.options.dtype}, as transformers + bitsandbytes keep fused expert parameters; train --qlora and serve --qlora on the dense model put them in NF4 too.\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof QuantError || err instanceof FormatError || err instanceof ConfigError || err instanceof HubError) {
      process.stderr.write(`loraforge quantize: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
