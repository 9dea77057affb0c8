// The tRPC instance: superjson on the wire, a context built once per process and handed to every
// request, zod errors turned into a 400 whose message a person can read, and an unreachable
// database into a 503.
import { createHash, timingSafeEqual } from 'node:crypto';
import { initTRPC, TRPCError } from '@trpc/server';
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc';
import superjson from 'superjson';
import { ZodError, z } from 'zod';
import type { Database } from '../db/client.ts';
import { DATABASE_UNAVAILABLE_MESSAGE, isDatabaseUnavailable } from '../db/unavailable.ts';
import type { Logger } from '../jobs/logger.ts';
import type { RuntimeConfig } from '../jobs/secrets.ts';
import type { StatsCache } from '../jobs/stats-cache.ts';
import type { PgBoss } from 'pg-boss';
import { userOfSession } from './auth/sessions.ts';

/** What every procedure can reach: built once at start (see server/app.ts). */
export interface AppServices {
  config: RuntimeConfig;
  db: Database;
  boss: PgBoss;
  log: Logger;
  /** Queue stats, cached (through Redis when configured) for QUEUE_STATS_CACHE_MS. */
  stats: StatsCache;
}

export interface Context extends AppServices {
  /** The raw `Authorization: Bearer` value, if any; procedures decide what it must be. */
  bearerToken: string | undefined;
}

export function bearerTokenOf(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const match = value?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

const t = initTRPC.context<Context>().create({
  transformer: superjson,
  errorFormatter({ shape, error }) {
    const zodError = error.cause instanceof ZodError ? error.cause : undefined;
    // A database that cannot be reached is neither a bug nor the client's mistake: 503, retry shortly.
    const unavailable = error.code === 'INTERNAL_SERVER_ERROR' && isDatabaseUnavailable(error.cause);
    return {
      ...shape,
      ...(unavailable ? { code: TRPC_ERROR_CODES_BY_KEY.SERVICE_UNAVAILABLE } : {}),
      message: unavailable
        ? DATABASE_UNAVAILABLE_MESSAGE
        : zodError
          ? z.prettifyError(zodError)
          : // An unexpected error's text (a failed query with its parameters) is for the log, not the client.
            error.code === 'INTERNAL_SERVER_ERROR'
            ? 'Internal server error; it has been logged.'
            : shape.message,
      data: {
        ...shape.data,
        ...(unavailable ? { code: 'SERVICE_UNAVAILABLE' as const, httpStatus: 503 } : {}),
        // Stack traces are for logs, not clients.
        stack: undefined,
        zodError: zodError ? z.flattenError(zodError) : undefined,
      },
    };
  },
});

export const router = t.router;
export const publicProcedure = t.procedure;
export const middleware = t.middleware;
export const createCallerFactory = t.createCallerFactory;

/** Compares secrets by their digests, so neither length nor content leaks through timing. */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * Procedures for operators: `Authorization: Bearer $ADMIN_TOKEN`, required everywhere but the embedded
 * sandbox (`npm start` with no DATABASE_URL and no TATUM_API_KEY), a single-developer setup on localhost.
 */
export const adminProcedure = t.procedure.use(({ ctx, next }) => {
  const embeddedSandbox = ctx.config.mode === 'sandbox' && ctx.config.database === 'pglite';
  if (embeddedSandbox) return next();
  if (ctx.bearerToken === undefined || !sameSecret(ctx.bearerToken, ctx.config.ADMIN_TOKEN)) {
    throw new TRPCError({ code: 'UNAUTHORIZED', message: 'This procedure requires the admin token (Authorization: Bearer <ADMIN_TOKEN>).' });
  }
  return next();
});

/** Procedures for a signed-in user: `Authorization: Bearer <session token>` from auth.verify. */
export const userProcedure = t.procedure.use(async ({ ctx, next }) => {
  const user = ctx.bearerToken === undefined ? undefined : await userOfSession(ctx.db, ctx.bearerToken);
  if (!user) {
    throw new TRPCError({ code: 'UNAUTHORIZED', message: 'This procedure requires a session (Authorization: Bearer <sessionToken from auth.verify>).' });
  }
  return next({ ctx: { user } });
});
