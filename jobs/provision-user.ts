// The create-virtual-account job: make one user complete. For every enabled currency the user ends
// with one Tatum virtual account, one deposit address per chain (shared by the chain's currencies),
// that address's private key encrypted at rest, and one deposit subscription.
//
// Every step is checkpointed in Postgres before and after it talks to Tatum, so a retry after a
// crash or a lost response looks up what the interrupted attempt may have created and adopts it
// instead of creating it twice (pitfalls #1-#3). The job succeeds only when every currency is ready.
import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import { queryRows, type Database, type DatabaseHandle, type Executor } from '../db/client.ts';
import { depositAddresses, virtualAccounts, webhookSubscriptions } from '../db/schema.ts';
import { webhookUrlOf, type Chain } from './config.ts';
import { addressOfPrivateKey, privateKeyAt } from './custody/hd.ts';
import { Vault } from './custody/vault.ts';
import { createKeyring, ensureMasterWallets, loadXpub, type Keyring } from './custody/wallets.ts';
import type { Logger } from './logger.ts';
import type { ProvisionJob } from './queues.ts';
import type { RuntimeConfig } from './secrets.ts';
import { createTatumClient, type TatumClient, type TatumClientOptions } from './tatum/client.ts';
import { INCOMING_TRANSACTION } from './tatum/schemas.ts';

export interface ProvisionDeps {
  db: Database;
  tatum: TatumClient;
  vault: Vault;
  /** The master wallets' account keys (jobs/custody/wallets.ts). */
  keyring: Keyring;
  log: Logger;
  webhookUrl: string;
  /** Serialises jobs for the same user across every worker process (see DatabaseHandle). */
  withExclusiveLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

/**
 * Readies a process to provision: a Tatum client (rate-limited through this database), the vault,
 * the URL subscriptions point at, and per-user locks on this database. Tatum learns the webhook
 * secret here, so deposits it posts are signed; in the sandbox, master wallets are made on first use.
 */
export async function prepareProvisioning(
  database: DatabaseHandle,
  config: RuntimeConfig,
  log: Logger,
  options: { sandboxUrl?: string; webhookUrl?: string; onTatumRequest?: TatumClientOptions['onRequest'] } = {},
): Promise<Omit<ProvisionDeps, 'log'>> {
  const tatum = createTatumClient(config, database.db, { sandboxUrl: options.sandboxUrl, onRequest: options.onTatumRequest });
  const vault = Vault.fromConfig(config);
  if (config.mode === 'sandbox') {
    const { created } = await ensureMasterWallets(database.db, vault);
    if (created.length > 0) log.info({ created }, 'sandbox mode: master wallets generated');
  }
  await tatum.setWebhookHmac(config.TATUM_WEBHOOK_HMAC_SECRET);
  return {
    db: database.db,
    tatum,
    vault,
    keyring: createKeyring(database.db, vault),
    webhookUrl: options.webhookUrl ?? webhookUrlOf(config),
    withExclusiveLock: (key, fn) => database.withExclusiveLock(key, () => fn()),
  };
}

export interface Attempt {
  /** No retry follows a failure of this attempt: unfinished accounts are then marked failed. */
  isLast: boolean;
}

/** Raised when Tatum's address for an index is not the one our key derives: nothing is stored. */
export class AddressMismatchError extends Error {
  override name = 'AddressMismatchError';
}

/** The job did not finish every currency; pg-boss retries it (or dead-letters it on the last attempt). */
export class IncompleteProvisioningError extends Error {
  override name = 'IncompleteProvisioningError';
}

interface Account {
  id: string;
  currency: string;
  chain: Chain;
  accountNumber: string;
  tatumAccountId: string | null;
  tatumCreateStartedAt: Date | null;
  addressAssignedAt: Date | null;
  subscribeStartedAt: Date | null;
  subscribed: boolean;
  status: 'pending' | 'ready' | 'failed';
}

interface Reservation {
  id: string;
  chain: Chain;
  derivationIndex: number;
  address: string | null;
  tatumRequestedAt: Date | null;
}

interface Plan {
  userId: string;
  accounts: Account[];
  reservations: Map<Chain, Reservation>;
}

export async function provisionUser(deps: ProvisionDeps, job: ProvisionJob, attempt: Attempt = { isLast: false }): Promise<void> {
  const log = deps.log.child({ userId: job.userId });
  await deps.withExclusiveLock(`provision-user:${job.userId}`, async () => {
    const plan = await preparePlan(deps.db, job.userId);
    if (!plan) {
      log.warn('user is not verified (or does not exist); nothing to provision');
      return;
    }
    const failures: string[] = [];
    const step = async (name: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        if (err instanceof AddressMismatchError) throw err;
        failures.push(`${name}: ${(err as Error).message}`);
        log.warn({ err, step: name }, 'provisioning step failed');
      }
    };
    await step('accounts', () => ensureTatumAccounts(deps, plan));
    await step('addresses', () => ensureDepositAddresses(deps, plan));
    await step('subscriptions', () => ensureSubscriptions(deps, plan, failures));

    const unfinished = plan.accounts.filter((a) => a.status !== 'ready');
    if (unfinished.length === 0) {
      log.info({ currencies: plan.accounts.length }, 'user provisioned');
      return;
    }
    const message = failures.join('; ') || 'unfinished accounts';
    await recordFailure(deps.db, unfinished, message, attempt.isLast);
    throw new IncompleteProvisioningError(
      `${unfinished.length} of ${plan.accounts.length} currencies not ready (${unfinished.map((a) => a.currency).join(', ')}): ${message}`,
    );
  }).catch(async (err: unknown) => {
    if (err instanceof AddressMismatchError) await recordMismatch(deps.db, job.userId, err.message);
    throw err;
  });
}

/**
 * Makes sure the user has a virtual-account row per enabled currency and a reserved derivation index
 * per chain, then reads them back. Returns undefined for a user who is not verified.
 */
async function preparePlan(db: Database, userId: string): Promise<Plan | undefined> {
  const [user] = await queryRows<{ id: string }>(db, sql`select id from users where id = ${userId} and email_verified_at is not null`);
  if (!user) return undefined;

  // The account number is deterministic, so a retry can find an account whose create response was lost.
  await db.execute(sql`
    insert into virtual_accounts (user_id, currency, account_number)
    select ${userId}, code, ${userId} || '-' || code from wallet_currencies where enabled
    on conflict (user_id, currency) do nothing`);

  const chains = await queryRows<{ chain: Chain }>(
    db,
    sql`select distinct c.chain from virtual_accounts va join wallet_currencies c on c.code = va.currency where va.user_id = ${userId}`,
  );
  for (const { chain } of chains) await reserveDerivationIndex(db, userId, chain);

  const accounts = await queryRows<Account>(db, sql`
    select va.id, va.currency, c.chain, va.account_number as "accountNumber", va.tatum_account_id as "tatumAccountId",
           va.tatum_create_started_at as "tatumCreateStartedAt", va.address_assigned_at as "addressAssignedAt",
           va.subscribe_started_at as "subscribeStartedAt", (ws.id is not null) as subscribed, va.status
    from virtual_accounts va
    join wallet_currencies c on c.code = va.currency
    left join webhook_subscriptions ws on ws.virtual_account_id = va.id
    where va.user_id = ${userId}
    order by va.currency`);
  const reservations = await queryRows<Reservation>(db, sql`
    select id, chain, derivation_index as "derivationIndex", address, tatum_requested_at as "tatumRequestedAt"
    from deposit_addresses where user_id = ${userId}`);
  return { userId, accounts, reservations: new Map(reservations.map((r) => [r.chain, r])) };
}

/**
 * Hands the user the chain's next derivation index, once. The counter update and the reservation
 * commit together; if a reservation already exists the transaction rolls back, so no index is
 * skipped or handed out twice (pitfall #3; the unique (chain, derivation_index) is the backstop).
 */
async function reserveDerivationIndex(db: Database, userId: string, chain: Chain): Promise<void> {
  const [existing] = await queryRows(db, sql`select 1 from deposit_addresses where user_id = ${userId} and chain = ${chain}`);
  if (existing) return;
  await db
    .transaction(async (tx) => {
      const [wallet] = await queryRows<{ index: number }>(
        tx,
        sql`update master_wallets set next_index = next_index + 1 where chain = ${chain} returning next_index - 1 as index`,
      );
      if (!wallet) throw new Error(`no master wallet for ${chain}: run \`npm run wallets:init\``);
      const inserted = await queryRows(tx, sql`
        insert into deposit_addresses (user_id, chain, derivation_index) values (${userId}, ${chain}, ${wallet.index})
        on conflict (user_id, chain) do nothing returning id`);
      if (inserted.length === 0) tx.rollback();
    })
    .catch((err: unknown) => {
      if ((err as Error).name !== 'TransactionRollbackError') throw err;
    });
}

/** Step 1: one Tatum virtual account per currency, created in one batch call. */
async function ensureTatumAccounts(deps: ProvisionDeps, plan: Plan): Promise<void> {
  const missing = plan.accounts.filter((a) => a.tatumAccountId === null);
  if (missing.length === 0) return;

  // An earlier attempt started creating these: adopt what reached Tatum before creating again.
  for (const account of missing.filter((a) => a.tatumCreateStartedAt !== null)) {
    const found = await deps.tatum.getAccountsByAccountNumber(account.accountNumber);
    const existing = found.find((a) => a.currency === account.currency);
    if (existing) await recordTatumAccount(deps.db, account, existing.id);
  }
  const toCreate = missing.filter((a) => a.tatumAccountId === null);
  if (toCreate.length === 0) return;

  await deps.db
    .update(virtualAccounts)
    .set({ tatumCreateStartedAt: new Date(), updatedAt: new Date() })
    .where(inArray(virtualAccounts.id, toCreate.map((a) => a.id)));
  const xpubs = new Map<Chain, string>();
  for (const chain of new Set(toCreate.map((a) => a.chain))) xpubs.set(chain, await loadXpub(deps.db, chain));

  const created = await deps.tatum.createAccountsBatch(
    toCreate.map((a) => ({
      currency: a.currency,
      xpub: xpubs.get(a.chain)!,
      accountNumber: a.accountNumber,
      customer: { externalId: plan.userId },
    })),
  );
  for (const account of toCreate) {
    const match = created.find((c) => c.accountNumber === account.accountNumber);
    if (!match) throw new Error(`Tatum's batch answer has no account ${account.accountNumber}`);
    await recordTatumAccount(deps.db, account, match.id);
  }
}

async function recordTatumAccount(db: Database, account: Account, tatumAccountId: string): Promise<void> {
  await db
    .update(virtualAccounts)
    .set({ tatumAccountId, updatedAt: new Date() })
    .where(and(eq(virtualAccounts.id, account.id), isNull(virtualAccounts.tatumAccountId)));
  account.tatumAccountId = tatumAccountId;
}

/**
 * Steps 2 and 3: the reserved index becomes the deposit address on every account of its chain, in
 * one batch call; the key for that index is derived locally, checked to produce exactly the address
 * Tatum returned, encrypted and stored in the same transaction that records the address.
 */
async function ensureDepositAddresses(deps: ProvisionDeps, plan: Plan): Promise<void> {
  const waiting = plan.accounts.filter((a) => a.tatumAccountId !== null && a.addressAssignedAt === null);
  if (waiting.length === 0) return;

  // Where an earlier attempt asked Tatum already, its answer may have been lost: read the account's
  // address list and adopt the reserved index's address if it is there.
  const assigned = new Map<string, string>(); // account id -> address Tatum holds for the reserved index
  for (const account of waiting) {
    const reservation = reservationOf(plan, account);
    if (reservation.tatumRequestedAt === null) continue;
    const addresses = await deps.tatum.listDepositAddresses(account.tatumAccountId!);
    const match = addresses.find((a) => a.derivationKey === reservation.derivationIndex);
    if (match) assigned.set(account.id, match.address);
  }

  const toRequest = waiting.filter((a) => !assigned.has(a.id));
  if (toRequest.length > 0) {
    const chains = [...new Set(toRequest.map((a) => a.chain))];
    await deps.db
      .update(depositAddresses)
      .set({ tatumRequestedAt: new Date(), updatedAt: new Date() })
      .where(inArray(depositAddresses.id, chains.map((c) => plan.reservations.get(c)!.id)));
    const answers = await deps.tatum.createDepositAddressesBatch(
      toRequest.map((a) => ({ accountId: a.tatumAccountId!, derivationKey: reservationOf(plan, a).derivationIndex })),
    );
    if (answers.length !== toRequest.length) throw new Error(`Tatum answered ${answers.length} addresses for ${toRequest.length} requested`);
    toRequest.forEach((account, i) => assigned.set(account.id, answers[i]!.address));
  }

  for (const chain of new Set(waiting.map((a) => a.chain))) {
    const accounts = waiting.filter((a) => a.chain === chain);
    await storeVerifiedAddress(deps, plan.reservations.get(chain)!, accounts, accounts.map((a) => assigned.get(a.id)!));
  }
}

async function storeVerifiedAddress(deps: ProvisionDeps, reservation: Reservation, accounts: Account[], tatumAddresses: string[]): Promise<void> {
  const { chain, derivationIndex } = reservation;
  // The keyring's key was checked against the xpub Tatum's accounts were created with.
  const privateKey = privateKeyAt(await deps.keyring(chain), derivationIndex);
  const ours = addressOfPrivateKey(chain, privateKey);
  for (const theirs of tatumAddresses) {
    if (theirs !== ours) {
      throw new AddressMismatchError(
        `Tatum returned ${theirs} for ${chain} index ${derivationIndex}, but the key for that index controls ${ours}; nothing was stored`,
      );
    }
  }
  if (reservation.address !== null && reservation.address !== ours) {
    throw new AddressMismatchError(`${chain} index ${derivationIndex} was stored as ${reservation.address}, but derives ${ours}`);
  }

  const encrypted = deps.vault.encrypt(privateKey);
  await deps.db.transaction(async (tx) => {
    await tx
      .update(depositAddresses)
      .set({ address: ours, privateKeyEncrypted: encrypted, updatedAt: new Date() })
      .where(and(eq(depositAddresses.id, reservation.id), isNull(depositAddresses.address)));
    await tx
      .update(virtualAccounts)
      .set({ depositAddressId: reservation.id, addressAssignedAt: new Date(), updatedAt: new Date() })
      .where(inArray(virtualAccounts.id, accounts.map((a) => a.id)));
  });
  reservation.address = ours;
  for (const account of accounts) account.addressAssignedAt = new Date();
}

function reservationOf(plan: Plan, account: Account): Reservation {
  const reservation = plan.reservations.get(account.chain);
  if (!reservation) throw new Error(`no derivation index reserved for ${account.chain}`);
  return reservation;
}

/**
 * Step 4: one deposit subscription per account. Subscriptions of different accounts are created
 * concurrently; the global Tatum rate limit paces them. Recording the subscription marks the account
 * ready in the same transaction.
 */
async function ensureSubscriptions(deps: ProvisionDeps, plan: Plan, failures: string[]): Promise<void> {
  const waiting = plan.accounts.filter((a) => a.addressAssignedAt !== null && a.status !== 'ready');
  const interrupted = waiting.filter((a) => !a.subscribed && a.subscribeStartedAt !== null);
  const adopted = interrupted.length > 0 ? await findSubscriptions(deps, new Set(interrupted.map((a) => a.tatumAccountId!))) : new Map<string, string>();

  const results = await Promise.allSettled(
    waiting.map(async (account) => {
      if (!account.subscribed) {
        let subscriptionId = adopted.get(account.tatumAccountId!);
        if (subscriptionId === undefined) {
          await deps.db
            .update(virtualAccounts)
            .set({ subscribeStartedAt: new Date(), updatedAt: new Date() })
            .where(eq(virtualAccounts.id, account.id));
          subscriptionId = await deps.tatum.createSubscription({ accountId: account.tatumAccountId!, url: deps.webhookUrl });
        }
        await recordSubscription(deps, account, subscriptionId);
      } else {
        await markReady(deps.db, account);
      }
    }),
  );
  for (const [i, result] of results.entries()) {
    if (result.status === 'rejected') failures.push(`${waiting[i]!.currency}: ${(result.reason as Error).message}`);
  }
}

/** Tatum's subscriptions for the given accounts, by account id (read page by page). */
async function findSubscriptions(deps: ProvisionDeps, accountIds: Set<string>): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const pageSize = 50;
  for (let offset = 0; ; offset += pageSize) {
    const page = await deps.tatum.listSubscriptions({ pageSize, offset });
    for (const subscription of page) {
      const accountId = subscription.attr?.id;
      if (subscription.type === INCOMING_TRANSACTION && typeof accountId === 'string' && accountIds.has(accountId)) {
        found.set(accountId, subscription.id);
      }
    }
    if (page.length < pageSize) return found;
  }
}

async function recordSubscription(deps: ProvisionDeps, account: Account, tatumSubscriptionId: string): Promise<void> {
  await deps.db.transaction(async (tx) => {
    await tx
      .insert(webhookSubscriptions)
      .values({ virtualAccountId: account.id, tatumSubscriptionId, url: deps.webhookUrl })
      .onConflictDoNothing({ target: webhookSubscriptions.virtualAccountId });
    await markReady(tx, account);
  });
  account.subscribed = true;
}

async function markReady(db: Executor, account: Account): Promise<void> {
  await db
    .update(virtualAccounts)
    .set({ status: 'ready', lastError: null, updatedAt: new Date() })
    .where(eq(virtualAccounts.id, account.id));
  account.status = 'ready';
}

/** Keeps the last error beside each unfinished account; after the last attempt they show `failed`. */
async function recordFailure(db: Database, accounts: Account[], message: string, isLast: boolean): Promise<void> {
  await db
    .update(virtualAccounts)
    .set({ lastError: message.slice(0, 2000), updatedAt: new Date(), ...(isLast ? { status: 'failed' as const } : {}) })
    .where(inArray(virtualAccounts.id, accounts.map((a) => a.id)));
}

async function recordMismatch(db: Database, userId: string, message: string): Promise<void> {
  await db
    .update(virtualAccounts)
    .set({ status: 'failed', lastError: message, updatedAt: new Date() })
    .where(and(eq(virtualAccounts.userId, userId), isNull(virtualAccounts.addressAssignedAt)));
}

