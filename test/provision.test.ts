// The create-virtual-account job against real Postgres and the Tatum sandbox over HTTP.
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../db/client.ts';
import { addressFromXpub, addressOfPrivateKey } from '../jobs/custody/hd.ts';
import { Vault } from '../jobs/custody/vault.ts';
import { loadMnemonic } from '../jobs/custody/wallets.ts';
import { AddressMismatchError, prepareProvisioning, provisionUser, type ProvisionDeps } from '../jobs/provision-user.ts';
import { QUEUES } from '../jobs/queues.ts';
import { findIncompleteUsers } from '../jobs/reconcile.ts';
import { startWorker, type RunningWorker } from '../jobs/worker.ts';
import { startTestApp, type TestApp } from './helpers/app.ts';
import { captureLogs } from './helpers/logs.ts';
import { startTestSandbox, type TestSandbox } from './helpers/sandbox.ts';
import { eventually } from './helpers/outage.ts';
import { trpcClient } from './helpers/trpc.ts';

const logs = captureLogs('debug');
let sandbox: TestSandbox;
let app: TestApp;
let worker: RunningWorker;
let deps: Omit<ProvisionDeps, 'log'>;

beforeAll(async () => {
  sandbox = await startTestSandbox();
  app = await startTestApp({ TATUM_BASE_URL: sandbox.url, TATUM_MAX_RPS: '1000', LOG_LEVEL: 'debug' }, logs.log);
  deps = await prepareProvisioning(app.database.handle, app.services.config, logs.log, { webhookUrl: `${app.url}/webhooks/tatum` });
  worker = await startWorker({ ...app.services, provisioning: deps }, { queues: [QUEUES.provision] });
});
afterAll(async () => {
  await worker?.stop(5000);
  await app?.stop();
  await sandbox?.close();
});

async function verifiedUser(email: string): Promise<string> {
  const [row] = await queryRows<{ id: string }>(app.services.db, sql`insert into users (email, email_verified_at) values (${email}, now()) returning id`);
  return row!.id;
}

async function userState(userId: string) {
  const accounts = await queryRows<{ currency: string; status: string; tatum_account_id: string; chain: string; address: string | null; last_error: string | null }>(
    app.services.db,
    sql`select va.currency, va.status, va.tatum_account_id, c.chain, da.address, va.last_error
        from virtual_accounts va join wallet_currencies c on c.code = va.currency
        left join deposit_addresses da on da.id = va.deposit_address_id
        where va.user_id = ${userId} order by va.currency`,
  );
  const subscriptions = await queryRows<{ tatum_subscription_id: string; tatum_account_id: string }>(
    app.services.db,
    sql`select ws.tatum_subscription_id, va.tatum_account_id from webhook_subscriptions ws
        join virtual_accounts va on va.id = ws.virtual_account_id where va.user_id = ${userId}`,
  );
  const addresses = await queryRows<{ chain: 'bitcoin'; derivation_index: number; address: string; private_key_encrypted: string }>(
    app.services.db,
    sql`select chain, derivation_index, address, private_key_encrypted from deposit_addresses where user_id = ${userId}`,
  );
  return { accounts, subscriptions, addresses };
}

describe('provisioning a verified user', () => {
  it('verify → the worker makes all nine currencies ready, and Tatum holds exactly what the database has', async () => {
    const email = 'alice@example.com';
    const anonymous = trpcClient(app.url);
    await anonymous.auth.register.mutate({ email });
    const admin = trpcClient(app.url, app.services.config.ADMIN_TOKEN);
    const mail = await eventually(() => admin.auth.sandboxMailbox.query({ email }).catch(() => undefined), (m) => m !== undefined);
    const { userId, sessionToken } = await anonymous.auth.verify.mutate({ email, code: mail!.code });

    const user = trpcClient(app.url, sessionToken);
    const accounts = await eventually(() => user.wallet.accounts.query(), (list) => list.every((a) => a.status === 'ready'), 30_000);
    expect(accounts.map((a) => a.currency).sort()).toEqual(['BSC', 'BTC', 'ETH', 'LTC', 'TRON', 'USDC', 'USDT', 'USDT_BSC', 'USDT_TRON']);
    // Tokens share their chain's address: one address per chain.
    const byChain = new Map<string, Set<string | null>>();
    for (const a of accounts) byChain.set(a.chain, (byChain.get(a.chain) ?? new Set()).add(a.address));
    expect([...byChain.values()].every((set) => set.size === 1 && ![...set].includes(null))).toBe(true);
    expect(byChain.size).toBe(5);
    // The answer carries no key material.
    expect(JSON.stringify(accounts)).not.toMatch(/private|mnemonic|v2:/i);

    const state = await userState(userId);
    expect(state.addresses).toHaveLength(5);
    const vault = Vault.fromConfig(app.services.config);
    for (const row of state.addresses) {
      const key = vault.decrypt(row.private_key_encrypted);
      expect(addressOfPrivateKey(row.chain, key)).toBe(row.address);
      expect(row.derivation_index).toBeGreaterThanOrEqual(1);
    }

    const tatum = await sandbox.http.state();
    const ours = tatum.accounts.filter((a) => a.accountNumber?.startsWith(userId));
    expect(ours.map((a) => a.id).sort()).toEqual(state.accounts.map((a) => a.tatum_account_id).sort());
    for (const account of ours) {
      const row = state.accounts.find((a) => a.tatum_account_id === account.id)!;
      expect(account.addresses.map((a) => a.address)).toEqual([row.address]);
      expect(account.subscriptions).toHaveLength(1);
    }
    expect(state.subscriptions.map((s) => s.tatum_subscription_id).sort()).toEqual(
      ours.flatMap((a) => a.subscriptions.map((s) => s.id)).sort(),
    );
  });

  it('never writes a private key or a mnemonic to the log', async () => {
    const userId = await verifiedUser('keys-in-logs@example.com');
    await provisionUser({ ...deps, log: logs.log }, { userId });
    const vault = Vault.fromConfig(app.services.config);
    const { addresses } = await userState(userId);
    const secrets = addresses.map((a) => vault.decrypt(a.private_key_encrypted));
    for (const chain of ['bitcoin', 'ethereum', 'tron', 'bsc', 'litecoin'] as const) {
      const words = (await loadMnemonic(app.services.db, vault, chain)).split(' ');
      secrets.push(words.join(' '), words.slice(0, 3).join(' '));
    }
    secrets.push(app.services.config.ENCRYPTION_KEY, app.services.config.TATUM_WEBHOOK_HMAC_SECRET);
    const text = logs.text();
    expect(text).toContain(userId); // the capture did see this run
    for (const secret of secrets) expect(text).not.toContain(secret);
    for (const secret of secrets.filter((s) => /^(0x)?[0-9a-f]{64}$/i.test(s))) expect(text).not.toContain(secret.replace(/^0x/, ''));
  });

  it('two jobs for the same user at once converge without duplicates', async () => {
    const userId = await verifiedUser('twice@example.com');
    await Promise.all([provisionUser({ ...deps, log: logs.log }, { userId }), provisionUser({ ...deps, log: logs.log }, { userId })]);
    const state = await userState(userId);
    expect(state.accounts.every((a) => a.status === 'ready')).toBe(true);
    const tatum = await sandbox.http.state();
    expect(tatum.accounts.filter((a) => a.accountNumber?.startsWith(userId))).toHaveLength(9);
    expect(tatum.subscriptions.filter((s) => state.accounts.some((a) => a.tatum_account_id === s.attr?.id))).toHaveLength(9);
  });

  it('a currency enabled later is found by the reconcile sweep and provisioned on the existing address', async () => {
    await app.database.query("update wallet_currencies set enabled = false where code = 'USDC'");
    const userId = await verifiedUser('later@example.com');
    await provisionUser({ ...deps, log: logs.log }, { userId });
    expect(await findIncompleteUsers(app.services.db, null, 1000)).not.toContain(userId);

    await app.database.query("update wallet_currencies set enabled = true where code = 'USDC'");
    expect(await findIncompleteUsers(app.services.db, null, 1000)).toContain(userId);
    await provisionUser({ ...deps, log: logs.log }, { userId });
    const { accounts, addresses } = await userState(userId);
    const usdc = accounts.find((a) => a.currency === 'USDC')!;
    expect(usdc.status).toBe('ready');
    expect(usdc.address).toBe(accounts.find((a) => a.currency === 'ETH')!.address);
    expect(addresses).toHaveLength(5);
    expect(await findIncompleteUsers(app.services.db, null, 1000)).not.toContain(userId);
  });

  it('after the last attempt unfinished accounts show failed with the last error; a later run heals them', async () => {
    const userId = await verifiedUser('last-attempt@example.com');
    sandbox.configure({ error500Rate: 1, faultRoutes: ['POST /v3/subscription'] });
    try {
      await expect(provisionUser({ ...deps, log: logs.log }, { userId }, { isLast: true })).rejects.toThrow(/not ready/);
    } finally {
      sandbox.configure({ error500Rate: 0 });
    }
    let state = await userState(userId);
    expect(state.accounts.every((a) => a.status === 'failed' && a.last_error)).toBe(true);
    expect(await findIncompleteUsers(app.services.db, null, 1000)).toContain(userId);

    await provisionUser({ ...deps, log: logs.log }, { userId });
    state = await userState(userId);
    expect(state.accounts.every((a) => a.status === 'ready' && a.last_error === null)).toBe(true);
    // The 500s were answered before the ledger: no subscription was created twice.
    const tatum = await sandbox.http.state();
    expect(tatum.subscriptions.filter((s) => state.accounts.some((a) => a.tatum_account_id === s.attr?.id))).toHaveLength(9);
  });

  it('hands every user their own derivation index per chain, and the xpub derives the stored address', async () => {
    const rows = await app.database.query<{ chain: 'bitcoin'; derivation_index: number; address: string | null; xpub: string }>(
      `select da.chain, da.derivation_index, da.address, mw.xpub from deposit_addresses da join master_wallets mw on mw.chain = da.chain`,
    );
    const keys = rows.rows.map((r) => `${r.chain}/${r.derivation_index}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const row of rows.rows.filter((r) => r.address)) {
      expect(addressFromXpub(row.chain, row.xpub, row.derivation_index)).toBe(row.address);
    }
  });
  // Last: the sandbox registers the wrong address on Tatum, which a later user's index would meet.
  it('a wrong address from Tatum fails the job loudly and stores no key', async () => {
    const userId = await verifiedUser('mismatch@example.com');
    sandbox.configure({ wrongAddress: true });
    try {
      await expect(provisionUser({ ...deps, log: logs.log }, { userId })).rejects.toBeInstanceOf(AddressMismatchError);
    } finally {
      sandbox.configure({ wrongAddress: false });
    }
    const { accounts, addresses } = await userState(userId);
    expect(addresses.every((a) => a.address === null && a.private_key_encrypted === null)).toBe(true);
    expect(accounts.every((a) => a.status === 'failed' && /Tatum returned/.test(a.last_error ?? ''))).toBe(true);
  });
});
