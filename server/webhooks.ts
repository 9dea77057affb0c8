// POST /webhooks/tatum: Tatum's ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION notifications. The order is
// what makes it safe with money: authenticate the exact bytes received, store the deposit and its
// job in one transaction (unique on Tatum's `reference`), and only then answer 2xx. Any failure
// before the commit answers 5xx, so Tatum delivers again; a repeat delivery finds the row and is a
// no-op. Processing happens in the `tatum.deposit-received` job, never in this request.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { queryRows } from '../db/client.ts';
import { bossDb } from '../jobs/boss.ts';
import type { DepositReceivedJob } from '../jobs/deposits.ts';
import { QUEUES } from '../jobs/queues.ts';
import { recordWebhookDelivery } from '../jobs/metrics.ts';
import { sendJson, type RouteHandler } from './http.ts';
import type { AppServices } from './trpc.ts';

export const MAX_WEBHOOK_BYTES = 64 * 1024;
/** Tatum waits 10 s for a 2xx; past this we answer 503 ourselves and let it deliver again. */
export const WEBHOOK_DEADLINE_MS = 8_000;

const INCOMING = 'ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION';

// numeric(78,36): at most 42 integer and 36 fractional digits, so nothing is rounded or overflows.
const decimalAmount = z
  .string()
  .regex(/^\d{1,42}(\.\d{1,36})?$/, 'must be a decimal string such as "0.005"')
  .refine((value) => /[1-9]/.test(value), 'must be greater than zero');
const text = (max: number) => z.string().min(1).max(max);

/** The v3 payload (tatum-api.md §7.1). Older deliveries name the account `id` instead of `accountId`. */
const notification = z
  .looseObject({
    accountId: text(64).optional(),
    id: text(64).optional(),
    subscriptionType: z.string().optional(),
    reference: text(200),
    currency: text(40),
    amount: decimalAmount,
    txId: text(200),
    blockHeight: z.number().int().min(0).max(2_147_483_647).nullish(),
    from: z.string().max(200).nullish(),
    to: z.string().max(200).nullish(),
    index: z.number().int().min(0).max(2_147_483_647).nullish(),
  })
  .refine((n) => (n.accountId ?? n.id) !== undefined, { message: 'accountId is required', path: ['accountId'] });
type Notification = z.infer<typeof notification>;

type Outcome = 'stored' | 'duplicate' | 'unknown-account';

export function tatumWebhookRoute(services: AppServices): RouteHandler {
  const { config } = services;
  return async (req, res) => {
    // Every answer is counted by what happened (webhook_deliveries_total{outcome}).
    const reply = (status: number, outcome: string, body: unknown) => {
      recordWebhookDelivery(outcome);
      sendJson(res, status, body);
    };
    const body = await readRawBody(req, MAX_WEBHOOK_BYTES);
    if (body === undefined) {
      // The rest of the body is never read, so the connection cannot be reused.
      res.setHeader('connection', 'close');
      return reply(413, 'too-large', { error: `body larger than ${MAX_WEBHOOK_BYTES} bytes` });
    }
    if (!signedBy(config.TATUM_WEBHOOK_HMAC_SECRET, body, req.headers['x-payload-hash'])) {
      services.log.warn({ bytes: body.length }, 'webhook rejected: missing or invalid x-payload-hash');
      return reply(401, 'bad-signature', { error: 'missing or invalid x-payload-hash' });
    }
    const json = parseJson(body);
    if (json === undefined) return reply(400, 'invalid', { error: 'body is not valid JSON' });
    // Refused here, or the insert would fail on every delivery and Tatum would retry it for hours as a 503.
    if (!storable(json)) return reply(400, 'invalid', { error: 'body holds a NUL character or half a surrogate pair, which cannot be stored' });
    const parsed = notification.safeParse(json);
    if (!parsed.success) return reply(400, 'invalid', { error: z.prettifyError(parsed.error) });
    const payload = parsed.data;
    if (payload.subscriptionType !== undefined && payload.subscriptionType !== INCOMING) {
      // Not a credited deposit (e.g. a pending one): acknowledged so it is not retried, never stored.
      services.log.warn({ subscriptionType: payload.subscriptionType, reference: payload.reference }, 'webhook ignored: not an incoming deposit');
      return reply(202, 'ignored', { status: 'ignored' });
    }

    let outcome: Outcome;
    try {
      outcome = await withDeadline(storeDeposit(services, payload), WEBHOOK_DEADLINE_MS);
    } catch (err) {
      services.log.error({ err, reference: payload.reference }, 'webhook not stored; Tatum will deliver it again');
      return reply(503, 'unavailable', { error: 'temporarily unable to store the notification; retry' });
    }
    const accountId = payload.accountId ?? payload.id;
    if (outcome === 'unknown-account') {
      // Retrying would never help, so acknowledge it; the warning is what an operator acts on.
      services.log.warn({ accountId, currency: payload.currency, reference: payload.reference }, 'webhook names no account of ours with that Tatum id and currency: nothing credited');
      return reply(202, outcome, { status: 'ignored' });
    }
    services.log.info({ accountId, reference: payload.reference, outcome }, 'webhook accepted');
    return reply(200, outcome, { status: outcome });
  };
}

/**
 * Tatum's scheme: base64(HMAC-SHA512(secret, body)). The digest is computed over the raw bytes as
 * received (Tatum signs the compact JSON it sends), and compared as bytes in constant time. Only
 * canonical base64 of 64 bytes can match, so a hex digest or a lower-cased header never does.
 */
export function signedBy(secret: string, body: Buffer, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || !/^[A-Za-z0-9+/]{86}==$/.test(header)) return false;
  const given = Buffer.from(header, 'base64');
  const expected = createHmac('sha512', secret).update(body).digest();
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The account is found by the Tatum account id the notification names, and must hold the currency
 * it names: never "the first account with this address" (pitfall #8), which can be a token's
 * account sharing the address.
 */
async function storeDeposit(services: AppServices, payload: Notification): Promise<Outcome> {
  return services.db.transaction(async (tx) => {
    const [account] = await queryRows<{ id: string }>(
      tx,
      sql`select id from virtual_accounts
          where tatum_account_id = ${payload.accountId ?? payload.id} and currency = ${payload.currency}`,
    );
    if (!account) return 'unknown-account';
    // The unique index on reference decides between concurrent deliveries: the loser waits for the
    // winner's commit, then inserts nothing and returns no row.
    const [inserted] = await queryRows<{ id: string }>(
      tx,
      sql`insert into deposits (reference, virtual_account_id, currency, amount, tx_id, block_height,
                                from_address, to_address, output_index, payload)
          values (${payload.reference}, ${account.id}, ${payload.currency}, ${payload.amount}::numeric,
                  ${payload.txId}, ${payload.blockHeight ?? null}, ${payload.from ?? null}, ${payload.to ?? null},
                  ${payload.index ?? null}, ${JSON.stringify(payload)}::jsonb)
          on conflict (reference) do nothing
          returning id`,
    );
    if (!inserted) return 'duplicate';
    // Created in the same transaction as the row: both exist after the commit, or neither does.
    const job: DepositReceivedJob = { depositId: inserted.id };
    await services.boss.send(QUEUES.depositReceived, job, { db: bossDb(tx) });
    return 'stored';
  });
}

/** Resolves with the body, or with undefined as soon as it exceeds `limit` bytes. */
function readRawBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  if (Number(req.headers['content-length']) > limit) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.off('data', onData);
      req.pause();
      resolve(undefined);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined; // valid JSON never parses to undefined
  }
}

// Postgres text and jsonb hold neither NUL nor a lone UTF-16 surrogate (valid JSON can carry both).
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function storable(value: unknown): boolean {
  if (typeof value === 'string') return !UNSTORABLE.test(value);
  if (Array.isArray(value)) return value.every(storable);
  if (value !== null && typeof value === 'object') return Object.entries(value).every(([key, item]) => storable(key) && storable(item));
  return true;
}

/**
 * Gives up waiting after `ms`. The work is not cancelled, and need not be: if it commits after we
 * answered 503, Tatum's next delivery is a duplicate and a no-op.
 */
function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not stored within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
