// Starts the real server in-process on a fresh test database, with its own temporary DATA_DIR.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../jobs/config.ts';
import { createLogger, type Logger } from '../../jobs/logger.ts';
import { startApp, type RunningApp } from '../../server/app.ts';
import { createTestDatabase } from './database.ts';

export interface TestApp extends RunningApp {
  database: Awaited<ReturnType<typeof createTestDatabase>>;
  stop(): Promise<void>;
}

export async function startTestApp(env: Record<string, string> = {}, log: Logger = createLogger({ level: 'silent' })): Promise<TestApp> {
  const database = await createTestDatabase();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'app-'));
  const config = parseConfig({ DATABASE_URL: database.url, PORT: '0', DATA_DIR: dataDir, ...env });
  const app = await startApp(config, log);
  return {
    ...app,
    database,
    async stop() {
      await app.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
