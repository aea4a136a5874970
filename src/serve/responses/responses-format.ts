import { randomUUID } from 'node:crypto';
import type { ResponseFormat } from '../openai-format.js';
import type { GenerationResult } from '../generation-job.js';
import type { ResponsesRequest } from './responses-request.js';

type Status = 'in_progress' | 'completed' | 'incomplete';

const hexId = (prefix: string) => `${prefix}_${randomUUID().replace(/-/g, '')}`;

/**
 * POST /v1/responses: OpenAI's Response object with one assistant message of output_text, and its stream of typed
 * events (created, in_progress, output_item.added, content_part.added, output_text.delta..., output_text.done,
 * content_part.done, output_item.done, then completed, or incomplete where max_output_tokens cut the text off),
 * each numbered by sequence_number.
 */
export function responsesFormat(req: ResponsesRequest): ResponseFormat {
  const id = hexId('resp');
  const itemId = hexId('msg');
  const createdAt = Math.floor(Date.now() / 1000);
  const { sampling } = req.params;
  let sequence = 0;
  let text = '';
  const event = (type: string, fields: object) => ({ type, sequence_number: sequence++, ...fields });
  const part = (t: string) => ({ type: 'output_text', text: t, annotations: [], logprobs: [] });
  const item = (status: Status, content: object[]) => ({ id: itemId, type: 'message', status, role: 'assistant', content });
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
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
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: false,
    temperature: sampling.temperature,
    top_p: sampling.topP,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
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
  return {
    opening: () => [
      event('response.created', { response: response('in_progress', [], null) }),
      event('response.in_progress', { response: response('in_progress', [], null) }),
      event('response.output_item.added', { output_index: 0, item: item('in_progress', []) }),
      event('response.content_part.added', { ...at, part: part('') }),
    ],
    delta: (d) => {
      text += d.text;
      return [event('response.output_text.delta', { ...at, delta: d.text, logprobs: [] })];
    },
    closing: (result) => {
      const status = statusOf(result);
      const done = item(status, [part(text)]);
      return [
        event('response.output_text.done', { ...at, text, logprobs: [] }),
        event('response.content_part.done', { ...at, part: part(text) }),
        event('response.output_item.done', { output_index: 0, item: done }),
        event(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: response(status, [done], result) }),
      ];
    },
    failure: (error) => event('error', { code: error.code, message: error.message, param: error.param }),
    body: (result) => {
      const status = statusOf(result);
      return response(status, [item(status, [part(result.choices[0]!.text)])], result);
    },
    typedEvents: true,
  };
}
