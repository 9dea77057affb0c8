// `npm run wallets:init`: creates the master wallet of every chain that has none. It never replaces
// an existing wallet (deposit addresses already handed out depend on it) and never prints a mnemonic.
import { CHAINS } from '../config.ts';
import { ensureMasterWallets, loadXpub, openCustody } from './wallets.ts';

const custody = await openCustody('wallets-init');
try {
  const { created, existing } = await ensureMasterWallets(custody.db, custody.vault);
  console.log(`master wallets (${custody.database.kind} database, vault key ${custody.vault.currentKeyId}):`);
  for (const chain of CHAINS) {
    const status = created.includes(chain) ? 'created' : 'already exists, left unchanged';
    console.log(`  ${chain.padEnd(9)} ${status.padEnd(30)} ${await loadXpub(custody.db, chain)}`);
  }
  if (existing.length > 0) {
    console.log(`Refused to overwrite ${existing.length} existing wallet(s): ${existing.join(', ')}.`);
  }
  if (created.length > 0) {
    console.log('The new mnemonics exist only encrypted in the database: back up the database and ENCRYPTION_KEY together.');
  }
} catch (err) {
  console.error(`wallets:init failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await custody.close();
}
