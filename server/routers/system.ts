import { publicProcedure, router } from '../trpc.ts';

export const systemRouter = router({
  /** Which mode this server runs in; clients use it to know whether sandbox helpers exist. */
  info: publicProcedure.query(({ ctx }) => ({ mode: ctx.config.mode, database: ctx.config.database })),
});
