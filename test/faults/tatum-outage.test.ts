// Tatum outage: for 60 s every Tatum route answers 500 (the sandbox's error500Rate = 1 on all its
// routes) while users verify. Provisioning jobs retry (the client retries each call, pg-boss each
// job) and, with two attempts per job, some end in the dead letter queue with their accounts
// `failed`. When Tatum recovers nobody acts: the per-minute reconcile finds the incomplete users and
// every one of them ends ready, with nothing duplicated or orphaned on Tatum.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../jobs/tatum/sandbox/ledger.ts';
import { tatumRoutes } from '../../jobs/tatum/sandbox/routes.ts';
import { WebhookSender } from '../../jobs/tatum/sandbox/webhooks.ts';
import { count, databaseNow, enabledCurrencies, expectProvisionedExactlyOnce, inParallel, readyAccounts, seedUnverifiedUsers, startStack, verifyRequest, waitUntil, type Stack } from './stack.ts';

const OUTAGE_MS = 60_000;
const HEALTHY_USERS = 10;
const OUTAGE_USERS = 40;

/** Every Tatum route the sandbox serves, as fault keys ('METHOD /template'). */
const EVERY_TATUM_ROUTE = tatumRoutes(new Ledger(), new WebhookSender(() => ({ timeoutMs: 1, retries: 0, compression: 1 }), () => undefined)).map(
  (route) => `${route.method} ${route.template}`,
);

let stack: Stack;

beforeAll(async () => {
  // Two attempts per job: a job started early in the outage spends both inside it and dead-letters.
  stack = await startStack({ scenario: 'tatum-outage', env: { QUEUE_ATTEMPTS: '2' } });
});
afterAll(async () => {
  await stack?.stop();
});

describe('a 60 s Tatum outage', () => {
  it('retries, dead-letters some jobs, and after recovery the reconcile schedule heals every user unattended', async () => {
    const currencies = await enabledCurrencies(stack);
    const healthy = await seedUnverifiedUsers(stack, 'before', HEALTHY_USERS);
    for (const email of healthy) expect((await verifyRequest(stack, email)).status).toBe(200);
    await waitUntil('users before the outage ready', () => readyAccounts(stack), (n) => n === HEALTHY_USERS * currencies, 60_000);

    const during = await seedUnverifiedUsers(stack, 'during', OUTAGE_USERS);
    const outageStartedAt = await databaseNow(stack);
    stack.sandbox.configure({ error500Rate: 1, faultRoutes: EVERY_TATUM_ROUTE });
    const outageStarted = performance.now();
    // Verification needs no Tatum: it commits the user and the job, and answers at once.
    const answers = await inParallel(during, 8, (email) => verifyRequest(stack, email));
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    await sleep(OUTAGE_MS - (performance.now() - outageStarted));

    const deadLettered = await count(
      stack,
      `select count(distinct data->>'userId')::int as n from pgboss.job where name = 'tatum.create-virtual-account.dead'`,
    );
    const retried = await count(stack, `select count(*)::int as n from pgboss.job where name = 'tatum.create-virtual-account' and retry_count > 0`);
    const failedAccounts = await count(stack, `select count(*)::int as n from virtual_accounts where status = 'failed'`);
    expect(retried).toBeGreaterThan(0);
    expect(deadLettered).toBeGreaterThan(0);
    expect(failedAccounts).toBeGreaterThan(0);
    expect(await readyAccounts(stack)).toBe(HEALTHY_USERS * currencies);
    const served500 = stack.sandbox.counters().faults.error500;

    stack.sandbox.configure({ error500Rate: 0 });
    const recovered = performance.now();
    const total = (HEALTHY_USERS + OUTAGE_USERS) * currencies;
    // Up to a minute until the next sweep, then provisioning itself.
    await waitUntil('every account ready after the outage', () => readyAccounts(stack), (n) => n === total, 150_000);
    const healSeconds = (performance.now() - recovered) / 1000;

    // The sweep, not a person, brought the dead-lettered users back: verify made one job per user,
    // retries reuse it, so each such user's later completed job is one the reconcile enqueued.
    const unhealed = await count(
      stack,
      `select count(*)::int as n
       from (select data->>'userId' as user_id, min(created_on) as dead_at
             from pgboss.job where name = 'tatum.create-virtual-account.dead' group by 1) dead
       where not exists (select 1 from pgboss.job j
                         where j.name = 'tatum.create-virtual-account' and j.data->>'userId' = dead.user_id
                           and j.state = 'completed' and j.created_on > dead.dead_at)`,
    );
    expect(unhealed).toBe(0);
    const sweeps = await count(
      stack,
      `select count(*)::int as n from pgboss.job
       where name = 'tatum.reconcile' and state = 'completed' and created_on > $1`,
      [outageStartedAt],
    );
    expect(sweeps).toBeGreaterThan(0);
    await expectProvisionedExactlyOnce(stack, HEALTHY_USERS + OUTAGE_USERS);

    console.info(
      `Tatum outage: ${OUTAGE_MS / 1000} s of 500s on every route (${served500} served) with ${OUTAGE_USERS} users verifying into it: ` +
        `${retried} jobs retried, ${deadLettered} users dead-lettered (${failedAccounts} accounts failed); ` +
        `all ${HEALTHY_USERS + OUTAGE_USERS} users ready ${healSeconds.toFixed(1)} s after recovery, ${sweeps} reconcile sweeps ran since the outage began`,
    );
  });
});
