// The sandbox mailbox: the last code mailed to an address, read back from the newest email.send job.
// It lets a developer (and `npm run demo`) verify without a mail server; it exists in sandbox mode only.
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.ts';
import { codeOfEmailJob, emailJobSchema } from '../../jobs/mailer.ts';
import { QUEUES } from '../../jobs/queues.ts';
import type { AppServices } from '../trpc.ts';

export async function lastCodeSentTo({ db, config }: Pick<AppServices, 'db' | 'config'>, email: string): Promise<string | undefined> {
  // pgboss.job is the parent of every queue's partition; the newest job addressed to `email` wins.
  const [job] = await queryRows<{ data: unknown }>(db, sql`
    select data from pgboss.job
    where name = ${QUEUES.emailSend} and data->>'to' = ${email}
    order by created_on desc
    limit 1`);
  return job ? codeOfEmailJob(config, emailJobSchema.parse(job.data)) : undefined;
}
