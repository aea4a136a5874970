import type { CompiledGrammar, GrammarCompiler, StructuralTag } from '@mlc-ai/web-xgrammar';
import { invalidRequest } from '../api-error.js';
import type { JsonObject } from '../json-fields.js';
import type { GuidedDecoding } from './guided-decoding.js';
import { withIntegerRanges } from './integer-range.js';
import { toolCallsGrammar } from './tool-calls-grammar.js';
import { RowGrammar, type Guide } from './row-grammar.js';
import type { GrammarVocabulary } from './vocabulary.js';
import { loadXgrammar, type XgrammarInstance } from './xgrammar-module.js';

/** The name guided_decoding_backend must give, when it is sent. */
export const GRAMMAR_BACKEND = 'xgrammar';

/** Compiled grammars kept for reuse when no request holds them; each holds its token-mask cache. */
const CACHED_GRAMMARS = 32;

/**
 * JSON is written on one line with Python json.dumps' separators: no whitespace a model could repeat without end
 * (xgrammar's any_whitespace would allow it), so a grammar alone bounds how long JSON output runs.
 */
const JSON_LAYOUT = { anyWhitespace: false, indent: -1, separators: [', ', ': '] as [string, string] };

/** What the main instance compiles: xgrammar EBNF starting at `root` ("root" when absent), or a structural tag (regular expressions). */
type EngineGrammar = { readonly ebnf: string; readonly root?: string } | { readonly tag: StructuralTag };

interface Compiler {
  readonly module: XgrammarInstance;
  readonly compiler: GrammarCompiler;
}

/**
 * xgrammar over one tokenizer's vocabulary. Every request's grammar is parsed first in a separate checking
 * instance of the module: a grammar xgrammar refuses aborts the instance that parsed it (a C++ fatal error, whose
 * message is taken as the 400's reason) and leaks its stack, so only the checker ever aborts, and it is replaced
 * after each abort, while the instance holding the vocabulary and every running sequence's matcher never does.
 */
export class GrammarEngine {
  private compiler: Promise<Compiler> | null = null;
  private checker: XgrammarInstance | null = null;
  /** Most recently used last; `users`: guides not yet released. */
  private readonly cache = new Map<string, { readonly grammar: Promise<CompiledGrammar>; users: number }>();

  /** `vocabulary` is read at the first guided request (it walks the whole vocabulary once). */
  constructor(
    private readonly vocabulary: () => GrammarVocabulary,
    private readonly defaultStopTokenIds: readonly number[],
  ) {}

  /**
   * Throws a 400 naming the request field when the engine refuses its grammar. The guide holds its compiled
   * grammar in the cache until released (once its sequences have ended).
   */
  async compile(guided: GuidedDecoding): Promise<Guide> {
    const key = JSON.stringify({ ...guided, field: undefined });
    let entry = this.cache.get(key);
    if (entry) this.cache.delete(key);
    else {
      entry = { grammar: this.compileChecked(await this.check(guided)), users: 0 };
    }
    this.cache.set(key, entry);
    const held = entry;
    held.users++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      held.users--;
      this.evict();
    };
    try {
      const grammar = await held.grammar;
      const { module } = await this.start();
      return { start: (stops) => this.matcher(module, grammar, stops), release };
    } catch (error) {
      release();
      if (this.cache.get(key) === held) this.cache.delete(key);
      throw error;
    } finally {
      this.evict();
    }
  }

  private async matcher(module: XgrammarInstance, grammar: CompiledGrammar, stopTokenIds: ReadonlySet<number>): Promise<RowGrammar> {
    // xgrammar needs at least one stop token; a row without any gets the model's, cleared from its masks.
    const stops = stopTokenIds.size > 0 ? [...stopTokenIds] : this.defaultStopTokenIds.length > 0 ? [...this.defaultStopTokenIds] : [0];
    const matcher = await module.xgr.GrammarMatcher.createGrammarMatcher(grammar, stops);
    return new RowGrammar(matcher, stops, stopTokenIds);
  }

  private start(): Promise<Compiler> {
    this.compiler ??= (async () => {
      const module = loadXgrammar();
      const v = this.vocabulary();
      const stops = this.defaultStopTokenIds.length > 0 ? [...this.defaultStopTokenIds] : undefined;
      const info = await module.xgr.TokenizerInfo.createTokenizerInfo([...v.tokens], v.type, v.prependSpace, v.tokens.length, stops);
      // xgrammar's own cache has no bound; this engine keeps CACHED_GRAMMARS.
      const compiler = await module.xgr.GrammarCompiler.createGrammarCompiler(info, false);
      return { module, compiler };
    })();
    return this.compiler;
  }

  /**
   * Turns the request's constraint into what the main instance compiles (EBNF, or a regex structural tag), parsed
   * in the checking instance; throws a 400 with xgrammar's reason when it is refused.
   */
  private async check(guided: GuidedDecoding): Promise<EngineGrammar> {
    const checker = (this.checker ??= loadXgrammar());
    const { xgr } = checker;
    checker.takeMessages();
    try {
      if (guided.kind === 'regex') {
        const tag = regexTag(guided.pattern);
        (await xgr.Grammar.fromStructuralTag(tag)).dispose();
        return { tag };
      }
      if (guided.kind === 'tool_calls') {
        const grammar = await toolCallsGrammar(guided, (schema) => jsonGrammar(checker, schema, true));
        if ('tag' in grammar) (await xgr.Grammar.fromStructuralTag(grammar.tag)).dispose();
        else (await xgr.Grammar.fromEBNF(grammar.ebnf, grammar.root)).dispose();
        return grammar;
      }
      const ebnf =
        guided.kind === 'grammar' ? guided.ebnf
        : guided.kind === 'choice' ? choiceGrammar(guided.choices)
        : await jsonGrammar(checker, guided.kind === 'json_schema' ? guided.schema : { type: 'object' }, guided.kind === 'json_schema');
      (await xgr.Grammar.fromEBNF(ebnf)).dispose();
      return { ebnf };
    } catch (error) {
      this.checker = null;
      throw invalidRequest(`"${guided.field}" was refused by the grammar engine: ${reason(checker.takeMessages(), error)}; fix it.`, guided.field);
    }
  }

  private async compileChecked(grammar: EngineGrammar): Promise<CompiledGrammar> {
    const { compiler } = await this.start();
    return 'tag' in grammar ? compiler.compileStructuralTag(grammar.tag) : compiler.compileGrammar(grammar.ebnf, grammar.root ?? 'root');
  }

  /** Frees the least recently used grammars no guide holds, down to CACHED_GRAMMARS (matchers hold their own reference). */
  private evict(): void {
    let excess = this.cache.size - CACHED_GRAMMARS;
    for (const [key, entry] of this.cache) {
      if (excess <= 0) break;
      if (entry.users > 0) continue;
      this.cache.delete(key);
      excess--;
      void entry.grammar.then((g) => g.dispose(), () => undefined);
    }
  }
}

/** xgrammar's grammar of JSON matching `schema`, in JSON_LAYOUT, its numbers bounded, its integer ranges written out; `strict`: no properties beyond the schema's. */
async function jsonGrammar(checker: XgrammarInstance, schema: JsonObject | boolean, strict: boolean): Promise<string> {
  return withIntegerRanges(finiteNumbers(await checker.xgr.Testings._jsonSchemaToEBNF(JSON.stringify(schema), JSON_LAYOUT.anyWhitespace, JSON_LAYOUT.indent, JSON_LAYOUT.separators, strict)));
}

/**
 * xgrammar's JSON grammar with its number rules bounded (16 integer digits, 16 fraction digits, a two-digit
 * exponent): its own allow any number of digits, such as 1e400, which no double holds (JSON.parse reads Infinity).
 * json_object's grammar is the schema {"type": "object"} outside strict mode, where strict would allow only {}.
 */
function finiteNumbers(ebnf: string): string {
  const rules: [RegExp, string][] = [
    [/^basic_integer ::= .*$/m, 'basic_integer ::= ("0" | "-"? [1-9] [0-9]{0,15})'],
    [/^basic_number ::= .*$/m, 'basic_number ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [+-]? [0-9]{1,2})?'],
  ];
  let out = ebnf;
  for (const [rule, bounded] of rules) {
    if (!rule.test(out)) throw new Error(`xgrammar's JSON grammar has no rule ${rule.source}: its version is not the one this server was written for`);
    out = out.replace(rule, bounded);
  }
  return out;
}

function regexTag(pattern: string): StructuralTag {
  return { type: 'structural_tag', format: { type: 'regex', pattern } };
}

/** An EBNF alternation of the choices as string literals (JSON's escapes are EBNF's). */
export function choiceGrammar(choices: readonly string[]): string {
  return `root ::= ${choices.map((c) => JSON.stringify(c)).join(' | ')}`;
}

/** xgrammar's message without its source location: "[FATAL] /path/file.cc:75: Regex parsing error ..." -> "Regex parsing error ...". */
function reason(messages: readonly string[], error: unknown): string {
  const fatal = messages.find((m) => m.includes('[FATAL]'));
  if (fatal) return fatal.replace(/^.*?\[FATAL\]\s*\S+:\d+:\s*/, '').replace(/\.$/, '');
  return error instanceof Error ? error.message : String(error);
}
