// Master wallets and key rotation on a real Postgres, including the two commands run as the
// operator would run them.
import { createCipheriv, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHAINS, type Chain } from '../jobs/config.ts';
import { accountXpub, addressFromXpub, generateMnemonic, privateKeyFor } from '../jobs/custody/hd.ts';
import { reencryptAll } from '../jobs/custody/reencrypt.ts';
import { Vault } from '../jobs/custody/vault.ts';
import { ensureMasterWallets, loadMnemonic, loadXpub, MissingWalletError } from '../jobs/custody/wallets.ts';
import { createEmptyDatabase, createTestDatabase } from './helpers/database.ts';

const OLD_KEY = 'old-key-32-characters-long-abcde';
const CURRENT_KEY = randomBytes(32).toString('hex');
const vault = Vault.fromConfig({ ENCRYPTION_KEY: CURRENT_KEY, ENCRYPTION_KEYS_OLD: [OLD_KEY] });
const oldVault = Vault.fromConfig({ ENCRYPTION_KEY: OLD_KEY, ENCRYPTION_KEYS_OLD: [] });

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.drop());

const db = () => database.handle.db;

type WalletRow = { chain: Chain; xpub: string; mnemonic_encrypted: string; created_at: Date };

async function walletRows(): Promise<WalletRow[]> {
  return (await database.query<WalletRow>('select chain, xpub, mnemonic_encrypted, created_at from master_wallets order by chain')).rows;
}

/** The seed's encryption, exactly: AES-256-CBC, key = UTF-8 bytes of the 32-character key, hex `iv:ciphertext`. */
function seedEncrypt(plaintext: string, key: string): string {
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', Buffer.from(key, 'utf8'), iv);
  return `${iv.toString('hex')}:${cipher.update(plaintext, 'utf8', 'hex')}${cipher.final('hex')}`;
}

/** Resolves once another session is blocked on a lock, polling with a deadline (no sleeps as sync). */
async function untilSomeoneWaitsOnALock(): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { rows } = await database.query(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    );
    if (rows[0]!.n > 0) return;
    if (Date.now() > deadline) throw new Error('no session ever waited on a lock');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('master wallets', () => {
  it('has none to load before wallets:init', async () => {
    await expect(loadXpub(db(), 'tron')).rejects.toBeInstanceOf(MissingWalletError);
    await expect(loadMnemonic(db(), vault, 'tron')).rejects.toThrow(/npm run wallets:init/);
  });

  it('creates one wallet per chain: xpub in clear, mnemonic encrypted under the current key', async () => {
    const result = await ensureMasterWallets(db(), vault);
    expect(result).toEqual({ created: [...CHAINS], existing: [] });
    const rows = await walletRows();
    expect(rows.map((r) => r.chain).sort()).toEqual([...CHAINS].sort());
    for (const row of rows) {
      expect(row.mnemonic_encrypted.startsWith(`v2:${vault.currentKeyId}:`)).toBe(true);
      const mnemonic = vault.decrypt(row.mnemonic_encrypted);
      expect(mnemonic.split(' ')).toHaveLength(24);
      expect(row.mnemonic_encrypted).not.toContain(mnemonic.split(' ')[0]);
      expect(accountXpub(row.chain, mnemonic)).toBe(row.xpub);
    }
    // Every chain has its own mnemonic, ETH and BSC included.
    const mnemonics = rows.map((r) => vault.decrypt(r.mnemonic_encrypted));
    expect(new Set(mnemonics).size).toBe(CHAINS.length);
  });

  it('a second call, and two concurrent calls, create nothing and change nothing', async () => {
    const before = await walletRows();
    expect(await ensureMasterWallets(db(), vault)).toEqual({ created: [], existing: [...CHAINS] });
    const [a, b] = await Promise.all([ensureMasterWallets(db(), vault), ensureMasterWallets(db(), vault)]);
    expect(a.created).toEqual([]);
    expect(b.created).toEqual([]);
    expect(await walletRows()).toEqual(before);
  });

  it('loadMnemonic decrypts the mnemonic that derives the stored xpub, and loadXpub returns that xpub', async () => {
    for (const chain of CHAINS) {
      const mnemonic = await loadMnemonic(db(), vault, chain);
      const xpub = await loadXpub(db(), chain);
      expect(accountXpub(chain, mnemonic)).toBe(xpub);
      expect(addressFromXpub(chain, xpub, 5)).toBeTruthy();
    }
  });

  it('loadMnemonic refuses a mnemonic that does not derive the stored xpub', async () => {
    const rows = await walletRows();
    const tron = rows.find((r) => r.chain === 'tron')!;
    const bitcoin = rows.find((r) => r.chain === 'bitcoin')!;
    await database.query("update master_wallets set mnemonic_encrypted = $1 where chain = 'tron'", [bitcoin.mnemonic_encrypted]);
    try {
      await expect(loadMnemonic(db(), vault, 'tron')).rejects.toThrow(/does not derive its stored xpub/);
    } finally {
      await database.query("update master_wallets set mnemonic_encrypted = $1 where chain = 'tron'", [tron.mnemonic_encrypted]);
    }
  });

  it('loses the race cleanly: a wallet committed by another process while this one inserts is kept', async () => {
    await database.query("delete from master_wallets where chain = 'litecoin'");
    const theirs = generateMnemonic();
    const theirXpub = accountXpub('litecoin', theirs);
    const result = await withClient(async (other) => {
      // The other process has inserted but not committed: our pre-check cannot see its row, so our
      // insert reaches the unique index and waits there for the other transaction to finish.
      await other.query('begin');
      await other.query("insert into master_wallets (chain, xpub, mnemonic_encrypted) values ('litecoin', $1, $2)", [theirXpub, vault.encrypt(theirs)]);
      const ours = ensureMasterWallets(db(), vault, ['litecoin']);
      await untilSomeoneWaitsOnALock();
      await other.query('commit');
      return ours;
    });
    expect(result).toEqual({ created: [], existing: ['litecoin'] });
    expect(await loadXpub(db(), 'litecoin')).toBe(theirXpub);
    expect(await loadMnemonic(db(), vault, 'litecoin')).toBe(theirs);
  });
});

describe('reencryptAll', () => {
  const mnemonic = generateMnemonic();
  const xpub = accountXpub('ethereum', mnemonic);
  const stored: Record<string, string> = {};

  beforeAll(async () => {
    // Ethereum's wallet becomes a legacy (seed-format) row; TRON's is under the old key.
    await database.query("delete from master_wallets where chain = 'ethereum'");
    await database.query("insert into master_wallets (chain, xpub, mnemonic_encrypted) values ('ethereum', $1, $2)", [xpub, seedEncrypt(mnemonic, OLD_KEY)]);
    const tronMnemonic = await loadMnemonic(db(), vault, 'tron');
    await database.query("update master_wallets set mnemonic_encrypted = $1 where chain = 'tron'", [oldVault.encrypt(tronMnemonic)]);

    const { rows } = await database.query<{ id: string }>("insert into users (email) values ('a@example.com'), ('b@example.com'), ('c@example.com'), ('d@example.com') returning id");
    const encodings = { legacy: (k: string) => seedEncrypt(k, OLD_KEY), old: (k: string) => oldVault.encrypt(k), current: (k: string) => vault.encrypt(k) };
    for (const [i, [name, encode]] of Object.entries(encodings).entries()) {
      const index = i + 1;
      const value = encode(privateKeyFor('ethereum', mnemonic, index));
      stored[name] = value;
      await database.query(
        "insert into deposit_addresses (user_id, chain, derivation_index, address, private_key_encrypted) values ($1, 'ethereum', $2, $3, $4)",
        [rows[i]!.id, index, addressFromXpub('ethereum', xpub, index), value],
      );
    }
    // A reserved index whose address has not arrived yet: nothing to re-encrypt.
    await database.query("insert into deposit_addresses (user_id, chain, derivation_index) values ($1, 'ethereum', 9)", [rows[3]!.id]);
  });

  it('rewrites legacy and old-key rows under the current key and leaves current ones untouched', async () => {
    const walletsBefore = await walletRows();
    expect(await reencryptAll(db(), vault)).toEqual({ masterWallets: 2, depositAddresses: 2 });

    const walletsAfter = await walletRows();
    for (const row of walletsAfter) {
      expect(vault.needsReencryption(row.mnemonic_encrypted)).toBe(false);
      expect(accountXpub(row.chain, vault.decrypt(row.mnemonic_encrypted))).toBe(row.xpub);
      const before = walletsBefore.find((r) => r.chain === row.chain)!;
      if (row.chain !== 'ethereum' && row.chain !== 'tron') expect(row.mnemonic_encrypted).toBe(before.mnemonic_encrypted);
    }
    expect(vault.decrypt(walletsAfter.find((r) => r.chain === 'ethereum')!.mnemonic_encrypted)).toBe(mnemonic);

    const { rows } = await database.query<{ derivation_index: number; private_key_encrypted: string | null }>(
      "select derivation_index, private_key_encrypted from deposit_addresses where chain = 'ethereum' order by derivation_index",
    );
    expect(rows.map((r) => r.derivation_index)).toEqual([1, 2, 3, 9]);
    for (const row of rows.slice(0, 3)) {
      expect(vault.needsReencryption(row.private_key_encrypted!)).toBe(false);
      expect(vault.decrypt(row.private_key_encrypted!)).toBe(privateKeyFor('ethereum', mnemonic, row.derivation_index));
    }
    expect(rows[2]!.private_key_encrypted).toBe(stored.current);
    expect(rows[3]!.private_key_encrypted).toBeNull();

    // Nothing is left: the old key can now be dropped from ENCRYPTION_KEYS_OLD.
    expect(await reencryptAll(db(), vault)).toEqual({ masterWallets: 0, depositAddresses: 0 });
    const withoutOld = Vault.fromConfig({ ENCRYPTION_KEY: CURRENT_KEY, ENCRYPTION_KEYS_OLD: [] });
    for (const row of await walletRows()) expect(() => withoutOld.decrypt(row.mnemonic_encrypted)).not.toThrow();
  });

  it('does not clobber a value a concurrent writer changed after it was read', async () => {
    const staleValue = oldVault.encrypt(privateKeyFor('ethereum', mnemonic, 2));
    await database.query("update deposit_addresses set private_key_encrypted = $1 where chain = 'ethereum' and derivation_index = 2", [staleValue]);
    const writersValue = vault.encrypt(privateKeyFor('ethereum', mnemonic, 2));
    const result = await withClient(async (writer) => {
      // The writer holds the row: reencryptAll reads the stale value, then its guarded update
      // waits; once the writer commits, the guard no longer matches and the update does nothing.
      await writer.query('begin');
      await writer.query("update deposit_addresses set private_key_encrypted = $1 where chain = 'ethereum' and derivation_index = 2", [writersValue]);
      const run = reencryptAll(db(), vault);
      await untilSomeoneWaitsOnALock();
      await writer.query('commit');
      return run;
    });
    expect(result).toEqual({ masterWallets: 0, depositAddresses: 0 });
    const { rows } = await database.query("select private_key_encrypted from deposit_addresses where chain = 'ethereum' and derivation_index = 2");
    expect(rows[0]!.private_key_encrypted).toBe(writersValue);
  });

  it('refuses to seal a legacy value whose key does not control the stored address, naming only the row', async () => {
    const wrongKey = privateKeyFor('ethereum', mnemonic, 7);
    const bad = seedEncrypt(wrongKey, OLD_KEY);
    const { rows } = await database.query<{ id: string }>(
      "update deposit_addresses set private_key_encrypted = $1 where chain = 'ethereum' and derivation_index = 1 returning id",
      [bad],
    );
    const error = await reencryptAll(db(), vault).then(() => undefined, (err: Error) => err);
    expect(error?.message).toMatch(new RegExp(`deposit_addresses ${rows[0]!.id} .*does not control the stored address`));
    expect(error?.message).not.toContain(wrongKey.slice(2));
    const after = await database.query("select private_key_encrypted from deposit_addresses where id = $1", [rows[0]!.id]);
    expect(after.rows[0]!.private_key_encrypted).toBe(bad);
  });
});

describe('the commands', () => {
  const exec = promisify(execFile);
  const repo = path.resolve(import.meta.dirname, '..');
  let cli: Awaited<ReturnType<typeof createEmptyDatabase>>;
  let dataDir: string;

  beforeAll(async () => {
    cli = await createEmptyDatabase();
    dataDir = mkdtempSync(path.join(tmpdir(), 'custody-cli-'));
  });
  afterAll(async () => {
    await cli.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Runs a command as `npm run` would, in sandbox mode; empty values override any local .env. */
  async function run(script: string, env: Record<string, string> = {}): Promise<string> {
    const { stdout, stderr } = await exec('npx', ['tsx', script], {
      cwd: repo,
      timeout: 60_000,
      env: {
        PATH: process.env.PATH!,
        HOME: process.env.HOME!,
        DATABASE_URL: cli.url,
        DATA_DIR: dataDir,
        LOG_LEVEL: 'debug',
        TATUM_API_KEY: '',
        ENCRYPTION_KEY: '',
        ENCRYPTION_KEYS_OLD: '',
        ...env,
      },
    });
    return `${stdout}\n${stderr}`;
  }

  async function storedWallets(key: string): Promise<{ chain: Chain; xpub: string; mnemonic: string }[]> {
    const v = Vault.fromConfig({ ENCRYPTION_KEY: key, ENCRYPTION_KEYS_OLD: [] });
    const { rows } = await cli.query('select chain, xpub, mnemonic_encrypted from master_wallets');
    return rows.map((r) => ({ chain: r.chain, xpub: r.xpub, mnemonic: v.decrypt(r.mnemonic_encrypted) }));
  }

  function expectNoSecrets(output: string, secrets: string[]) {
    for (const secret of secrets) expect(output).not.toContain(secret);
  }

  it('wallets:init creates the wallets, prints the xpubs and never a mnemonic; a second run refuses to overwrite', async () => {
    const first = await run('jobs/custody/wallets-init.ts');
    const key = JSON.parse(readFileSync(path.join(dataDir, 'sandbox-secrets.json'), 'utf8')).ENCRYPTION_KEY as string;
    const wallets = await storedWallets(key);
    expect(wallets).toHaveLength(CHAINS.length);
    const secrets = [key, ...wallets.flatMap((w) => [w.mnemonic, w.mnemonic.split(' ').slice(0, 3).join(' ')])];
    for (const w of wallets) expect(first).toMatch(new RegExp(`${w.chain}\\s+created\\s+${w.xpub}`));
    expectNoSecrets(first, secrets);

    const second = await run('jobs/custody/wallets-init.ts');
    for (const w of wallets) expect(second).toMatch(new RegExp(`${w.chain}\\s+already exists, left unchanged\\s+${w.xpub}`));
    expect(second).toContain('Refused to overwrite 5 existing wallet(s)');
    expectNoSecrets(second, secrets);
    expect(await storedWallets(key)).toEqual(wallets);
  });

  it('keys:reencrypt moves every wallet to a new key once the old one is listed as old', async () => {
    const oldKey = JSON.parse(readFileSync(path.join(dataDir, 'sandbox-secrets.json'), 'utf8')).ENCRYPTION_KEY as string;
    const before = await storedWallets(oldKey);
    const newKey = randomBytes(32).toString('base64');
    const rotate = { ENCRYPTION_KEY: newKey, ENCRYPTION_KEYS_OLD: oldKey };

    const output = await run('jobs/custody/reencrypt.ts', rotate);
    expect(output).toContain('5 master wallet(s), 0 deposit address key(s)');
    expectNoSecrets(output, [oldKey, newKey, ...before.map((w) => w.mnemonic)]);
    expect(await storedWallets(newKey)).toEqual(before);

    expect(await run('jobs/custody/reencrypt.ts', rotate)).toContain('0 master wallet(s), 0 deposit address key(s)');
  });
});
