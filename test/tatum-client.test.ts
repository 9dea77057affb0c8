// The Tatum client against the sandbox over real HTTP: shapes, every error Tatum answers, and the
// retry policy (what is retried, what is surfaced as "maybe created" for the caller to reconcile).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isMaybeCreated, isNotFound, TatumError } from '../jobs/tatum/errors.ts';
import type { TatumRequestEvent } from '../jobs/tatum/client.ts';
import { addressFromXpub } from '../jobs/custody/hd.ts';
import { CREATE_ROUTES } from '../jobs/tatum/sandbox/knobs.ts';
import { startTestSandbox, TEST_XPUBS, type TestSandbox } from './helpers/sandbox.ts';

let sandbox: TestSandbox;

beforeAll(async () => {
  sandbox = await startTestSandbox();
});
afterAll(() => sandbox.close());
beforeEach(() => {
  // Every test starts with no faults, whatever the previous one set.
  sandbox.configure({ error500Rate: 0, timeoutRate: 0, dropAfterCommitRate: 0, malformedRate: 0, dropStyle: 'reset', rateLimitRps: null, wrongAddress: false, faultRoutes: [...CREATE_ROUTES] });
});

async function caught(promise: Promise<unknown>): Promise<TatumError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TatumError);
  return error as TatumError;
}

const requestCount = async (routeKey: string, status: string) => (await sandbox.http.counters()).requests[routeKey]?.[status] ?? 0;

describe('ledger calls', () => {
  it('creates accounts (single and batch) and finds them by accountNumber and by customer', async () => {
    const client = sandbox.client();
    const btc = await client.createAccount({
      currency: 'BTC',
      xpub: TEST_XPUBS.bitcoin,
      customer: { externalId: 'user-1' },
      accountNumber: 'u1-BTC',
    });
    expect(btc).toMatchObject({ currency: 'BTC', active: true, frozen: false, balance: { accountBalance: '0', availableBalance: '0' } });
    expect(btc.id).toMatch(/^[0-9a-f]{24}$/);

    const batch = await client.createAccountsBatch([
      { currency: 'ETH', xpub: TEST_XPUBS.ethereum, customer: { externalId: 'user-1' }, accountNumber: 'u1-ETH' },
      { currency: 'USDT', xpub: TEST_XPUBS.ethereum, customer: { externalId: 'user-1' }, accountNumber: 'u1-USDT' },
    ]);
    expect(batch.map((a) => a.currency)).toEqual(['ETH', 'USDT']);

    const customer = await client.getCustomerByExternalId('user-1');
    expect(customer).toMatchObject({ externalId: 'user-1', id: btc.customerId, active: true, enabled: true });
    const owned = await client.getAccountsByCustomer(customer.id);
    expect(owned.map((a) => a.id).sort()).toEqual([btc.id, ...batch.map((a) => a.id)].sort());
    expect(await client.getAccountsByAccountNumber('u1-USDT')).toEqual([batch[1]]);
    expect(await client.getAccountsByAccountNumber('nobody')).toEqual([]);
  });

  it('creates deposit addresses at the requested index, single and batch, and lists them', async () => {
    const client = sandbox.client();
    const [eth, usdt] = await client.createAccountsBatch([
      { currency: 'ETH', xpub: TEST_XPUBS.ethereum },
      { currency: 'USDT', xpub: TEST_XPUBS.ethereum },
    ]);
    const one = await client.createDepositAddress(eth!.id, 101);
    expect(one).toMatchObject({ currency: 'ETH', derivationKey: 101, address: addressFromXpub('ethereum', TEST_XPUBS.ethereum, 101) });
    const [same] = await client.createDepositAddressesBatch([{ accountId: usdt!.id, derivationKey: 101 }]);
    expect(same).toMatchObject({ currency: 'USDT', derivationKey: 101, address: one.address });
    expect(await client.listDepositAddresses(eth!.id)).toEqual([one]);
  });

  it('creates, lists and deletes subscriptions, and sets the webhook HMAC secret', async () => {
    const client = sandbox.client();
    const account = await client.createAccount({ currency: 'TRON', xpub: TEST_XPUBS.tron });
    const id = await client.createSubscription({ accountId: account.id, url: 'http://127.0.0.1:9/hook' });
    expect((await client.listSubscriptions()).find((s) => s.id === id)).toEqual({
      id,
      type: 'ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION',
      attr: { id: account.id, url: 'http://127.0.0.1:9/hook' },
    });
    await client.setWebhookHmac('a-webhook-secret-of-some-length');
    expect(sandbox.state().hmacEnabled).toBe(true);
    await client.deleteSubscription(id);
    expect((await client.listSubscriptions()).some((s) => s.id === id)).toBe(false);
  });

  it('refuses bad input before sending anything', async () => {
    const client = sandbox.client();
    const before = await sandbox.http.counters();
    const error = await caught(client.createDepositAddress('not-an-id', 1));
    expect(error).toMatchObject({ kind: 'invalid-request', maybeCreated: false, status: undefined });
    expect((await sandbox.http.counters()).requests).toEqual(before.requests);
  });
});

describe('Tatum errors', () => {
  it('400 validation.failed carries data[]', async () => {
    const error = await caught(sandbox.client().createAccount({ currency: 'BTC', accountingCurrency: 'ZZZ' }));
    expect(error).toMatchObject({ kind: 'http', status: 400, errorCode: 'validation.failed', maybeCreated: false });
    expect(error.data).toEqual([expect.objectContaining({ property: 'accountingCurrency', value: 'ZZZ' })]);
  });

  it('403 not-found variants are recognisable', async () => {
    const client = sandbox.client();
    const cases = [
      [client.createDepositAddress('0123456789abcdef01234567', 1), 'account.not.exists'],
      [client.listDepositAddresses('0123456789abcdef01234567'), 'account.not.exists'],
      [client.getCustomerByExternalId('nobody-here'), 'customer.not.exists'],
      [client.deleteSubscription('0123456789abcdef01234567'), 'subscription.not.exists'],
      [client.createSubscription({ accountId: '0123456789abcdef01234567', url: 'http://127.0.0.1:9/x' }), 'account.not.exists'],
    ] as const;
    for (const [call, errorCode] of cases) {
      const error = await caught(call);
      expect(error).toMatchObject({ status: 403, errorCode, maybeCreated: false });
      expect(isNotFound(error)).toBe(true);
    }
  });

  it('403 address.index.used and address.used are refusals, not "not found"', async () => {
    const client = sandbox.client();
    const account = await client.createAccount({ currency: 'LTC', xpub: TEST_XPUBS.litecoin });
    await client.createDepositAddress(account.id, 7);
    const reused = await caught(client.createDepositAddress(account.id, 7));
    expect(reused).toMatchObject({ status: 403, errorCode: 'address.index.used', maybeCreated: false, notFound: false });

    // Wrong-address mode hands out index 9's address for index 8; asking for 9 then collides.
    sandbox.configure({ wrongAddress: true });
    await client.createDepositAddress(account.id, 8);
    sandbox.configure({ wrongAddress: false });
    const used = await caught(client.createDepositAddress(account.id, 9));
    expect(used).toMatchObject({ status: 403, errorCode: 'address.used', maybeCreated: false });
  });

  it('403 for an unsupported currency or an xpub of another chain', async () => {
    const client = sandbox.client();
    expect(await caught(client.createAccount({ currency: 'DOGE' }))).toMatchObject({ status: 403, errorCode: 'ledger.currency.invalid' });
    expect(await caught(client.createAccount({ currency: 'LTC', xpub: TEST_XPUBS.bitcoin }))).toMatchObject({
      status: 403,
      errorCode: 'account.xpub.incompatible',
    });
  });
});

describe('retry policy', () => {
  it('429: honours Retry-After and retries, for POST too, without duplicating anything', async () => {
    sandbox.configure({ rateLimitRps: 1 });
    const events: TatumRequestEvent[] = [];
    // Retries 20 ms and 40 ms apart would all land in the same one-second window and fail:
    // only waiting out Retry-After (1 s) lets both calls through.
    const client = sandbox.client({ retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 5000 }, onRequest: (e) => events.push(e) });
    const before = (await sandbox.http.counters()).accounts;
    const accounts = await Promise.all([
      client.createAccount({ currency: 'BSC', xpub: TEST_XPUBS.bsc }),
      client.createAccount({ currency: 'BSC', xpub: TEST_XPUBS.bsc }),
    ]);
    expect(new Set(accounts.map((a) => a.id)).size).toBe(2);
    expect((await sandbox.http.counters()).accounts).toBe(before + 2);
    expect(events.filter((e) => e.status === 429)).not.toHaveLength(0);
    expect(events.every((e) => e.route === '/v3/ledger/account' && e.method === 'POST')).toBe(true);
  });

  it('429 beyond the retry budget surfaces as a refusal that created nothing', async () => {
    sandbox.configure({ rateLimitRps: 1 });
    const client = sandbox.client({ retry: { attempts: 1 } });
    const results = await Promise.allSettled([1, 2].map(() => client.createAccount({ currency: 'BSC', xpub: TEST_XPUBS.bsc })));
    const refused = results.find((r) => r.status === 'rejected');
    expect(refused).toBeDefined();
    expect((refused as PromiseRejectedResult).reason).toMatchObject({ status: 429, maybeCreated: false });
  });

  it('5xx on GET is retried', async () => {
    const route = 'GET /v3/ledger/customer/:id';
    sandbox.configure({ faultRoutes: [route], error500Rate: 1 });
    const before = await requestCount(route, '500');
    const error = await caught(sandbox.client({ retry: { attempts: 3, baseDelayMs: 5 } }).getCustomerByExternalId('x'));
    expect(error).toMatchObject({ status: 500, maybeCreated: false });
    expect((await requestCount(route, '500')) - before).toBe(3);
  });

  it('5xx on POST is not retried and is reported as maybe created', async () => {
    const route = 'POST /v3/ledger/account';
    sandbox.configure({ error500Rate: 1 });
    const before = await requestCount(route, '500');
    const error = await caught(sandbox.client().createAccount({ currency: 'BTC', xpub: TEST_XPUBS.bitcoin }));
    expect(error).toMatchObject({ kind: 'http', status: 500, maybeCreated: true });
    expect(isMaybeCreated(error)).toBe(true);
    expect((await requestCount(route, '500')) - before).toBe(1);
  });

  it('a timeout aborts the call; a GET is retried, a POST is not', async () => {
    sandbox.configure({ faultRoutes: ['GET /v3/ledger/customer/:id', 'POST /v3/subscription'], timeoutRate: 1, timeoutHoldMs: 10_000 });
    const client = sandbox.client({ timeoutMs: 150, retry: { attempts: 2, baseDelayMs: 5 } });
    const account = await client.createAccount({ currency: 'ETH', xpub: TEST_XPUBS.ethereum });

    const heldGets = await requestCount('GET /v3/ledger/customer/:id', 'held');
    expect(await caught(client.getCustomerByExternalId('x'))).toMatchObject({ kind: 'timeout', status: undefined, maybeCreated: false });
    expect((await requestCount('GET /v3/ledger/customer/:id', 'held')) - heldGets).toBe(2);

    const heldPosts = await requestCount('POST /v3/subscription', 'held');
    const error = await caught(client.createSubscription({ accountId: account.id, url: 'http://127.0.0.1:9/x' }));
    expect(error).toMatchObject({ kind: 'timeout', maybeCreated: true });
    expect((await requestCount('POST /v3/subscription', 'held')) - heldPosts).toBe(1);
  });

  it('a response lost after the ledger committed: the client sees an error, the account exists', async () => {
    sandbox.configure({ dropAfterCommitRate: 1 });
    const client = sandbox.client();
    const before = await sandbox.http.counters();
    const error = await caught(client.createAccount({ currency: 'BTC', xpub: TEST_XPUBS.bitcoin, accountNumber: 'dropped-1' }));
    expect(error).toMatchObject({ kind: 'network', maybeCreated: true });

    const after = await sandbox.http.counters();
    expect(after.accounts).toBe(before.accounts + 1);
    expect(after.faults.dropAfterCommit).toBe(before.faults.dropAfterCommit + 1);
    expect(after.requests['POST /v3/ledger/account']?.dropped).toBe((before.requests['POST /v3/ledger/account']?.dropped ?? 0) + 1);
    // The caller reconciles by looking up what it may have created.
    sandbox.configure({ dropAfterCommitRate: 0 });
    expect(await client.getAccountsByAccountNumber('dropped-1')).toHaveLength(1);
  });
  it('a response held after the ledger committed: the client times out, the account exists', async () => {
    sandbox.configure({ dropAfterCommitRate: 1, dropStyle: 'hold', timeoutHoldMs: 10_000 });
    const client = sandbox.client({ timeoutMs: 150 });
    const error = await caught(client.createAccount({ currency: 'LTC', accountNumber: 'held-1' }));
    expect(error).toMatchObject({ kind: 'timeout', maybeCreated: true });
    sandbox.configure({ dropAfterCommitRate: 0, dropStyle: 'reset' });
    expect(await client.getAccountsByAccountNumber('held-1')).toHaveLength(1);
  });
  it('a 2xx that is not Tatum\'s shape is an error, not a crash; for a write, maybe created', async () => {
    sandbox.configure({ malformedRate: 1, faultRoutes: ['POST /v3/ledger/account', 'GET /v3/ledger/account'] });
    const client = sandbox.client();
    const write = await caught(client.createAccount({ currency: 'BTC', accountNumber: 'malformed-1' }));
    expect(write).toMatchObject({ kind: 'invalid-response', maybeCreated: true, status: undefined });
    const read = await caught(client.getAccountsByAccountNumber('malformed-1'));
    expect(read).toMatchObject({ kind: 'invalid-response', maybeCreated: false });
    sandbox.configure({ malformedRate: 0 });
    expect(await client.getAccountsByAccountNumber('malformed-1')).toHaveLength(1);
  });
});

describe('the API key stays secret', () => {
  const apiKey = 'tatum-live-key-that-must-never-leak-0123456789';

  function expectNoKey(error: TatumError) {
    for (const text of [String(error), JSON.stringify(error), error.message, error.stack ?? '']) {
      expect(text).not.toContain(apiKey);
    }
  }

  it('not in a 401 (whose Tatum message echoes the key)', async () => {
    const error = await caught(sandbox.client({ apiKey }).getCustomerByExternalId('x'));
    expect(error).toMatchObject({ status: 401, errorCode: 'subscription.invalid', maybeCreated: false });
    expect(error.message).toContain('[redacted]');
    expectNoKey(error);
  });

  it('not in a timeout', async () => {
    sandbox.configure({ faultRoutes: ['POST /v3/ledger/account'], timeoutRate: 1, timeoutHoldMs: 10_000 });
    const error = await caught(sandbox.client({ apiKey: sandbox.apiKey, timeoutMs: 100 }).createAccount({ currency: 'BTC' }));
    expect(error.kind).toBe('timeout');
    // Same check with the sandbox key, which did travel in the request's headers.
    for (const text of [String(error), JSON.stringify(error), error.message]) expect(text).not.toContain(sandbox.apiKey);
  });
});
