// A database outage as the application sees it, and polling with a deadline for effects that land
// asynchronously (jobs, retries).
import pg from 'pg';
import { inject } from 'vitest';

/**
 * Takes a test database down for the application: new connections are refused and the application's
 * open ones (pool and pg-boss, both named `tatum-provisioning…`) are ended. The test's own admin
 * connections stay, so assertions still run. `true` brings it back.
 */
export async function setDatabaseAvailable(databaseName: string, available: boolean): Promise<void> {
  const admin = new pg.Client({ connectionString: inject('adminDatabaseUrl') });
  await admin.connect();
  try {
    await admin.query(`alter database ${pg.escapeIdentifier(databaseName)} allow_connections ${available}`);
    if (!available) {
      const appBackends = `from pg_stat_activity where datname = $1 and application_name like 'tatum-provisioning%'`;
      await admin.query(`select pg_terminate_backend(pid) ${appBackends}`, [databaseName]);
      // Wait until those backends have exited, so their sockets are closed and the pools have
      // dropped the dead connections before the test goes on.
      await eventually(
        async () => (await admin.query<{ n: number }>(`select count(*)::int as n ${appBackends}`, [databaseName])).rows[0]!.n,
        (n) => n === 0,
      );
    }
  } finally {
    await admin.end();
  }
}

/** Reads until `done` holds or `timeoutMs` passes; returns the last value read either way. */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
