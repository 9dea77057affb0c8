import { router } from '../trpc.ts';

export const walletRouter = router({});
