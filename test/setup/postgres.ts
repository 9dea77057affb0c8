// Finds the Postgres server the suites run against: TEST_DATABASE_URL when set, else the local
// server when it answers, else a throw-away testcontainers Postgres (machines with Docker).
import pg from 'pg';
import type { TestProject } from 'vitest/node';

const LOCAL = 'postgres://postgres@127.0.0.1:5432/postgres';

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export default async function setup(project: TestProject) {
  let stop: (() => Promise<unknown>) | undefined;
  let url = process.env.TEST_DATABASE_URL;
  if (!url) {
    if (await answers(LOCAL)) {
      url = LOCAL;
    } else {
      const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
      const container = await new PostgreSqlContainer('postgres:17-alpine').start();
      url = container.getConnectionUri();
      stop = () => container.stop();
    }
  }
  project.provide('adminDatabaseUrl', url);
  return async () => {
    await stop?.();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}
