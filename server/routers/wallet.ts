import { depositsPage, listDeposits } from '../deposits.ts';
import { router, userProcedure } from '../trpc.ts';

export const walletRouter = router({
  /** The signed-in user's deposits, newest first; pass `nextCursor` back as `cursor` for the next page. */
  deposits: userProcedure.input(depositsPage).query(({ ctx, input }) => listDeposits(ctx.db, ctx.user.id, input)),
});
