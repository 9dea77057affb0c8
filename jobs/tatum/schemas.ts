// Tatum v3 shapes (docs: shared/reference/tatum-api.md), as zod schemas. The client validates what it
// sends and what it receives with them; the sandbox validates requests with the same input schemas,
// so the two cannot drift apart. Response objects strip unknown keys: Tatum adds fields over time.
import { z } from 'zod';

/** Ledger ids (account, customer, subscription, webhook) are 24-hex Mongo ObjectIds. */
export const TatumId = z.string().regex(/^[0-9a-f]{24}$/i, 'must be a 24-character hex id');

/** Amounts and balances travel as decimal strings, never numbers (pitfall #16). */
export const DecimalString = z.string().regex(/^-?\d+(\.\d+)?$/, 'must be a decimal string');

/** BIP-32 non-hardened child index, Tatum's `index` / `derivationKey`. */
export const DerivationIndex = z.number().int().min(0).max(2_147_483_647);

export const PageSize = z.number().int().min(1).max(50);
export const Offset = z.number().int().min(0);

// ---- inputs -------------------------------------------------------------------------------------

export const CustomerRegistration = z.object({
  externalId: z.string().min(1).max(100),
  accountingCurrency: z.string().length(3).optional(),
  customerCountry: z.string().length(2).optional(),
  providerCountry: z.string().length(2).optional(),
});
export type CustomerRegistration = z.infer<typeof CustomerRegistration>;

export const CreateAccountInput = z.object({
  currency: z.string().min(2).max(40),
  xpub: z.string().min(1).max(192).optional(),
  customer: CustomerRegistration.optional(),
  compliant: z.boolean().optional(),
  accountCode: z.string().min(1).max(50).optional(),
  accountingCurrency: z.string().length(3).optional(),
  accountNumber: z.string().min(1).max(50).optional(),
});
export type CreateAccountInput = z.infer<typeof CreateAccountInput>;

export const CreateAccountBatchInput = z.object({ accounts: z.array(CreateAccountInput).min(1) });

export const DepositAddressBatchItem = z.object({ accountId: TatumId, derivationKey: DerivationIndex.optional() });
export type DepositAddressBatchItem = z.infer<typeof DepositAddressBatchItem>;
export const DepositAddressBatchInput = z.object({ addresses: z.array(DepositAddressBatchItem).min(1) });

export const INCOMING_TRANSACTION = 'ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION';

export const CreateSubscriptionInput = z.object({
  type: z.literal(INCOMING_TRANSACTION),
  attr: z.object({ id: TatumId, url: z.url({ protocol: /^https?$/ }).max(500) }),
});
export type CreateSubscriptionInput = z.infer<typeof CreateSubscriptionInput>;

export const HmacInput = z.object({ hmacSecret: z.string().min(1).max(100) });

// ---- responses ----------------------------------------------------------------------------------

export const Balance = z.object({ accountBalance: DecimalString, availableBalance: DecimalString });

export const Account = z.object({
  id: TatumId,
  balance: Balance,
  currency: z.string(),
  frozen: z.boolean(),
  active: z.boolean(),
  customerId: z.string().optional(),
  accountNumber: z.string().optional(),
  accountCode: z.string().optional(),
  accountingCurrency: z.string().optional(),
  xpub: z.string().optional(),
});
export type Account = z.infer<typeof Account>;

export const Customer = z.object({
  id: z.string(),
  externalId: z.string(),
  enabled: z.boolean(),
  active: z.boolean(),
  accountingCurrency: z.string().optional(),
  customerCountry: z.string().optional(),
  providerCountry: z.string().optional(),
});
export type Customer = z.infer<typeof Customer>;

export const Address = z.object({
  address: z.string().min(1),
  currency: z.string(),
  derivationKey: DerivationIndex.optional(),
  xpub: z.string().optional(),
  destinationTag: z.number().optional(),
  memo: z.string().optional(),
  message: z.string().optional(),
});
export type Address = z.infer<typeof Address>;

export const IdResponse = z.object({ id: TatumId });

export const Subscription = z.object({
  id: TatumId,
  type: z.string(),
  attr: z.record(z.string(), z.unknown()).optional(),
});
export type Subscription = z.infer<typeof Subscription>;

/** Every Tatum error body: 400 adds `data` (class-validator style), 500 has no errorCode. */
export const ErrorEnvelope = z.object({
  statusCode: z.number().int(),
  errorCode: z.string().optional(),
  message: z.string(),
  data: z.array(z.unknown()).optional(),
});
export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;

// ---- webhooks -----------------------------------------------------------------------------------

/**
 * The ACCOUNT_INCOMING_BLOCKCHAIN_TRANSACTION payload (§7.1). `from` is absent on UTXO chains and
 * `index` (the output index) present only there.
 */
export const IncomingTransactionWebhook = z.object({
  date: z.number(),
  amount: DecimalString,
  currency: z.string(),
  subscriptionType: z.literal(INCOMING_TRANSACTION).optional(),
  accountId: TatumId,
  reference: z.string().min(1),
  txId: z.string().min(1),
  blockHash: z.string().nullable().optional(),
  blockHeight: z.number().nullable().optional(),
  from: z.string().optional(),
  to: z.string(),
  index: z.number().int().optional(),
});
export type IncomingTransactionWebhook = z.infer<typeof IncomingTransactionWebhook>;
