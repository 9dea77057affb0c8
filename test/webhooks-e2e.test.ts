// Deposits end to end with the Tatum sandbox: a user registered, verified and provisioned by the real
// worker (which subscribes each account to our webhook URL and sets our HMAC secret on Tatum), a
// deposit credited in the sandbox, the signed webhook it sends, the row it leaves, the worker's job,
// and wallet.deposits. Then the same with the database down during delivery, where the sandbox's
// (compressed) retry schedule must land it exactly once.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEBHOOK_PATH } from '../jobs/config.ts';
import { prepareProvisioning } from '../jobs/provision-user.ts';
import { QUEUES } from '../jobs/queues.ts';
import type { TatumClient } from '../jobs/tatum/client.ts';
import type { WebhookAttemptEvent } from '../jobs/tatum/sandbox/webhooks.ts';
import { startWorker, type RunningWorker } from '../jobs/worker.ts';
import { startTestApp, type TestApp } from './helpers/app.ts';
import { eventually, setDatabaseAvailable } from './helpers/outage.ts';
import { startTestSandbox, type TestSandbox } from './helpers/sandbox.ts';
import { trpcClient } from './helpers/trpc.ts';

const SECRET = `whsec-${randomBytes(16).toString('hex')}`;

let app: TestApp;
let sandbox: TestSandbox;
let tatum: TatumClient;
let worker: RunningWorker;

beforeAll(async () => {
  // Tatum's retry gaps (15 s, 42 s, 1.9 min, ...) divided by 100: 150 ms, 420 ms, 1.2 s, ...
  sandbox = await startTestSandbox({ webhookCompression: 100 });
  app = await startTestApp({ TATUM_BASE_URL: sandbox.url, TATUM_MAX_RPS: '1000', TATUM_WEBHOOK_HMAC_SECRET: SECRET });
  // As at worker start: among other things, this sets our HMAC secret on Tatum.
  const provisioning = await prepareProvisioning(app.database.handle, app.services.config, app.services.log, {
    webhookUrl: `${app.url}${WEBHOOK_PATH}`,
  });
  worker = await startWorker({ ...app.services, provisioning }, { queues: [QUEUES.provision, QUEUES.depositReceived] });
  tatum = sandbox.client();
  sandbox.webhooks.on('attempt', ({ record, ok }: WebhookAttemptEvent) => {
    const { accountId, reference } = record.data as { accountId: string; reference: string };
    attempts.push({ accountId, reference, retryCount: record.retryCount, ok, code: record.response.code });
  });
});
afterAll(async () => {
  await worker?.stop(5000);
  await app?.stop();
  await sandbox?.close();
});

/** Registers, verifies and waits for provisioning; returns the session and the BTC account's Tatum id. */
async function provisionedUser(email: string): Promise<{ token: string; tatumAccountId: string }> {
  const anonymous = trpcClient(app.url);
  await anonymous.auth.register.mutate({ email });
  const admin = trpcClient(app.url, app.services.config.ADMIN_TOKEN);
  const mail = await eventually(() => admin.auth.sandboxMailbox.query({ email }).catch(() => undefined), (m) => m !== undefined);
  const { sessionToken } = await anonymous.auth.verify.mutate({ email, code: mail!.code });
  const accounts = await eventually(
    () => trpcClient(app.url, sessionToken).wallet.accounts.query(),
    (list) => list.length > 0 && list.every((a) => a.status === 'ready'),
    30_000,
  );
  const btc = accounts.find((a) => a.currency === 'BTC');
  expect(btc?.status).toBe('ready');
  return { token: sessionToken, tatumAccountId: btc!.tatumAccountId! };
}

interface Attempt {
  accountId: string;
  reference: string;
  retryCount: number;
  ok: boolean;
  code: number | undefined;
}

/** Every delivery attempt the sandbox made, as it was at that moment (the record changes later). */
const attempts: Attempt[] = [];

async function attemptsUntil(accountId: string, done: (mine: Attempt[]) => boolean): Promise<Attempt[]> {
  const mine = () => Promise.resolve(attempts.filter((a) => a.accountId === accountId));
  return eventually(mine, done, 20_000);
}

async function depositRows(reference: string) {
  const { rows } = await app.database.query<{ status: string; amount: string }>(
    `select status, trim_scale(amount)::text as amount from deposits where reference = $1`,
    [reference],
  );
  return rows;
}

async function jobCount(): Promise<number> {
  const { rows } = await app.database.query<{ n: number }>(`select count(*)::int as n from pgboss.job where name = $1`, [QUEUES.depositReceived]);
  return rows[0]!.n;
}

describe('a deposit credited at Tatum', () => {
  it('arrives as a signed webhook, is stored once, processed, and listed in wallet.deposits', async () => {
    const user = await provisionedUser('e2e@example.com');
    const res = await sandbox.http.deposit({ accountId: user.tatumAccountId, amount: '0.00123456' });
    expect(res.status).toBe(200);
    const { reference } = ((await res.json()) as { payload: { reference: string } }).payload;

    const delivered = await attemptsUntil(user.tatumAccountId, (mine) => mine.length > 0);
    expect(delivered).toEqual([{ accountId: user.tatumAccountId, reference, retryCount: 0, ok: true, code: 200 }]);
    expect(await depositRows(reference)).toMatchObject([{ amount: '0.00123456' }]);
    expect(await eventually(() => depositRows(reference), ([row]) => row?.status === 'received')).toMatchObject([{ status: 'received' }]);

    const page = await trpcClient(app.url, user.token).wallet.deposits.query({ limit: 10 });
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({ reference, currency: 'BTC', amount: '0.00123456', status: 'received', outputIndex: 0 });
    expect(page.nextCursor).toBeNull();
  });

  it('while our database is down is answered 5xx, and the sandbox\'s retry lands it once after it returns', async () => {
    const user = await provisionedUser('outage@example.com');
    const jobsBefore = await jobCount();
    let reference: string;
    await setDatabaseAvailable(app.database.name, false);
    try {
      const res = await sandbox.http.deposit({ accountId: user.tatumAccountId, amount: '2.5' });
      reference = ((await res.json()) as { payload: { reference: string } }).payload.reference;
      const [failed] = await attemptsUntil(user.tatumAccountId, (mine) => mine.length > 0);
      expect(failed).toMatchObject({ ok: false, code: 503, retryCount: 0 });
    } finally {
      await setDatabaseAvailable(app.database.name, true);
    }

    // Retries continue on the sandbox's schedule until one is answered 2xx, and then stop.
    const mine = await attemptsUntil(user.tatumAccountId, (all) => all.some((a) => a.ok));
    expect(mine.filter((a) => a.ok)).toHaveLength(1);
    expect(mine.at(-1)).toMatchObject({ ok: true, code: 200 });
    expect(mine.at(-1)!.retryCount).toBeGreaterThanOrEqual(1);

    expect(await depositRows(reference)).toHaveLength(1);
    expect(await jobCount()).toBe(jobsBefore + 1);
    const page = await trpcClient(app.url, user.token).wallet.deposits.query({});
    expect(page.items.map((d) => [d.reference, d.amount])).toEqual([[reference, '2.5']]);
  });

  it('signed with a secret other than ours is refused with 401 and leaves nothing', async () => {
    const user = await provisionedUser('forged@example.com');
    await tatum.setWebhookHmac(`${SECRET}-not-ours`);
    sandbox.configure({ webhookRetries: 0 });
    try {
      const res = await sandbox.http.deposit({ accountId: user.tatumAccountId, amount: '1' });
      const { reference } = ((await res.json()) as { payload: { reference: string } }).payload;
      const mine = await attemptsUntil(user.tatumAccountId, (all) => all.length > 0);
      expect(mine).toMatchObject([{ ok: false, code: 401 }]);
      expect(await depositRows(reference)).toEqual([]);
    } finally {
      await tatum.setWebhookHmac(SECRET);
      sandbox.configure({ webhookRetries: 9 });
    }
  });
});
