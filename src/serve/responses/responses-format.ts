import { randomUUID } from 'node:crypto';
import type { ResponseFormat } from '../openai-format.js';
import type { GenerationResult } from '../generation-job.js';
import { ChoiceToolCalls, type ChatToolCall, type ToolCalling } from '../tools/choice-tool-calls.js';
import type { ResponsesRequest } from './responses-request.js';

type Status = 'in_progress' | 'completed' | 'incomplete';

const hexId = (prefix: string) => `${prefix}_${randomUUID().replace(/-/g, '')}`;

/**
 * POST /v1/responses: OpenAI's Response object, and its stream of typed events (created, in_progress, then each
 * output item: output_item.added, for a message content_part.added, output_text.delta..., output_text.done,
 * content_part.done, for a function call function_call_arguments.delta and .done, then output_item.done; last
 * completed, or incomplete where max_output_tokens cut the output off), each numbered by sequence_number.
 * Without tools the output is one assistant message of output_text, opened at once. With tools (`toolCalling`)
 * the text is split as chat splits it: its content is a message, opened when its first text is known to be content
 * (an empty one at the end where the output held nothing), and each call a function_call item once it is whole.
 */
export function responsesFormat(req: ResponsesRequest, toolCalling: ToolCalling | null = null): ResponseFormat {
  const id = hexId('resp');
  const createdAt = Math.floor(Date.now() / 1000);
  const { sampling } = req.params;
  let sequence = 0;
  const event = (type: string, fields: object) => ({ type, sequence_number: sequence++, ...fields });
  const part = (t: string) => ({ type: 'output_text', text: t, annotations: [], logprobs: [] });
  const messageItem = (itemId: string, status: Status, content: object[]) => ({ id: itemId, type: 'message', status, role: 'assistant', content });
  const callItem = (itemId: string, call: ChatToolCall, status: Status) => ({ id: itemId, type: 'function_call', status, call_id: call.id, name: call.function.name, arguments: status === 'in_progress' ? '' : call.function.arguments });
  const response = (status: Status, output: object[], result: GenerationResult | null) => ({
    id,
    object: 'response',
    created_at: createdAt,
    status,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: req.instructions,
    max_output_tokens: req.maxOutputTokens,
    model: req.model,
    output,
    parallel_tool_calls: req.toolEcho.parallelToolCalls,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: false,
    temperature: sampling.temperature,
    top_p: sampling.topP,
    text: { format: { type: 'text' } },
    tool_choice: req.toolEcho.toolChoice,
    tools: req.toolEcho.tools,
    truncation: 'disabled',
    usage: result && {
      input_tokens: result.usage.prompt_tokens,
      input_tokens_details: { cached_tokens: result.usage.prompt_tokens_details?.cached_tokens ?? 0 },
      output_tokens: result.usage.completion_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: result.usage.total_tokens,
    },
    user: null,
    metadata: req.metadata,
  });
  const statusOf = (result: GenerationResult): Status => (result.choices[0]!.finishReason === 'length' ? 'incomplete' : 'completed');

  // The stream's output items in order: the message (its index once opened) and the finished calls.
  const items: object[] = [];
  const message = { itemId: hexId('msg'), index: -1, text: '' };
  const at = () => ({ item_id: message.itemId, output_index: message.index, content_index: 0 });
  const openMessage = () => {
    message.index = items.length;
    items.push(messageItem(message.itemId, 'in_progress', []));
    return [event('response.output_item.added', { output_index: message.index, item: items[message.index] }), event('response.content_part.added', { ...at(), part: part('') })];
  };
  const text = (t: string) => {
    if (t.length === 0) return [];
    const opening = message.index < 0 ? openMessage() : [];
    message.text += t;
    return [...opening, event('response.output_text.delta', { ...at(), delta: t, logprobs: [] })];
  };
  const calls = (list: readonly ChatToolCall[]) =>
    list.flatMap((call) => {
      const itemId = hexId('fc');
      const index = items.length;
      const done = callItem(itemId, call, 'completed');
      items.push(done);
      const where = { item_id: itemId, output_index: index };
      return [
        event('response.output_item.added', { output_index: index, item: callItem(itemId, call, 'in_progress') }),
        event('response.function_call_arguments.delta', { ...where, delta: call.function.arguments }),
        event('response.function_call_arguments.done', { ...where, arguments: call.function.arguments }),
        event('response.output_item.done', { output_index: index, item: done }),
      ];
    });
  const split = toolCalling ? new ChoiceToolCalls(toolCalling) : null;
  return {
    opening: () => [
      event('response.created', { response: response('in_progress', [], null) }),
      event('response.in_progress', { response: response('in_progress', [], null) }),
      ...(split ? [] : openMessage()),
    ],
    delta: (d) => {
      if (!split) return text(d.text);
      const step = split.push(d.text);
      return [...text(step.content), ...calls(step.calls)];
    },
    closing: (result) => {
      const status = statusOf(result);
      const step = split?.finish();
      const last = step ? [...text(step.content), ...calls(step.calls)] : [];
      const empty = message.index < 0 && items.length === 0 ? openMessage() : [];
      let finished: object[] = [];
      if (message.index >= 0) {
        const done = messageItem(message.itemId, status, [part(message.text)]);
        items[message.index] = done;
        finished = [
          event('response.output_text.done', { ...at(), text: message.text, logprobs: [] }),
          event('response.content_part.done', { ...at(), part: part(message.text) }),
          event('response.output_item.done', { output_index: message.index, item: done }),
        ];
      }
      return [...last, ...empty, ...finished, event(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: response(status, items, result) })];
    },
    failure: (error) => event('error', { code: error.code, message: error.message, param: error.param }),
    body: (result) => {
      const status = statusOf(result);
      const whole = result.choices[0]!.text;
      if (!toolCalling) return response(status, [messageItem(message.itemId, status, [part(whole)])], result);
      const { content, calls: found } = ChoiceToolCalls.split(whole, toolCalling);
      const output = [
        ...(content.length > 0 || found.length === 0 ? [messageItem(message.itemId, status, [part(content)])] : []),
        ...found.map((call) => callItem(hexId('fc'), call, 'completed')),
      ];
      return response(status, output, result);
    },
    typedEvents: true,
  };
}
