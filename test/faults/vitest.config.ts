// `npm run test:faults`: the fault scenarios, each a real deployment (server and two workers as child
// processes, real Postgres, the Tatum sandbox) broken on purpose. Files run one at a time: the
// Postgres restart scenario takes the whole server down, and the machine's cores are the budget.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/setup/postgres.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
