// auth.verify: check the code, mark the user verified, open a session and schedule provisioning, in
// ONE transaction. Either all of it commits or none of it: no verified user without a provisioning
// job, no job without a verified user. Only a wrong guess writes anything on failure (its attempt).
import { TRPCError } from '@trpc/server';
import { eq, sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.ts';
import { verificationCodes } from '../../db/schema.ts';
import { bossDb } from '../../jobs/boss.ts';
import { QUEUES, type ProvisionJob } from '../../jobs/queues.ts';
import type { AppServices } from '../trpc.ts';
import { codeMatches, MAX_ATTEMPTS } from './codes.ts';
import { createSession, newSession, SESSION_EXPIRES_AT } from './sessions.ts';

export interface VerifyResult {
  userId: string;
  sessionToken: string;
  /** The provisioning job scheduled by this call; null when the user was already verified. */
  jobId: string | null;
}

// The transaction commits what a refusal must keep (a wrong guess's attempt), then the error is thrown.
type Outcome = { ok: true; result: VerifyResult } | { ok: false; error: TRPCError };

const refuse = (code: TRPCError['code'], message: string): Outcome => ({ ok: false, error: new TRPCError({ code, message }) });
const WRONG_CODE = 'Wrong code.';

export async function verify({ db, boss, config }: Pick<AppServices, 'db' | 'boss' | 'config'>, input: { email: string; code: string }): Promise<VerifyResult> {
  const outcome = await db.transaction(async (tx): Promise<Outcome> => {
    // The user row lock serialises every verification of one user: of many concurrent calls with the
    // right code, one verifies and schedules the job; the others then find the user verified. It also
    // guards the code row, which register and verify only ever change while holding it.
    const [user] = await queryRows<{ id: string; verified: boolean; code_hash: string | null; attempts: number; expired: boolean }>(tx, sql`
      select u.id, u.email_verified_at is not null as verified, c.code_hash, c.attempts, c.expires_at <= now() as expired
      from users u left join verification_codes c on c.user_id = u.id
      where u.email = ${input.email}
      for update of u`);
    // An unknown address, or one without a code, gets the wrong-code answer: verify does not reveal who registered.
    if (!user || user.code_hash === null) return refuse('UNAUTHORIZED', WRONG_CODE);
    if (user.attempts >= MAX_ATTEMPTS) {
      return refuse('TOO_MANY_REQUESTS', `Too many wrong attempts: this code no longer works. Request a new one with auth.register.`);
    }
    if (user.expired) return refuse('BAD_REQUEST', 'This code has expired. Request a new one with auth.register.');
    if (!codeMatches(config, user.id, input.code, user.code_hash)) {
      await tx
        .update(verificationCodes)
        .set({ attempts: sql`${verificationCodes.attempts} + 1` })
        .where(eq(verificationCodes.userId, user.id));
      const left = MAX_ATTEMPTS - user.attempts - 1;
      return refuse('UNAUTHORIZED', `${WRONG_CODE} ${left === 0 ? 'No attempts left: request a new code with auth.register.' : `${left} attempt(s) left.`}`);
    }

    // The code stays until it expires: it is what lets a repeated verify (a retry, or the losers of a
    // race) prove itself and get a session, without a second verification or a second job.
    if (user.verified) return { ok: true, result: { userId: user.id, sessionToken: await createSession(tx, user.id), jobId: null } };

    // One statement for both writes: every round trip inside the transaction is time the row lock is held.
    const session = newSession();
    await tx.execute(sql`
      with verified as (update users set email_verified_at = now() where id = ${user.id})
      insert into sessions (user_id, token_hash, expires_at) values (${user.id}, ${session.tokenHash}, ${SESSION_EXPIRES_AT})`);
    const job: ProvisionJob = { userId: user.id };
    // The queue is `exclusive` per singletonKey; a user who is only now verified has no job to collide
    // with, and should one exist all the same, the verification must not commit without its own job.
    const jobId = await boss.send(QUEUES.provision, job, { db: bossDb(tx), singletonKey: user.id });
    if (!jobId) throw new Error('the provisioning job was not created');
    return { ok: true, result: { userId: user.id, sessionToken: session.token, jobId } };
  });
  if (!outcome.ok) throw outcome.error;
  return outcome.result;
}
