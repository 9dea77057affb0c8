// The email.send job: decrypt the code it carries and deliver the mail. The code travels encrypted
// because pg-boss tables are readable by operators and the dashboard; only this handler (and the
// sandbox mailbox) ever sees it in clear.
import nodemailer from 'nodemailer';
import { z } from 'zod';
import { Vault } from './custody/vault.ts';
import type { Logger } from './logger.ts';
import type { RuntimeConfig } from './secrets.ts';

export const emailJobSchema = z
  .object({
    to: z.email(),
    template: z.literal('verification-code'),
    /** The 6-digit code, encrypted with the Vault. */
    codeEncrypted: z.string().min(1),
  })
  .strict();

export type EmailJob = z.infer<typeof emailJobSchema>;

export interface VerificationMail {
  to: string;
  code: string;
}

export interface MailTransport {
  readonly kind: 'log' | 'smtp';
  deliver(mail: VerificationMail, log: Logger): Promise<void>;
  close(): void;
}

/**
 * SMTP when SMTP_URL is set. Without it, the sandbox logs the code so a developer can verify by hand;
 * live mode refuses to start a mail worker, because a code that only reaches a log would let nobody
 * verify, and a live log must never hold a code.
 */
export function createTransport(config: RuntimeConfig): MailTransport {
  if (config.SMTP_URL) return smtpTransport(config.SMTP_URL, config.MAIL_FROM);
  if (config.mode === 'sandbox') return logTransport;
  throw new Error('SMTP_URL is required in live mode to send verification codes (email.send queue)');
}

const logTransport: MailTransport = {
  kind: 'log',
  async deliver(mail, log) {
    // The one place a code is ever logged, and only ever in sandbox mode (see createTransport).
    log.info({ to: mail.to, code: mail.code }, 'sandbox mail: verification code (set SMTP_URL to send real mail)');
  },
  close() {},
};

function smtpTransport(url: string, from: string): MailTransport {
  const transporter = nodemailer.createTransport(url);
  return {
    kind: 'smtp',
    async deliver(mail, log) {
      const info = await transporter.sendMail({ from, to: mail.to, ...render(mail) });
      log.info({ to: mail.to, messageId: info.messageId }, 'verification mail sent');
    },
    close: () => transporter.close(),
  };
}

function render(mail: VerificationMail): { subject: string; text: string } {
  return {
    subject: `Your verification code: ${mail.code}`,
    text: `Your verification code is ${mail.code}.\n\nIt expires in 15 minutes. If you did not ask for it, ignore this mail.\n`,
  };
}

/** Encrypts a code for an email.send job's payload. */
export function verificationEmailJob(config: RuntimeConfig, to: string, code: string): EmailJob {
  return { to, template: 'verification-code', codeEncrypted: Vault.fromConfig(config).encrypt(code) };
}

/** Reads the code back out of an email.send job's payload. */
export function codeOfEmailJob(config: RuntimeConfig, job: EmailJob): string {
  return Vault.fromConfig(config).decrypt(job.codeEncrypted);
}

/** The email.send handler. */
export async function sendEmail(config: RuntimeConfig, transport: MailTransport, data: unknown, log: Logger): Promise<void> {
  const job = emailJobSchema.parse(data);
  await transport.deliver({ to: job.to, code: codeOfEmailJob(config, job) }, log);
}
