// Generated from docs/openapi.json by scripts/idempotent.mjs (`npm run generate`): do not edit.

/** The operations that take an `Idempotency-Key` header, as `METHOD /path/{param}/`. */
export const IDEMPOTENT_OPERATIONS: ReadonlySet<string> = new Set([
  "POST /api/admin/members/{id}/points/adjustments/",
  "POST /api/members/orders/",
  "POST /api/members/points/refunds/",
]);
