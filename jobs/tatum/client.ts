// Typed client for the Tatum v3 calls provisioning makes, on ofetch. Every call: validated input,
// `x-api-key`, a per-attempt AbortSignal timeout, a slot from the global rate limiter, a validated
// response. Retries only what cannot duplicate anything:
// - 429, any method: Tatum refuses before touching the ledger. Retry-After is honoured and pushed
//   to every process through the shared limiter.
// - 5xx, timeouts and network errors: only for GET. A write that failed this way may have been
//   applied, so it surfaces as `maybeCreated` and the caller looks up before creating again.
import { setTimeout as sleep } from 'node:timers/promises';
import { ofetch } from 'ofetch';
import { z } from 'zod';
import type { Executor } from '../../db/client.ts';
import type { Config } from '../config.ts';
import { TatumError, type TatumErrorKind } from './errors.ts';
import { createTatumRateLimiter, type RateLimiter } from './rate-limit.ts';
import { SANDBOX_API_KEY } from './sandbox/server.ts';
import {
  Account,
  Address,
  CreateAccountBatchInput,
  CreateAccountInput,
  CreateSubscriptionInput,
  Customer,
  DepositAddressBatchInput,
  DerivationIndex,
  ErrorEnvelope,
  HmacInput,
  IdResponse,
  INCOMING_TRANSACTION,
  Offset,
  PageSize,
  Subscription,
  TatumId,
  type DepositAddressBatchItem,
} from './schemas.ts';

export interface TatumRequestEvent {
  /** Path template, e.g. `/v3/offchain/account/:id/address`. */
  route: string;
  method: string;
  /** HTTP status, or why there was none. */
  status: number | 'timeout' | 'network';
  durationMs: number;
}

export interface RetryOptions {
  /** Total attempts for a retryable failure, the first included. */
  attempts?: number;
  baseDelayMs?: number;
  /** Longest wait between attempts; a longer Retry-After ends the retries. */
  maxDelayMs?: number;
}

export interface TatumClientOptions {
  baseUrl: string;
  apiKey: string;
  /** Per attempt. */
  timeoutMs: number;
  /** The global TATUM_MAX_RPS limiter; without it the client only honours Retry-After locally. */
  rateLimiter?: RateLimiter;
  retry?: RetryOptions;
  /** Called once per HTTP attempt (metrics). Must not throw. */
  onRequest?: (event: TatumRequestEvent) => void;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

interface Call<T> {
  method: Method;
  route: string;
  path: string;
  query?: Record<string, string | number>;
  body?: unknown;
  /** `null` for Tatum's 204 answers. */
  response: z.ZodType<T> | null;
}

type Attempt =
  | { kind: 'response'; status: number; headers: Headers; text: string }
  | { kind: 'timeout' | 'network' };

const DEFAULT_RETRY: Required<RetryOptions> = { attempts: 5, baseDelayMs: 1000, maxDelayMs: 30_000 };

export class TatumClient {
  readonly #apiKey: string;
  readonly #baseUrl: string;
  readonly #timeoutMs: number;
  readonly #limiter: RateLimiter | undefined;
  readonly #retry: Required<RetryOptions>;
  readonly #onRequest: ((event: TatumRequestEvent) => void) | undefined;

  constructor(options: TatumClientOptions) {
    this.#apiKey = options.apiKey;
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs;
    this.#limiter = options.rateLimiter;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#onRequest = options.onRequest;
  }

  // ---- ledger accounts and customers ------------------------------------------------------------

  async createAccount(input: CreateAccountInput): Promise<Account> {
    const body = this.#input(CreateAccountInput, input, 'POST', '/v3/ledger/account');
    return this.#call({ method: 'POST', route: '/v3/ledger/account', path: '/v3/ledger/account', body, response: Account });
  }

  async createAccountsBatch(accounts: CreateAccountInput[]): Promise<Account[]> {
    const route = '/v3/ledger/account/batch';
    const body = this.#input(CreateAccountBatchInput, { accounts }, 'POST', route);
    return this.#call({ method: 'POST', route, path: route, body, response: z.array(Account) });
  }

  async getAccountsByAccountNumber(accountNumber: string, options: { pageSize?: number } = {}): Promise<Account[]> {
    const route = '/v3/ledger/account';
    const query = this.#input(
      z.object({ accountNumber: z.string().min(1).max(50), pageSize: PageSize }),
      { accountNumber, pageSize: options.pageSize ?? 50 },
      'GET',
      route,
    );
    return this.#call({ method: 'GET', route, path: route, query, response: z.array(Account) });
  }

  /** Throws a TatumError with `notFound` when no customer has this externalId. */
  async getCustomerByExternalId(externalId: string): Promise<Customer> {
    const route = '/v3/ledger/customer/:id';
    const id = this.#input(z.string().min(1).max(100), externalId, 'GET', route);
    return this.#call({ method: 'GET', route, path: `/v3/ledger/customer/${encodeURIComponent(id)}`, response: Customer });
  }

  /** Active accounts of a customer, by Tatum's internal customer id. */
  async getAccountsByCustomer(customerId: string, options: { pageSize?: number; offset?: number } = {}): Promise<Account[]> {
    const route = '/v3/ledger/account/customer/:id';
    const { id, ...query } = this.#input(
      z.object({ id: z.string().min(1).max(100), pageSize: PageSize, offset: Offset.optional() }),
      { id: customerId, pageSize: options.pageSize ?? 50, offset: options.offset },
      'GET',
      route,
    );
    return this.#call({
      method: 'GET',
      route,
      path: `/v3/ledger/account/customer/${encodeURIComponent(id)}`,
      query: definedOnly(query),
      response: z.array(Account),
    });
  }

  // ---- deposit addresses ------------------------------------------------------------------------

  /** Tatum derives the address from the account's xpub at `index` (next free index if omitted). */
  async createDepositAddress(accountId: string, index?: number): Promise<Address> {
    const route = '/v3/offchain/account/:id/address';
    const input = this.#input(
      z.object({ accountId: TatumId, index: DerivationIndex.optional() }),
      { accountId, index },
      'POST',
      route,
    );
    return this.#call({
      method: 'POST',
      route,
      path: `/v3/offchain/account/${input.accountId}/address`,
      query: definedOnly({ index: input.index }),
      response: Address,
    });
  }

  async createDepositAddressesBatch(addresses: DepositAddressBatchItem[]): Promise<Address[]> {
    const route = '/v3/offchain/account/address/batch';
    const body = this.#input(DepositAddressBatchInput, { addresses }, 'POST', route);
    return this.#call({ method: 'POST', route, path: route, body, response: z.array(Address) });
  }

  async listDepositAddresses(accountId: string): Promise<Address[]> {
    const route = '/v3/offchain/account/:id/address';
    const id = this.#input(TatumId, accountId, 'GET', route);
    return this.#call({ method: 'GET', route, path: `/v3/offchain/account/${id}/address`, response: z.array(Address) });
  }

  // ---- webhook subscriptions --------------------------------------------------------------------

  /** ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION for one ledger account; returns the subscription id. */
  async createSubscription(input: { accountId: string; url: string }): Promise<string> {
    const route = '/v3/subscription';
    const body = this.#input(
      CreateSubscriptionInput,
      { type: INCOMING_TRANSACTION, attr: { id: input.accountId, url: input.url } },
      'POST',
      route,
    );
    const { id } = await this.#call({ method: 'POST', route, path: route, body, response: IdResponse });
    return id;
  }

  async listSubscriptions(options: { pageSize?: number; offset?: number } = {}): Promise<Subscription[]> {
    const route = '/v3/subscription';
    const query = this.#input(
      z.object({ pageSize: PageSize, offset: Offset.optional() }),
      { pageSize: options.pageSize ?? 50, offset: options.offset },
      'GET',
      route,
    );
    return this.#call({ method: 'GET', route, path: route, query: definedOnly(query), response: z.array(Subscription) });
  }

  async deleteSubscription(id: string): Promise<void> {
    const route = '/v3/subscription/:id';
    const subscriptionId = this.#input(TatumId, id, 'DELETE', route);
    await this.#call({ method: 'DELETE', route, path: `/v3/subscription/${subscriptionId}`, response: null });
  }

  /** From now on Tatum signs every webhook: `x-payload-hash` = base64(HMAC-SHA512(secret, body)). */
  async setWebhookHmac(hmacSecret: string): Promise<void> {
    const route = '/v3/subscription';
    // The schema's message never echoes the secret: zod reports lengths, not values.
    const body = this.#input(HmacInput, { hmacSecret }, 'PUT', route);
    await this.#call({ method: 'PUT', route, path: route, body, response: null });
  }

  // ---- transport --------------------------------------------------------------------------------

  #input<T>(schema: z.ZodType<T>, value: unknown, method: Method, route: string): T {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    throw new TatumError(`Invalid request: ${z.prettifyError(parsed.error)}`, {
      kind: 'invalid-request',
      method,
      route,
      maybeCreated: false,
    });
  }

  async #call<T>(call: Call<T>): Promise<T> {
    const write = call.method !== 'GET';
    for (let attempt = 1; ; attempt++) {
      await this.#limiter?.acquire();
      const result = await this.#send(call);
      if (result.kind === 'response' && result.status >= 200 && result.status < 300) {
        return this.#parse(call, result.text);
      }

      const error = this.#failure(call, result);
      const last = attempt >= this.#retry.attempts;
      if (result.kind === 'response' && result.status === 429) {
        const delay = retryAfterMs(result.headers) ?? this.#backoff(attempt);
        // Everyone holds off, not just this caller: the limit is per API key.
        if (this.#limiter) await this.#limiter.pushBack(delay);
        if (last || delay > this.#retry.maxDelayMs) throw error;
        if (!this.#limiter) await sleep(delay);
        continue;
      }
      const transient = result.kind !== 'response' || result.status >= 500;
      if (write || !transient || last) throw error;
      await sleep(this.#backoff(attempt));
    }
  }

  async #send(call: Call<unknown>): Promise<Attempt> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    const started = performance.now();
    let attempt: Attempt;
    try {
      const response = await ofetch.raw(`${this.#baseUrl}${call.path}`, {
        method: call.method,
        headers: { 'x-api-key': this.#apiKey, accept: 'application/json' },
        query: call.query,
        body: call.body as Record<string, unknown> | undefined,
        signal,
        retry: false,
        ignoreResponseError: true,
        responseType: 'text',
      });
      attempt = { kind: 'response', status: response.status, headers: response.headers, text: response._data ?? '' };
    } catch {
      // ofetch's error carries the request options, headers included: it is dropped here so the
      // API key cannot travel on in a `cause`.
      attempt = { kind: signal.aborted ? 'timeout' : 'network' };
    }
    this.#report(call, attempt.kind === 'response' ? attempt.status : attempt.kind, performance.now() - started);
    return attempt;
  }

  #report(call: Call<unknown>, status: TatumRequestEvent['status'], durationMs: number) {
    try {
      this.#onRequest?.({ route: call.route, method: call.method, status, durationMs });
    } catch {
      // metrics must never fail a request
    }
  }

  #parse<T>(call: Call<T>, text: string): T {
    if (call.response === null) return undefined as T;
    const parsed = call.response.safeParse(parseJson(text));
    if (parsed.success) return parsed.data;
    throw new TatumError(this.#redact(`Unexpected response from Tatum: ${z.prettifyError(parsed.error)}`), {
      kind: 'invalid-response',
      method: call.method,
      route: call.route,
      // Tatum answered 2xx: a write did happen, we just cannot read what it made.
      maybeCreated: call.method !== 'GET',
    });
  }

  #failure(call: Call<unknown>, result: Attempt): TatumError {
    const write = call.method !== 'GET';
    const base = { method: call.method, route: call.route };
    if (result.kind !== 'response') {
      const kind: TatumErrorKind = result.kind;
      const what = kind === 'timeout' ? `no answer within ${this.#timeoutMs} ms` : 'connection failed';
      return new TatumError(`Tatum ${call.method} ${call.route}: ${what}`, { ...base, kind, maybeCreated: write });
    }
    const envelope = ErrorEnvelope.safeParse(parseJson(result.text));
    const message = envelope.success ? envelope.data.message : `HTTP ${result.status}`;
    return new TatumError(this.#redact(message), {
      ...base,
      kind: 'http',
      status: result.status,
      errorCode: envelope.success ? envelope.data.errorCode : undefined,
      data: envelope.success && envelope.data.data ? (JSON.parse(this.#redact(JSON.stringify(envelope.data.data))) as unknown[]) : undefined,
      // A 5xx may come from a proxy after the ledger committed; anything else was refused.
      maybeCreated: write && result.status >= 500,
    });
  }

  /** Tatum echoes a rejected API key in its 401 message; it must not reach our logs. */
  #redact(text: string): string {
    return this.#apiKey === '' ? text : text.replaceAll(this.#apiKey, '[redacted]');
  }

  #backoff(attempt: number): number {
    const exponential = this.#retry.baseDelayMs * 2 ** (attempt - 1);
    // Up to 20 % jitter so processes refused together do not come back together.
    return Math.min(this.#retry.maxDelayMs, exponential * (1 + Math.random() * 0.2));
  }
}

export const TATUM_API_URL = 'https://api.tatum.io';

/**
 * The client a process uses, from configuration: TATUM_API_KEY (the sandbox key in sandbox mode),
 * TATUM_BASE_URL, TATUM_TIMEOUT_MS, and TATUM_MAX_RPS shared through `db` with every other process.
 * In sandbox mode the URL is the sandbox's (`sandboxUrl` when embedded); none is an error, never a
 * silent fallback to the real Tatum.
 */
export function createTatumClient(
  config: Pick<Config, 'mode' | 'TATUM_API_KEY' | 'TATUM_BASE_URL' | 'TATUM_TIMEOUT_MS' | 'TATUM_MAX_RPS'>,
  db: Executor,
  options: { sandboxUrl?: string; onRequest?: TatumClientOptions['onRequest'] } = {},
): TatumClient {
  const baseUrl = config.mode === 'live' ? (config.TATUM_BASE_URL ?? TATUM_API_URL) : (options.sandboxUrl ?? config.TATUM_BASE_URL);
  if (baseUrl === undefined) throw new Error('Sandbox mode needs the sandbox URL: start the embedded sandbox or set TATUM_BASE_URL');
  return new TatumClient({
    baseUrl,
    apiKey: config.TATUM_API_KEY ?? SANDBOX_API_KEY,
    timeoutMs: config.TATUM_TIMEOUT_MS,
    rateLimiter: createTatumRateLimiter(db, { maxRps: config.TATUM_MAX_RPS }),
    onRequest: options.onRequest,
  });
}

function parseJson(text: string): unknown {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Retry-After as delay-seconds or an HTTP date. */
function retryAfterMs(headers: Headers): number | undefined {
  const value = headers.get('retry-after');
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function definedOnly<T extends Record<string, string | number | undefined>>(values: T): Record<string, string | number> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Record<string, string | number>;
}
