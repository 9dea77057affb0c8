// The single appRouter; clients import `type AppRouter` and get every procedure typed end to end.
import { router } from '../trpc.ts';
import { authRouter } from './auth.ts';
import { queueRouter } from './queue.ts';
import { systemRouter } from './system.ts';
import { walletRouter } from './wallet.ts';

export const appRouter = router({
  system: systemRouter,
  auth: authRouter,
  wallet: walletRouter,
  queue: queueRouter,
});

export type AppRouter = typeof appRouter;
