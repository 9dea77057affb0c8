// The tatum.deposit-received job: the extension point for crediting. The webhook has already stored
// the deposit (and created this job in the same transaction); the job records that it was received.
// Crediting a balance would go here, keyed by the deposit id, so a retried job credits once.
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { queryRows, type Database } from '../db/client.ts';
import type { Logger } from './logger.ts';
import { recordDepositReceived } from './metrics.ts';

export const depositReceivedJob = z.object({ depositId: z.uuid() });
export type DepositReceivedJob = z.infer<typeof depositReceivedJob>;

export interface DepositDeps {
  db: Database;
}

interface ReceivedRow {
  reference: string;
  currency: string;
  amount: string;
  virtual_account_id: string;
}

/**
 * Marks the deposit `received`. A retry of an attempt that already did so is a no-op. `log` is the
 * worker's per-job logger, which already carries the job id and queue.
 */
export async function receiveDeposit(deps: DepositDeps, job: { data: unknown }, log: Logger): Promise<void> {
  const { depositId } = depositReceivedJob.parse(job.data);
  // Only a pending deposit moves, so a repeated job neither rewrites nor re-announces it.
  const [received] = await queryRows<ReceivedRow>(
    deps.db,
    sql`update deposits set status = 'received'
        where id = ${depositId} and status = 'pending'
        returning reference, currency, trim_scale(amount)::text as amount, virtual_account_id`,
  );
  if (received) {
    recordDepositReceived(received.currency);
    log.info({ depositId, ...received }, 'deposit received');
    return;
  }
  const [existing] = await queryRows<{ status: string }>(deps.db, sql`select status from deposits where id = ${depositId}`);
  // A job for a deposit that does not exist is a bug: fail it so it ends in the dead letter queue.
  if (!existing) throw new Error(`deposit ${depositId} does not exist`);
  log.info({ depositId, status: existing.status }, 'deposit already processed');
}
