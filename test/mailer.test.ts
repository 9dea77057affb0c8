// The mailer: SMTP through nodemailer to a real local SMTP server, the sandbox log transport, and the
// rule that only the sandbox log transport ever writes a code to a log.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../jobs/config.ts';
import { createLogger } from '../jobs/logger.ts';
import { createTransport, sendEmail, verificationEmailJob } from '../jobs/mailer.ts';
import { resolveSecrets, type RuntimeConfig } from '../jobs/secrets.ts';
import { captureLogs } from './helpers/logs.ts';
import { startSmtpSink, type SmtpSink } from './helpers/smtp-sink.ts';

let sink: SmtpSink;
let dataDir: string;

beforeAll(async () => {
  sink = await startSmtpSink();
  dataDir = mkdtempSync(path.join(tmpdir(), 'mailer-'));
});
afterAll(async () => {
  await sink.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function configFor(env: Record<string, string>): RuntimeConfig {
  return resolveSecrets(parseConfig({ DATA_DIR: dataDir, ...env }), createLogger({ level: 'silent' }));
}

const LIVE = {
  TATUM_API_KEY: 'live-api-key-123',
  ENCRYPTION_KEY: 'a'.repeat(64),
  TATUM_WEBHOOK_URL: 'https://example.com/webhooks/tatum',
  TATUM_WEBHOOK_HMAC_SECRET: 'h'.repeat(32),
  ADMIN_TOKEN: 't'.repeat(32),
};

describe('the email.send job', () => {
  it('carries the code encrypted, never in clear', () => {
    const job = verificationEmailJob(configFor({}), 'a@example.com', '493817');
    expect(JSON.stringify(job)).not.toContain('493817');
    expect(job).toEqual({ to: 'a@example.com', template: 'verification-code', codeEncrypted: expect.stringMatching(/^v2:/) });
  });

  it('refuses a payload that is not an email job', async () => {
    const config = configFor({});
    await expect(sendEmail(config, createTransport(config), { to: 'a@example.com' }, createLogger({ level: 'silent' }))).rejects.toThrow();
  });
});

describe('SMTP transport', () => {
  it('delivers the code to the recipient over SMTP and never logs it, in live mode', async () => {
    const config = configFor({ ...LIVE, SMTP_URL: sink.url, MAIL_FROM: 'codes@example.com' });
    const transport = createTransport(config);
    expect(transport.kind).toBe('smtp');
    // Unredacted: the mailer must leave the code out, not rely on the redactor hiding it.
    const { log, text } = captureLogs('trace', { redact: false });
    const arrived = sink.nextMessage();
    await sendEmail(config, transport, verificationEmailJob(config, 'dana@example.com', '271828'), log);
    const mail = await arrived;
    transport.close();
    expect(mail.to).toEqual(['dana@example.com']);
    expect(mail.raw).toMatch(/From: codes@example\.com/);
    expect(mail.raw).toContain('271828');
    expect(text()).toContain('verification mail sent');
    expect(text()).not.toContain('271828');
  });

  it('is used in sandbox mode too when SMTP_URL is set, without logging the code', async () => {
    const config = configFor({ SMTP_URL: sink.url });
    const transport = createTransport(config);
    // Unredacted: the mailer must leave the code out, not rely on the redactor hiding it.
    const { log, text } = captureLogs('trace', { redact: false });
    await sendEmail(config, transport, verificationEmailJob(config, 'erin@example.com', '314159'), log);
    transport.close();
    expect(sink.received.some((m) => m.to[0] === 'erin@example.com' && m.raw.includes('314159'))).toBe(true);
    expect(text()).not.toContain('314159');
  });
});

describe('log transport', () => {
  it('is the sandbox default and logs one line with recipient and code', async () => {
    const config = configFor({});
    const transport = createTransport(config);
    expect(transport.kind).toBe('log');
    const { log, lines: logged } = captureLogs('trace');
    await sendEmail(config, transport, verificationEmailJob(config, 'finn@example.com', '161803'), log);
    const lines = logged();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, to: 'finn@example.com', code: '161803' });
  });

  it('does not exist in live mode: a live mail worker without SMTP_URL refuses to start', () => {
    expect(() => createTransport(configFor(LIVE))).toThrow(/SMTP_URL is required in live mode/);
  });
});
