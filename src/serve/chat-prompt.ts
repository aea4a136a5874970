import type { ChatMessage, PreTrainedTokenizer } from '../tokenizer/index.js';
import { invalidRequest } from './api-error.js';
import type { GuidedDecoding } from './grammar/guided-decoding.js';
import type { ToolCalling } from './tools/choice-tool-calls.js';
import { strictAutoGuide, toolCallGuide } from './tools/tool-call-guide.js';
import type { ToolRequest } from './tools/tool-fields.js';
import { TOOL_CALL_SYNTAXES, toolCallSyntaxOf } from './tools/tool-call-syntax.js';

/** A chat request's prompt, how its output is read for tool calls (null: as text), and the grammar forcing calls. */
export interface ChatPrompt {
  readonly ids: number[];
  readonly toolCalling: ToolCalling | null;
  /** tool_choice "required" or a named function, or "auto" with a strict function: the calls' grammar in the template's syntax; otherwise null. */
  readonly guided: GuidedDecoding | null;
}

/**
 * Renders the messages, and the tools as the `tools` variable, with the model's chat template. Tools are refused
 * where the template ignores them (the model would never see them), and tool_choice other than "none" where the
 * template's model writes calls in no syntax this server parses.
 */
export function chatPrompt(tokenizer: PreTrainedTokenizer, messages: readonly ChatMessage[], toolRequest: ToolRequest | null, param = 'messages'): ChatPrompt {
  const tools = toolRequest?.definitions;
  const text = render(tokenizer, messages, tools, param);
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  if (!toolRequest) return { ids, toolCalling: null, guided: null };
  const origin = tokenizer.chatTemplateOrigin({ tools });
  if (rendersSame(tokenizer, messages, text)) {
    throw invalidRequest(`The chat template in ${origin} does not render "tools", so the model would never see them; serve a model whose template takes tools, or leave "tools" out.`, 'tools');
  }
  const { choice } = toolRequest;
  if (choice === 'none') return { ids, toolCalling: null, guided: null };
  const syntax = toolCallSyntaxOf(tokenizer.chatTemplateSource({ tools }));
  if (syntax === null) {
    const known = TOOL_CALL_SYNTAXES.map((s) => `${s.name} (${s.openers[0]})`).join(', ');
    throw invalidRequest(`The chat template in ${origin} writes tool calls in none of the syntaxes this server parses (${known}); send "tool_choice": "none" or leave "tools" out.`, 'tools');
  }
  const { definitions, maxCalls } = toolRequest;
  const guided = choice !== 'auto' ? toolCallGuide(syntax, definitions, choice, maxCalls) : toolRequest.strict ? strictAutoGuide(syntax, definitions, maxCalls) : null;
  return { ids, toolCalling: { syntax, maxCalls: toolRequest.maxCalls }, guided };
}

/** `param` names the request field the messages came from. */
function render(tokenizer: PreTrainedTokenizer, messages: readonly ChatMessage[], tools: readonly object[] | undefined, param: string): string {
  try {
    return tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: false, ...(tools ? { tools } : {}) });
  } catch (error) {
    // Templates reject conversations they cannot render (raise_exception, missing template): the caller's to fix.
    throw invalidRequest(`The chat template could not render these messages: ${error instanceof Error ? error.message : String(error)}`, param);
  }
}

/** Whether the conversation renders without the tools as it does with them; a template that fails without them uses them. */
function rendersSame(tokenizer: PreTrainedTokenizer, messages: readonly ChatMessage[], withTools: string): boolean {
  try {
    return render(tokenizer, messages, undefined, 'messages') === withTools;
  } catch {
    return false;
  }
}
