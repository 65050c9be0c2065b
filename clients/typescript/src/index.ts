// A typed client of the points-redemption API. The types are generated from docs/openapi.json
// (`schema.d.ts`, by openapi-typescript); requests go through openapi-fetch. This file is the small
// hand-written layer on top:
// - the token pair is kept, and an access token that expired (401 `token_expired`) is refreshed once
//   and the request sent again, once: never a loop, and concurrent requests share one refresh;
// - every request to an operation that takes an `Idempotency-Key` gets a fresh one (a retry of the same
//   request, as after a refresh, keeps it);
// - errors are typed `{status, code, message, fields}` (`ApiError`), thrown by `ok()`.

import createClient, { type Client, type Middleware } from "openapi-fetch";

import { IDEMPOTENT_OPERATIONS } from "./idempotent.js";
import type { components, paths } from "./schema.js";

export type { components, paths };
export type Schemas = components["schemas"];
export type TokenPair = Schemas["TokenPair"];

/** Where the token pair lives (memory by default; a browser app may keep it elsewhere). */
export interface TokenStore {
  get(): TokenPair | null;
  set(pair: TokenPair | null): void;
}

export function memoryTokenStore(initial: TokenPair | null = null): TokenStore {
  let pair = initial;
  return {
    get: () => pair,
    set: (next) => {
      pair = next;
    },
  };
}

/** An answer other than 2xx, as the API's one error shape. */
export class ApiError extends Error {
  readonly status: number;
  /** Stable and machine-readable (`insufficient_points`, `token_expired`…), whatever the language. */
  readonly code: string;
  /** Per field, what is wrong with it (400s). */
  readonly fields: Record<string, string>;
  /** The request's `X-Request-Id`, for support. */
  readonly requestId: string | null;

  constructor(status: number, code: string, message: string, fields: Record<string, string>, requestId: string | null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields;
    this.requestId = requestId;
  }
}

export interface ClientOptions {
  /** The API's origin, e.g. `http://127.0.0.1:3000` or the API Gateway URL. */
  baseUrl: string;
  tokens?: TokenStore;
  /** `Accept-Language` of every request (`zh-TW` for Traditional Chinese messages). */
  language?: string;
  fetch?: typeof globalThis.fetch;
  /** Makes Idempotency-Keys (default: `crypto.randomUUID()`). */
  newKey?: () => string;
}

export interface PointsClient {
  /** Every operation, typed by path and method (openapi-fetch). */
  api: Client<paths>;
  tokens: TokenStore;
  /** Logs in and keeps the token pair. */
  login(username: string, password: string): Promise<TokenPair>;
  /** Revokes the refresh token and forgets the pair. */
  logout(): Promise<void>;
}

const REFRESH_PATH = "/api/auth/refresh/";

/** The data of an openapi-fetch result, or its error thrown as an `ApiError`. */
export async function ok<T>(
  pending: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await pending;
  if (response.ok) {
    return data as T;
  }
  throw toApiError(response, error);
}

function toApiError(response: Response, body: unknown): ApiError {
  const detail = (body as { error?: Partial<Schemas["ErrorDetail"]> } | undefined)?.error;
  return new ApiError(
    response.status,
    detail?.code ?? "http_" + response.status,
    detail?.message ?? response.statusText,
    (detail?.fields as Record<string, string> | undefined) ?? {},
    response.headers.get("x-request-id"),
  );
}

export function createPointsClient(options: ClientOptions): PointsClient {
  const tokens = options.tokens ?? memoryTokenStore();
  const send = options.fetch ?? globalThis.fetch.bind(globalThis);
  const newKey = options.newKey ?? (() => globalThis.crypto.randomUUID());
  const api = createClient<paths>({ baseUrl: options.baseUrl, fetch: send });
  // Each request as it first left (before its body was read), to send again after a refresh.
  const originals = new Map<string, Request>();
  let refreshing: Promise<boolean> | null = null;

  async function refresh(): Promise<boolean> {
    const pair = tokens.get();
    if (!pair) {
      return false;
    }
    const answer = await send(
      new Request(options.baseUrl + REFRESH_PATH, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh: pair.refresh }),
      }),
    );
    if (!answer.ok) {
      tokens.set(null);
      return false;
    }
    tokens.set((await answer.json()) as TokenPair);
    return true;
  }

  const middleware: Middleware = {
    onRequest({ request, schemaPath, id }) {
      const pair = tokens.get();
      if (pair && !request.headers.has("authorization")) {
        request.headers.set("authorization", `Bearer ${pair.access}`);
      }
      if (options.language && !request.headers.has("accept-language")) {
        request.headers.set("accept-language", options.language);
      }
      if (IDEMPOTENT_OPERATIONS.has(`${request.method} ${schemaPath}`) && !request.headers.has("idempotency-key")) {
        request.headers.set("idempotency-key", newKey());
      }
      if (schemaPath !== REFRESH_PATH) {
        originals.set(id, request.clone());
      }
      return request;
    },
    async onResponse({ response, id }) {
      const original = originals.get(id);
      originals.delete(id);
      if (response.status !== 401 || !original) {
        return response;
      }
      const code = await response
        .clone()
        .json()
        .then((body: { error?: { code?: string } }) => body?.error?.code)
        .catch(() => undefined);
      if (code !== "token_expired") {
        return response;
      }
      // One refresh for every request that found the token expired at the same time.
      refreshing ??= refresh().finally(() => {
        refreshing = null;
      });
      if (!(await refreshing)) {
        return response;
      }
      const again = new Request(original);
      again.headers.set("authorization", `Bearer ${tokens.get()?.access}`);
      // Sent once more, outside the middleware: a second 401 is the answer, never another refresh.
      return send(again);
    },
  };
  api.use(middleware);

  return {
    api,
    tokens,
    async login(username, password) {
      const pair = await ok(api.POST("/api/auth/login/", { body: { username, password } }));
      tokens.set(pair);
      return pair;
    },
    async logout() {
      const pair = tokens.get();
      if (pair) {
        await ok(api.POST("/api/auth/logout/", { body: { refresh: pair.refresh } }));
      }
      tokens.set(null);
    },
  };
}
