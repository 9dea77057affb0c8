// Every ready query in db/sql/inspect.sql runs, exactly as written (psql's :'email' bound as $1),
// against a database holding a verified user whose provisioning failed into the dead letter queue;
// the views answer what an operator would ask.
import { readFileSync } from 'node:fs';
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '../jobs/queues.ts';
import { createTestDatabase } from './helpers/database.ts';
import { startQueues } from './helpers/operations.ts';

const FILE = new URL('../db/sql/inspect.sql', import.meta.url);
const EMAIL = 'ops.user@example.com';

/** The file's queries by name: the text after each `-- name: x` line up to the next one. */
function queries(): Map<string, string> {
  const [, ...chunks] = readFileSync(FILE, 'utf8').split(/^-- name: /m);
  return new Map(chunks.map((chunk) => [chunk.slice(0, chunk.indexOf('\n')).trim(), chunk.slice(chunk.indexOf('\n') + 1)]));
}

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let boss: PgBoss;
let failedJob: string;

async function run(name: string): Promise<Record<string, unknown>[]> {
  const text = queries().get(name);
  if (text === undefined) throw new Error(`no query ${name} in inspect.sql`);
  const bound = text.replaceAll(":'email'", '$1');
  return (await database.query(bound, bound === text ? [] : [EMAIL])).rows;
}

beforeAll(async () => {
  database = await createTestDatabase();
  boss = await startQueues(database);
  const { rows } = await database.query<{ id: string }>('insert into users (email, email_verified_at) values ($1, now()) returning id', [EMAIL]);
  const userId = rows[0]!.id;
  await database.query(
    `insert into virtual_accounts (user_id, currency, account_number, status, last_error) values ($1, 'BTC', $2, 'failed', 'Tatum answered 500')`,
    [userId, `test-${userId}`],
  );
  failedJob = (await boss.send(QUEUES.provision, { userId }, { retryLimit: 0, singletonKey: userId }))!;
  const [job] = await boss.fetch(QUEUES.provision);
  expect(job?.id).toBe(failedJob);
  await boss.fail(QUEUES.provision, failedJob, { message: 'rate limited by Tatum (test)' });
});
afterAll(async () => {
  await boss.stop({ graceful: false });
  await database.drop();
});

describe('db/sql/inspect.sql', () => {
  it.each([...queries().keys()])('%s runs', async (name) => {
    await expect(run(name)).resolves.toBeInstanceOf(Array);
  });

  it('holds the queries the README names', () => {
    expect([...queries().keys()]).toEqual(
      expect.arrayContaining(['queue-overview', 'stuck-active-jobs', 'dead-letters', 'user-accounts', 'user-job-history']),
    );
  });

  it('queue-overview counts the failed job and its dead letter against the provisioning queue', async () => {
    const rows = await run('queue-overview');
    expect(rows).toEqual(
      expect.arrayContaining([
        { queue: QUEUES.provision, state: 'failed', count: 1 },
        { queue: QUEUES.provision, state: 'dead_lettered', count: 1 },
      ]),
    );
  });

  it('dead-letters shows the failed job with its error', async () => {
    const rows = await run('dead-letters');
    expect(rows).toEqual([expect.objectContaining({ queue: QUEUES.provision, failed_job_id: failedJob, attempts: 1, error: 'rate limited by Tatum (test)' })]);
  });

  it("user-accounts shows one user's currencies: the account's own error, else the dead-lettered job's", async () => {
    const rows = await run('user-accounts');
    expect(rows).toHaveLength(9);
    expect(rows.find((r) => r.currency === 'BTC')).toMatchObject({ status: 'failed', last_error: 'Tatum answered 500' });
    expect(rows.find((r) => r.currency === 'ETH')).toMatchObject({
      status: 'not_started',
      last_error: 'rate limited by Tatum (test)',
      job_queue: QUEUES.provisionDead,
    });
  });

  it("user-job-history lists the user's job and its dead letter in order", async () => {
    const rows = await run('user-job-history');
    expect(rows.map((r) => [r.queue, r.state])).toEqual([
      [QUEUES.provision, 'failed'],
      [QUEUES.provisionDead, 'created'],
    ]);
  });
});
