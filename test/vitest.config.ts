import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    // The fault scenarios restart Postgres and take minutes: `npm run test:faults` runs them.
    exclude: [...configDefaults.exclude, 'test/faults/**'],
    globalSetup: ['test/setup/postgres.ts'],
    // Every file gets its own database, so files run in parallel; tests inside a file run in order.
    fileParallelism: true,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
