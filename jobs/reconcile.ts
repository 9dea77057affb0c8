// Self-healing: provisioning is "make this user complete", so any verified user who is not complete
// (a currency enabled later, a job that dead-lettered, an account without subscription) is simply
// enqueued again. The scheduled sweep and `npm run provision:backfill` both use this (pitfall #2).
import { sql } from 'drizzle-orm';
import type { PgBoss } from 'pg-boss';
import { queryRows, type Database } from '../db/client.ts';
import { QUEUES, type ProvisionJob } from './queues.ts';

/**
 * A verified user `u` missing an account for an enabled currency, or holding one that is not ready
 * or has no subscription.
 */
const isIncomplete = sql`
  u.email_verified_at is not null
  and (
    exists (
      select 1 from wallet_currencies c
      where c.enabled
        and not exists (select 1 from virtual_accounts va where va.user_id = u.id and va.currency = c.code))
    or exists (
      select 1 from virtual_accounts va
      join wallet_currencies c on c.code = va.currency and c.enabled
      where va.user_id = u.id
        and (va.status <> 'ready'
             or not exists (select 1 from webhook_subscriptions ws where ws.virtual_account_id = va.id))))`;

/** Incomplete users in id order after `after` (keyset pagination). */
export async function findIncompleteUsers(db: Database, after: string | null, limit: number): Promise<string[]> {
  const rows = await queryRows<{ id: string }>(db, sql`
    select u.id from users u
    where ${isIncomplete} and (${after}::uuid is null or u.id > ${after}::uuid)
    order by u.id
    limit ${limit}`);
  return rows.map((r) => r.id);
}

export async function countIncompleteUsers(db: Database): Promise<number> {
  const [row] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from users u where ${isIncomplete}`);
  return row?.n ?? 0;
}

/**
 * Enqueues one provisioning job per user. The singleton key is the user id, so a user who already
 * has a job waiting or running gets no second one.
 */
export async function enqueueProvisioning(boss: PgBoss, userIds: string[]): Promise<void> {
  if (userIds.length === 0) return;
  await boss.insert(
    QUEUES.provision,
    userIds.map((userId) => ({ data: { userId } satisfies ProvisionJob, singletonKey: userId })),
  );
}

/** Walks every incomplete verified user in pages, enqueuing each page; reports progress per page. */
export async function enqueueIncompleteUsers(
  db: Database,
  boss: PgBoss,
  options: { batchSize?: number; onBatch?: (enqueuedSoFar: number) => void } = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 500;
  let after: string | null = null;
  let total = 0;
  for (;;) {
    const userIds = await findIncompleteUsers(db, after, batchSize);
    if (userIds.length === 0) return total;
    await enqueueProvisioning(boss, userIds);
    total += userIds.length;
    after = userIds.at(-1)!;
    options.onBatch?.(total);
  }
}
