import type { FastifyInstance } from 'fastify';
import { ApiError } from '../api-error.js';
import { resolveAdapterDir } from '../adapter-path.js';
import { requireObject, requireString } from '../json-fields.js';
import type { ServeContext } from '../serve-context.js';

/**
 * Adapters at run time: GET lists them, POST {name, path} loads one from inside --adapter-root, DELETE unloads one
 * once its requests finish. The API key (when set) guards these routes with the rest of /v1.
 */
export function registerAdapterRoutes(app: FastifyInstance, ctx: ServeContext): void {
  app.get('/v1/adapters', async () => ({
    object: 'list',
    data: ctx.adapters.list().map((a) => ({ id: a.name, object: 'adapter', loaded: a.loaded, in_flight: a.inFlight })),
  }));

  app.post('/v1/adapters', async (request, reply) => {
    if (ctx.adapterRoot === null) {
      throw new ApiError(403, 'Loading adapters at run time is off; start the server with --adapter-root DIR.', 'permission_error', 'adapter_loading_disabled');
    }
    const body = requireObject(request.body);
    const name = requireString(body, 'name');
    const dir = await resolveAdapterDir(ctx.adapterRoot, requireString(body, 'path'));
    await ctx.adapters.add(name, dir);
    return reply.code(201).send({ id: name, object: 'adapter', loaded: true });
  });

  app.delete<{ Params: { name: string } }>('/v1/adapters/:name', async (request) => {
    await ctx.adapters.remove(request.params.name);
    return { id: request.params.name, object: 'adapter', deleted: true };
  });
}
