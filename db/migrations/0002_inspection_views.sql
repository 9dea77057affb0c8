-- Views for operators over pg-boss's job table, in this project's words (README: "Inspecting the
-- queues with SQL"); queue.stats reads the same classification, so the API, /metrics and psql agree.
--
-- Why each view selects from a function: pgboss.job only exists once pg-boss has started, and
-- migrations run before it. A SQL function's body is not resolved at creation while
-- check_function_bodies is off (for this transaction only), so this migration applies on a database
-- pg-boss has not reached yet, and every query resolves the tables when it runs. A plain view would
-- also pin the pgboss.job columns it names, so a pg-boss upgrade that altered one would fail its own
-- migration; a function body never blocks one. STABLE single-SELECT SQL functions are inlined by the
-- planner, so a filter on a view reaches the job table as if it had been written against it.
SET LOCAL check_function_bodies = off;
--> statement-breakpoint
-- One row per pg-boss job, classified with Bull's names:
--   waiting        created or retry, start_after reached (a worker may take it now)
--   delayed        created or retry, start_after still ahead (retry backoff or a start time)
--   active, completed, failed, cancelled: pg-boss's own states (failed = every attempt used)
--   dead_lettered  in a dead letter queue and not yet completed or cancelled; counted against the
--                  queue it failed in (source_name), which is where a redrive sends it back
-- `retrying` marks jobs in pg-boss's retry state (a subset of waiting and delayed).
CREATE FUNCTION queue_job_states()
RETURNS TABLE (queue text, state text, retrying boolean, start_after timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT
    CASE WHEN j.in_dead_letter THEN coalesce(j.source_name, j.name) ELSE j.name END,
    CASE
      WHEN j.in_dead_letter AND j.state IN ('completed', 'cancelled') THEN 'dead_letter_' || j.state
      WHEN j.in_dead_letter THEN 'dead_lettered'
      WHEN j.state IN ('created', 'retry') AND j.start_after <= now() THEN 'waiting'
      WHEN j.state IN ('created', 'retry') THEN 'delayed'
      ELSE j.state::text
    END,
    j.state = 'retry',
    j.start_after
  FROM (
    SELECT job.name, job.state, job.start_after, job.source_name,
      job.name IN (SELECT q.dead_letter FROM pgboss.queue q WHERE q.dead_letter IS NOT NULL) AS in_dead_letter
    FROM pgboss.job job
  ) j
$$;
--> statement-breakpoint
CREATE VIEW queue_counts AS
  SELECT queue, state, count(*)::int AS count
  FROM queue_job_states()
  GROUP BY queue, state;
--> statement-breakpoint
-- One row per verified user and currency: where that deposit account stands, and the user's newest
-- provisioning job (in the queue or its dead letter queue), which is what explains it.
--   status      the account's status (pending, ready, failed), or not_started when no row exists yet
--   last_error  the account's last error, else the newest job's (a retry's or, once dead-lettered,
--               the failed original's, which pg-boss keeps as source_output)
CREATE FUNCTION provisioning_status_rows()
RETURNS TABLE (
  user_id uuid, email text, currency text, status text, last_error text,
  job_id uuid, job_queue text, job_state text, job_created_on timestamptz, account_updated_at timestamptz
)
LANGUAGE sql STABLE AS $$
  WITH latest_job AS (
    SELECT DISTINCT ON (j.data->>'userId')
      j.data->>'userId' AS user_id, j.id, j.name, j.state, j.output, j.source_output, j.created_on
    FROM pgboss.job j
    WHERE j.name IN ('tatum.create-virtual-account', 'tatum.create-virtual-account.dead')
    ORDER BY j.data->>'userId', j.created_on DESC
  )
  SELECT
    u.id,
    u.email,
    c.code,
    coalesce(a.status::text, 'not_started'),
    coalesce(
      a.last_error,
      CASE WHEN job.state IN ('retry', 'failed') THEN job.output->>'message' END,
      job.source_output->>'message'
    ),
    job.id,
    job.name,
    job.state::text,
    job.created_on,
    a.updated_at
  FROM users u
  CROSS JOIN wallet_currencies c
  LEFT JOIN virtual_accounts a ON a.user_id = u.id AND a.currency = c.code
  LEFT JOIN latest_job job ON job.user_id = u.id::text
  WHERE u.email_verified_at IS NOT NULL
    AND (c.enabled OR a.id IS NOT NULL)
$$;
--> statement-breakpoint
CREATE VIEW provisioning_status AS
  SELECT * FROM provisioning_status_rows();
