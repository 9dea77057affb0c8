// The sandbox's webhook sender, behaving like Tatum's (tatum-api.md §7.4-§7.5): the payload is
// serialised once as compact JSON and those exact bytes are sent (and signed, when an HMAC secret is
// set) on every attempt; success is a 2xx within the timeout; a failure is retried 9 more times after
// T = 15 * 2.7925^n seconds (n from 0), divided by a compression factor so tests do not wait a day.
// Every attempt is recorded in Tatum's WebHook shape for GET /v3/subscription/webhook.
import { createHmac } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { newId, type LedgerSubscription } from './ledger.ts';

export interface WebhookRecord {
  id: string;
  type: 'INCOMING_BLOCKCHAIN_HOOK';
  subscriptionId: string;
  url: string;
  data: object;
  /** When the next retry is due (ms), while one is scheduled. */
  nextTime?: number;
  /** When the last attempt was made (ms). */
  timestamp?: number;
  retryCount: number;
  /** The last attempt failed. */
  failed: boolean;
  response: { code?: number; data?: string; networkError: boolean };
}

export interface WebhookSettings {
  timeoutMs: number;
  retries: number;
  compression: number;
}

export interface WebhookCounters {
  attempts: number;
  delivered: number;
  failedAttempts: number;
  /** Deliveries that exhausted every retry. */
  abandoned: number;
}

export interface WebhookAttemptEvent {
  record: WebhookRecord;
  ok: boolean;
}

/** Tatum's documented gap before retry n (0-based), in ms. */
export function retryDelayMs(n: number, compression: number): number {
  return (15_000 * 2.7925 ** n) / compression;
}

/** Tatum's signature: base64(HMAC-SHA512(secret, exact body bytes)). */
export function signPayload(secret: string, body: string): string {
  return createHmac('sha512', secret).update(body).digest('base64');
}

export class WebhookSender {
  readonly records: WebhookRecord[] = [];
  readonly counters: WebhookCounters = { attempts: 0, delivered: 0, failedAttempts: 0, abandoned: 0 };
  /** Emits 'attempt' (WebhookAttemptEvent) after every delivery attempt. */
  readonly events = new EventEmitter();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #closing = new AbortController();

  constructor(
    private readonly settings: () => WebhookSettings,
    private readonly hmacSecret: () => string | undefined,
  ) {}

  send(subscription: LedgerSubscription, payload: object): WebhookRecord {
    const record: WebhookRecord = {
      id: newId(),
      type: 'INCOMING_BLOCKCHAIN_HOOK',
      subscriptionId: subscription.id,
      url: subscription.attr.url,
      data: payload,
      retryCount: 0,
      failed: false,
      response: { networkError: false },
    };
    this.records.push(record);
    void this.#attempt(record, JSON.stringify(payload));
    return record;
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#closing.abort();
  }

  async #attempt(record: WebhookRecord, body: string): Promise<void> {
    const { timeoutMs, retries, compression } = this.settings();
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/plain, */*' };
    const secret = this.hmacSecret();
    if (secret !== undefined) headers['x-payload-hash'] = signPayload(secret, body);

    record.timestamp = Date.now();
    record.nextTime = undefined;
    this.counters.attempts++;
    try {
      const response = await fetch(record.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.#closing.signal]),
      });
      record.response = { code: response.status, data: (await response.text()).slice(0, 1000), networkError: false };
      record.failed = !response.ok;
    } catch {
      record.response = { networkError: true };
      record.failed = true;
    }
    if (this.#closing.signal.aborted) return;

    if (record.failed) {
      this.counters.failedAttempts++;
      if (record.retryCount < retries) this.#retryLater(record, body, retryDelayMs(record.retryCount, compression));
      else this.counters.abandoned++;
    } else {
      this.counters.delivered++;
    }
    this.events.emit('attempt', { record, ok: !record.failed } satisfies WebhookAttemptEvent);
  }

  #retryLater(record: WebhookRecord, body: string, delayMs: number): void {
    record.nextTime = Date.now() + delayMs;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      record.retryCount++;
      void this.#attempt(record, body);
    }, delayMs);
    this.#timers.add(timer);
  }
}
