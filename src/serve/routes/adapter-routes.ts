import type { FastifyInstance } from 'fastify';
import { ApiError } from '../api-error.js';
import { resolveAdapterDir } from '../adapter-path.js';
import { requireObject, requireString } from '../json-fields.js';
import { checkFields, offOnly, READ, type FieldRules } from '../request-fields.js';
import type { ServeContext } from '../serve-context.js';

const ADD_FIELDS: FieldRules = { name: READ, path: READ };
const LOAD_LORA_FIELDS: FieldRules = {
  lora_name: READ,
  lora_path: READ,
  load_inplace: offOnly((v) => v === false, 'is not supported: unload the adapter (POST /v1/unload_lora_adapter), then load it again'),
};
const UNLOAD_LORA_FIELDS: FieldRules = {
  lora_name: READ,
  lora_int_id: offOnly(() => false, 'is not used by this server, which names adapters by lora_name only; remove it'),
};

/**
 * Adapters at run time: GET lists them, POST {name, path} loads one from inside --adapter-root, DELETE unloads one
 * once its requests finish; vLLM's POST /v1/load_lora_adapter and /v1/unload_lora_adapter do the same with vLLM's
 * fields, plain-text answers and status codes. The API key (when set) guards these routes with the rest of /v1.
 */
export function registerAdapterRoutes(app: FastifyInstance, ctx: ServeContext): void {
  app.get('/v1/adapters', async () => ({
    object: 'list',
    data: ctx.adapters.list().map((a) => ({ id: a.name, object: 'adapter', loaded: a.loaded, in_flight: a.inFlight })),
  }));

  app.post('/v1/adapters', async (request, reply) => {
    const root = adapterRoot(ctx);
    const body = requireObject(request.body);
    checkFields(body, ADD_FIELDS, 'POST /v1/adapters');
    const name = requireString(body, 'name');
    const dir = await resolveAdapterDir(root, requireString(body, 'path'));
    await ctx.adapters.add(name, dir);
    return reply.code(201).send({ id: name, object: 'adapter', loaded: true });
  });

  app.delete<{ Params: { name: string } }>('/v1/adapters/:name', async (request) => {
    await ctx.adapters.remove(request.params.name);
    return { id: request.params.name, object: 'adapter', deleted: true };
  });

  app.post('/v1/load_lora_adapter', async (request, reply) => {
    const root = adapterRoot(ctx);
    const body = requireObject(request.body);
    checkFields(body, LOAD_LORA_FIELDS, 'POST /v1/load_lora_adapter');
    const name = requireString(body, 'lora_name');
    const dir = await resolveAdapterDir(root, requireString(body, 'lora_path'), 'lora_path');
    try {
      await ctx.adapters.add(name, dir, 'lora_name');
    } catch (error) {
      // vLLM answers a name already served with 400.
      if (error instanceof ApiError && error.code === 'adapter_exists') {
        throw new ApiError(400, `The adapter "${name}" is already loaded; unload it first or pick another lora_name.`, 'invalid_request_error', 'adapter_exists', 'lora_name');
      }
      throw error;
    }
    return reply.type('text/plain; charset=utf-8').send(`Success: LoRA adapter '${name}' added successfully.`);
  });

  app.post('/v1/unload_lora_adapter', async (request, reply) => {
    const body = requireObject(request.body);
    checkFields(body, UNLOAD_LORA_FIELDS, 'POST /v1/unload_lora_adapter');
    const name = requireString(body, 'lora_name');
    await ctx.adapters.remove(name, 'lora_name');
    return reply.type('text/plain; charset=utf-8').send(`Success: LoRA adapter '${name}' removed successfully.`);
  });
}

function adapterRoot(ctx: ServeContext): string {
  if (ctx.adapterRoot === null) {
    throw new ApiError(403, 'Loading adapters at run time is off; start the server with --adapter-root DIR.', 'permission_error', 'adapter_loading_disabled');
  }
  return ctx.adapterRoot;
}
