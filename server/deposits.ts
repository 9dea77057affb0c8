// A user's deposits, newest first, a page at a time. Keyset pagination on (created_at, id): a page
// never repeats or skips a row when new deposits arrive between requests, as an offset would.
import { TRPCError } from '@trpc/server';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { queryRows, type Executor } from '../db/client.ts';

export const depositsPage = z
  .object({
    limit: z.number().int().min(1).max(100).default(20),
    /** `nextCursor` from the previous page; absent for the first page. */
    cursor: z.string().max(200).optional(),
  })
  .prefault({});
export type DepositsPage = z.input<typeof depositsPage>;

export interface DepositView {
  id: string;
  reference: string;
  currency: string;
  /** Exact decimal, as Tatum sent it (trailing zeros of the numeric column trimmed). */
  amount: string;
  txId: string;
  blockHeight: number | null;
  from: string | null;
  to: string | null;
  outputIndex: number | null;
  status: string;
  createdAt: Date;
}

interface Row extends Omit<DepositView, 'createdAt'> {
  createdAt: Date | string; // node-postgres parses timestamptz, PGlite may not
  /** created_at in Postgres' own text form: microseconds survive, which a JS Date would drop. */
  position: string;
}

// The cursor is the last row's (created_at, id), opaque to clients. The position is Postgres's text
// form of created_at, and must name a real instant: the query casts it, and a cast that fails would
// turn a client's bad cursor into a 500.
const POSITION = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})?[+-](?:0\d|1[0-5])(?::[0-5]\d)?$/;
const position = z.string().regex(POSITION).refine((text) => {
  const [y, mo, d, h, mi, s] = POSITION.exec(text)!.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const day = new Date(Date.UTC(y, mo - 1, d));
  return y >= 1000 && day.getUTCFullYear() === y && day.getUTCMonth() === mo - 1 && day.getUTCDate() === d && h < 24 && mi < 60 && s < 60;
});
const cursorShape = z.tuple([position, z.uuid()]);

function encodeCursor(row: Row): string {
  return Buffer.from(JSON.stringify([row.position, row.id])).toString('base64url');
}

function decodeCursor(cursor: string): [string, string] {
  try {
    return cursorShape.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
  } catch {
    throw new TRPCError({ code: 'BAD_REQUEST', message: 'cursor: not a cursor returned by wallet.deposits' });
  }
}

export async function listDeposits(
  db: Executor,
  userId: string,
  page: z.output<typeof depositsPage>,
): Promise<{ items: DepositView[]; nextCursor: string | null }> {
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
  const rows = await queryRows<Row>(
    db,
    sql`select d.id, d.reference, d.currency, trim_scale(d.amount)::text as amount, d.tx_id as "txId",
               d.block_height as "blockHeight", d.from_address as "from", d.to_address as "to",
               d.output_index as "outputIndex", d.status, d.created_at as "createdAt", d.created_at::text as position
        from deposits d
        join virtual_accounts va on va.id = d.virtual_account_id
        where va.user_id = ${userId}
          ${after ? sql`and (d.created_at, d.id) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : sql``}
        order by d.created_at desc, d.id desc
        limit ${page.limit + 1}`,
  );
  const items = rows.slice(0, page.limit);
  const last = items.at(-1);
  return {
    items: items.map(({ position, createdAt, ...row }) => ({ ...row, createdAt: new Date(createdAt) })),
    nextCursor: rows.length > page.limit && last ? encodeCursor(last) : null,
  };
}
