import type { FastifyInstance } from 'fastify';
import type { ServeContext } from '../serve-context.js';

/** GET /health (liveness, no key needed) and GET /metrics (Prometheus text format). */
export function registerObservabilityRoutes(app: FastifyInstance, ctx: ServeContext): void {
  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_request, reply) => reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8').send(ctx.metrics.render()));
}
