// POST /webhooks/tatum against the real server, real Postgres and real pg-boss: authentication,
// validation, the transactional insert + job, de-duplication, and behaviour while the database is down.
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../db/client.ts';
import { parseConfig } from '../jobs/config.ts';
import { createLogger } from '../jobs/logger.ts';
import { receiveDeposit } from '../jobs/deposits.ts';
import { QUEUES } from '../jobs/queues.ts';
import { startWorker } from '../jobs/worker.ts';
import { startApp } from '../server/app.ts';
import { createSession } from '../server/auth/sessions.ts';
import { MAX_WEBHOOK_BYTES } from '../server/webhooks.ts';
import { startTestApp, type TestApp } from './helpers/app.ts';
import { captureLogs } from './helpers/logs.ts';
import { eventually, setDatabaseAvailable } from './helpers/outage.ts';
import { trpcClient } from './helpers/trpc.ts';

const SECRET = `whsec-${randomBytes(16).toString('hex')}`;
const ADDRESS = '0x8ba1f109551bd432803012645ac136ddd64dba72';

let app: TestApp;
let userId: string;
/** Tatum account ids of the user's ETH and USDT accounts; both share one deposit address. */
const tatumIds = { ETH: randomBytes(12).toString('hex'), USDT: randomBytes(12).toString('hex') };
const accountIds: Record<string, string> = {};

beforeAll(async () => {
  app = await startTestApp({ TATUM_WEBHOOK_HMAC_SECRET: SECRET });
  const { rows } = await app.database.query<{ id: string }>(
    `insert into users (email, email_verified_at) values ('depositor@example.com', now()) returning id`,
  );
  userId = rows[0]!.id;
  for (const [currency, tatumId] of Object.entries(tatumIds)) {
    const account = await app.database.query<{ id: string }>(
      `insert into virtual_accounts (user_id, currency, account_number, tatum_account_id)
       values ($1, $2, $3, $4) returning id`,
      [userId, currency, `${userId}-${currency}`, tatumId],
    );
    accountIds[currency] = account.rows[0]!.id;
  }
});
afterAll(() => app?.stop());

/** An ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION as in tatum-api.md §7.1, with a fresh reference. */
function notification(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    date: Date.now(),
    amount: '0.005',
    currency: 'ETH',
    subscriptionType: 'ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION',
    accountId: tatumIds.ETH,
    reference: randomUUID(),
    txId: `0x${randomBytes(32).toString('hex')}`,
    blockHash: `0x${randomBytes(32).toString('hex')}`,
    blockHeight: 19_000_000,
    from: '0x00000000219ab540356cbb839cbe05303d7705fa',
    to: ADDRESS,
    ...overrides,
  };
}

/** Exactly Tatum's documented verification code, used here to sign. */
function tatumSignature(body: unknown, secret = SECRET): string {
  return createHmac('sha512', secret).update(JSON.stringify(body)).digest('base64');
}

/** The same scheme over raw bytes, for bodies that are not JSON of an object. */
function signRaw(raw: string): string {
  return createHmac('sha512', SECRET).update(raw).digest('base64');
}

function deliver(body: string | Buffer, signature?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (signature !== undefined) headers['x-payload-hash'] = signature;
  return fetch(`${app.url}/webhooks/tatum`, { method: 'POST', headers, body });
}

function deliverSigned(body: Record<string, unknown>): Promise<Response> {
  return deliver(JSON.stringify(body), tatumSignature(body));
}

async function depositsWith(reference: unknown) {
  const { rows } = await app.database.query<{ id: string; virtual_account_id: string; amount: string; status: string }>(
    `select id, virtual_account_id, trim_scale(amount)::text as amount, status from deposits where reference = $1`,
    [reference],
  );
  return rows;
}

async function counts(): Promise<{ deposits: number; jobs: number }> {
  const { rows } = await app.database.query<{ deposits: number; jobs: number }>(
    `select (select count(*)::int from deposits) as deposits,
            (select count(*)::int from pgboss.job where name = $1) as jobs`,
    [QUEUES.depositReceived],
  );
  return rows[0]!;
}

async function jobsFor(depositId: string): Promise<number> {
  const { rows } = await app.database.query<{ n: number }>(
    `select count(*)::int as n from pgboss.job where name = $1 and data->>'depositId' = $2`,
    [QUEUES.depositReceived, depositId],
  );
  return rows[0]!.n;
}

describe('an authentic notification', () => {
  it('signed as Tatum documents is stored once, with its job, and answered 200', async () => {
    const body = notification({ amount: '123456789012345678.123456789012345678' });
    const res = await deliverSigned(body);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'stored' });

    const rows = await depositsWith(body.reference);
    expect(rows).toHaveLength(1);
    // The amount is exact: a float would have lost the last digits.
    expect(rows[0]).toMatchObject({ virtual_account_id: accountIds.ETH, amount: '123456789012345678.123456789012345678', status: 'pending' });
    expect(await jobsFor(rows[0]!.id)).toBe(1);
  });

  it('accepts the older payload that names the account `id`', async () => {
    const { accountId, subscriptionType, ...older } = notification();
    const body: Record<string, unknown> = { ...older, id: accountId };
    expect((await deliverSigned(body)).status).toBe(200);
    expect(await depositsWith(body.reference)).toMatchObject([{ virtual_account_id: accountIds.ETH }]);
  });

  it('books to the account the notification names, not to another account on the same address', async () => {
    const body = notification({ currency: 'USDT', accountId: tatumIds.USDT, amount: '25' });
    expect((await deliverSigned(body)).status).toBe(200);
    expect(await depositsWith(body.reference)).toMatchObject([{ virtual_account_id: accountIds.USDT, amount: '25' }]);
  });

  it('is processed by the worker\'s tatum.deposit-received handler, which marks the deposit received', async () => {
    const worker = await startWorker(app.services, { queues: [QUEUES.depositReceived] });
    try {
      const body = notification();
      expect((await deliverSigned(body)).status).toBe(200);
      const [row] = await eventually(() => depositsWith(body.reference), ([r]) => r?.status === 'received');
      expect(row?.status).toBe('received');
    } finally {
      await worker.stop();
    }
  });
});

describe('the tatum.deposit-received handler', () => {
  it('leaves a received deposit as it is when the job runs again, and fails for a deposit that does not exist', async () => {
    const body = notification();
    expect((await deliverSigned(body)).status).toBe(200);
    const [row] = await depositsWith(body.reference);
    const { db, log } = app.services;
    await receiveDeposit({ db }, { data: { depositId: row!.id } }, log);
    await receiveDeposit({ db }, { data: { depositId: row!.id } }, log);
    expect(await depositsWith(body.reference)).toMatchObject([{ status: 'received' }]);
    await expect(receiveDeposit({ db }, { data: { depositId: randomUUID() } }, log)).rejects.toThrow(/does not exist/);
    await expect(receiveDeposit({ db }, { data: { depositId: 'nope' } }, log)).rejects.toThrow();
  });
});

describe('a notification that is not authentic', () => {
  const body = notification();
  const raw = JSON.stringify(body);
  const valid = tatumSignature(body);
  const altered = raw.replace('"amount":"0.005"', '"amount":"0.006"');

  it.each([
    ['no x-payload-hash header', raw, undefined],
    ['a hex digest (the old system\'s mistake)', raw, createHmac('sha512', SECRET).update(raw).digest('hex')],
    ['a lower-cased header value', raw, valid.toLowerCase()],
    ['a signature made with another secret', raw, tatumSignature(body, `${SECRET}x`)],
    ['a body altered by one byte after signing', altered, valid],
    ['an empty header', raw, ''],
  ])('with %s is refused with 401 and nothing stored', async (_case, sent, signature) => {
    const before = await counts();
    const res = await deliver(sent, signature);
    expect(res.status).toBe(401);
    expect(await counts()).toEqual(before);
    expect(await depositsWith(body.reference)).toEqual([]);
  });
});

describe('a malformed notification', () => {
  it('over 64 KiB is refused with 413 before it is read, signed or not', async () => {
    const body = notification({ padding: 'x'.repeat(MAX_WEBHOOK_BYTES) });
    const before = await counts();
    const res = await deliverSigned(body);
    expect(res.status).toBe(413);
    expect(await counts()).toEqual(before);
  });

  it('over 64 KiB without a content-length (chunked) is refused with 413', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(16 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 5) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await fetch(`${app.url}/webhooks/tatum`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-payload-hash': 'A'.repeat(86) + '==' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
  });

  it.each([
    ['JSON that does not parse', '{"amount": "0.005",', /not valid JSON/],
    ['an amount as a number', JSON.stringify(notification({ amount: 0.005 })), /amount/],
    ['an amount in exponent notation', JSON.stringify(notification({ amount: '5e-3' })), /amount/],
    ['a zero amount', JSON.stringify(notification({ amount: '0.000' })), /amount/],
    ['more fractional digits than numeric(78,36) keeps', JSON.stringify(notification({ amount: `0.${'1'.repeat(37)}` })), /amount/],
    ['no reference', JSON.stringify(notification({ reference: undefined })), /reference/],
    ['no account id at all', JSON.stringify(notification({ accountId: undefined })), /accountId/],
    ['a blockHeight as a string', JSON.stringify(notification({ blockHeight: '12' })), /blockHeight/],
  ])('with %s is refused with 400 and a readable message, nothing stored', async (_case, raw, message) => {
    const before = await counts();
    const res = await deliver(raw, signRaw(raw));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(message);
    expect(await counts()).toEqual(before);
  });
});

describe('a notification we can never use', () => {
  it('for an unknown account is acknowledged (so Tatum stops retrying) and nothing is stored', async () => {
    const before = await counts();
    const res = await deliverSigned(notification({ accountId: randomBytes(12).toString('hex') }));
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'ignored' });
    expect(await counts()).toEqual(before);
  });

  it('whose currency is not the named account\'s is not credited to it', async () => {
    const before = await counts();
    const res = await deliverSigned(notification({ accountId: tatumIds.ETH, currency: 'USDT' }));
    expect(res.status).toBe(202);
    expect(await counts()).toEqual(before);
  });

  it('that is not an incoming (credited) deposit is acknowledged and not stored', async () => {
    const before = await counts();
    const res = await deliverSigned(notification({ subscriptionType: 'ACCOUNT_PENDING_BLOCKCHAIN_TRANSACTION' }));
    expect(res.status).toBe(202);
    expect(await counts()).toEqual(before);
  });
});

describe('repeated deliveries', () => {
  it('20 concurrent deliveries of one notification: 20 × 200, one row, one job', async () => {
    const body = notification();
    const responses = await Promise.all(Array.from({ length: 20 }, () => deliverSigned(body)));
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    const statuses = await Promise.all(responses.map(async (r) => ((await r.json()) as { status: string }).status));
    expect(statuses.filter((s) => s === 'stored')).toHaveLength(1);
    const rows = await depositsWith(body.reference);
    expect(rows).toHaveLength(1);
    expect(await jobsFor(rows[0]!.id)).toBe(1);
  });

  it('are counted by outcome in /metrics', async () => {
    const scrape = async () => (await (await fetch(`${app.url}/metrics`)).text()).match(/webhook_deliveries_total\{outcome="(duplicate|bad-signature)"\} (\d+)/g) ?? [];
    const count = (lines: string[], outcome: string) => Number(lines.find((l) => l.includes(`"${outcome}"`))?.split(' ')[1] ?? 0);
    const before = await scrape();
    const body = notification();
    await deliverSigned(body);
    await deliverSigned(body);
    await deliver(JSON.stringify(body), 'A'.repeat(86) + '==');
    const after = await scrape();
    expect(count(after, 'duplicate') - count(before, 'duplicate')).toBe(1);
    expect(count(after, 'bad-signature') - count(before, 'bad-signature')).toBe(1);
  });
});

describe('while the database is down', () => {
  it('answers 5xx so Tatum retries, and a redelivery after it returns lands once', async () => {
    const body = notification();
    const before = await counts();
    await setDatabaseAvailable(app.database.name, false);
    try {
      const res = await deliverSigned(body);
      expect(res.status).toBe(503);
    } finally {
      await setDatabaseAvailable(app.database.name, true);
    }
    expect(await counts()).toEqual(before);

    const retried = await deliverSigned(body);
    expect(retried.status).toBe(200);
    const again = await deliverSigned(body);
    expect(await again.json()).toEqual({ status: 'duplicate' });
    const rows = await depositsWith(body.reference);
    expect(rows).toHaveLength(1);
    expect(await jobsFor(rows[0]!.id)).toBe(1);
  });
});

describe('the HMAC secret', () => {
  it('appears in no response and no log line, whatever the outcome', async () => {
    // Every log line the handler writes, at the most verbose level, captured in memory. Unredacted,
    // so the test proves the handler never logs the secret rather than that the redactor hides it.
    const logs = captureLogs('trace', { redact: false });
    const original = app.services.log;
    app.services.log = logs.log;
    const responses: string[] = [];
    try {
      const body = notification();
      for (const res of [
        await deliverSigned(body),
        await deliverSigned(body),
        await deliver(JSON.stringify(body), tatumSignature(body, 'another-secret-entirely')),
        await deliver('{', signRaw('{')),
        await deliverSigned(notification({ accountId: randomBytes(12).toString('hex') })),
      ]) {
        responses.push(await res.text());
      }
    } finally {
      app.services.log = original;
    }
    expect(logs.lines().length).toBeGreaterThan(0);
    for (const text of [logs.text(), ...responses]) expect(text).not.toContain(SECRET);
  });
});

describe('wallet.deposits', () => {
  const client = (token?: string) => trpcClient(app.url, token);

  async function userWithAccount(email: string): Promise<{ token: string; tatumId: string; accountId: string }> {
    const user = await app.database.query<{ id: string }>(`insert into users (email, email_verified_at) values ($1, now()) returning id`, [email]);
    const tatumId = randomBytes(12).toString('hex');
    const account = await app.database.query<{ id: string }>(
      `insert into virtual_accounts (user_id, currency, account_number, tatum_account_id) values ($1, 'BTC', $2, $3) returning id`,
      [user.rows[0]!.id, `${email}-BTC`, tatumId],
    );
    return { token: await createSession(app.services.db, user.rows[0]!.id), tatumId, accountId: account.rows[0]!.id };
  }

  it('pages through the signed-in user\'s deposits newest first, amounts as exact strings, no one else\'s', async () => {
    const alice = await userWithAccount('alice@example.com');
    const references: string[] = [];
    for (const amount of ['0.00000001', '21000000.12345678', '1']) {
      const body = notification({ currency: 'BTC', accountId: alice.tatumId, amount, from: undefined, index: 1 });
      expect((await deliverSigned(body)).status).toBe(200);
      references.push(body.reference as string);
    }
    // Three more that share one created_at, so the order between them rests on the id alone.
    const tied = await app.database.query<{ reference: string }>(
      `insert into deposits (reference, virtual_account_id, currency, amount, tx_id, payload, created_at)
       select gen_random_uuid()::text, $1, 'BTC', 2, 'tx', '{}', '2020-01-01T00:00:00.123456Z' from generate_series(1, 3)
       returning reference`,
      [alice.accountId],
    );

    const pages: Array<{ reference: string; amount: string }[]> = [];
    let cursor: string | undefined;
    do {
      const page = await client(alice.token).wallet.deposits.query({ limit: 2, cursor });
      pages.push(page.items.map(({ reference, amount }) => ({ reference, amount })));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);

    expect(pages.map((p) => p.length)).toEqual([2, 2, 2]);
    const seen = pages.flat();
    expect(seen.slice(0, 3)).toEqual([
      { reference: references[2], amount: '1' },
      { reference: references[1], amount: '21000000.12345678' },
      { reference: references[0], amount: '0.00000001' },
    ]);
    const { rows: tiedOrder } = await app.database.query<{ reference: string }>(
      `select reference from deposits where reference = any($1) order by id desc`,
      [tied.rows.map((r) => r.reference)],
    );
    expect(seen.slice(3).map((d) => d.reference)).toEqual(tiedOrder.map((r) => r.reference));
    // Other users' deposits exist, yet the six above were all there was.
    const firstUserDeposit = await app.database.query(`select 1 from deposits where virtual_account_id = $1 limit 1`, [accountIds.ETH]);
    expect(firstUserDeposit.rowCount).toBe(1);
  });

  it('answers UNAUTHORIZED without a session and BAD_REQUEST for a forged cursor', async () => {
    await expect(client().wallet.deposits.query({})).rejects.toMatchObject({ data: { code: 'UNAUTHORIZED' } });
    const bob = await userWithAccount('bob@example.com');
    await expect(client(bob.token).wallet.deposits.query({ cursor: 'not-a-cursor' })).rejects.toMatchObject({
      data: { code: 'BAD_REQUEST' },
      message: expect.stringMatching(/cursor/),
    });
    await expect(client(bob.token).wallet.deposits.query()).resolves.toEqual({ items: [], nextCursor: null });
  });
});

describe('embedded mode (PGlite, worker in the server process)', () => {
  it('stores a webhook and its job in one PGlite transaction, and the in-process worker marks it received', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'webhooks-pglite-'));
    const embedded = await startApp(parseConfig({ PORT: '0', DATA_DIR: dataDir, TATUM_WEBHOOK_HMAC_SECRET: SECRET }), createLogger({ level: 'silent' }));
    try {
      const { db } = embedded.services;
      const [user] = await queryRows<{ id: string }>(db, sql`insert into users (email) values ('embedded@example.com') returning id`);
      const tatumId = randomBytes(12).toString('hex');
      await db.execute(sql`insert into virtual_accounts (user_id, currency, account_number, tatum_account_id)
                           values (${user!.id}, 'LTC', 'embedded-LTC', ${tatumId})`);
      const body = notification({ currency: 'LTC', accountId: tatumId, amount: '0.5' });
      const res = await fetch(`${embedded.url}/webhooks/tatum`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-payload-hash': tatumSignature(body) },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      const statusOf = async () =>
        (await queryRows<{ status: string }>(db, sql`select status from deposits where reference = ${body.reference}`))[0]?.status;
      expect(await eventually(statusOf, (status) => status === 'received')).toBe('received');
    } finally {
      await embedded.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
