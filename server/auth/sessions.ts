// Sessions: a random 32-byte token handed to the client once; the database keeps only its SHA-256,
// so a leaked table cannot be replayed. (A plain hash suffices: the token has 256 bits of entropy.)
import { createHash, randomBytes } from 'node:crypto';
import { and, eq, gt, sql } from 'drizzle-orm';
import type { Executor } from '../../db/client.ts';
import { sessions, users } from '../../db/schema.ts';

export const SESSION_TTL_MS = 30 * 24 * 60 * 60 * 1000;

export interface SessionUser {
  id: string;
  email: string;
}

function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Creates a session and returns its token; the only time the token exists outside the client. */
export async function createSession(db: Executor, userId: string): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await db.insert(sessions).values({
    userId,
    tokenHash: tokenHash(token),
    expiresAt: sql`now() + ${SESSION_TTL_MS}::float8 * interval '1 millisecond'`,
  });
  return token;
}

/** The user a live session token belongs to, or undefined. */
export async function userOfSession(db: Executor, token: string): Promise<SessionUser | undefined> {
  const [row] = await db
    .select({ id: users.id, email: users.email })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(and(eq(sessions.tokenHash, tokenHash(token)), gt(sessions.expiresAt, sql`now()`)))
    .limit(1);
  return row;
}
