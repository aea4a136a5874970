import type { FastifyInstance } from 'fastify';
import { chatPrompt } from '../chat-prompt.js';
import { parseChatRequest } from '../chat-request.js';
import { parseCompletionRequest } from '../completion-request.js';
import { GenerationJob } from '../generation-job.js';
import { chatFormat, completionFormat } from '../openai-format.js';
import { respond } from '../respond.js';
import type { ServeContext } from '../serve-context.js';

/** POST /v1/completions and POST /v1/chat/completions. */
export function registerGenerationRoutes(app: FastifyInstance, ctx: ServeContext): void {
  app.post('/v1/completions', async (request, reply) => {
    const req = parseCompletionRequest(request.body, ctx.vocabSize);
    const ids = 'ids' in req.prompt ? req.prompt.ids : ctx.tokenizer.encode(req.prompt.text);
    const job = await GenerationJob.prepare(ctx, req.model, ids, req.params, 'prompt', 'text' in req.prompt ? req.prompt.text : undefined);
    return respond(reply, job, completionFormat(req.model, req.params.includeUsage), req.params);
  });

  app.post('/v1/chat/completions', async (request, reply) => {
    const req = parseChatRequest(request.body, ctx.vocabSize);
    const prompt = chatPrompt(ctx.tokenizer, req.messages, req.tools);
    // Forced tool calls are held to their grammar (parseChatRequest refused another constraint beside them).
    const params = prompt.guided ? { ...req.params, guided: prompt.guided } : req.params;
    const job = await GenerationJob.prepare(ctx, req.model, prompt.ids, params, 'messages');
    return respond(reply, job, chatFormat(req.model, params.includeUsage, prompt.toolCalling), params);
  });
}
