// A local SMTP server that keeps what it receives: the real nodemailer transport talks to it over TCP.
// With `hold`, it accepts a message's data but answers only when released, so a test can keep a
// mail job busy for as long as it needs.
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  to: string[];
  raw: string;
}

export interface SmtpSink {
  url: string;
  received: ReceivedMail[];
  /** Resolves when a message's data has arrived (its answer may still be held). */
  nextMessage(): Promise<ReceivedMail>;
  release(): void;
  close(): Promise<void>;
}

export async function startSmtpSink(options: { hold?: boolean } = {}): Promise<SmtpSink> {
  const received: ReceivedMail[] = [];
  const waiting: Array<(mail: ReceivedMail) => void> = [];
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const mail = { to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') };
        received.push(mail);
        waiting.splice(0).forEach((resolve) => resolve(mail));
        if (options.hold) void released.then(() => callback());
        else callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    nextMessage: () => new Promise((resolve) => waiting.push(resolve)),
    release,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
