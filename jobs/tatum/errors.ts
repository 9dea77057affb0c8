// One error type for everything that can go wrong talking to Tatum. Callers branch on two questions:
// "is the thing not there?" (Tatum answers 403 with an errorCode, never 404) and "may my write have
// happened anyway?" (a write that timed out, lost its connection, got a 5xx or an unreadable 2xx):
// then the caller must look up before it creates again, never retry blindly.

/** 403 errorCodes Tatum uses for a ledger entity that does not exist. */
export const NOT_FOUND_CODES: ReadonlySet<string> = new Set([
  'account.not.exists',
  'customer.not.exists',
  'customer.internal.not.exists',
  'subscription.not.exists',
  'address.not.found',
]);

export type TatumErrorKind =
  /** Tatum answered with an error status (see `status`, `errorCode`). */
  | 'http'
  /** No answer within the timeout. */
  | 'timeout'
  /** The connection failed or was dropped before an answer. */
  | 'network'
  /** A 2xx whose body does not match the expected schema. */
  | 'invalid-response'
  /** Our own input failed validation; nothing was sent. */
  | 'invalid-request';

export interface TatumErrorDetails {
  kind: TatumErrorKind;
  method: string;
  /** Path template, e.g. `/v3/offchain/account/:id/address`: never carries ids or keys. */
  route: string;
  status?: number;
  errorCode?: string;
  /** 400 `validation.failed` details, as Tatum sent them. */
  data?: unknown[];
  maybeCreated: boolean;
}

export class TatumError extends Error {
  override readonly name = 'TatumError';
  readonly kind: TatumErrorKind;
  readonly method: string;
  readonly route: string;
  /** HTTP status, absent when no response arrived. */
  readonly status: number | undefined;
  readonly errorCode: string | undefined;
  readonly data: unknown[] | undefined;
  /**
   * True when this was a write (POST/PUT/DELETE) whose effect on Tatum is unknown: it may have been
   * applied although we saw an error. The caller reconciles (looks the entity up) before repeating.
   */
  readonly maybeCreated: boolean;

  constructor(message: string, details: TatumErrorDetails) {
    super(message);
    this.kind = details.kind;
    this.method = details.method;
    this.route = details.route;
    this.status = details.status;
    this.errorCode = details.errorCode;
    this.data = details.data;
    this.maybeCreated = details.maybeCreated;
  }

  /** Tatum says the account/customer/subscription/address does not exist. */
  get notFound(): boolean {
    return this.status === 403 && this.errorCode !== undefined && NOT_FOUND_CODES.has(this.errorCode);
  }

  toJSON() {
    return {
      name: this.name,
      message: this.message,
      kind: this.kind,
      method: this.method,
      route: this.route,
      status: this.status,
      errorCode: this.errorCode,
      data: this.data,
      maybeCreated: this.maybeCreated,
    };
  }
}

export function isTatumError(error: unknown): error is TatumError {
  return error instanceof TatumError;
}

export function isNotFound(error: unknown): error is TatumError {
  return isTatumError(error) && error.notFound;
}

export function isMaybeCreated(error: unknown): error is TatumError {
  return isTatumError(error) && error.maybeCreated;
}

/** Tatum rejected the request with this errorCode (e.g. `address.index.used`). */
export function hasErrorCode(error: unknown, errorCode: string): error is TatumError {
  return isTatumError(error) && error.errorCode === errorCode;
}
