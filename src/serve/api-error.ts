/** The `type` field of an OpenAI error body. */
export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'timeout_error'
  | 'server_error';

/** The JSON body every error response carries, in OpenAI's shape. */
export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

/**
 * An error that reaches the client as `{error: {message, type, param, code}}` with `status`. Anything thrown that is
 * not an ApiError becomes a 500 whose message hides internals.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: ApiErrorType,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }

  toBody(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, 'invalid_request_error', code, param);
}

export function unknownModel(model: string, available: readonly string[]): ApiError {
  return new ApiError(404, `The model "${model}" does not exist; available: ${available.join(', ')}.`, 'invalid_request_error', 'model_not_found', 'model');
}

export function unauthorized(): ApiError {
  return new ApiError(401, 'Missing or incorrect API key; send it as "Authorization: Bearer <key>".', 'authentication_error', 'invalid_api_key');
}

export function queueFull(limit: number): ApiError {
  return new ApiError(429, `The server is at capacity (${limit} requests waiting); retry later.`, 'rate_limit_error', 'queue_full');
}

export function requestTimedOut(ms: number): ApiError {
  return new ApiError(504, `The request did not finish within ${ms / 1000} s and was stopped.`, 'timeout_error', 'request_timeout');
}

export function serverShuttingDown(): ApiError {
  return new ApiError(503, 'The server is shutting down.', 'server_error', 'shutting_down');
}

export function internalError(): ApiError {
  return new ApiError(500, 'The server failed to process the request; see its log.', 'server_error', 'internal_error');
}
