import { parseArgs } from 'node:util';
import { FormatError, HubError } from '../io/errors.js';
import { ConfigError } from '../models/config.js';
import { QuantError } from '../quant/errors.js';
import { quantizeModel, type QuantizeModelOptions } from '../quant/quantize-model.js';

const USAGE = `Usage: loraforge quantize --model DIR --output DIR [--blocksize 64] [--no-double-quant] [--dtype bfloat16]

Writes a transformers + bitsandbytes 4-bit (NF4) checkpoint of a dense model, loadable by
from_pretrained in Python and by loraforge (train --qlora, serve, generate).
  --model DIR          dense model folder or Hugging Face repo id
  --output DIR         new folder for the 4-bit model (must not hold a model already)
  --blocksize N        elements per NF4 scale block (default 64, as transformers)
  --no-double-quant    keep the per-block scales in float32 (default: double quantization)
  --dtype D            bfloat16 (default), float16 or float32: weights are rounded to it before quantizing
`;

const DTYPES = ['bfloat16', 'float16', 'float32'] as const;

class UsageError extends Error {}

function parseOptions(argv: string[]): { model: string; output: string; options: QuantizeModelOptions } | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      output: { type: 'string' },
      blocksize: { type: 'string' },
      'no-double-quant': { type: 'boolean' },
      dtype: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return null;
  if (!values.model) throw new UsageError('--model is required: the folder (or Hub id) of the dense model to quantize.');
  if (!values.output) throw new UsageError('--output is required: a new folder for the 4-bit model.');
  const options: QuantizeModelOptions = { doubleQuant: !values['no-double-quant'] };
  if (values.blocksize !== undefined) {
    const blocksize = Number(values.blocksize);
    if (!Number.isInteger(blocksize)) throw new UsageError(`--blocksize must be an integer, got "${values.blocksize}".`);
    options.blocksize = blocksize;
  }
  if (values.dtype !== undefined) {
    const dtype = DTYPES.find((d) => d === values.dtype);
    if (!dtype) throw new UsageError(`--dtype must be one of ${DTYPES.join(', ')}, got "${values.dtype}".`);
    options.dtype = dtype;
  }
  return { model: values.model, output: values.output, options };
}

/** `loraforge quantize ...`; argv holds the arguments after the command name. Returns the exit code. */
export async function quantizeCommand(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`loraforge quantize: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed === null) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    const result = await quantizeModel(parsed.model, parsed.output, parsed.options);
    const mib = (result.totalSize / 2 ** 20).toFixed(1);
    process.stdout.write(`Quantized ${result.quantizedWeights} projection weights to NF4; wrote ${result.files.join(', ')} (${mib} MiB of weights) to ${parsed.output}.\n`);
    return 0;
  } catch (err) {
    if (err instanceof QuantError || err instanceof FormatError || err instanceof ConfigError || err instanceof HubError) {
      process.stderr.write(`loraforge quantize: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
