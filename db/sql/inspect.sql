-- Ready queries for operators: psql "$DATABASE_URL", then paste one. Each stands alone and only
-- reads. The views queue_counts and provisioning_status (db/migrations/0002_inspection_views.sql)
-- speak this project's words; the rest read pg-boss's job table directly (pgboss.job, pg-boss 12).
-- Queries that take a value use a psql variable: \set email 'user@example.com' first.
-- Every query here is run by test/inspect-sql.test.ts, which splits this file on "-- name:".

-- name: queue-overview
-- How many jobs each queue holds, by state (waiting, delayed, active, completed, failed,
-- cancelled, dead_lettered). The seed's `redis-cli KEYS bull:tatum:*`, exact.
select queue, state, count
from queue_counts
order by queue, state;

-- name: stuck-active-jobs
-- Jobs a worker took and has not finished: the heartbeat is overdue (the worker is probably dead;
-- pg-boss fails the job back within a minute) or the job ran past its expiry.
select name as queue, id, data, started_on, heartbeat_on,
  now() - started_on as running_for,
  heartbeat_on < now() - make_interval(secs => coalesce(heartbeat_seconds, 30) * 2) as heartbeat_overdue
from pgboss.job
where state = 'active'
  and (heartbeat_on < now() - make_interval(secs => coalesce(heartbeat_seconds, 30) * 2)
       or started_on < now() - make_interval(secs => expire_seconds))
order by started_on;

-- name: ready-but-not-taken
-- Jobs ready to run for more than a minute: no worker is taking this queue (is `npm run queue:work`
-- running?) or the limiter holds them back.
select name as queue, count(*) as ready, min(start_after) as oldest_ready_since,
  now() - min(start_after) as oldest_waited
from pgboss.job
where state in ('created', 'retry') and start_after < now() - interval '1 minute'
  and name not in (select dead_letter from pgboss.queue where dead_letter is not null)
group by name
order by oldest_ready_since;

-- name: retry-backlog
-- Jobs failed at least once and waiting for their next attempt, with when it is due.
select name as queue, id, retry_count as failed_attempts, retry_limit + 1 as max_attempts,
  start_after as next_attempt_at, output->>'message' as last_error
from pgboss.job
where state = 'retry'
order by start_after;

-- name: dead-letters
-- Jobs that used every attempt and wait in a dead letter queue. queue.redrive({ queue }) or
-- queue.retry({ jobId }) sends them back; this shows why they landed there.
select coalesce(source_name, name) as queue, id as dead_letter_id, source_id as failed_job_id,
  coalesce(source_retry_count, 0) + 1 as attempts, created_on as dead_lettered_at,
  coalesce(source_output, output)->>'message' as error, data
from pgboss.job
where name in (select dead_letter from pgboss.queue where dead_letter is not null)
  and state not in ('completed', 'cancelled')
order by created_on desc
limit 100;

-- name: recent-errors
-- The last day's failures grouped by message: one broken dependency shows as one big row.
select name as queue, output->>'message' as error, count(*) as jobs, max(completed_on) as last_seen
from pgboss.job
where state in ('failed', 'retry') and coalesce(completed_on, start_after) > now() - interval '1 day'
group by name, output->>'message'
order by jobs desc
limit 50;

-- name: provisioning-summary
-- Deposit accounts of verified users by status: not_started means no account row yet.
select currency, status, count(*) as accounts
from provisioning_status
group by currency, status
order by currency, status;

-- name: provisioning-incomplete
-- Verified users whose accounts are not all ready, with the last error and the job that explains it.
select email, currency, status, last_error, job_id, job_queue, job_state
from provisioning_status
where status <> 'ready'
order by job_created_on nulls first, email, currency
limit 200;

-- name: user-accounts
-- One user's accounts: status per currency, the last error, the newest provisioning job.
select currency, status, last_error, job_id, job_queue, job_state, account_updated_at
from provisioning_status
where email = lower(:'email')
order by currency;

-- name: user-job-history
-- Every pg-boss job that carried one user's id: provisioning runs, their retries and dead letters.
select j.name as queue, j.id, j.state, j.retry_count, j.created_on, j.started_on, j.completed_on,
  coalesce(j.output, j.source_output)->>'message' as error
from pgboss.job j
join users u on j.data->>'userId' = u.id::text
where u.email = lower(:'email')
order by j.created_on;
