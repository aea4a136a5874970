import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestTimedOut } from '../../src/serve/api-error.js';
import { GREEDY_SAMPLING } from '../../src/serve/generation-params.js';
import { responsesFormat } from '../../src/serve/responses/responses-format.js';
import type { ResponsesRequest } from '../../src/serve/responses/responses-request.js';

const REQUEST: ResponsesRequest = {
  model: 'm',
  messages: [{ role: 'user', content: 'hi' }],
  params: {
    maxTokens: undefined, stop: [], sampling: GREEDY_SAMPLING, stream: true, includeUsage: false, n: 1, bestOf: 1, logprobs: null, echo: false, guided: null,
    stopTokenIds: [], ignoreEos: false, skipSpecialTokens: true, includeStopStrInOutput: false,
  },
  instructions: null,
  maxOutputTokens: null,
  metadata: {},
  tools: null,
  toolEcho: { tools: [], toolChoice: 'auto', parallelToolCalls: true },
};
const RESULT = { choices: [{ index: 0, text: 'Hello.', finishReason: 'stop' as const, logprobs: null }], usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 } };

describe('the Response object of a text that ended by itself', () => {
  it('is status completed with no incomplete_details, whole and as the last streamed event', () => {
    const format = responsesFormat(REQUEST);
    const events = [...format.opening(1), ...format.delta({ index: 0, text: 'Hello.', logprobs: null }), ...format.closing(RESULT)] as { type: string; response?: { status: string; incomplete_details: null } }[];
    assert.equal(events.at(-1)!.type, 'response.completed');
    assert.equal(events.at(-1)!.response!.status, 'completed');
    const body = responsesFormat(REQUEST).body(RESULT) as { status: string; incomplete_details: null; output: { status: string }[] };
    assert.equal(body.status, 'completed');
    assert.equal(body.incomplete_details, null);
    assert.equal(body.output[0]!.status, 'completed');
  });

  it('reports a failure after the stream began as an error event with the error\'s code, message and param', () => {
    const format = responsesFormat(REQUEST);
    assert.deepEqual(format.failure(requestTimedOut(2000)), { type: 'error', sequence_number: 0, code: 'request_timeout', message: 'The request did not finish within 2 s and was stopped.', param: null });
  });
});
