import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TokenizerError } from './errors.js';

export type JsonObject = Record<string, unknown>;

/** Every file a tokenizer folder may hold, parsed; absent optional files read as empty objects or null. */
export interface TokenizerFiles {
  /** Local folder the files were read from. */
  dir: string;
  tokenizerJson: JsonObject;
  tokenizerConfig: JsonObject;
  /** Older repositories keep bos/eos/pad/unk here; its entries override tokenizer_config.json's, as in transformers. */
  specialTokensMap: JsonObject;
  chatTemplateJinja: string | null;
  generationConfig: JsonObject;
}

/**
 * What `fromPretrained` asks the Hub for. special_tokens_map.json is read when a folder has it but not requested:
 * resolvePretrained treats files outside its optional list as required, and repos saved by transformers 5 lack it.
 */
export const HUB_TOKENIZER_FILES: readonly string[] = [
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.jinja',
  'generation_config.json',
  'special_tokens_map.json',
];

export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const tokenizerJsonPath = join(dir, 'tokenizer.json');
  const tokenizerJsonText = await readOptionalText(tokenizerJsonPath);
  if (tokenizerJsonText === null) throw await missingTokenizerJson(dir, tokenizerJsonPath);
  const [tokenizerConfig, specialTokensMap, chatTemplateJinja, generationConfig] = await Promise.all([
    readOptionalJsonObject(join(dir, 'tokenizer_config.json')),
    readOptionalJsonObject(join(dir, 'special_tokens_map.json')),
    readOptionalText(join(dir, 'chat_template.jinja')),
    readOptionalJsonObject(join(dir, 'generation_config.json')),
  ]);
  return {
    dir,
    tokenizerJson: parseJsonObject(tokenizerJsonPath, tokenizerJsonText),
    tokenizerConfig,
    specialTokensMap,
    chatTemplateJinja,
    generationConfig,
  };
}

async function missingTokenizerJson(dir: string, path: string): Promise<TokenizerError> {
  const hasSentencePiece = await stat(join(dir, 'tokenizer.model')).then((info) => info.isFile(), () => false);
  const fix = hasSentencePiece
    ? 'the folder has only a slow tokenizer (tokenizer.model); convert it once in Python with AutoTokenizer.from_pretrained(folder).save_pretrained(folder), which writes tokenizer.json'
    : 'point fromPretrained at a model folder or Hub id that contains tokenizer.json';
  return new TokenizerError(path, `${path} does not exist; ${fix}.`);
}

async function readOptionalText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'EISDIR') throw new TokenizerError(path, `${path} is a directory, not a file; remove or rename it.`);
    if (code === 'ENOTDIR') {
      const dir = dirname(path);
      throw new TokenizerError(dir, `${dir} is a file, not a folder; pass the folder that holds tokenizer.json.`);
    }
    throw err;
  }
}

async function readOptionalJsonObject(path: string): Promise<JsonObject> {
  const text = await readOptionalText(path);
  return text === null ? {} : parseJsonObject(path, text);
}

function parseJsonObject(path: string, text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new TokenizerError(path, `${path} is not valid JSON (${reason}); download or save it again.`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerError(path, `${path} must hold a JSON object but holds ${describeJson(value)}; download or save it again.`);
  }
  return value as JsonObject;
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
