// Whether an error means the database could not be reached or went away under the query (a restart,
// a failover, a network cut), as opposed to a query it refused. The first is nobody's mistake and
// passes: callers answer 503 ("retry shortly"), never a 500 or a 4xx.
//
// Drivers and ORMs wrap errors (drizzle's DrizzleQueryError, tRPC's TRPCError), so the whole
// `cause` chain is searched.

/** Node's socket errors when the server is not there. */
const SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * SQLSTATEs of an unreachable server: class 08 (connection exception), 57P01-57P03 (terminated by
 * an administrator or a crash, "the database system is starting up / shutting down"), 53300 (no
 * connection slot left).
 */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[123]|53300)$/;

/** 55000 is a broad class; this one is a database closed to connections (ALTER DATABASE ... ALLOW_CONNECTIONS false). */
const CLOSED_DATABASE = /is not currently accepting connections/;

/** node-postgres's own errors for a connection that failed or died (they carry no code). */
const DRIVER_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  for (let e = error; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (SOCKET_ERRORS.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return true;
    if (code === '55000' && CLOSED_DATABASE.test(e.message)) return true;
    if (DRIVER_MESSAGES.test(e.message)) return true;
  }
  return false;
}

/** What a client is told: no SQL, no host, just what happened and what to do. */
export const DATABASE_UNAVAILABLE_MESSAGE = 'The database is temporarily unavailable. Retry shortly.';
