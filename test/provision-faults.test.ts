// Convergence under Tatum faults: a fifth of the creates are applied on the ledger with their
// response lost, a tenth fail with 500 or time out. Retrying the job for every user until it
// succeeds must end with every currency ready and no duplicate or orphan object on Tatum.
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../db/client.ts';
import { Vault } from '../jobs/custody/vault.ts';
import { createKeyring, ensureMasterWallets } from '../jobs/custody/wallets.ts';
import { parseConfig } from '../jobs/config.ts';
import { provisionUser, type ProvisionDeps } from '../jobs/provision-user.ts';
import { CREATE_ROUTES } from '../jobs/tatum/sandbox/knobs.ts';
import { createTestDatabase } from './helpers/database.ts';
import { captureLogs } from './helpers/logs.ts';
import { startTestSandbox, type TestSandbox } from './helpers/sandbox.ts';

const USERS = 100;
const MAX_ATTEMPTS = 30;

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let sandbox: TestSandbox;
let deps: ProvisionDeps;
const logs = captureLogs('warn');

beforeAll(async () => {
  database = await createTestDatabase();
  sandbox = await startTestSandbox({
    dropAfterCommitRate: 0.2,
    error500Rate: 0.05,
    timeoutRate: 0.05,
    timeoutHoldMs: 400,
    // Every call provisioning makes, reads included (a lost read is simply retried).
    faultRoutes: [
      ...CREATE_ROUTES,
      'GET /v3/ledger/account',
      'GET /v3/offchain/account/:id/address',
      'GET /v3/subscription',
    ],
    seed: 42,
  });
  const config = parseConfig({ ENCRYPTION_KEY: 'f'.repeat(64) });
  const vault = Vault.fromConfig({ ENCRYPTION_KEY: config.ENCRYPTION_KEY!, ENCRYPTION_KEYS_OLD: [] });
  await ensureMasterWallets(database.handle.db, vault);
  deps = {
    db: database.handle.db,
    tatum: sandbox.client({ timeoutMs: 300 }),
    vault,
    keyring: createKeyring(database.handle.db, vault),
    log: logs.log,
    webhookUrl: 'http://127.0.0.1:9/webhooks/tatum',
    withExclusiveLock: (key, fn) => database.handle.withExclusiveLock(key, () => fn()),
  };
}, 60_000);
afterAll(async () => {
  await sandbox?.close();
  await database?.drop();
});

/** What a retrying queue does for one job: run it until it succeeds. */
async function provisionWithRetries(userId: string): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      await provisionUser(deps, { userId });
      return attempt;
    } catch (err) {
      if (attempt >= MAX_ATTEMPTS) throw err;
    }
  }
}

describe('provisioning under Tatum faults', () => {
  it(`${USERS} users converge to ready with zero duplicate or orphan objects on Tatum`, async () => {
    const users = await queryRows<{ id: string }>(
      database.handle.db,
      sql`insert into users (email, email_verified_at) select 'user' || i || '@example.com', now() from generate_series(1, ${USERS}) i returning id`,
    );
    const attempts: number[] = [];
    // Ten users at a time, like ten worker slots.
    for (let i = 0; i < users.length; i += 10) {
      attempts.push(...(await Promise.all(users.slice(i, i + 10).map((u) => provisionWithRetries(u.id)))));
    }

    const counters = await sandbox.http.counters();
    // The faults really happened: responses were lost after the ledger had applied the create.
    expect(counters.faults.dropAfterCommit).toBeGreaterThan(0);
    expect(counters.faults.error500).toBeGreaterThan(0);
    expect(counters.faults.timeout).toBeGreaterThan(0);
    expect(attempts.some((n) => n > 1)).toBe(true);

    const notReady = await queryRows<{ n: number }>(database.handle.db, sql`select count(*)::int as n from virtual_accounts where status <> 'ready'`);
    expect(notReady[0]!.n).toBe(0);
    const rows = await queryRows<{ tatum_account_id: string; account_number: string; address: string; tatum_subscription_id: string }>(
      database.handle.db,
      sql`select va.tatum_account_id, va.account_number, da.address, ws.tatum_subscription_id
          from virtual_accounts va
          join deposit_addresses da on da.id = va.deposit_address_id
          join webhook_subscriptions ws on ws.virtual_account_id = va.id`,
    );
    expect(rows).toHaveLength(USERS * 9);

    const state = await sandbox.http.state();
    // Exactly the accounts we know: none created twice, none we lost track of.
    expect(state.accounts).toHaveLength(USERS * 9);
    expect(new Set(state.accounts.map((a) => a.accountNumber)).size).toBe(USERS * 9);
    const ours = new Map(rows.map((r) => [r.tatum_account_id, r]));
    for (const account of state.accounts) {
      const row = ours.get(account.id);
      expect(row, `Tatum account ${account.id} unknown to our database`).toBeDefined();
      expect(account.accountNumber).toBe(row!.account_number);
      expect(account.addresses.map((a) => a.address)).toEqual([row!.address]);
      expect(account.subscriptions.map((s) => s.id)).toEqual([row!.tatum_subscription_id]);
    }
    expect(state.subscriptions).toHaveLength(USERS * 9);
    expect(state.customers).toHaveLength(USERS);

    // No derivation index handed out twice on any chain.
    const reused = await queryRows<{ n: number }>(
      database.handle.db,
      sql`select count(*)::int as n from (select chain, derivation_index from deposit_addresses group by 1, 2 having count(*) > 1) d`,
    );
    expect(reused[0]!.n).toBe(0);
  }, 240_000);
});
