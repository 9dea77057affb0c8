// auth.register: create the user (or find the unverified one), issue a fresh code, and enqueue the
// mail carrying it, all in one transaction: a code is never stored without its mail, nor mailed
// without being stored.
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.ts';
import { verificationCodes } from '../../db/schema.ts';
import { verificationEmailJob } from '../../jobs/mailer.ts';
import { bossDb } from '../../jobs/boss.ts';
import { QUEUES } from '../../jobs/queues.ts';
import type { AppServices } from '../trpc.ts';
import { CODE_TTL_MS, generateCode, hashCode } from './codes.ts';

export async function register({ db, boss, config }: Pick<AppServices, 'db' | 'boss' | 'config'>, email: string): Promise<{ userId: string }> {
  return db.transaction(async (tx) => {
    // Inserts the user, or touches the existing row so it is returned and locked: two registrations
    // of one address take turns, and the later one's code is the one that counts.
    const [user] = await queryRows<{ id: string; verified: boolean }>(tx, sql`
      insert into users (email) values (${email})
      on conflict (email) do update set email = excluded.email
      returning id, email_verified_at is not null as verified`);
    // A verified address gets the same answer and no mail, so the answer reveals nothing.
    if (user!.verified) return { userId: user!.id };

    const code = generateCode();
    const fresh = {
      codeHash: hashCode(config, user!.id, code),
      attempts: 0,
      expiresAt: sql`now() + ${CODE_TTL_MS}::float8 * interval '1 millisecond'`,
      createdAt: sql`now()`,
    };
    // One live code per user: a new one replaces the old, with a fresh attempt budget.
    await tx
      .insert(verificationCodes)
      .values({ userId: user!.id, ...fresh })
      .onConflictDoUpdate({ target: verificationCodes.userId, set: fresh });
    await boss.send(QUEUES.emailSend, verificationEmailJob(config, email, code), { db: bossDb(tx) });
    return { userId: user!.id };
  });
}
