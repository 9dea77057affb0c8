// The production logger (same redaction) writing into memory, so a test can read every line.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createLogger, type Logger } from '../../jobs/logger.ts';

/** One parsed log line; pino always writes `level`, and `msg` whenever a message was given. */
export type LogLine = Record<string, unknown> & { level: number; msg?: string };

export interface CapturedLogs {
  log: Logger;
  /** Everything logged so far, one JSON object per line. */
  text(): string;
  lines(): LogLine[];
}

export interface CaptureOptions {
  /**
   * false: a plain pino logger without the production redaction. For tests that prove a secret is
   * never logged: they must show the code leaves it out, not that the redactor hides it.
   */
  redact?: boolean;
}

export function captureLogs(level = 'trace', options: CaptureOptions = {}): CapturedLogs {
  const chunks: string[] = [];
  const parsed: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString('utf8');
      chunks.push(text);
      for (const line of text.split('\n').filter(Boolean)) parsed.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return {
    log: options.redact === false ? pino({ level }, destination) : createLogger({ level, destination }),
    text: () => chunks.join(''),
    lines: () => parsed,
  };
}
