import type { StructuralTag, TagFormat } from '@mlc-ai/web-xgrammar';
import type { JsonObject } from '../json-fields.js';
import type { GuidedDecoding, ToolFunction } from './guided-decoding.js';

type ToolCalls = Extract<GuidedDecoding, { kind: 'tool_calls' }>;

/** What the engine compiles for tool calls: EBNF starting at `root`, or a structural tag. */
export type ToolCallsGrammar = { readonly ebnf: string; readonly root: string } | { readonly tag: StructuralTag };

/**
 * The grammar of `guided`'s calls; `json` is the engine's JSON grammar of a schema (its root rule "root"). Forced
 * calls in the object form are EBNF rules framing the JSON of one call object; the named form and calls under a
 * trigger are xgrammar structural tags (tags whose content is that JSON grammar).
 */
export async function toolCallsGrammar(guided: ToolCalls, json: (schema: JsonObject) => Promise<string>): Promise<ToolCallsGrammar> {
  const { written, multiple, trigger } = guided;
  if (written.form === 'object') {
    const callJson = await json(callObjectSchema(guided.functions, written.argumentsKey));
    if (trigger === null) return framedCalls(callJson, written, multiple);
    const tag: TagFormat = { type: 'tag', begin: written.callBegin, content: { type: 'grammar', grammar: callJson }, end: written.callEnd };
    return { tag: { type: 'structural_tag', format: { type: 'triggered_tags', triggers: [trigger], tags: [tag], stop_after_first: !multiple } } };
  }
  // Named: one tag per function, "name[ARGS]" then its arguments; the calls' common opener comes first, or between calls.
  const tags = await Promise.all(guided.functions.map(async (f): Promise<TagFormat> => ({ type: 'tag', begin: `${f.name}${written.nameEnd}`, content: { type: 'grammar', grammar: await json(f.arguments) }, end: '' })));
  if (trigger !== null) {
    const opened = tags.map((t) => ({ ...t, begin: `${written.callBegin}${t.begin}` }));
    return { tag: { type: 'structural_tag', format: { type: 'triggered_tags', triggers: [trigger], tags: opened, stop_after_first: !multiple } } };
  }
  const calls = multiple ? { type: 'tags_with_separator' as const, tags, separator: written.callBegin, at_least_one: true } : tags.length === 1 ? tags[0]! : { type: 'or' as const, elements: tags };
  return { tag: { type: 'structural_tag', format: { type: 'sequence', elements: [{ type: 'const_string', value: written.callBegin }, calls] } } };
}

/** The JSON Schema of one call object: {"name": one of the functions, <argumentsKey>: that function's arguments}. */
function callObjectSchema(functions: readonly ToolFunction[], argumentsKey: string): JsonObject {
  const cases = functions.map((f) => ({
    type: 'object',
    properties: { name: { const: f.name }, [argumentsKey]: f.arguments },
    required: ['name', argumentsKey],
    additionalProperties: false,
  }));
  return cases.length === 1 ? cases[0]! : { anyOf: cases };
}

/**
 * Calls framed as `written` says around the JSON of one call (whose grammar's root is "root"): the frame's rules
 * take names the JSON grammar does not define, and the grammar starts at the frame's own root.
 */
function framedCalls(callJson: string, written: Extract<ToolCalls['written'], { form: 'object' }>, multiple: boolean): ToolCallsGrammar {
  let prefix = 'tool_calls';
  while (new RegExp(`^${prefix}(_call)? ::=`, 'm').test(callJson)) prefix += '_';
  const call = `${prefix}_call`;
  const literal = (text: string) => JSON.stringify(text);
  const calls = multiple ? `${call} (${literal(written.separator)} ${call})*` : call;
  return {
    ebnf: `${callJson}\n${call} ::= ${literal(written.callBegin)} root ${literal(written.callEnd)}\n${prefix} ::= ${literal(written.begin)} ${calls} ${literal(written.end)}\n`,
    root: prefix,
  };
}
