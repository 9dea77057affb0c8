// Property-based tests over every input the server takes from outside: each tRPC procedure (as a
// client, a signed-in user, an operator, a stranger with a made-up token) and the webhook body. The
// inputs are arbitrary JSON, bodies that are not JSON, huge strings, all of Unicode, wrong types,
// and prototype-pollution keys (`__proto__`, `constructor`, `prototype`) as real own keys. Whatever
// arrives: never a 5xx, and a request that is refused writes no row.
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEBHOOK_PATH } from '../jobs/config.ts';
import { INCOMING_TRANSACTION } from '../jobs/tatum/schemas.ts';
import { startTestApp, type TestApp } from './helpers/app.ts';

const SEED = 20260508;
const RUNS = 100;
const TATUM_ACCOUNT_ID = '5e68c66581f2ee32bc354087';
const CURRENCY = 'BTC';

let app: TestApp;
let sessionToken: string;

beforeAll(async () => {
  app = await startTestApp();
  // A signed-in user, made the way a developer does in sandbox mode.
  const email = 'fuzz@example.com';
  expect((await trpc('POST', 'auth.register', JSON.stringify({ json: { email } }))).status).toBe(200);
  const mailbox = await trpc('GET', 'auth.sandboxMailbox', JSON.stringify({ json: { email } }), admin());
  const { code } = JSON.parse(mailbox.body).result.data.json;
  const verified = await trpc('POST', 'auth.verify', JSON.stringify({ json: { email, code } }));
  sessionToken = JSON.parse(verified.body).result.data.json.sessionToken;
  // An account of that user at Tatum, so well-formed webhooks reach the deposit insert.
  await app.database.query(
    `insert into virtual_accounts (user_id, currency, account_number, tatum_account_id)
     select id, $1, 'fuzz-' || $1, $2 from users where email = $3`,
    [CURRENCY, TATUM_ACCOUNT_ID, email],
  );
});
afterAll(() => app.stop());

const admin = () => ({ authorization: `Bearer ${app.services.config.ADMIN_TOKEN}` });
const session = () => ({ authorization: `Bearer ${sessionToken}` });

interface Answer {
  status: number;
  body: string;
}

async function send(path: string, init: RequestInit): Promise<Answer> {
  const res = await fetch(`${app.url}${path}`, init);
  return { status: res.status, body: await res.text() };
}

/** A tRPC call with a raw body: a query's goes in `?input=`, a mutation's is the request body. */
function trpc(method: 'GET' | 'POST', procedure: string, body: string | undefined, headers: Record<string, string> = {}): Promise<Answer> {
  if (method === 'GET') {
    const query = body === undefined ? '' : `?input=${encodeURIComponent(body)}`;
    return send(`/trpc/${procedure}${query}`, { headers });
  }
  return send(`/trpc/${procedure}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

/** Rows a request could write, in every table a refused request must leave alone. */
async function rowCounts(): Promise<Record<string, number>> {
  const { rows } = await app.database.query<Record<string, number>>(`
    select (select count(*) from users)::int as users,
           (select count(*) from verification_codes)::int as verification_codes,
           (select count(*) from sessions)::int as sessions,
           (select count(*) from deposits)::int as deposits,
           -- the reconcile schedule adds its own job every minute, whatever the requests do
           (select count(*) from pgboss.job where name <> 'tatum.reconcile')::int as jobs`);
  return rows[0]!;
}

/** Sends one request and holds the server to the rules: no 5xx; refused means nothing written. */
async function expectHandled(request: () => Promise<Answer>): Promise<Answer> {
  const before = await rowCounts();
  const answer = await request();
  expect(answer.status, answer.body.slice(0, 500)).toBeLessThan(500);
  if (answer.status >= 400) expect(await rowCounts()).toEqual(before);
  return answer;
}

// JSON text, built as text so that `__proto__` and friends are real own keys (as an attacker sends
// them), which a JavaScript object literal or JSON.stringify would not produce.
const POLLUTION_KEYS = ['__proto__', 'constructor', 'prototype'];
const key = fc.oneof(
  fc.constantFrom(...POLLUTION_KEYS, 'email', 'code', 'limit', 'cursor', 'queue', 'jobId', 'json', 'meta', 'toString', 'hasOwnProperty'),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
);
const hugeString = fc
  .tuple(fc.constantFrom('a', '0', 'é', '😀', '\u0000', '\u202e', '\ud800'), fc.constantFrom(1_000, 70_000, 300_000))
  .map(([unit, length]) => JSON.stringify(unit.repeat(length)));
/** Strings Postgres cannot store (NUL, half a surrogate pair) or that tend to break parsers and logs. */
const hostileString = fc
  .tuple(
    fc.constantFrom('\\u0000', '\\ud800', '\\udfff', '\\ud83d\\ude00', '\\u202e', '\\n', '\\"', '%00', "'; drop table users; --", '${x}', '../../etc/passwd'),
    fc.string({ maxLength: 8 }),
  )
  .map(([nasty, around]) => {
    const escaped = JSON.stringify(around).slice(1, -1);
    return `"${escaped}${nasty}${escaped}"`;
  });
const scalar = fc.oneof(
  fc.constantFrom('null', 'true', 'false', '0', '-0', '1e400', '-1e400', '123456789012345678901234567890', '0.1', '-1', '9007199254740993'),
  hostileString,
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => JSON.stringify(s)),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => JSON.stringify(s)),
  fc.uuid().map((s) => JSON.stringify(s)),
  fc.emailAddress().map((s) => JSON.stringify(s)),
);
const { json } = fc.letrec<{ json: string; array: string; object: string }>((tie) => ({
  json: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, hugeString, tie('array'), tie('object')),
  array: fc.array(tie('json'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
  object: fc.array(fc.tuple(key, tie('json')), { maxLength: 4 }).map((entries) => objectText(entries)),
}));

function objectText(entries: Array<[string, string]>): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

/** Objects that try to reach a prototype, the way published exploits do. */
const pollution = fc.constantFrom(
  '{"__proto__":{"polluted":"yes","isAdmin":true}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '{"email":"a@b.co","__proto__":{"code":"123456"},"constructor":{"name":"x"}}',
  '{"prototype":{"polluted":"yes"},"__proto__":null}',
);

/** Now and then a pollution key beside the fields a procedure expects. */
const extraKey = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...POLLUTION_KEYS), fc.oneof(json, pollution)) },
);

/**
 * A procedure's own fields, mostly well-formed (so requests get past validation to the code behind
 * it), else hostile, junk or absent; plus maybe a pollution key.
 */
function shaped(fields: Record<string, fc.Arbitrary<string>>): fc.Arbitrary<string> {
  const entries = Object.entries(fields).map(([name, valid]) =>
    fc.option(
      fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: hostileString }, { weight: 1, arbitrary: json }).map((value): [string, string] => [name, value]),
      { nil: undefined, freq: 6 },
    ),
  );
  return fc.tuple(fc.tuple(...entries), extraKey).map(([own, more]) => objectText([...own, more].filter((e) => e !== undefined)));
}

const text = (arb: fc.Arbitrary<string>) => arb.map((s) => JSON.stringify(s));
const email = text(fc.oneof(fc.emailAddress(), fc.constant('fuzz@example.com')));
const sixDigits = text(fc.stringMatching(/^\d{6}$/));
const uuid = text(fc.uuid());
const queueName = text(fc.constantFrom('tatum', 'tatum.create-virtual-account', 'email.send', 'tatum.create-virtual-account.dead'));
const smallInt = fc.integer({ min: -5, max: 600 }).map(String);
/**
 * Keyset cursors as both paging procedures write them, base64url JSON of [position, id], with
 * anything in the position: real instants in either procedure's form, dates that JavaScript accepts
 * and Postgres does not (February 30th, a bare number), and plain junk.
 */
const instant = fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true });
const cursor = text(
  fc
    .tuple(
      fc.oneof(
        { weight: 2, arbitrary: instant.map((d) => d.toISOString()) },
        { weight: 2, arbitrary: instant.map((d) => d.toISOString().replace('T', ' ').replace('Z', '+00')) },
        {
          weight: 3,
          arbitrary: fc.constantFrom('2026-02-30T00:00:00.000Z', '2026-02-30 00:00:00+00', '1', 'March 5 2024', '2026-01-01 24:00:00+00', '0000-01-01 00:00:00+00'),
        },
        { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 64 }) },
      ),
      fc.uuid(),
    )
    .map((pair) => Buffer.from(JSON.stringify(pair)).toString('base64url')),
);

/** What a client puts in the body or `?input=`: superjson's envelope around an input, or not. */
function bodies(input: fc.Arbitrary<string>): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 12, arbitrary: input.map((value) => `{"json":${value}}`) },
    { weight: 1, arbitrary: fc.tuple(input, json).map(([value, meta]) => `{"json":${value},"meta":${meta}}`) },
    {
      weight: 1,
      arbitrary: input.map((value) => `{"json":${value},"meta":{"values":{"__proto__.polluted":["Date"],"constructor.prototype.polluted":["undefined"]}}}`),
    },
    { weight: 1, arbitrary: json },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

type Caller = () => Record<string, string>;
const nobody: Caller = () => ({});

/** Who calls: nobody, the user, an operator, or someone with a made-up bearer token. */
const anyCaller = fc.oneof(
  fc.constant(nobody),
  fc.constant(session),
  fc.constant(admin),
  fc
    .string({ unit: 'grapheme-ascii', maxLength: 100 })
    .filter((s) => /^[\x20-\x7e]*$/.test(s))
    .map((token): Caller => () => ({ authorization: `Bearer ${token}` })),
);
/** Mostly the caller the procedure is for, so its inputs reach the code behind the check. */
const callerFor = (intended: Caller) => fc.oneof({ weight: 3, arbitrary: fc.constant(intended) }, { weight: 1, arbitrary: anyCaller });

interface Procedure {
  name: string;
  method: 'GET' | 'POST';
  input: fc.Arbitrary<string>;
  caller: Caller;
  /** Statuses only a request that got past validation and into the procedure can get: seen at least once. */
  reached: number[];
}

const PROCEDURES: Procedure[] = [
  { name: 'auth.register', method: 'POST', input: shaped({ email }), caller: nobody, reached: [200] },
  { name: 'auth.verify', method: 'POST', input: shaped({ email, code: sixDigits }), caller: nobody, reached: [401] },
  { name: 'auth.sandboxMailbox', method: 'GET', input: shaped({ email }), caller: admin, reached: [200] },
  { name: 'auth.me', method: 'GET', input: json, caller: session, reached: [200] },
  { name: 'system.info', method: 'GET', input: json, caller: nobody, reached: [200] },
  { name: 'wallet.accounts', method: 'GET', input: json, caller: session, reached: [200] },
  { name: 'wallet.deposits', method: 'GET', input: shaped({ limit: smallInt, cursor }), caller: session, reached: [200] },
  { name: 'queue.stats', method: 'GET', input: shaped({ queue: queueName }), caller: admin, reached: [200, 404] },
  { name: 'queue.failed', method: 'GET', input: shaped({ queue: queueName, limit: smallInt, cursor }), caller: admin, reached: [200] },
  { name: 'queue.job', method: 'GET', input: shaped({ jobId: uuid }), caller: admin, reached: [404] },
  { name: 'queue.retry', method: 'POST', input: shaped({ jobId: uuid }), caller: admin, reached: [404] },
  { name: 'queue.redrive', method: 'POST', input: shaped({ queue: queueName }), caller: admin, reached: [200] },
];

describe('fuzzing every tRPC procedure', () => {
  it.each(PROCEDURES)('$name: no 5xx, and a refused request writes nothing', async ({ name, method, input, caller, reached }) => {
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(bodies(input), callerFor(caller), fc.nat(9), async (body, who, dice) => {
        // Now and then the other HTTP method, which the procedure does not take.
        const verb = dice === 0 && body !== undefined && body.length < 2000 ? (method === 'GET' ? 'POST' : 'GET') : method;
        statuses.add((await expectHandled(() => trpc(verb, name, body, who()))).status);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect([...statuses]).toEqual(expect.arrayContaining(reached));
  });

  it('paging cursors (wallet.deposits, queue.failed): whatever a cursor holds, a 400 at worst', async () => {
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(cursor, async (given) => {
        const deposits = await expectHandled(() => trpc('GET', 'wallet.deposits', `{"json":{"cursor":${given}}}`, session()));
        const failed = await expectHandled(() => trpc('GET', 'queue.failed', `{"json":{"queue":"tatum","cursor":${given}}}`, admin()));
        statuses.add(deposits.status).add(failed.status);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    // Both kinds of answer happened: cursors taken (real instants) and cursors refused.
    expect([...statuses].sort()).toEqual([200, 400]);
  });

  it('a batch of procedures with junk inputs: no 5xx, nothing written when refused', async () => {
    await fc.assert(
      fc.asyncProperty(fc.subarray(PROCEDURES, { minLength: 2, maxLength: 4 }), fc.array(json, { minLength: 4, maxLength: 4 }), anyCaller, async (procs, inputs, who) => {
        const paths = procs.map((p) => p.name).join(',');
        const body = objectText(procs.map((_, i) => [String(i), `{"json":${inputs[i]}}`]));
        await expectHandled(() => send(`/trpc/${paths}?batch=1`, { method: 'POST', headers: { 'content-type': 'application/json', ...who() }, body }));
      }),
      { seed: SEED, numRuns: RUNS / 2 },
    );
  });
});

const sign = (body: string) => createHmac('sha512', app.services.config.TATUM_WEBHOOK_HMAC_SECRET).update(body).digest('base64');

function deliver(body: string, signature: string | undefined): Promise<Answer> {
  return send(WEBHOOK_PATH, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(signature === undefined ? {} : { 'x-payload-hash': signature }) },
    body,
  });
}

/** A notification for our account, well-formed but for up to two fields replaced by anything at all or removed. */
const validNotification = fc.record({
  amount: text(fc.constantFrom('0.5', '1', '0.000000000000000001', '123456789012345678901234567890.123456789012345678901234567890')),
  currency: fc.constant(JSON.stringify(CURRENCY)),
  accountId: fc.constant(JSON.stringify(TATUM_ACCOUNT_ID)),
  reference: text(fc.uuid()),
  txId: text(fc.stringMatching(/^[0-9a-f]{64}$/)),
  blockHeight: fc.nat().map(String),
  subscriptionType: fc.constant(JSON.stringify(INCOMING_TRANSACTION)),
  from: text(fc.string({ unit: 'grapheme', maxLength: 60 })),
  index: fc.nat().map(String),
});
const notification = fc
  .tuple(
    validNotification,
    fc.array(fc.tuple(fc.constantFrom('amount', 'currency', 'accountId', 'reference', 'txId', 'blockHeight', 'subscriptionType', 'from', 'index', 'id'), fc.oneof(hostileString, json, fc.constant(undefined))), {
      maxLength: 2,
    }),
    extraKey,
  )
  .map(([valid, changes, extra]) => {
    const fields = new Map(Object.entries(valid));
    for (const [name, value] of changes) {
      if (value === undefined) fields.delete(name);
      else fields.set(name, value);
    }
    return objectText([...fields, ...(extra ? [extra] : [])]);
  });

describe('fuzzing the webhook body', () => {
  it('signed: anything at all is answered below 500; a refused one stores nothing', async () => {
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof({ weight: 4, arbitrary: notification }, { weight: 1, arbitrary: json }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) }),
        async (body) => {
          statuses.add((await expectHandled(() => deliver(body, sign(body)))).status);
        },
      ),
      { seed: SEED, numRuns: RUNS * 2 },
    );
    // Stored, ignored (unknown account, another subscription type) and refused all happened.
    expect([...statuses]).toEqual(expect.arrayContaining([200, 202, 400]));
  });

  it('unsigned or signed wrongly: always 401 (or 413 when too large), nothing stored', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(notification, json),
        fc.oneof(fc.constant(undefined), fc.base64String({ minLength: 88, maxLength: 88 }), fc.string({ maxLength: 100 }).filter((s) => /^[\x20-\x7e]*$/.test(s))),
        async (body, signature) => {
          const answer = await expectHandled(() => deliver(body, signature));
          expect(Buffer.byteLength(body) > 64 * 1024 ? 413 : 401).toBe(answer.status);
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe('after all of it', () => {
  it('no prototype was polluted', () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
  });
});
