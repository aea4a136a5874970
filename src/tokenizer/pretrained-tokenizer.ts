import { ChatTemplate } from './chat-template.js';
import { readChatTemplates, selectChatTemplate } from './chat-template-selection.js';
import type { ChatTemplateSource } from './chat-template-selection.js';
import { TokenizerError } from './errors.js';
import { checkSpecialTokens, generationEosTokenIds, readSpecialTokenStrings, templateSpecialTokens } from './special-tokens.js';
import { createTokenizerEngine } from './tokenizer-engine.js';
import type { TokenizerEngine } from './tokenizer-engine.js';
import type { TokenizerFiles } from './tokenizer-files.js';

/**
 * One chat turn. Other fields a message object carries (tool_calls, name, ...) reach the template unchanged; no index
 * signature here, so that callers' own message interfaces stay assignable.
 */
export interface ChatMessage {
  role: string;
  content: string;
}

export interface EncodeOptions {
  /** Add what the post-processor in tokenizer.json adds (bos for Llama, nothing for Qwen2). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop tokens marked special in tokenizer.json or listed in additional_special_tokens. Default false. */
  skipSpecialTokens?: boolean;
}

/** The parts of tokenizer.json that say how tokens spell text, as stored (what grammar engines read). */
export interface TokenizerSpelling {
  readonly decoder: unknown;
  readonly normalizer: unknown;
  readonly preTokenizer: unknown;
  /** added_tokens: their content is text, not the vocabulary's byte spelling. */
  readonly addedTokens: readonly { readonly id: number; readonly content: string; readonly special: boolean }[];
}

export interface ChatTemplateOptions {
  /** End with the header that opens the assistant's turn. Default false. */
  addGenerationPrompt?: boolean;
  /** A template name from tokenizer_config.json's list, or Jinja source used instead of the tokenizer's template. */
  chatTemplate?: string;
  /** Tool JSON schemas, passed to the template as `tools` (null when absent, as in transformers). */
  tools?: readonly object[];
  /** Retrieval documents, passed to the template as `documents` (null when absent). */
  documents?: readonly object[];
  /**
   * Extra template variables, as transformers' `apply_chat_template(..., **kwargs)` passes them: e.g.
   * `{ enable_thinking: false }` for Qwen3 or SmolLM3, `{ xml_tools: [...] }`. They override the special tokens.
   */
  templateKwargs?: Record<string, unknown>;
  /** Sets `enable_thinking` (Qwen3, SmolLM3, ...); left out, the template's own default holds. */
  enableThinking?: boolean;
}

/**
 * A Hugging Face fast tokenizer (tokenizer.json) with the special tokens and chat template of its folder, mirroring
 * transformers' PreTrainedTokenizerFast. Build one with `AutoTokenizer.fromPretrained`.
 */
export class PreTrainedTokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** Ids that end generation: generation_config.json's eos_token_id (one or a list), then the tokenizer's eos. */
  readonly eosTokenIds: number[];
  /** Number of ids, added tokens included (transformers' len(tokenizer)): one more than the largest id. */
  readonly vocabSize: number;
  /** Jinja source of the default chat template, or null when the folder has none. */
  readonly chatTemplate: string | null;
  readonly spelling: TokenizerSpelling;

  private readonly engine: TokenizerEngine;
  private readonly dir: string;
  private readonly cleanUpTokenizationSpaces: boolean;
  private readonly templates: Map<string, ChatTemplateSource>;
  /** The special tokens every template sees (bos_token, eos_token, ...), as transformers passes them. */
  private readonly templateTokens: Record<string, string>;
  /** Keyed by Jinja source. */
  private readonly compiledTemplates = new Map<string, ChatTemplate>();

  constructor(files: TokenizerFiles) {
    this.engine = createTokenizerEngine(files);
    this.dir = files.dir;
    // transformers defaults this to false; the library would default to true, which turns " ." into ".".
    this.cleanUpTokenizationSpaces = files.tokenizerConfig['clean_up_tokenization_spaces'] === true;

    checkSpecialTokens(files);
    const special = readSpecialTokenStrings(files);
    this.bosToken = special.bos;
    this.eosToken = special.eos;
    this.padToken = special.pad;
    this.unkToken = special.unk;
    this.bosTokenId = this.idOf(special.bos);
    this.eosTokenId = this.idOf(special.eos);
    this.padTokenId = this.idOf(special.pad);
    this.unkTokenId = this.idOf(special.unk);
    const eosIds = generationEosTokenIds(files);
    this.eosTokenIds = this.eosTokenId === null || eosIds.includes(this.eosTokenId) ? eosIds : [...eosIds, this.eosTokenId];

    let largestId = -1;
    for (const id of this.engine.get_vocab(true).values()) largestId = Math.max(largestId, id);
    this.vocabSize = largestId + 1;
    const json = files.tokenizerJson;
    const added = (json['added_tokens'] ?? []) as { id: number; content: string; special?: boolean }[];
    this.spelling = {
      decoder: json['decoder'] ?? null,
      normalizer: json['normalizer'] ?? null,
      preTokenizer: json['pre_tokenizer'] ?? null,
      addedTokens: added.map((t) => ({ id: t.id, content: t.content, special: t.special === true })),
    };

    this.templates = readChatTemplates(files);
    this.templateTokens = templateSpecialTokens(files);
    this.chatTemplate = this.templates.get('default')?.source ?? null;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.engine.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** Ids that have no token are dropped, as the Rust tokenizers' decode does. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id)) {
        throw new TokenizerError(this.dir, `decode expects integer token ids but got ${id} at position ${i}; pass ids as encode returns them.`);
      }
      if (this.engine.id_to_token(id) !== undefined) known.push(id);
    }
    if (known.length === 0) return '';
    return this.engine.decode(known, {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.cleanUpTokenizationSpaces,
    });
  }

  /** A token's id; for a token not in the vocabulary, the unk token's id, or null without one (as in transformers). */
  convertTokensToIds(token: string): number | null;
  convertTokensToIds(tokens: readonly string[]): (number | null)[];
  convertTokensToIds(tokens: string | readonly string[]): number | null | (number | null)[] {
    if (typeof tokens === 'string') return this.engine.token_to_id(tokens) ?? this.unkTokenId;
    return tokens.map((token) => this.engine.token_to_id(token) ?? this.unkTokenId);
  }

  idToToken(id: number): string | null {
    return this.engine.id_to_token(id) ?? null;
  }

  /**
   * Renders the conversation with the chat template and, unless `tokenize` is false, encodes the result without
   * adding special tokens (the template writes them itself), as transformers does.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions & { tokenize?: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: boolean }): string | number[];
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize?: boolean } = {}): string | number[] {
    const rendered = this.selectTemplate(options).render({
      ...this.templateTokens,
      ...(options.enableThinking === undefined ? {} : { enable_thinking: options.enableThinking }),
      ...options.templateKwargs,
      messages,
      tools: options.tools ?? null,
      documents: options.documents ?? null,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    });
    return options.tokenize === false ? rendered : this.encode(rendered, { addSpecialTokens: false });
  }

  /** Where the chat template that `options` select comes from (a file, a named template, or the chatTemplate option). */
  chatTemplateOrigin(options: Pick<ChatTemplateOptions, 'chatTemplate' | 'tools'> = {}): string {
    return this.selectTemplate(options).origin;
  }

  /** The Jinja source of the chat template that `options` select. */
  chatTemplateSource(options: Pick<ChatTemplateOptions, 'chatTemplate' | 'tools'> = {}): string {
    return this.selectTemplate(options).source;
  }

  private selectTemplate(options: Pick<ChatTemplateOptions, 'chatTemplate' | 'tools'>): ChatTemplate {
    const source = selectChatTemplate(this.templates, this.dir, options.chatTemplate, options.tools !== undefined);
    let template = this.compiledTemplates.get(source.source);
    if (template === undefined) {
      template = new ChatTemplate(source);
      this.compiledTemplates.set(source.source, template);
    }
    return template;
  }

  private idOf(token: string | null): number | null {
    return token === null ? null : (this.engine.token_to_id(token) ?? null);
  }
}
