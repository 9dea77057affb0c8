// Which chain carries each Tatum ledger currency. Derived from the wallet-currency seed data, so the
// mapping lives in exactly one place; token accounts use their host chain's xpub and addresses.
import { CURRENCIES } from '../../db/seed/currencies.ts';
import type { Chain } from '../config.ts';

export const CURRENCY_CHAIN: Readonly<Record<string, Chain>> = Object.freeze(
  Object.fromEntries(CURRENCIES.map((c) => [c.code, c.chain])),
);

export const CURRENCY_CODES: readonly string[] = Object.keys(CURRENCY_CHAIN);

/** UTXO chains: webhooks carry an output `index` and no `from`. */
export const UTXO_CHAINS: ReadonlySet<Chain> = new Set<Chain>(['bitcoin', 'litecoin']);

/** The chain of a currency; an unknown code is an error, never a default (pitfall #15). */
export function chainOf(currency: string): Chain {
  const chain = CURRENCY_CHAIN[currency];
  if (chain === undefined) throw new Error(`Unknown Tatum currency "${currency}": expected one of ${CURRENCY_CODES.join(', ')}`);
  return chain;
}
