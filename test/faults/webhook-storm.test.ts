// Webhook storm: 2,000 deliveries to POST /webhooks/tatum at once, as Tatum would send them on a busy
// day with retries, plus forgeries: 30 % are repeats of a delivery already sent (the same bytes and
// signature, as Tatum retries), 5 % carry a bad signature. Exactly the unique good notifications are
// stored, each once with its deposit-received job; every bad one is a 401 and stores nothing.
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEBHOOK_PATH } from '../../jobs/config.ts';
import { seededRandom } from '../../jobs/tatum/sandbox/knobs.ts';
import { INCOMING_TRANSACTION } from '../../jobs/tatum/schemas.ts';
import { count, enabledCurrencies, inParallel, readyAccounts, seedUnverifiedUsers, startStack, verifyRequest, waitUntil, call, type Stack } from './stack.ts';

const DELIVERIES = 2000;
const DUPLICATES = 600; // 30 %
const BAD = 100; // 5 %
const UNIQUE_GOOD = DELIVERIES - DUPLICATES - BAD;
const USERS = 4;
const IN_FLIGHT = 50;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ scenario: 'webhook-storm' });
});
afterAll(async () => {
  await stack?.stop();
});

interface Delivery {
  reference: string;
  body: string;
  signature: string | undefined;
  kind: 'good' | 'duplicate' | 'bad';
}

const sign = (secret: string, body: string, encoding: 'base64' | 'hex' = 'base64') => createHmac('sha512', secret).update(body).digest(encoding);

describe('a webhook storm', () => {
  it(`stores exactly the ${UNIQUE_GOOD} unique good deliveries of ${DELIVERIES} and answers 401 to each of the ${BAD} forgeries`, async () => {
    const emails = await seedUnverifiedUsers(stack, 'storm', USERS);
    for (const email of emails) expect((await verifyRequest(stack, email)).status).toBe(200);
    const expected = USERS * (await enabledCurrencies(stack));
    await waitUntil('storm users provisioned', () => readyAccounts(stack), (n) => n === expected, 60_000);
    const { rows: accounts } = await stack.database.query<{ tatum_account_id: string; currency: string; address: string }>(
      `select va.tatum_account_id, va.currency, da.address
       from virtual_accounts va join deposit_addresses da on da.id = va.deposit_address_id`,
    );

    const random = seededRandom(8);
    const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
    const secret = stack.config.TATUM_WEBHOOK_HMAC_SECRET;
    const notification = () => {
      const account = pick(accounts);
      const reference = randomUUID();
      // The shape and field order of Tatum's v3 ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION (tatum-api.md §7.1).
      const body = JSON.stringify({
        date: Date.now(),
        amount: `${Math.floor(random() * 1000)}.${String(Math.floor(random() * 1e8)).padStart(8, '0')}1`,
        currency: account.currency,
        subscriptionType: INCOMING_TRANSACTION,
        accountId: account.tatum_account_id,
        reference,
        txId: randomBytes(32).toString('hex'),
        blockHash: randomBytes(32).toString('hex'),
        blockHeight: 1_000_000 + Math.floor(random() * 1000),
        to: account.address,
      });
      return { reference, body };
    };

    const good: Delivery[] = Array.from({ length: UNIQUE_GOOD }, () => {
      const { reference, body } = notification();
      return { reference, body, signature: sign(secret, body), kind: 'good' };
    });
    const duplicates: Delivery[] = Array.from({ length: DUPLICATES }, () => ({ ...pick(good), kind: 'duplicate' }));
    // Every way a signature goes wrong: another secret, a body changed after signing, no header, a hex digest.
    const forgeries: Array<(body: string) => Pick<Delivery, 'body' | 'signature'>> = [
      (body) => ({ body, signature: sign(randomBytes(32).toString('hex'), body) }),
      (body) => ({ body: body.replace('"amount":"', '"amount":"1'), signature: sign(secret, body) }),
      (body) => ({ body, signature: undefined }),
      (body) => ({ body, signature: sign(secret, body, 'hex') }),
    ];
    const bad: Delivery[] = Array.from({ length: BAD }, (_, i) => {
      const { reference, body } = notification();
      return { reference, ...forgeries[i % forgeries.length]!(body), kind: 'bad' };
    });
    const storm = [...good, ...duplicates, ...bad];
    for (let i = storm.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [storm[i], storm[j]] = [storm[j]!, storm[i]!];
    }

    const started = performance.now();
    const answers = await inParallel(storm, IN_FLIGHT, (delivery) =>
      call(`${stack.server.url}${WEBHOOK_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(delivery.signature ? { 'x-payload-hash': delivery.signature } : {}) },
        body: delivery.body,
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const slowest = Math.max(...answers.map((a) => a.ms));

    const byKind = (kind: Delivery['kind']) => answers.filter((_, i) => storm[i]!.kind === kind);
    expect(byKind('bad').map((a) => a.status)).toEqual(Array(BAD).fill(401));
    const accepted = [...byKind('good'), ...byKind('duplicate')];
    expect(accepted.filter((a) => a.status !== 200)).toEqual([]);
    // Of all the deliveries of one notification, exactly one stored it.
    const stored = new Map<string, number>();
    answers.forEach((answer, i) => {
      if (JSON.parse(answer.body).status === 'stored') stored.set(storm[i]!.reference, (stored.get(storm[i]!.reference) ?? 0) + 1);
    });
    expect(stored.size).toBe(UNIQUE_GOOD);
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    // Tatum waits 10 s for an answer.
    expect(slowest).toBeLessThan(10_000);

    const { rows } = await stack.database.query<{ reference: string }>(`select reference from deposits`);
    expect(rows.map((r) => r.reference).sort()).toEqual(good.map((d) => d.reference).sort());
    expect(await count(stack, `select count(*)::int as n from pgboss.job where name = 'tatum.deposit-received'`)).toBe(UNIQUE_GOOD);
    // The workers take every deposit-received job: each deposit is processed once.
    await waitUntil('deposits received', () => count(stack, `select count(*)::int as n from deposits where status = 'received'`), (n) => n === UNIQUE_GOOD, 60_000);

    console.info(
      `webhook storm: ${DELIVERIES} deliveries (${UNIQUE_GOOD} unique good, ${DUPLICATES} repeats, ${BAD} forged) in ${seconds.toFixed(1)} s ` +
        `(${(DELIVERIES / seconds).toFixed(0)}/s, ${IN_FLIGHT} in flight), slowest answer ${slowest.toFixed(0)} ms; ${rows.length} deposits stored`,
    );
  });
});
