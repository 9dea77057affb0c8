// Prometheus metrics. Durations and request counts are recorded where they happen, into one
// registry per process; job counts are not recorded at all but counted in Postgres when scraped,
// so they are exact whichever process did the work.
import http from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { QueueStats } from './queue-stats.ts';

const processRegistry = new Registry();
collectDefaultMetrics({ register: processRegistry });

// Jobs run from milliseconds (mail) to minutes (a rate-limited provisioning run).
const jobDuration = new Histogram({
  name: 'job_duration_seconds',
  help: 'Time a job handler ran, by queue and outcome (completed or failed).',
  labelNames: ['queue', 'outcome'] as const,
  buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  registers: [processRegistry],
});

const tatumRequests = new Counter({
  name: 'tatum_requests_total',
  help: 'HTTP attempts to Tatum, by route template, method and status (or timeout/network).',
  labelNames: ['route', 'method', 'status'] as const,
  registers: [processRegistry],
});

const tatumDuration = new Histogram({
  name: 'tatum_request_duration_seconds',
  help: 'Duration of HTTP attempts to Tatum, by route template and method.',
  labelNames: ['route', 'method'] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [processRegistry],
});

const httpDuration = new Histogram({
  name: 'http_request_duration_seconds',
  help: 'Duration of HTTP requests served, by method, route and status.',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [processRegistry],
});

const webhookDeliveries = new Counter({
  name: 'webhook_deliveries_total',
  help: 'Tatum webhook deliveries by outcome: stored, duplicate, unknown-account, ignored, bad-signature, invalid, too-large, unavailable.',
  labelNames: ['outcome'] as const,
  registers: [processRegistry],
});

const depositsReceived = new Counter({
  name: 'deposits_received_total',
  help: 'Deposits moved to received by the deposit job, by currency.',
  labelNames: ['currency'] as const,
  registers: [processRegistry],
});

export function recordWebhookDelivery(outcome: string): void {
  webhookDeliveries.inc({ outcome });
}

export function recordDepositReceived(currency: string): void {
  depositsReceived.inc({ currency });
}

/** The worker calls this once per job attempt. */
export function recordJobDuration(queue: string, outcome: 'completed' | 'failed', durationMs: number): void {
  jobDuration.observe({ queue, outcome }, durationMs / 1000);
}

/** The shape of the Tatum client's `onRequest` callback, so it can be passed as is. */
export function recordTatumRequest(event: { route: string; method: string; status: number | string; durationMs: number }): void {
  tatumRequests.inc({ route: event.route, method: event.method, status: String(event.status) });
  tatumDuration.observe({ route: event.route, method: event.method }, event.durationMs / 1000);
}

/** `route` must come from a bounded set (registered routes, known procedures): it becomes a label. */
export function recordHttpRequest(method: string, route: string, status: number, durationMs: number): void {
  httpDuration.observe({ method, route, status: String(status) }, durationMs / 1000);
}

/**
 * While the database is unreachable the job series are absent from the scrape rather than failing
 * it: the process's own metrics matter most during an outage (and /readyz reports the outage).
 */
async function countsOrNone(stats: () => Promise<QueueStats>): Promise<QueueStats['queues']> {
  try {
    return (await stats()).queues;
  } catch {
    return [];
  }
}

/** Job states as exported: Bull's names plus pg-boss's extras. */
const JOB_STATES = ['waiting', 'delayed', 'active', 'completed', 'failed', 'retrying', 'deadLettered'] as const;

/**
 * The registry one server scrapes: this process's recordings, plus job counts read through `stats`
 * at each scrape (the stats cache, whose concurrent reads share one count).
 */
export function createMetricsRegistry(stats: () => Promise<QueueStats>): Registry {
  const jobs = new Registry();
  new Gauge({
    name: 'queue_jobs',
    help: 'Jobs per queue and state, counted exactly in pg-boss tables at scrape time (cached for QUEUE_STATS_CACHE_MS).',
    labelNames: ['queue', 'state'] as const,
    registers: [jobs],
    async collect() {
      const queues = await countsOrNone(stats);
      this.reset();
      for (const queue of queues) {
        for (const state of JOB_STATES) this.set({ queue: queue.queueName, state }, queue[state]);
      }
    },
  });
  new Gauge({
    name: 'queue_oldest_waiting_seconds',
    help: 'How long the longest-waiting ready job of each queue has waited.',
    labelNames: ['queue'] as const,
    registers: [jobs],
    async collect() {
      const queues = await countsOrNone(stats);
      this.reset();
      for (const queue of queues) this.set({ queue: queue.queueName }, queue.oldestWaitingSeconds);
    },
  });
  return Registry.merge([processRegistry, jobs]);
}

/**
 * A worker process's own recordings (job durations, Tatum requests) on GET /metrics, for
 * WORKER_METRICS_PORT. Job counts are the server's to export: they are the same from every process.
 */
export async function serveWorkerMetrics(port: number, host: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    processRegistry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': processRegistry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
}
