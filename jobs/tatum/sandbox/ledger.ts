// The sandbox's in-memory Tatum ledger: customers, accounts, deposit addresses, subscriptions and the
// webhook HMAC secret, with Tatum's rules (shared/reference/tatum-api.md §2-§6): no idempotency,
// customer create-or-update on account create, per-xpub index counters starting at 1, an index used
// once per currency, an (address, currency) pair assigned once. Every operation either applies
// completely or throws a LedgerError before changing anything.
import { randomBytes } from 'node:crypto';
import { addressFromXpub } from '../../custody/hd.ts';
import { CURRENCY_CHAIN } from '../currencies.ts';
import type { Account, Address, CreateAccountInput, Customer, Subscription } from '../schemas.ts';

/** A Tatum-shaped refusal: 403 with an errorCode, as the real API answers logical errors. */
export class LedgerError extends Error {
  constructor(
    readonly errorCode: string,
    message: string,
    readonly statusCode = 403,
  ) {
    super(message);
  }
}

export interface LedgerAccount {
  id: string;
  currency: string;
  xpub?: string;
  customerId?: string;
  accountNumber?: string;
  accountCode?: string;
  accountingCurrency: string;
  balance: string;
  frozen: boolean;
  active: boolean;
}

export interface LedgerAddress {
  accountId: string;
  address: string;
  currency: string;
  derivationKey: number;
  xpub: string;
}

export interface LedgerSubscription {
  id: string;
  type: string;
  attr: { id: string; url: string };
}

export interface AddressRequest {
  accountId: string;
  index?: number;
}

/** 24 lowercase hex digits, like Tatum's Mongo ObjectIds. */
export function newId(): string {
  return randomBytes(12).toString('hex');
}

export class Ledger {
  readonly accounts = new Map<string, LedgerAccount>();
  readonly customers = new Map<string, Customer>();
  readonly addresses: LedgerAddress[] = [];
  readonly subscriptions = new Map<string, LedgerSubscription>();
  hmacSecret: string | undefined;
  subscriptionsCreated = 0;
  subscriptionsDeleted = 0;

  readonly #customerByExternalId = new Map<string, string>();
  /** `${xpub} ${currency} ${index}`: an index is used once per currency. */
  readonly #usedIndexes = new Set<string>();
  /** `${address} ${currency}`: a pair is assigned once. */
  readonly #usedAddresses = new Set<string>();
  /** Highest index used per xpub: the next automatic index is one above it (index 0 is reserved). */
  readonly #lastIndex = new Map<string, number>();

  /** `wrongAddress` makes address generation answer the address of index + 1 (mismatch tests). */
  constructor(private readonly wrongAddress: () => boolean = () => false) {}

  // ---- accounts and customers ---------------------------------------------------------------------

  createAccounts(inputs: CreateAccountInput[]): Account[] {
    inputs.forEach(checkAccountInput);
    return inputs.map((input) => {
      const customer = input.customer ? this.#upsertCustomer(input.customer) : undefined;
      const account: LedgerAccount = {
        id: newId(),
        currency: input.currency,
        xpub: input.xpub,
        customerId: customer?.id,
        accountNumber: input.accountNumber,
        accountCode: input.accountCode,
        accountingCurrency: input.accountingCurrency ?? customer?.accountingCurrency ?? 'EUR',
        balance: '0',
        frozen: false,
        active: true,
      };
      this.accounts.set(account.id, account);
      return accountView(account);
    });
  }

  account(id: string): LedgerAccount {
    const account = this.accounts.get(id);
    if (!account) throw new LedgerError('account.not.exists', 'No such account.');
    return account;
  }

  /** All accounts, inactive ones too, optionally only those carrying `accountNumber`. */
  listAccounts(accountNumber: string | undefined, pageSize: number, offset: number): Account[] {
    const matching = [...this.accounts.values()].filter((a) => accountNumber === undefined || a.accountNumber === accountNumber);
    return page0(matching, pageSize, offset).map(accountView);
  }

  /** Only active accounts, like Tatum. */
  accountsByCustomer(customerId: string, pageSize: number, offset: number): Account[] {
    const owned = [...this.accounts.values()].filter((a) => a.customerId === customerId && a.active);
    return page0(owned, pageSize, offset).map(accountView);
  }

  /** By external or internal id, as Tatum's GET /v3/ledger/customer/{id}. */
  customer(id: string): Customer {
    const customer = this.customers.get(this.#customerByExternalId.get(id) ?? id);
    if (!customer) throw new LedgerError('customer.not.exists', `No customer with given external ID ${id} exists.`);
    return customer;
  }

  #upsertCustomer(registration: NonNullable<CreateAccountInput['customer']>): Customer {
    const existingId = this.#customerByExternalId.get(registration.externalId);
    const existing = existingId === undefined ? undefined : this.customers.get(existingId);
    const customer: Customer = existing
      ? { ...existing, ...definedFields(registration) }
      : { id: newId(), enabled: true, active: true, accountingCurrency: 'EUR', ...definedFields(registration) };
    this.customers.set(customer.id, customer);
    this.#customerByExternalId.set(customer.externalId, customer.id);
    return customer;
  }

  credit(accountId: string, amount: string): LedgerAccount {
    const account = this.account(accountId);
    account.balance = addDecimal(account.balance, amount);
    return account;
  }

  // ---- deposit addresses ------------------------------------------------------------------------

  /** Derives and assigns every requested address, or none of them. */
  generateAddresses(requests: AddressRequest[]): Address[] {
    const usedIndexes = new Set(this.#usedIndexes);
    const usedAddresses = new Set(this.#usedAddresses);
    const lastIndex = new Map(this.#lastIndex);
    const made = requests.map(({ accountId, index }) => {
      const account = this.account(accountId);
      const xpub = account.xpub;
      if (xpub === undefined) {
        throw new LedgerError('account.xpub.missing', 'No xpub assigned to account, it is not possible to generate address. Use assignAddress method instead.');
      }
      const derivationKey = index ?? (lastIndex.get(xpub) ?? 0) + 1;
      const indexKey = `${xpub} ${account.currency} ${derivationKey}`;
      if (usedIndexes.has(indexKey)) throw new LedgerError('address.index.used', 'Unable to create address, derivation index is already used.');
      const address = this.#derive(account, xpub, derivationKey);
      const addressKey = `${address} ${account.currency}`;
      if (usedAddresses.has(addressKey)) throw new LedgerError('address.used', 'Address and currency already in use.');
      usedIndexes.add(indexKey);
      usedAddresses.add(addressKey);
      lastIndex.set(xpub, Math.max(lastIndex.get(xpub) ?? 0, derivationKey));
      return { accountId, address, currency: account.currency, derivationKey, xpub };
    });
    // Nothing above touched the ledger; commit all at once.
    for (const key of usedIndexes) this.#usedIndexes.add(key);
    for (const key of usedAddresses) this.#usedAddresses.add(key);
    for (const [xpub, index] of lastIndex) this.#lastIndex.set(xpub, index);
    this.addresses.push(...made);
    return made.map(addressView);
  }

  addressesOf(accountId: string): Address[] {
    this.account(accountId);
    return this.addresses.filter((a) => a.accountId === accountId).map(addressView);
  }

  #derive(account: LedgerAccount, xpub: string, index: number): string {
    const chain = CURRENCY_CHAIN[account.currency]!;
    try {
      return addressFromXpub(chain, xpub, this.wrongAddress() ? index + 1 : index);
    } catch {
      throw new LedgerError('address.generation.failed', 'Unable to generate address.');
    }
  }

  // ---- subscriptions ------------------------------------------------------------------------------

  /** Duplicates are allowed (Tatum's behaviour is undocumented): the counters then show them. */
  createSubscription(type: string, attr: { id: string; url: string }): string {
    this.account(attr.id);
    const subscription = { id: newId(), type, attr };
    this.subscriptions.set(subscription.id, subscription);
    this.subscriptionsCreated++;
    return subscription.id;
  }

  listSubscriptions(pageSize: number, offset: number): Subscription[] {
    return page0([...this.subscriptions.values()], pageSize, offset);
  }

  deleteSubscription(id: string): void {
    if (!this.subscriptions.delete(id)) throw new LedgerError('subscription.not.exists', 'No such subscription.');
    this.subscriptionsDeleted++;
  }
}

function checkAccountInput(input: CreateAccountInput): void {
  const chain = CURRENCY_CHAIN[input.currency];
  if (chain === undefined) throw new LedgerError('ledger.currency.invalid', 'Unable to create an account, unsupported currency.');
  if (input.xpub === undefined) return;
  try {
    addressFromXpub(chain, input.xpub, 1);
  } catch {
    throw new LedgerError('account.xpub.incompatible', 'Xpub not compatible with account currency.');
  }
}

export function accountView(a: LedgerAccount): Account {
  return definedFields({
    id: a.id,
    currency: a.currency,
    active: a.active,
    frozen: a.frozen,
    balance: { accountBalance: a.balance, availableBalance: a.balance },
    customerId: a.customerId,
    accountNumber: a.accountNumber,
    accountCode: a.accountCode,
    accountingCurrency: a.accountingCurrency,
    xpub: a.xpub,
  });
}

export function addressView(a: LedgerAddress): Address {
  return { address: a.address, currency: a.currency, derivationKey: a.derivationKey, xpub: a.xpub };
}

function page0<T>(items: T[], pageSize: number, offset: number): T[] {
  return items.slice(offset, offset + pageSize);
}

/** Drops undefined fields, so JSON answers look like Tatum's (absent, not null). */
function definedFields<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** Exact decimal-string addition (balances are never floats). */
export function addDecimal(a: string, b: string): string {
  const scale = Math.max(fractionDigits(a), fractionDigits(b));
  const sum = toScaled(a, scale) + toScaled(b, scale);
  const negative = sum < 0n;
  const digits = (negative ? -sum : sum).toString().padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

function fractionDigits(value: string): number {
  return value.split('.')[1]?.length ?? 0;
}

function toScaled(value: string, scale: number): bigint {
  const [whole = '0', fraction = ''] = value.split('.');
  const negative = whole.startsWith('-');
  const magnitude = BigInt(`${whole.replace('-', '')}${fraction.padEnd(scale, '0')}`);
  return negative ? -magnitude : magnitude;
}
