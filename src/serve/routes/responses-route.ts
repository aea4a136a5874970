import type { FastifyInstance } from 'fastify';
import { chatPrompt } from '../chat-prompt.js';
import { GenerationJob } from '../generation-job.js';
import { respond } from '../respond.js';
import { inResponsesTerms, parseResponsesRequest } from '../responses/responses-request.js';
import { responsesFormat } from '../responses/responses-format.js';
import type { ServeContext } from '../serve-context.js';

/** POST /v1/responses: text and function calls, through the chat template as chat completions are. */
export function registerResponsesRoute(app: FastifyInstance, ctx: ServeContext): void {
  app.post('/v1/responses', async (request, reply) => {
    const req = parseResponsesRequest(request.body, ctx.vocabSize);
    // The calls' grammar is built here, so its refusals (a tool's parameters) are respelled as the request's.
    const prompt = inResponsesTerms(() => chatPrompt(ctx.tokenizer, req.messages, req.tools, 'input'));
    // Forced tool calls are held to their grammar, as on chat completions.
    const params = prompt.guided ? { ...req.params, guided: prompt.guided } : req.params;
    const job = await GenerationJob.prepare(ctx, req.model, prompt.ids, params, 'input');
    return respond(reply, job, responsesFormat(req, prompt.toolCalling), params);
  });
}
