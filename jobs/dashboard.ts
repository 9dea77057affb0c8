// `npm run dashboard [-- --port 3001]`: the official pg-boss dashboard (@pg-boss/dashboard) on this
// application's database, at http://HOST:port. It can cancel, retry and delete jobs, so it sits behind
// basic auth: user `admin`, password ADMIN_TOKEN (in sandbox mode, the one generated in DATA_DIR).
// It needs Postgres: the embedded PGlite database lives inside the `npm start` process and no other
// process can attach to it.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './logger.ts';
import { resolveSecrets } from './secrets.ts';

const DEFAULT_DASHBOARD_PORT = 3001;
const DASHBOARD_USER = 'admin';

try {
  const parsed = loadConfig();
  const log = createLogger({ level: parsed.LOG_LEVEL, name: 'dashboard' });
  if (parsed.DATABASE_URL === undefined) {
    log.error(
      'The pg-boss dashboard needs a Postgres DATABASE_URL. The embedded PGlite database (DATABASE_URL unset) belongs ' +
        'to the `npm start` process and cannot be attached from another one. Use queue.stats over tRPC there, or run on Postgres.',
    );
    process.exit(78); // EX_CONFIG
  }
  const { values } = parseArgs({ options: { port: { type: 'string', default: String(DEFAULT_DASHBOARD_PORT) } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    log.error({ port: values.port }, '--port must be a port number from 1 to 65535');
    process.exit(64); // EX_USAGE
  }
  const config = resolveSecrets(parsed, log);

  // The dashboard is configured only through its environment, which it reads when imported.
  Object.assign(process.env, {
    DATABASE_URL: config.DATABASE_URL,
    PGBOSS_SCHEMA: 'pgboss',
    HOST: config.HOST,
    PORT: String(port),
    PGBOSS_DASHBOARD_AUTH_USERNAME: DASHBOARD_USER,
    PGBOSS_DASHBOARD_AUTH_PASSWORD: config.ADMIN_TOKEN,
  });
  log.info({ host: config.HOST, port, user: DASHBOARD_USER }, 'starting the pg-boss dashboard (password: ADMIN_TOKEN)');
  // Its command-line entry chdirs to the package and starts listening on import.
  const entry = '@pg-boss/dashboard/bin/cli.js';
  await import(entry);
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(78);
  }
  throw err;
}
