// The application's tables. Every invariant that money depends on is a constraint here, so Postgres
// rejects a violation whatever code path attempts it.
import { sql } from 'drizzle-orm';
import {
  boolean,
  check,
  index,
  integer,
  jsonb,
  numeric,
  pgEnum,
  pgTable,
  smallint,
  text,
  timestamp,
  unique,
  uuid,
} from 'drizzle-orm/pg-core';

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

export const chain = pgEnum('chain', ['bitcoin', 'ethereum', 'tron', 'bsc', 'litecoin']);
export const currencyKind = pgEnum('currency_kind', ['native', 'token']);
export const accountStatus = pgEnum('account_status', ['pending', 'ready', 'failed']);

export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    email: text('email').notNull().unique('users_email_unique'),
    emailVerifiedAt: timestamp('email_verified_at', { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [
    // Lower-cased on the way in; the check makes a mixed-case duplicate impossible.
    check('users_email_lower', sql`${t.email} = lower(${t.email})`),
    check('users_email_length', sql`length(${t.email}) between 3 and 254`),
  ],
);

/** One live code per user: issuing a new code replaces the row. Only the hash is stored. */
export const verificationCodes = pgTable(
  'verification_codes',
  {
    userId: uuid('user_id')
      .primaryKey()
      .references(() => users.id, { onDelete: 'cascade' }),
    codeHash: text('code_hash').notNull(),
    attempts: smallint('attempts').notNull().default(0),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [check('verification_codes_attempts', sql`${t.attempts} >= 0`)],
);

/** Session tokens are returned once and stored only as a hash. */
export const sessions = pgTable(
  'sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull().unique('sessions_token_hash_unique'),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('sessions_user_idx').on(t.userId)],
);

export const walletCurrencies = pgTable(
  'wallet_currencies',
  {
    /** Tatum's ledger currency code (BTC, USDT_TRON, ...). */
    code: text('code').primaryKey(),
    chain: chain('chain').notNull(),
    kind: currencyKind('kind').notNull(),
    contractAddress: text('contract_address'),
    decimals: smallint('decimals').notNull(),
    enabled: boolean('enabled').notNull().default(true),
  },
  (t) => [
    check('wallet_currencies_contract', sql`(${t.kind} = 'token') = (${t.contractAddress} is not null)`),
    check('wallet_currencies_decimals', sql`${t.decimals} between 0 and 36`),
  ],
);

/**
 * The platform's HD wallet per chain. `next_index` hands out derivation indexes; index 0 is Tatum's
 * system address and is never given to a user.
 */
export const masterWallets = pgTable(
  'master_wallets',
  {
    chain: chain('chain').primaryKey(),
    xpub: text('xpub').notNull().unique('master_wallets_xpub_unique'),
    mnemonicEncrypted: text('mnemonic_encrypted').notNull(),
    nextIndex: integer('next_index').notNull().default(1),
    createdAt: createdAt(),
  },
  (t) => [check('master_wallets_next_index', sql`${t.nextIndex} >= 1`)],
);

/**
 * One deposit address per (user, chain), shared by that chain's currencies. The row is created when
 * the derivation index is reserved, before Tatum is called; address and key arrive together later.
 */
export const depositAddresses = pgTable(
  'deposit_addresses',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'restrict' }),
    chain: chain('chain').notNull(),
    derivationIndex: integer('derivation_index').notNull(),
    address: text('address'),
    privateKeyEncrypted: text('private_key_encrypted'),
    /** Set before Tatum is first asked for this index: a retry then looks before it asks again. */
    tatumRequestedAt: timestamp('tatum_requested_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique('deposit_addresses_user_chain_unique').on(t.userId, t.chain),
    unique('deposit_addresses_chain_index_unique').on(t.chain, t.derivationIndex),
    unique('deposit_addresses_chain_address_unique').on(t.chain, t.address),
    check('deposit_addresses_index_positive', sql`${t.derivationIndex} >= 1`),
    // An address is only recorded together with the key that was verified to control it.
    check('deposit_addresses_address_with_key', sql`(${t.address} is null) = (${t.privateKeyEncrypted} is null)`),
  ],
);

export const virtualAccounts = pgTable(
  'virtual_accounts',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'restrict' }),
    currency: text('currency')
      .notNull()
      .references(() => walletCurrencies.code),
    /** Deterministic per (user, currency): lets a retry find an account whose create response was lost. */
    accountNumber: text('account_number').notNull().unique('virtual_accounts_account_number_unique'),
    tatumAccountId: text('tatum_account_id').unique('virtual_accounts_tatum_account_id_unique'),
    /** Set before the create call: a retry that finds it without an id looks the account up first. */
    tatumCreateStartedAt: timestamp('tatum_create_started_at', { withTimezone: true }),
    /** Set before the subscription create call, for the same reason. */
    subscribeStartedAt: timestamp('subscribe_started_at', { withTimezone: true }),
    depositAddressId: uuid('deposit_address_id').references(() => depositAddresses.id),
    /** Set once Tatum has registered the deposit address on this account. */
    addressAssignedAt: timestamp('address_assigned_at', { withTimezone: true }),
    status: accountStatus('status').notNull().default('pending'),
    lastError: text('last_error'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique('virtual_accounts_user_currency_unique').on(t.userId, t.currency),
    check('virtual_accounts_ready_complete', sql`${t.status} <> 'ready' or (${t.tatumAccountId} is not null and ${t.addressAssignedAt} is not null)`),
    index('virtual_accounts_status_idx').on(t.status),
  ],
);

export const webhookSubscriptions = pgTable('webhook_subscriptions', {
  id: uuid('id').primaryKey().defaultRandom(),
  virtualAccountId: uuid('virtual_account_id')
    .notNull()
    .references(() => virtualAccounts.id, { onDelete: 'restrict' })
    .unique('webhook_subscriptions_account_unique'),
  tatumSubscriptionId: text('tatum_subscription_id').notNull().unique('webhook_subscriptions_tatum_id_unique'),
  url: text('url').notNull(),
  createdAt: createdAt(),
});

/** One row per Tatum ledger transaction `reference`, inserted only from authenticated webhooks. */
export const deposits = pgTable(
  'deposits',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    reference: text('reference').notNull().unique('deposits_reference_unique'),
    virtualAccountId: uuid('virtual_account_id')
      .notNull()
      .references(() => virtualAccounts.id, { onDelete: 'restrict' }),
    currency: text('currency').notNull(),
    amount: numeric('amount', { precision: 78, scale: 36 }).notNull(),
    txId: text('tx_id').notNull(),
    blockHeight: integer('block_height'),
    fromAddress: text('from_address'),
    toAddress: text('to_address'),
    outputIndex: integer('output_index'),
    status: text('status').notNull().default('pending'),
    payload: jsonb('payload').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    check('deposits_amount_positive', sql`${t.amount} > 0`),
    index('deposits_account_created_idx').on(t.virtualAccountId, t.createdAt),
  ],
);

/**
 * Rate limits shared by every process: a request takes the next free slot, so N processes together
 * never exceed the limit.
 */
export const rateLimits = pgTable('rate_limits', {
  name: text('name').primaryKey(),
  nextSlotAt: timestamp('next_slot_at', { withTimezone: true, precision: 6 }).notNull().defaultNow(),
});
