import { router } from '../trpc.ts';

export const queueRouter = router({});
