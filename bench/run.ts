// `npm run bench`: the verify, pickup and provisioning benchmarks in one go, against the local
// Postgres and the Tatum sandbox, each figure beside a reference measured in the same run (pgbench
// with auth.verify's transaction shape; the naive seed-style provisioning loop; the sandbox's
// configured rate limit). Prints both reports and writes bench/RESULTS.md (its `bench` section; the
// soaks own others). Every benchmark runs with its defaults; run them alone to change their flags.
//
// Flags: --admin-url (postgres://postgres@127.0.0.1:5432/postgres), --out (bench/RESULTS.md).
import { cpus, loadavg, totalmem } from 'node:os';
import { z } from 'zod';
import { DEFAULT_ADMIN_URL, markdownTable, parseFlags, RESULTS_FILE, withClient, writeResultsSection } from './lib.ts';
import { ProvisionFlags, provisionHeadline, provisionReport, provisionTargets, runProvisionBench, type ProvisionOptions, type ProvisionResults } from './provision.ts';
import { runVerifyBench, VerifyFlags, verifyHeadline, verifyReport, type VerifyOptions, type VerifyResults } from './verify.ts';

const Flags = z.object({
  'admin-url': z.url({ protocol: /^postgres(ql)?$/ }).default(DEFAULT_ADMIN_URL),
  out: z.string().min(1).default(RESULTS_FILE),
});

interface MachineFacts {
  cpu: string;
  memory: string;
  postgres: string;
  node: string;
  load: string;
  date: string;
}

async function machineFacts(adminUrl: string): Promise<MachineFacts> {
  const postgres = await withClient(adminUrl, async (c) => (await c.query<{ version: string }>('select version()')).rows[0]!.version);
  const cores = cpus();
  return {
    cpu: `${cores.length} cores, ${cores[0]?.model.trim() ?? 'unknown model'}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    postgres,
    node: process.version,
    load: loadavg().map((n) => n.toFixed(2)).join(' / '),
    date: new Date().toISOString(),
  };
}

const n = (value: number, digits = 0) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
const ratio = (value: number, reference: number) => n(value / reference, 2);

/** One line per figure: value, its same-run reference, the ratio, the target. */
function figures(v: VerifyResults, p: ProvisionResults, po: ProvisionOptions): string[][] {
  const targets = provisionTargets(po, p);
  const met = (key: keyof typeof targets) => (targets[key].met ? 'met' : 'not met');
  const pg = v.pgbench.mean;
  const naive = p.naive;
  const latencyLimit = 4 * po['latency-ms'] + 100;
  return [
    ['figure', 'value', 'reference (same run)', 'ratio', 'target'],
    ['auth.verify over HTTP', `${n(v.http.perSecond)} verifies/s`, `pgbench, same transaction shape: ${n(pg)} tps`, ratio(v.http.perSecond, pg), '>= 0.5'],
    ['auth.verify in-process (no HTTP)', `${n(v.inProcessPerSecond)} verifies/s`, `pgbench: ${n(pg)} tps`, ratio(v.inProcessPerSecond, pg), ''],
    ['auth.verify latency p50 / p99', `${n(v.http.p50, 1)} / ${n(v.http.p99, 1)} ms`, '', '', ''],
    ['pickup, commit -> handler start, p50', `${n(v.pickup.p50, 2)} ms`, '', '', '<= 5 ms'],
    ['pickup, commit -> handler start, p99', `${n(v.pickup.p99, 2)} ms`, '', '', '<= 25 ms'],
    ['provisioning, 2 workers', `${n(p.twoWorkers.usersPerSecond, 2)} users/s`, `naive seed loop: ${n(naive.usersPerSecond, 2)} users/s`, ratio(p.twoWorkers.usersPerSecond, naive.usersPerSecond), ''],
    ['provisioning, 1 worker', `${n(p.oneWorker.usersPerSecond, 2)} users/s`, `naive seed loop: ${n(naive.usersPerSecond, 2)} users/s`, ratio(p.oneWorker.usersPerSecond, naive.usersPerSecond), ''],
    ['Tatum calls per user (2 workers)', n(p.twoWorkers.callsPerUser, 2), `naive seed loop: ${n(naive.callsPerUser, 2)}`, ratio(p.twoWorkers.callsPerUser, naive.callsPerUser), `<= C + 2 = ${p.currencies + 2} (${met('calls')})`],
    ['Tatum requests/s, steady, 2 workers', n(p.twoWorkers.steadyRps, 1), `sandbox limit R: ${po.rate}/s`, ratio(p.twoWorkers.steadyRps, po.rate), `>= 0.9 (${met('rateTwoWorkers')})`],
    ['Tatum requests/s, steady, 1 worker', n(p.oneWorker.steadyRps, 1), `sandbox limit R: ${po.rate}/s`, ratio(p.oneWorker.steadyRps, po.rate), `>= 0.9 (${met('rateOneWorker')})`],
    ['429s after warm-up (1 + 2 workers)', String(p.oneWorker.rateLimited + p.twoWorkers.rateLimited), `naive seed loop: ${naive.rateLimited}`, '', `0 (${met('no429')})`],
    [
      'verify -> ready p50 / p99, not rate-bound',
      `${n(p.unbound.p50)} / ${n(p.unbound.p99)} ms`,
      `4 x L + 100 = ${latencyLimit} ms`,
      ratio(p.unbound.p50, latencyLimit),
      `p50 <= 1 (${met('latency')})`,
    ],
    ['verify -> ready p50 / p99, burst, 2 workers', `${n(p.twoWorkers.p50)} / ${n(p.twoWorkers.p99)} ms`, `naive loop, one user: ${n(naive.p50)} ms`, '', ''],
    ['worker CPU per user (2 workers)', `${n(p.twoWorkers.workerCpuMsPerUser ?? Number.NaN)} ms`, '', '', ''],
  ];
}

function resultsMarkdown(facts: MachineFacts, vo: VerifyOptions, v: VerifyResults, po: ProvisionOptions, p: ProvisionResults): string {
  return [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/run.ts); run it again to refresh this section. How the figures are made: bench/verify.ts, bench/provision.ts.',
    '',
    '## Machine',
    '',
    `- CPU: ${facts.cpu}`,
    `- Memory: ${facts.memory}`,
    `- Postgres: ${facts.postgres}`,
    `- Node: ${facts.node}`,
    `- Load average (1 / 5 / 15 min) at start: ${facts.load} (the machine is shared; other work was running)`,
    `- Date: ${facts.date}`,
    '',
    '## Figures',
    '',
    markdownTable(figures(v, p, po)),
    '',
    '## Reports as printed',
    '',
    '```',
    verifyHeadline(vo),
    '',
    verifyReport(v),
    '```',
    '',
    '```',
    provisionHeadline(po, p),
    '',
    provisionReport(po, p),
    '```',
  ].join('\n');
}

const flags = parseFlags(Flags);
const verifyOptions = VerifyFlags.parse({ 'admin-url': flags['admin-url'] });
const provisionOptions = ProvisionFlags.parse({ 'admin-url': flags['admin-url'] });
const facts = await machineFacts(flags['admin-url']);
const started = performance.now();

console.error('bench 1/2: verify and pickup');
const verify = await runVerifyBench(verifyOptions);
console.log(`${verifyHeadline(verifyOptions)}\n\n${verifyReport(verify)}\n`);

console.error('bench 2/2: provisioning');
const provision = await runProvisionBench(provisionOptions, (line) => console.error(`  ${line}`));
console.log(`${provisionHeadline(provisionOptions, provision)}\n\n${provisionReport(provisionOptions, provision)}\n`);

writeResultsSection(flags.out, 'bench', resultsMarkdown(facts, verifyOptions, verify, provisionOptions, provision));
console.log(`wrote ${flags.out} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
