// The Tatum v3 endpoints the sandbox serves, in Tatum's shapes. Requests are validated with the
// client's own schemas; a failure answers 400 `validation.failed` with class-validator-style `data[]`.
import { z } from 'zod';
import {
  CreateAccountInput,
  CreateSubscriptionInput,
  CustomerRegistration,
  DepositAddressBatchInput,
  HmacInput,
  INCOMING_TRANSACTION,
  TatumId,
} from '../schemas.ts';
import { LedgerError, type Ledger } from './ledger.ts';
import type { WebhookSender } from './webhooks.ts';

export interface RouteRequest {
  params: Record<string, string>;
  query: Record<string, string>;
  body: unknown;
}

export interface RouteResult {
  status: number;
  body?: unknown;
}

export interface Route {
  method: string;
  template: string;
  handle(request: RouteRequest): RouteResult;
}

/** A 400 in Tatum's envelope. */
export class ValidationFailure extends Error {
  constructor(readonly data: unknown[]) {
    super('Request validation failed. Please see data for additional information.');
  }
}

export function validate<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ValidationFailure(
    parsed.error.issues.map((issue) => {
      const property = issue.path.join('.') || 'body';
      return { target: value, property, value: valueAt(value, issue.path), constraints: { [issue.code]: `${property} ${issue.message}` } };
    }),
  );
}

function valueAt(value: unknown, path: PropertyKey[]): unknown {
  return path.reduce<unknown>((v, key) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined), value);
}

// Tatum accepts only ISO 4217 codes as accounting currencies. The client checks the shape alone and
// leaves the list to Tatum, so this is where a well-formed but unknown code is refused (a 400).
const ISO_CURRENCIES = new Set(Intl.supportedValuesOf('currency'));
const Fiat = z.string().refine((code) => ISO_CURRENCIES.has(code), 'must be an ISO 4217 currency code');
const AccountRequest = CreateAccountInput.extend({
  accountingCurrency: Fiat.optional(),
  customer: CustomerRegistration.extend({ accountingCurrency: Fiat.optional() }).optional(),
});
const AccountBatchRequest = z.object({ accounts: z.array(AccountRequest).min(1) });

const pageSize = z.coerce.number().int().min(1).max(50);
const offset = z.coerce.number().int().min(0).default(0);
const Paging = z.object({ pageSize, offset });
const IdParam = z.object({ id: TatumId });

const ok = (body: unknown): RouteResult => ({ status: 200, body });
const noContent: RouteResult = { status: 204 };

export function tatumRoutes(ledger: Ledger, webhooks: WebhookSender): Route[] {
  return [
    {
      method: 'POST',
      template: '/v3/ledger/account',
      handle: ({ body }) => ok(ledger.createAccounts([validate(AccountRequest, body)])[0]),
    },
    {
      method: 'POST',
      template: '/v3/ledger/account/batch',
      handle: ({ body }) => ok(ledger.createAccounts(validate(AccountBatchRequest, body).accounts)),
    },
    {
      method: 'GET',
      template: '/v3/ledger/account',
      handle: ({ query }) => {
        const q = validate(z.object({ pageSize: pageSize.default(50), offset, accountNumber: z.string().min(1).max(50).optional() }), query);
        return ok(ledger.listAccounts(q.accountNumber, q.pageSize, q.offset));
      },
    },
    {
      method: 'GET',
      template: '/v3/ledger/account/customer/:id',
      handle: ({ params, query }) => {
        const q = validate(Paging, query);
        return ok(ledger.accountsByCustomer(params.id!, q.pageSize, q.offset));
      },
    },
    {
      method: 'GET',
      template: '/v3/ledger/customer/:id',
      handle: ({ params }) => ok(ledger.customer(params.id!)),
    },
    {
      method: 'POST',
      template: '/v3/offchain/account/address/batch',
      handle: ({ body }) => {
        const { addresses } = validate(DepositAddressBatchInput, body);
        return ok(ledger.generateAddresses(addresses.map((a) => ({ accountId: a.accountId, index: a.derivationKey }))));
      },
    },
    {
      method: 'POST',
      template: '/v3/offchain/account/:id/address',
      handle: ({ params, query }) => {
        const { id } = validate(IdParam, params);
        const { index } = validate(z.object({ index: z.coerce.number().int().min(0).max(2_147_483_647).optional() }), query);
        return ok(ledger.generateAddresses([{ accountId: id, index }])[0]);
      },
    },
    {
      method: 'GET',
      template: '/v3/offchain/account/:id/address',
      handle: ({ params }) => ok(ledger.addressesOf(validate(IdParam, params).id)),
    },
    {
      method: 'POST',
      template: '/v3/subscription',
      handle: ({ body }) => {
        const type = (body as { type?: unknown } | undefined)?.type;
        if (typeof type === 'string' && type !== INCOMING_TRANSACTION) {
          // The sandbox implements the one type provisioning uses.
          throw new LedgerError('subscription.type.invalid', 'Invalid subscription type.');
        }
        const input = validate(CreateSubscriptionInput, body);
        return ok({ id: ledger.createSubscription(input.type, input.attr) });
      },
    },
    {
      method: 'GET',
      template: '/v3/subscription',
      handle: ({ query }) => {
        const q = validate(Paging, query);
        return ok(ledger.listSubscriptions(q.pageSize, q.offset));
      },
    },
    {
      method: 'PUT',
      template: '/v3/subscription',
      handle: ({ body }) => {
        ledger.hmacSecret = validate(HmacInput, body).hmacSecret;
        return noContent;
      },
    },
    {
      method: 'DELETE',
      template: '/v3/subscription',
      handle: () => {
        ledger.hmacSecret = undefined;
        return noContent;
      },
    },
    {
      method: 'GET',
      template: '/v3/subscription/webhook',
      handle: ({ query }) => {
        const q = validate(
          Paging.extend({ direction: z.enum(['asc', 'desc']).default('desc'), failed: z.enum(['true', 'false']).optional() }),
          query,
        );
        const matching = webhooks.records.filter((r) => q.failed === undefined || String(r.failed) === q.failed);
        const ordered = q.direction === 'asc' ? matching : [...matching].reverse();
        return ok(ordered.slice(q.offset, q.offset + q.pageSize));
      },
    },
    {
      method: 'DELETE',
      template: '/v3/subscription/:id',
      handle: ({ params }) => {
        ledger.deleteSubscription(validate(IdParam, params).id);
        return noContent;
      },
    },
  ];
}

/** The first route whose method and template match, with its path parameters. */
export function matchRoute(routes: Route[], method: string, pathname: string): { route: Route; params: Record<string, string> } | undefined {
  const segments = pathname.replace(/\/+$/, '').split('/');
  for (const route of routes) {
    if (route.method !== method) continue;
    const pattern = route.template.split('/');
    if (pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const matches = pattern.every((part, i) => {
      if (part.startsWith(':')) {
        params[part.slice(1)] = safeDecode(segments[i]!);
        return segments[i] !== '';
      }
      return part === segments[i];
    });
    if (matches) return { route, params };
  }
  return undefined;
}

/** A malformed %-escape stays as sent: it then fails validation (400) instead of crashing (500). */
function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
