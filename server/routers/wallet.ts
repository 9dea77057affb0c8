import { listAccounts } from '../accounts.ts';
import { depositsPage, listDeposits } from '../deposits.ts';
import { router, userProcedure } from '../trpc.ts';

export const walletRouter = router({
  /** Per currency: chain, provisioning status, deposit address and Tatum account id. */
  accounts: userProcedure.query(({ ctx }) => listAccounts(ctx.db, ctx.user.id)),
  /** The signed-in user's deposits, newest first; pass `nextCursor` back as `cursor` for the next page. */
  deposits: userProcedure.input(depositsPage).query(({ ctx, input }) => listDeposits(ctx.db, ctx.user.id, input)),
});
