import type { PreTrainedTokenizer, TokenizerSpelling } from '../../tokenizer/index.js';

/** xgrammar's names for how a vocabulary spells bytes: GPT-2's byte alphabet, "▁" with <0xNN> tokens, or as is. */
export type VocabType = 'byte_level' | 'byte_fallback' | 'raw';

/** A tokenizer's vocabulary as xgrammar's TokenizerInfo takes it. */
export interface GrammarVocabulary {
  /** One entry per model id (the model's vocab_size); "" for special tokens and ids without a token, which grammars never allow. */
  readonly tokens: readonly string[];
  readonly type: VocabType;
  /** The tokenizer puts a space before the text (SentencePiece's "▁" prefix), so a first token's "▁" is not output. */
  readonly prependSpace: boolean;
}

/**
 * The vocabulary of `tokenizer` in xgrammar's encoding, as its Python TokenizerInfo.from_huggingface reads it from
 * tokenizer.json: the decoder names the byte spelling, added tokens are respelled into it (they are stored as
 * text), and special tokens are left empty so that only the stop tokens a request names can end a grammar.
 */
export function grammarVocabulary(tokenizer: PreTrainedTokenizer, vocabSize: number): GrammarVocabulary {
  const { spelling } = tokenizer;
  const decoder = JSON.stringify(spelling.decoder);
  const type: VocabType = decoder.includes('"ByteLevel"') ? 'byte_level' : decoder.includes('"ByteFallback"') || decoder.includes('"Metaspace"') ? 'byte_fallback' : 'raw';
  const added = new Map(spelling.addedTokens.map((t) => [t.id, t]));
  const tokens = Array.from({ length: vocabSize }, (_, id) => {
    const a = added.get(id);
    if (a) return a.special ? '' : respell(a.content, type);
    return tokenizer.idToToken(id) ?? '';
  });
  return { tokens, type, prependSpace: prependsSpace(spelling) };
}

function respell(text: string, type: VocabType): string {
  if (type === 'byte_level') return Array.from(new TextEncoder().encode(text), (b) => BYTE_CHARS[b]!).join('');
  if (type === 'byte_fallback') return text.replaceAll(' ', '\u2581');
  return text;
}

/** A Prepend("▁") normalizer or a Metaspace pre-tokenizer that prepends (Llama 2, Gemma). */
function prependsSpace(spelling: TokenizerSpelling): boolean {
  const parts = JSON.stringify([spelling.normalizer, spelling.preTokenizer]);
  return /"type":"Prepend","prepend":"\u2581"/.test(parts) || (/"type":"Metaspace"/.test(parts) && !/"prepend_scheme":"never"/.test(parts));
}

/** GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for 256 + their rank. */
const BYTE_CHARS: readonly string[] = (() => {
  const chars: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCharCode(printable ? b : next++));
  }
  return chars;
})();
