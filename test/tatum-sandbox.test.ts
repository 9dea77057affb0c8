// The sandbox's own behaviour, over real HTTP: Tatum's ledger rules (no idempotency, index and
// address uniqueness, per-xpub counters), envelopes, knobs, and the webhook emitter (signature,
// retry schedule), checked with Tatum's documented verification code.
import { createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { addressFromXpub } from '../jobs/custody/hd.ts';
import { IncomingTransactionWebhook, type Account } from '../jobs/tatum/schemas.ts';
import { retryDelayMs, type WebhookAttemptEvent, type WebhookRecord } from '../jobs/tatum/sandbox/webhooks.ts';
import { startSandbox } from '../jobs/tatum/sandbox/server.ts';
import { startTestSandbox, startWebhookReceiver, TEST_XPUBS, type TestSandbox, type WebhookReceiver } from './helpers/sandbox.ts';

let sandbox: TestSandbox;
const receivers: WebhookReceiver[] = [];

beforeAll(async () => {
  sandbox = await startTestSandbox({ webhookCompression: 10_000 });
});
afterAll(() => sandbox.close());
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

async function receiver(status?: (n: number) => number) {
  const r = await startWebhookReceiver(status);
  receivers.push(r);
  return r;
}

/** Raw Tatum call: for asserting wire shapes the typed client would hide. */
function tatum(method: string, path: string, body?: unknown, apiKey = sandbox.apiKey) {
  return fetch(`${sandbox.url}${path}`, {
    method,
    headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Resolves when `predicate` holds for a webhook attempt (event-driven, no polling sleeps). */
function attempt(predicate: (e: WebhookAttemptEvent) => boolean, timeoutMs = 10_000): Promise<WebhookRecord> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sandbox.webhooks.off('attempt', listener);
      reject(new Error('no matching webhook attempt'));
    }, timeoutMs);
    const listener = (e: WebhookAttemptEvent) => {
      if (!predicate(e)) return;
      clearTimeout(timer);
      sandbox.webhooks.off('attempt', listener);
      resolve(e.record);
    };
    sandbox.webhooks.on('attempt', listener);
  });
}

describe('ledger rules', () => {
  it('is not idempotent: two identical creates make two accounts for one (updated) customer', async () => {
    const body = { currency: 'BTC', xpub: TEST_XPUBS.bitcoin, customer: { externalId: 'twice' }, accountNumber: 'same' };
    const first = (await (await tatum('POST', '/v3/ledger/account', body)).json()) as Account;
    const second = (await (await tatum('POST', '/v3/ledger/account', { ...body, customer: { externalId: 'twice', providerCountry: 'DE' } })).json()) as Account;
    expect(first.id).not.toBe(second.id);
    expect(first.customerId).toBe(second.customerId);
    expect(first).toMatchObject({ balance: { accountBalance: '0', availableBalance: '0' }, accountingCurrency: 'EUR' });
    expect(await sandbox.client().getCustomerByExternalId('twice')).toMatchObject({ providerCountry: 'DE', accountingCurrency: 'EUR' });
    expect(await sandbox.client().getAccountsByAccountNumber('same')).toHaveLength(2);
  });

  it('counts indexes per xpub from 1; tokens share the host xpub, an index once per currency', async () => {
    const client = sandbox.client();
    const xpub = TEST_XPUBS.tron;
    const [trx, usdt] = await client.createAccountsBatch([
      { currency: 'TRON', xpub },
      { currency: 'USDT_TRON', xpub },
    ]);
    const auto1 = await client.createDepositAddress(trx!.id);
    const auto2 = await client.createDepositAddress(usdt!.id);
    expect([auto1.derivationKey, auto2.derivationKey]).toEqual([1, 2]);
    expect(auto1.address).toBe(addressFromXpub('tron', xpub, 1));

    // The same index for the other currency on the same xpub is the same address, and allowed.
    const shared = await client.createDepositAddress(usdt!.id, 1);
    expect(shared.address).toBe(auto1.address);
    await expect(client.createDepositAddress(trx!.id, 1)).rejects.toMatchObject({ errorCode: 'address.index.used' });

    // After an explicit index, the counter continues above the highest one used.
    await client.createDepositAddress(trx!.id, 10);
    expect((await client.createDepositAddress(usdt!.id)).derivationKey).toBe(11);
  });

  it('a batch of addresses is all or nothing', async () => {
    const client = sandbox.client();
    const account = await client.createAccount({ currency: 'ETH', xpub: TEST_XPUBS.ethereum });
    const before = sandbox.counters().addresses;
    await expect(
      client.createDepositAddressesBatch([
        { accountId: account.id, derivationKey: 500 },
        { accountId: account.id, derivationKey: 500 },
      ]),
    ).rejects.toMatchObject({ errorCode: 'address.index.used' });
    expect(sandbox.counters().addresses).toBe(before);
    expect(await client.listDepositAddresses(account.id)).toEqual([]);
  });

  it('an account without xpub cannot generate addresses; index 0 is never an address', async () => {
    const client = sandbox.client();
    const bare = await client.createAccount({ currency: 'ETH' });
    await expect(client.createDepositAddress(bare.id, 1)).rejects.toMatchObject({ status: 403, errorCode: 'account.xpub.missing' });
    const account = await client.createAccount({ currency: 'ETH', xpub: TEST_XPUBS.ethereum });
    await expect(client.createDepositAddress(account.id, 0)).rejects.toMatchObject({ status: 403, errorCode: 'address.generation.failed' });
  });
});

describe('wire format', () => {
  it('401 for a missing or wrong key, echoing it like Tatum', async () => {
    const res = await tatum('GET', '/v3/subscription?pageSize=10', undefined, 'wrong-key');
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ statusCode: 401, errorCode: 'subscription.invalid', message: "Unable to find valid subscription for 'wrong-key'" });
  });

  it('400 validation.failed with class-validator style data[]', async () => {
    const res = await tatum('GET', '/v3/subscription?pageSize=500');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      statusCode: 400,
      errorCode: 'validation.failed',
      message: 'Request validation failed. Please see data for additional information.',
      data: [expect.objectContaining({ property: 'pageSize', value: '500', constraints: expect.any(Object) })],
    });
    expect((await tatum('POST', '/v3/ledger/account', { xpub: 'x' })).status).toBe(400);
  });

  it('204 with an empty body for PUT/DELETE, 404 for an unknown route', async () => {
    const res = await tatum('PUT', '/v3/subscription', { hmacSecret: 's3cret' });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    expect((await tatum('DELETE', '/v3/subscription')).status).toBe(204);
    expect((await tatum('GET', '/v3/nothing')).status).toBe(404);
    expect((await tatum('GET', '/v3/offchain/account/%E0%A4%A/address')).status).toBe(400);
  });

  it('429 with Retry-After beyond the configured rate, answered before the ledger', async () => {
    const limited = await startTestSandbox({ rateLimitRps: 2 });
    try {
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${limited.url}/v3/ledger/account`, {
          method: 'POST',
          headers: { 'x-api-key': limited.apiKey, 'content-type': 'application/json' },
          body: JSON.stringify({ currency: 'BTC' }),
        });
        statuses.push(res.status);
        if (res.status === 429) retryAfter = res.headers.get('retry-after');
      }
      expect(statuses).toEqual([200, 200, 429, 429]);
      expect(retryAfter).toBe('1');
      const counters = await limited.http.counters();
      expect(counters).toMatchObject({ accounts: 2, rateLimited: 2 });
    } finally {
      await limited.close();
    }
  });

  it('knobs change at runtime over HTTP and refuse nonsense', async () => {
    const bad = await sandbox.http.configure({ error500Rate: 2 });
    expect(bad.status).toBe(400);
    expect((await sandbox.http.configure({ typo: 1 })).status).toBe(400);
    const res = await sandbox.http.configure({ latencyMs: 5 });
    expect(await res.json()).toMatchObject({ latencyMs: 5 });
    sandbox.configure({ latencyMs: 0 });
  });

  it('faults follow the seed: the same seed replays the same faults', async () => {
    const outcomes = async () => {
      const faulty = await startSandbox({ port: 0, seed: 42, error500Rate: 0.5 });
      try {
        const statuses: number[] = [];
        for (let i = 0; i < 12; i++) {
          const res = await fetch(`${faulty.url}/v3/ledger/account`, {
            method: 'POST',
            headers: { 'x-api-key': faulty.apiKey, 'content-type': 'application/json' },
            body: JSON.stringify({ currency: 'LTC' }),
          });
          statuses.push(res.status);
        }
        return statuses;
      } finally {
        await faulty.close();
      }
    };
    const first = await outcomes();
    expect(first).toContain(500);
    expect(first).toContain(200);
    expect(await outcomes()).toEqual(first);
  });

  it('state lists every account with its addresses and subscriptions', async () => {
    const client = sandbox.client();
    const account = await client.createAccount({ currency: 'BSC', xpub: TEST_XPUBS.bsc });
    const address = await client.createDepositAddress(account.id, 3);
    const id = await client.createSubscription({ accountId: account.id, url: 'http://127.0.0.1:9/x' });
    const state = await sandbox.http.state();
    expect(state.accounts.find((a) => a.id === account.id)).toMatchObject({ addresses: [address], subscriptions: [{ id }] });
  });
});

describe('webhooks', () => {
  async function fundedAccount(currency: string, xpub: string, url: string) {
    const client = sandbox.client();
    const account = await client.createAccount({ currency, xpub });
    const address = await client.createDepositAddress(account.id);
    await client.createSubscription({ accountId: account.id, url });
    return { account, address };
  }

  it('credits a deposit and sends a payload signed the way Tatum documents', async () => {
    const secret = 'hmac-secret-for-webhook-tests';
    await sandbox.client().setWebhookHmac(secret);
    const hook = await receiver();
    const { account, address } = await fundedAccount('USDT', TEST_XPUBS.ethereum, hook.url);

    const res = await sandbox.http.deposit({ accountId: account.id, amount: '0.005' });
    expect(res.status).toBe(200);
    await sandbox.http.deposit({ accountId: account.id, amount: '12.0015', txId: 'ab'.repeat(32) });
    const [first, second] = await hook.waitFor(2);

    const payload = IncomingTransactionWebhook.parse(JSON.parse(first!.body.toString('utf8')));
    expect(payload).toMatchObject({ amount: '0.005', currency: 'USDT', accountId: account.id, to: address.address, subscriptionType: 'ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION' });
    expect(payload.from).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(payload.index).toBeUndefined();
    expect(JSON.parse(second!.body.toString('utf8'))).toMatchObject({ txId: 'ab'.repeat(32) });

    // Tatum's documented check, and the same over the raw bytes (compact JSON: identical).
    const header = first!.headers['x-payload-hash'];
    const documented = createHmac('sha512', secret).update(JSON.stringify(JSON.parse(first!.body.toString('utf8')))).digest('base64');
    expect(header).toBe(documented);
    expect(header).toBe(createHmac('sha512', secret).update(first!.body).digest('base64'));
    expect(first!.headers['content-type']).toBe('application/json');

    const credited = (await sandbox.http.state()).accounts.find((a) => a.id === account.id);
    expect(credited!.balance).toEqual({ accountBalance: '12.0065', availableBalance: '12.0065' });
  });

  it('UTXO payloads carry an output index and no sender; no header without a secret', async () => {
    await tatum('DELETE', '/v3/subscription');
    const hook = await receiver();
    const { account } = await fundedAccount('LTC', TEST_XPUBS.litecoin, hook.url);
    await sandbox.http.deposit({ accountId: account.id, amount: '1' });
    const [received] = await hook.waitFor(1);
    const payload = JSON.parse(received!.body.toString('utf8'));
    expect(payload.index).toBe(0);
    expect(payload).not.toHaveProperty('from');
    expect(received!.headers['x-payload-hash']).toBeUndefined();
  });

  it('retries a non-2xx answer on the compressed schedule, with the same bytes', async () => {
    const hook = await receiver((n) => (n === 0 ? 500 : 200));
    const { account } = await fundedAccount('BTC', TEST_XPUBS.bitcoin, hook.url);
    const before = sandbox.counters().webhooks;
    const delivered = attempt((e) => e.ok && e.record.url === hook.url);
    await sandbox.http.deposit({ accountId: account.id, amount: '0.1' });
    const record = await delivered;

    const [first, retry] = hook.received;
    expect(retry!.body.equals(first!.body)).toBe(true);
    expect(record).toMatchObject({ retryCount: 1, failed: false, response: { code: 200, networkError: false } });
    const after = sandbox.counters().webhooks;
    expect(after.failedAttempts - before.failedAttempts).toBe(1);
    expect(after.delivered - before.delivered).toBe(1);

    const listed = (await (await tatum('GET', '/v3/subscription/webhook?pageSize=50')).json()) as WebhookRecord[];
    expect(listed.find((w) => w.id === record.id)).toMatchObject({ type: 'INCOMING_BLOCKCHAIN_HOOK', retryCount: 1, failed: false });
  });

  it('gives up after the configured number of retries', async () => {
    sandbox.configure({ webhookRetries: 2 });
    try {
      const hook = await receiver(() => 503);
      const { account } = await fundedAccount('ETH', TEST_XPUBS.ethereum, hook.url);
      const before = sandbox.counters().webhooks;
      const last = attempt((e) => e.record.url === hook.url && e.record.retryCount === 2);
      await sandbox.http.deposit({ accountId: account.id, amount: '2' });
      const record = await last;
      expect(record).toMatchObject({ failed: true, response: { code: 503 }, nextTime: undefined });
      expect(hook.received).toHaveLength(3);
      expect(sandbox.counters().webhooks.abandoned - before.abandoned).toBe(1);
    } finally {
      sandbox.configure({ webhookRetries: 9 });
    }
  });

  it("follows Tatum's schedule: 15 s x 2.7925^n, divided by the compression", () => {
    expect(retryDelayMs(0, 1)).toBe(15_000);
    expect(Math.round(retryDelayMs(1, 1))).toBe(41_888);
    const total = Array.from({ length: 9 }, (_, n) => retryDelayMs(n, 1)).reduce((a, b) => a + b);
    expect(total / 3_600_000).toBeGreaterThan(23); // about a day from first to last attempt
    expect(retryDelayMs(3, 100)).toBeCloseTo(retryDelayMs(3, 1) / 100);
  });
});
