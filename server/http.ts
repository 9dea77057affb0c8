// The HTTP host: tRPC under /trpc and plain routes beside it. Plain routes are registered by path so
// later concerns (webhooks, metrics) add a line here rather than a branch in a handler.
import http from 'node:http';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { observeRequest, requestLogger, routeLabel } from './observability.ts';
import { appRouter } from './routers/index.ts';
import { bearerTokenOf, type AppServices } from './trpc.ts';

export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

export function createHttpServer(services: AppServices, routes: Record<string, RouteHandler> = {}): http.Server {
  const trpc = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    createContext: ({ req }) => ({ ...services, log: requestLogger(req, services.log), bearerToken: bearerTokenOf(req.headers.authorization) }),
    onError({ error, path, req }) {
      if (error.code === 'INTERNAL_SERVER_ERROR') requestLogger(req, services.log).error({ err: error.cause ?? error, path }, 'tRPC procedure failed');
    },
  });
  const plain: Record<string, RouteHandler> = {
    'GET /healthz': (_req, res) => sendJson(res, 200, { status: 'ok' }),
    ...routes,
  };

  const procedures = new Set(Object.keys(appRouter._def.procedures));

  return http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    const route = plain[`${req.method} ${pathname}`];
    const log = observeRequest(req, res, services.log, () => routeLabel(pathname, route !== undefined, procedures));
    if (pathname.startsWith('/trpc/')) return trpc(req, res);
    if (!route) return sendJson(res, 404, { error: 'not found' });
    Promise.resolve(route(req, res)).catch((err: unknown) => {
      log.error({ err, path: pathname }, 'HTTP route failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
}
