// What operators and orchestrators look at: a request id and one log line per HTTP request, request
// durations, GET /readyz (database reachable and pg-boss started) and GET /metrics (Prometheus).
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { sql } from 'drizzle-orm';
import type { PgBoss } from 'pg-boss';
import type { Registry } from 'prom-client';
import type { Database } from '../db/client.ts';
import type { Logger } from '../jobs/logger.ts';
import { recordHttpRequest } from '../jobs/metrics.ts';
import { sendJson, type RouteHandler } from './http.ts';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Probes and scrapes run every few seconds; their lines are debug so they do not drown the rest. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

const requestLogs = new WeakMap<http.IncomingMessage, Logger>();

/**
 * Gives a request its id (the caller's `x-request-id` when it is a short plain token, so a proxy's id
 * follows the request; otherwise a fresh one), echoes it in the response, and when the response is
 * done logs one line and records its duration under `route`, a label from a bounded set. Returns
 * the request's logger, whose every line carries the id.
 */
export function observeRequest(req: http.IncomingMessage, res: http.ServerResponse, log: Logger, route: () => string): Logger {
  const given = req.headers[REQUEST_ID_HEADER];
  const reqId = typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
  const requestLog = log.child({ reqId });
  requestLogs.set(req, requestLog);
  res.setHeader(REQUEST_ID_HEADER, reqId);
  const started = performance.now();
  res.once('close', () => {
    const ms = performance.now() - started;
    const label = route();
    recordHttpRequest(req.method ?? 'GET', label, res.statusCode, ms);
    const line = { method: req.method, route: label, status: res.statusCode, ms: Math.round(ms * 10) / 10, aborted: !res.writableFinished || undefined };
    if (QUIET_ROUTES.has(label)) requestLog.debug(line, 'http request');
    else requestLog.info(line, 'http request');
  });
  return requestLog;
}

/**
 * The `route` label of a request: a registered plain route's path, a single known tRPC procedure
 * (`/trpc/auth.verify`), or a fixed word. Paths a client invents never become labels.
 */
export function routeLabel(pathname: string, plainRoute: boolean, procedures: ReadonlySet<string>): string {
  if (pathname.startsWith('/trpc/')) {
    const called = pathname.slice('/trpc/'.length).split(',');
    if (called.length > 1) return '/trpc (batch)';
    return procedures.has(called[0]!) ? pathname : '/trpc (unknown)';
  }
  return plainRoute ? pathname : '(unmatched)';
}

/** The logger of a request being served (its lines carry the request id); `fallback` outside one. */
export function requestLogger(req: http.IncomingMessage, fallback: Logger): Logger {
  return requestLogs.get(req) ?? fallback;
}

export interface ReadinessDeps {
  db: Database;
  boss: PgBoss;
  /** How long the database may take to answer before the probe calls it unreachable. */
  timeoutMs?: number;
}

/** Whether pg-boss is running: true from now (call it once boss.start() has resolved) until it stops. */
function trackBossStarted(boss: PgBoss): () => boolean {
  let started = true;
  boss.once('stopped', () => {
    started = false;
  });
  return () => started;
}

async function databaseAnswers(db: Database, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([db.execute(sql`select 1`).then(() => true, () => false), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** GET /readyz and GET /metrics; `metrics` is the registry this server exposes. */
export function observabilityRoutes(deps: ReadinessDeps, metrics: Registry): Record<string, RouteHandler> {
  const bossStarted = trackBossStarted(deps.boss);
  return {
    'GET /readyz': async (_req, res) => {
      const database = (await databaseAnswers(deps.db, deps.timeoutMs ?? 2000)) ? 'reachable' : 'unreachable';
      const pgBoss = bossStarted() ? 'started' : 'stopped';
      const ready = database === 'reachable' && pgBoss === 'started';
      sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'unavailable', database, pgBoss });
    },
    'GET /metrics': async (_req, res) => {
      const text = await metrics.metrics();
      res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    },
  };
}
