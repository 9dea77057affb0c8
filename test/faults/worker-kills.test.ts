// Worker kills: users verify while, every ~2 s, a random worker process is SIGKILLed (mid-job, mid-
// Tatum-call, mid-start: wherever it is) and a new one started in its place. Afterwards every user
// converges to ready, Tatum holds exactly one account, address and subscription per (user, currency),
// all known to our database, and no derivation index was handed out twice. A killed worker's job
// comes back through pg-boss's heartbeat (about 40 s); the per-minute reconcile is the backstop.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../jobs/tatum/sandbox/knobs.ts';
import { count, enabledCurrencies, expectProvisionedExactlyOnce, inParallel, readyAccounts, seedUnverifiedUsers, startStack, verifyRequest, waitUntil, WORKERS, type Stack } from './stack.ts';

// The 300 users: about a minute for the whole scenario on this 2-core machine.
const USERS = 300;
const KILL_EVERY_MS = 2000;
const KILLS = 30;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ scenario: 'worker-kills' });
});
afterAll(async () => {
  await stack?.stop();
});

describe('workers SIGKILLed every 2 s', () => {
  it(`${USERS} verified users all converge to ready with nothing duplicated or orphaned on Tatum`, async () => {
    const emails = await seedUnverifiedUsers(stack, 'killed', USERS);
    const started = performance.now();

    const random = seededRandom(2);
    let kills = 0;
    let killsMidJob = 0;
    const killer = (async () => {
      while (kills < KILLS) {
        await sleep(KILL_EVERY_MS);
        const slot = Math.floor(random() * WORKERS);
        if ((await count(stack, `select count(*)::int as n from pgboss.job where name = 'tatum.create-virtual-account' and state = 'active'`)) > 0) killsMidJob += 1;
        await stack.workers[slot]!.kill('SIGKILL');
        kills += 1;
        stack.startWorker(slot);
      }
    })();
    const answers = await inParallel(emails, 8, (email) => verifyRequest(stack, email));
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    const verifiedAt = performance.now();
    await killer;
    const killsEndedAt = performance.now();
    const readyWhenKillsEnded = await readyAccounts(stack);
    await Promise.all(stack.workers.map((w) => w.ready));

    const expected = USERS * (await enabledCurrencies(stack));
    await waitUntil('every account ready', () => readyAccounts(stack), (n) => n === expected, 240_000);
    const convergedAt = performance.now();

    await expectProvisionedExactlyOnce(stack, USERS);
    // The kills did interrupt jobs: some ran more than once.
    const retried = await count(stack, `select count(*)::int as n from pgboss.job where name = 'tatum.create-virtual-account' and retry_count > 0`);
    expect(retried).toBeGreaterThan(0);
    for (const worker of stack.workers) expect(worker.child.exitCode).toBeNull();
    // Lookups happen only when an interrupted attempt may have created something on Tatum.
    const { requests } = stack.sandbox.counters();
    const lookups = ['GET /v3/ledger/account', 'GET /v3/offchain/account/:id/address', 'GET /v3/subscription']
      .flatMap((route) => Object.values(requests[route] ?? {}))
      .reduce((a, b) => a + b, 0);

    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.info(
      `worker kills: ${USERS} users, ${kills} SIGKILLs + restarts every ${KILL_EVERY_MS / 1000} s over ${s(killsEndedAt - started)} ` +
        `(${killsMidJob} while provisioning jobs were running); ` +
        `verifies done after ${s(verifiedAt - started)}; ${readyWhenKillsEnded}/${expected} accounts ready when the kills stopped; ` +
        `all ready ${s(convergedAt - killsEndedAt)} later (${s(convergedAt - started)} in all); ${retried} jobs ran more than once, ` +
        `${lookups} Tatum lookups for what an interrupted attempt may have created`,
    );
  });
});
