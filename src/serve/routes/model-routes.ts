import type { FastifyInstance } from 'fastify';
import { unknownModel } from '../api-error.js';
import type { ServeContext } from '../serve-context.js';

/** GET /v1/models and GET /v1/models/:model: the base model and every adapter served over it. */
export function registerModelRoutes(app: FastifyInstance, ctx: ServeContext, startedAt: number): void {
  const describe = (id: string) => ({
    id,
    object: 'model',
    created: startedAt,
    owned_by: 'loraforge',
    root: id === ctx.baseModelName ? id : ctx.baseModelName,
    parent: id === ctx.baseModelName ? null : ctx.baseModelName,
  });

  app.get('/v1/models', async () => ({ object: 'list', data: ctx.adapters.modelNames().map(describe) }));

  app.get<{ Params: { model: string } }>('/v1/models/:model', async (request) => {
    const names = ctx.adapters.modelNames();
    if (!names.includes(request.params.model)) throw unknownModel(request.params.model, names);
    return describe(request.params.model);
  });
}
