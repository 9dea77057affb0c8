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

/** A fresh token and the hash the database keeps of it. */
export function newSession(): { token: string; tokenHash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, tokenHash: tokenHash(token) };
}

export const SESSION_EXPIRES_AT = sql`now() + ${SESSION_TTL_MS}::float8 * interval '1 millisecond'`;

/** Creates a session and returns its token; the only time the token exists outside the client. */
export async function createSession(db: Executor, userId: string): Promise<string> {
  const { token, tokenHash } = newSession();
  await db.insert(sessions).values({ userId, tokenHash, expiresAt: SESSION_EXPIRES_AT });
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
