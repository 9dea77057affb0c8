// A local stand-in for Tatum: a real HTTP server (node:http) serving the v3 endpoints provisioning
// uses, with Tatum's auth, envelopes and ledger rules, plus sandbox-only routes under /sandbox/ for
// tests and benchmarks: counters, full state, runtime knobs and "credit a deposit" (which fires the
// signed webhooks). Used by tests, benchmarks, `npm run tatum:sandbox` and embedded mode.
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { z } from 'zod';
import { addressOfPublicKey } from '../../custody/hd.ts';
import { chainOf, UTXO_CHAINS } from '../currencies.ts';
import { DecimalString, INCOMING_TRANSACTION, TatumId, type Account, type Address, type Customer, type Subscription } from '../schemas.ts';
import { CREATE_ROUTES, pickFault, SandboxKnobs, SandboxKnobsPatch, seededRandom, type Fault, type SandboxKnobsInput } from './knobs.ts';
import { accountView, addressView, Ledger, LedgerError } from './ledger.ts';
import { matchRoute, tatumRoutes, validate, ValidationFailure, type RouteResult } from './routes.ts';
import { WebhookSender, type WebhookCounters } from './webhooks.ts';

export { CREATE_ROUTES, SandboxKnobs };
export type { SandboxKnobsInput };

/** The key the sandbox accepts unless told otherwise; the app's client uses it in sandbox mode. */
export const SANDBOX_API_KEY = 'sandbox-tatum-api-key-not-a-secret';

export interface SandboxOptions extends SandboxKnobsInput {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  apiKey?: string;
}

export interface SandboxCounters {
  accounts: number;
  customers: number;
  addresses: number;
  /** Subscriptions that exist now; created and deleted count every call. */
  subscriptions: number;
  subscriptionsCreated: number;
  subscriptionsDeleted: number;
  /** By route key ('METHOD /template', or 'unmatched'), then by status ('200', '403', 'dropped', 'held'). */
  requests: Record<string, Record<string, number>>;
  rateLimited: number;
  faults: Record<Fault, number>;
  webhooks: WebhookCounters;
}

export interface SandboxState {
  accounts: (Account & { addresses: Address[]; subscriptions: Subscription[] })[];
  customers: Customer[];
  subscriptions: Subscription[];
  hmacEnabled: boolean;
}

export const DepositInput = z.object({
  accountId: TatumId,
  amount: DecimalString.refine((a) => !a.startsWith('-') && /[1-9]/.test(a), 'must be positive'),
  txId: z.string().min(1).max(128).optional(),
  /** Sender; a random address of the chain when omitted (never sent for UTXO chains). */
  from: z.string().min(1).optional(),
  /** Which of the account's deposit addresses received it; the first one when omitted. */
  address: z.string().min(1).optional(),
});
export type DepositInput = z.input<typeof DepositInput>;

export interface DepositResult {
  payload: Record<string, unknown>;
  /** One webhook per matching subscription (see GET /v3/subscription/webhook). */
  webhookIds: string[];
}

export interface Sandbox {
  url: string;
  apiKey: string;
  knobs(): SandboxKnobs;
  /** Changes knobs at runtime (same as POST /sandbox/config). */
  configure(patch: z.input<typeof SandboxKnobsPatch>): SandboxKnobs;
  counters(): SandboxCounters;
  state(): SandboxState;
  /** Credits a deposit and sends the webhooks (same as POST /sandbox/deposits). */
  creditDeposit(input: DepositInput): DepositResult;
  /** Emits 'attempt' ({ record, ok }) after every webhook delivery attempt. */
  webhooks: WebhookSender['events'];
  close(): Promise<void>;
}

const INTERNAL_ERROR = { statusCode: 500, message: 'Internal server error' };
const MAX_BODY_BYTES = 1024 * 1024;

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const { port = 0, host = '127.0.0.1', apiKey = SANDBOX_API_KEY, ...knobInput } = options;
  let knobs = SandboxKnobs.parse(knobInput);
  let random = seededRandom(knobs.seed);

  const ledger = new Ledger(() => knobs.wrongAddress);
  const sender = new WebhookSender(
    () => ({ timeoutMs: knobs.webhookTimeoutMs, retries: knobs.webhookRetries, compression: knobs.webhookCompression }),
    () => ledger.hmacSecret,
  );
  const routes = tatumRoutes(ledger, sender);
  const requests: SandboxCounters['requests'] = {};
  const faults: Record<Fault, number> = { error500: 0, timeout: 0, dropAfterCommit: 0, malformed: 0 };
  let rateLimited = 0;
  let blockHeight = 1_000_000;
  const recentRequests: number[] = [];
  const heldTimers = new Set<NodeJS.Timeout>();

  function configure(patch: unknown): SandboxKnobs {
    const changes = validate(SandboxKnobsPatch, patch);
    const next = validate(SandboxKnobs, { ...knobs, ...changes });
    if (changes.seed !== undefined) random = seededRandom(next.seed);
    knobs = next;
    return knobs;
  }

  function counters(): SandboxCounters {
    return {
      accounts: ledger.accounts.size,
      customers: ledger.customers.size,
      addresses: ledger.addresses.length,
      subscriptions: ledger.subscriptions.size,
      subscriptionsCreated: ledger.subscriptionsCreated,
      subscriptionsDeleted: ledger.subscriptionsDeleted,
      requests: structuredClone(requests),
      rateLimited,
      faults: { ...faults },
      webhooks: { ...sender.counters },
    };
  }

  function state(): SandboxState {
    const subscriptions = [...ledger.subscriptions.values()];
    return {
      accounts: [...ledger.accounts.values()].map((account) => ({
        ...accountView(account),
        addresses: ledger.addresses.filter((a) => a.accountId === account.id).map(addressView),
        subscriptions: subscriptions.filter((s) => s.attr.id === account.id),
      })),
      customers: [...ledger.customers.values()],
      subscriptions,
      hmacEnabled: ledger.hmacSecret !== undefined,
    };
  }

  function creditDeposit(raw: unknown): DepositResult {
    const input = validate(DepositInput, raw);
    const account = ledger.account(input.accountId);
    const owned = ledger.addresses.filter((a) => a.accountId === account.id);
    const to = input.address ?? owned[0]?.address;
    if (to === undefined || !owned.some((a) => a.address === to)) {
      throw new LedgerError('address.not.found', 'No such address exists.');
    }
    ledger.credit(account.id, input.amount);
    const chain = chainOf(account.currency);
    const utxo = UTXO_CHAINS.has(chain);
    // Field order as in Tatum's documented example (§7.1).
    const payload: Record<string, unknown> = {
      date: Date.now(),
      amount: input.amount,
      currency: account.currency,
      subscriptionType: INCOMING_TRANSACTION,
      accountId: account.id,
      reference: randomUUID(),
      txId: input.txId ?? randomBytes(32).toString('hex'),
      blockHash: randomBytes(32).toString('hex'),
      blockHeight: ++blockHeight,
      ...(utxo ? {} : { from: input.from ?? addressOfPublicKey(chain, secp256k1.getPublicKey(secp256k1.utils.randomSecretKey())) }),
      to,
      ...(utxo ? { index: 0 } : {}),
    };
    const targets = [...ledger.subscriptions.values()].filter((s) => s.type === INCOMING_TRANSACTION && s.attr.id === account.id);
    return { payload, webhookIds: targets.map((s) => sender.send(s, payload).id) };
  }

  function count(routeKey: string, status: number | string) {
    const byStatus = (requests[routeKey] ??= {});
    byStatus[String(status)] = (byStatus[String(status)] ?? 0) + 1;
  }

  /** Sliding one-second window; returns Retry-After seconds when over the limit. */
  function overRateLimit(): number | undefined {
    if (knobs.rateLimitRps === null) return undefined;
    const now = Date.now();
    while (recentRequests.length > 0 && recentRequests[0]! <= now - 1000) recentRequests.shift();
    if (recentRequests.length >= knobs.rateLimitRps) return Math.max(1, Math.ceil((recentRequests[0]! + 1000 - now) / 1000));
    recentRequests.push(now);
    return undefined;
  }

  async function handleTatum(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const match = matchRoute(routes, req.method ?? 'GET', url.pathname);
    const routeKey = match ? `${match.route.method} ${match.route.template}` : 'unmatched';
    const respond = (result: RouteResult, headers: Record<string, string> = {}) => {
      count(routeKey, result.status);
      send(res, result, headers);
    };

    if (knobs.latencyMs > 0) await sleep(knobs.latencyMs);
    const key = req.headers['x-api-key'];
    if (key !== apiKey) {
      // Tatum echoes the key it could not find; the client must keep it out of its errors.
      const shown = typeof key === 'string' ? key : '';
      return respond({ status: 401, body: { statusCode: 401, errorCode: 'subscription.invalid', message: `Unable to find valid subscription for '${shown}'` } });
    }
    const retryAfter = overRateLimit();
    if (retryAfter !== undefined) {
      rateLimited++;
      return respond(
        { status: 429, body: { statusCode: 429, errorCode: 'rate.limit.exceeded', message: 'Too Many Requests' } },
        { 'retry-after': String(retryAfter) },
      );
    }
    if (!match) return respond({ status: 404, body: { statusCode: 404, message: `Cannot ${req.method} ${url.pathname}` } });

    const fault = pickFault(knobs, routeKey, random);
    if (fault) faults[fault]++;
    if (fault === 'error500') return respond({ status: 500, body: INTERNAL_ERROR });
    if (fault === 'timeout') return hold(req, routeKey);

    const query = Object.fromEntries(url.searchParams);
    const result = await run(req, (body) => match.route.handle({ params: match.params, query, body }));
    if (fault === 'dropAfterCommit') {
      if (knobs.dropStyle === '500') return respond({ status: 500, body: INTERNAL_ERROR });
      if (knobs.dropStyle === 'hold') return hold(req, routeKey);
      count(routeKey, 'dropped');
      req.socket.destroy();
      return;
    }
    if (fault === 'malformed') {
      count(routeKey, 'malformed');
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>upstream says hello</body></html>');
      return;
    }
    respond(result);
  }

  /** Reads the JSON body, then runs the handler; every refusal becomes Tatum's envelope. */
  async function run(req: IncomingMessage, handler: (body: unknown) => RouteResult): Promise<RouteResult> {
    try {
      return handler(await readJson(req));
    } catch (error) {
      return refusal(error);
    }
  }

  function hold(req: IncomingMessage, routeKey: string): void {
    count(routeKey, 'held');
    const timer = setTimeout(() => {
      heldTimers.delete(timer);
      req.socket.destroy();
    }, knobs.timeoutHoldMs);
    heldTimers.add(timer);
  }

  async function handleSandbox(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.headers['x-api-key'] !== apiKey) {
      return send(res, { status: 401, body: { statusCode: 401, errorCode: 'subscription.invalid', message: 'Missing or wrong x-api-key' } });
    }
    const route = `${req.method} ${url.pathname}`;
    let result: RouteResult;
    try {
      const body = await readJson(req);
      if (route === 'GET /sandbox/counters') result = { status: 200, body: counters() };
      else if (route === 'GET /sandbox/state') result = { status: 200, body: state() };
      else if (route === 'GET /sandbox/config') result = { status: 200, body: knobs };
      else if (route === 'POST /sandbox/config') result = { status: 200, body: configure(body) };
      else if (route === 'POST /sandbox/deposits') result = { status: 200, body: creditDeposit(body) };
      else result = { status: 404, body: { statusCode: 404, message: `Cannot ${route}` } };
    } catch (error) {
      result = refusal(error);
    }
    send(res, result);
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const handler = url.pathname.startsWith('/sandbox/') ? handleSandbox : handleTatum;
    handler(req, res, url).catch(() => {
      if (!res.headersSent) send(res, { status: 500, body: INTERNAL_ERROR });
    });
  });
  server.listen(port, host);
  await once(server, 'listening');
  const address = server.address() as AddressInfo;

  return {
    url: `http://${host}:${address.port}`,
    apiKey,
    knobs: () => knobs,
    configure,
    counters,
    state,
    creditDeposit,
    webhooks: sender.events,
    async close() {
      sender.close();
      for (const timer of heldTimers) clearTimeout(timer);
      heldTimers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function refusal(error: unknown): RouteResult {
  if (error instanceof ValidationFailure) {
    return { status: 400, body: { statusCode: 400, errorCode: 'validation.failed', message: error.message, data: error.data } };
  }
  if (error instanceof LedgerError) {
    return { status: error.statusCode, body: { statusCode: error.statusCode, errorCode: error.errorCode, message: error.message } };
  }
  return { status: 500, body: INTERNAL_ERROR };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ValidationFailure([{ property: 'body', constraints: { maxLength: `body must be at most ${MAX_BODY_BYTES} bytes` } }]);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new ValidationFailure([{ property: 'body', value: text.slice(0, 200), constraints: { isJson: 'body must be valid JSON' } }]);
  }
}

function send(res: ServerResponse, result: RouteResult, headers: Record<string, string> = {}): void {
  if (result.status === 204 || result.body === undefined) {
    res.writeHead(result.status, headers).end();
    return;
  }
  const body = JSON.stringify(result.body);
  res.writeHead(result.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers }).end(body);
}
