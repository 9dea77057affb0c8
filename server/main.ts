// `npm start`: one process serving HTTP (and, on the embedded database, the job worker).
import { ConfigError, loadConfig } from '../jobs/config.ts';
import { createLogger } from '../jobs/logger.ts';
import { startApp } from './app.ts';

try {
  const config = loadConfig();
  const log = createLogger({ level: config.LOG_LEVEL, name: 'server' });
  const app = await startApp(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(78); // EX_CONFIG
  }
  throw err;
}
