import { TokenizerError } from './errors.js';
import type { JsonObject } from './tokenizer-files.js';

/** The tokenizer models of Hugging Face's tokenizers (tokenizer.json's model.type). */
export const TOKENIZER_MODEL_TYPES = ['BPE', 'WordPiece', 'WordLevel', 'Unigram'] as const;

/**
 * Checks what @huggingface/tokenizers takes on trust in tokenizer.json's model and added_tokens, as the Rust
 * tokenizers' deserializer does: a known model type, a vocabulary of the model's shape, every id an integer below
 * the number of tokens (vocabulary plus added tokens; an id of 1e9 would otherwise size tables by it), and merges
 * of tokens the vocabulary holds that produce a token it holds. Each failure is one sentence naming `path` and
 * the field.
 */
export function checkTokenizerJson(json: JsonObject, path: string): void {
  const fail = (what: string): never => {
    throw new TokenizerError(path, `${path}: ${what}; download or save the tokenizer again.`);
  };
  const model = json['model'];
  if (typeof model !== 'object' || model === null || Array.isArray(model)) return fail('"model" must be an object with a "type" and a "vocab"');
  const m = model as JsonObject;
  const added = json['added_tokens'] ?? [];
  if (!Array.isArray(added)) return fail(`"added_tokens" must be a list, not ${JSON.stringify(added).slice(0, 40)}`);
  const type = m['type'] ?? (Array.isArray(m['vocab']) ? 'Unigram' : 'merges' in m ? 'BPE' : undefined);
  if (typeof type !== 'string' || !(TOKENIZER_MODEL_TYPES as readonly string[]).includes(type)) {
    return fail(`model.type ${JSON.stringify(type ?? null)} is not a tokenizer model; the types are ${TOKENIZER_MODEL_TYPES.join(', ')}`);
  }
  const vocab = m['vocab'];
  let size: number;
  let has: (token: string) => boolean;
  if (type === 'Unigram') {
    if (!Array.isArray(vocab)) return fail('model.vocab of a Unigram model must be a list of [token, score] pairs');
    vocab.forEach((entry, i) => {
      if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'number') fail(`model.vocab[${i}] must be a [token, score] pair`);
    });
    size = vocab.length + added.length;
    const tokens = new Set((vocab as [string, number][]).map((e) => e[0]));
    has = (token) => tokens.has(token);
    const unk = m['unk_id'];
    if (unk !== undefined && unk !== null && !(Number.isInteger(unk) && (unk as number) >= 0 && (unk as number) < vocab.length)) {
      fail(`model.unk_id ${JSON.stringify(unk)} is not an index of model.vocab (0 to ${vocab.length - 1})`);
    }
  } else {
    if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) return fail(`model.vocab of a ${type} model must be an object of token to id, not ${JSON.stringify(vocab ?? null).slice(0, 40)}`);
    const entries = Object.entries(vocab as JsonObject);
    size = entries.length + added.length;
    for (const [token, id] of entries) {
      if (!isId(id, size)) fail(`model.vocab[${JSON.stringify(token)}] is ${JSON.stringify(id)}, not a token id (an integer from 0 to ${size - 1}, the vocabulary's ${entries.length} tokens plus ${added.length} added)`);
    }
    has = (token) => Object.hasOwn(vocab, token);
    if (type === 'BPE') checkMerges(m, has, fail);
  }
  const unkToken = m['unk_token'];
  if (type !== 'Unigram' && unkToken !== undefined && unkToken !== null && !(typeof unkToken === 'string' && has(unkToken))) {
    fail(`model.unk_token ${JSON.stringify(unkToken)} is not a token of model.vocab`);
  }
  added.forEach((t: unknown, i) => {
    const token = t as { id?: unknown; content?: unknown } | null;
    if (typeof token !== 'object' || token === null || typeof token.content !== 'string') return fail(`added_tokens[${i}] must be an object with a string "content" and an "id"`);
    if (!isId(token.id, size)) fail(`added_tokens[${i}] (${JSON.stringify(token.content)}) has id ${JSON.stringify(token.id)}, not a token id (an integer from 0 to ${size - 1})`);
  });
}

function isId(id: unknown, size: number): boolean {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < size;
}

/** Merges are "a b" strings or [a, b] pairs; a, b and a + b (b less continuing_subword_prefix) must be tokens. */
function checkMerges(model: JsonObject, has: (token: string) => boolean, fail: (what: string) => never): void {
  const merges = model['merges'] ?? [];
  if (!Array.isArray(merges)) fail('model.merges must be a list of "a b" strings or [a, b] pairs');
  const prefix = model['continuing_subword_prefix'];
  const prefixLength = typeof prefix === 'string' ? prefix.length : 0;
  (merges as unknown[]).forEach((merge, i) => {
    const pair = typeof merge === 'string' ? merge.split(' ') : merge;
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      return fail(`model.merges[${i}] is ${JSON.stringify(merge).slice(0, 60)}, not an "a b" string or an [a, b] pair`);
    }
    const [a, b] = pair as [string, string];
    for (const token of [a, b, a + b.slice(prefixLength)]) {
      if (!has(token)) fail(`model.merges[${i}] (${JSON.stringify(a)} + ${JSON.stringify(b)}) needs the token ${JSON.stringify(token)}, which model.vocab lacks`);
    }
  });
}
