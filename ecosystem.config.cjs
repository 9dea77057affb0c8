// PM2 (`pm2 start ecosystem.config.cjs`): the seed's production example for this stack. Two worker
// processes for the `tatum` queues (they share the work through Postgres and one job limiter), one
// for mail, and the API server. Configuration comes from the environment or `.env` in this folder.
// PM2 stops a process with SIGINT and kills it after kill_timeout: the workers get longer than their
// own 30 s drain (jobs/worker.ts STOP_TIMEOUT_MS), so a deploy lets active jobs finish.
const typescript = { interpreter: 'node', interpreter_args: '--import tsx', cwd: __dirname, exec_mode: 'fork', autorestart: true };

module.exports = {
  apps: [
    { ...typescript, name: 'api', script: 'server/main.ts', instances: 1, kill_timeout: 15_000 },
    { ...typescript, name: 'queue-worker-tatum', script: 'jobs/run.ts', args: 'tatum', instances: 2, kill_timeout: 35_000 },
    { ...typescript, name: 'queue-worker-email', script: 'jobs/run.ts', args: 'email.send', instances: 1, kill_timeout: 35_000 },
  ],
};
