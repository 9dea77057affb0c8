// The production logger (same redaction) writing into memory, so a test can read every line.
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../jobs/logger.ts';

export interface CapturedLogs {
  log: Logger;
  /** Everything logged so far, one JSON object per line. */
  text(): string;
  lines(): Array<Record<string, unknown>>;
}

export function captureLogs(level = 'trace'): CapturedLogs {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const text = () => chunks.join('');
  return {
    log: createLogger({ level, destination }),
    text,
    lines: () => text().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
