import { generateDetailed } from '../generate/index.js';
import { resolvePretrained } from '../io/hub.js';
import { loadConfig } from '../models/config.js';
import { PeftModel } from '../peft/index.js';
import type { DType } from '../tensor/dtype.js';
import { AutoTokenizer } from '../tokenizer/index.js';
import { UsageError } from './errors.js';
import { baseModelFolder, loadModelFrom, tokenizerFolder } from './model-source.js';
import { commandHelp, resolveOptions, splitArgs, type OptionSpecs } from './options.js';

const GENERATE_OPTIONS: OptionSpecs = {
  model: { kind: 'string', help: 'model folder or Hub id (default: the adapter\'s base model, or the built-in example model)' },
  adapter: { kind: 'string', help: 'LoRA adapter folder (PEFT layout), e.g. a training run folder' },
  prompt: { kind: 'string', help: 'the prompt (this or --prompt-ids is required)' },
  'prompt-ids': { kind: 'string', help: 'the prompt as comma-separated token ids (e.g. 84,49,13), used as given: no special tokens added' },
  chat: { kind: 'boolean', default: false, help: 'wrap the prompt as a user message in the chat template' },
  system: { kind: 'string', help: 'system message (with --chat)' },
  'max-new-tokens': { kind: 'number', integer: true, min: 1, default: 64, help: 'tokens to generate at most' },
  temperature: { kind: 'number', min: 0, default: 0, help: 'sampling temperature (0: greedy)' },
  'top-k': { kind: 'number', integer: true, min: 0, default: 0, help: 'sample among the k most likely tokens (0: all)' },
  'top-p': { kind: 'number', min: 0, max: 1, default: 1, help: 'nucleus sampling mass' },
  seed: { kind: 'number', integer: true, min: 0, default: 0, help: 'sampling seed' },
  device: { kind: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
  dtype: { kind: 'enum', values: ['auto', 'float32', 'bfloat16', 'float16'], default: 'auto', help: 'dtype of the weights' },
};

export const GENERATE_HELP = commandHelp('generate --prompt TEXT [options]', 'Continue a prompt with a model and, optionally, a LoRA adapter.', GENERATE_OPTIONS);

export async function runGenerate(argv: readonly string[]): Promise<number> {
  const { flags, positionals } = splitArgs(argv, GENERATE_OPTIONS);
  if (positionals.length) throw new UsageError(`generate takes no positional arguments (got "${positionals[0]}"); give the text with --prompt.`);
  const v = resolveOptions(GENERATE_OPTIONS, flags, null);
  const idsText = v['prompt-ids'] as string | undefined;
  if (v['prompt'] === undefined && idsText === undefined) throw new UsageError('--prompt is missing; give the text to continue (or its token ids with --prompt-ids).');
  if (v['prompt'] !== undefined && idsText !== undefined) throw new UsageError('--prompt and --prompt-ids both give the prompt; pass one of them.');
  if (idsText !== undefined && v['chat']) throw new UsageError('--chat renders text in the chat template, so it cannot take --prompt-ids; pass --prompt with --chat.');
  if (v['system'] !== undefined && !v['chat']) throw new UsageError('--system is the system message of --chat; add --chat or drop --system.');
  const adapter = v['adapter'] as string | undefined;
  const folder = await baseModelFolder(v['model'] as string | undefined, adapter);
  const tok = await AutoTokenizer.fromPretrained(tokenizerFolder(folder));
  const config = await loadConfig(await resolvePretrained(tokenizerFolder(folder)));
  const prompt = String(v['prompt']);
  const promptIds = idsText !== undefined
    ? parsePromptIds(idsText, config.vocabSize)
    : v['chat']
      ? tok.applyChatTemplate([...(v['system'] ? [{ role: 'system', content: String(v['system']) }] : []), { role: 'user', content: prompt }], { addGenerationPrompt: true })
      : tok.encode(prompt, { addSpecialTokens: true });
  // Positions past the model's context have no RoPE table entry and were never trained: refused before loading weights.
  const context = config.maxPositionEmbeddings;
  const total = promptIds.length + (v['max-new-tokens'] as number);
  if (total > context) {
    throw new UsageError(`The prompt (${promptIds.length} tokens) plus --max-new-tokens ${v['max-new-tokens']} is ${total} tokens, more than the model's context of ${context} tokens (max_position_embeddings); shorten the prompt or lower --max-new-tokens.`);
  }
  const base = await loadModelFrom(folder, v['dtype'] as DType | 'auto', String(v['device']));
  const model = adapter ? (await PeftModel.fromPretrained(base, adapter)).model : base;
  const temperature = v['temperature'] as number;
  const result = await generateDetailed(model, [promptIds], {
    maxNewTokens: v['max-new-tokens'] as number,
    doSample: temperature > 0,
    temperature,
    topK: v['top-k'] as number,
    topP: v['top-p'] as number,
    seed: v['seed'] as number,
  });
  console.log(tok.decode(result.sequences[0]!.slice(promptIds.length), { skipSpecialTokens: true }));
  return 0;
}

/** --prompt-ids: a comma list of token ids, each below the model's vocabulary size. */
function parsePromptIds(text: string, vocabSize: number): number[] {
  const parts = text.split(',').map((p) => p.trim());
  if (!parts.every((p) => /^\d+$/.test(p))) throw new UsageError(`--prompt-ids must be a comma list of token ids (e.g. 84,49,13); got "${text}".`);
  const ids = parts.map(Number);
  const outside = ids.find((id) => id >= vocabSize);
  if (outside !== undefined) throw new UsageError(`--prompt-ids has token id ${outside}, outside the model's vocabulary of ${vocabSize} tokens.`);
  return ids;
}
