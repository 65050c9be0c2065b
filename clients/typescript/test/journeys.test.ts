// The member's and the merchant's journeys through the client, against a fresh local host: sign up,
// log in, buy points through the local ECPay simulator, browse, redeem, read orders and the ledger,
// and hand the gift over. Access tokens last 2 seconds here, so the journeys cross refreshes.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ApiError, createPointsClient, ok, type PointsClient } from "../src/index.js";
import { PASSWORD, startHost, type LocalHost } from "./host.js";

let host: LocalHost;

before(async () => {
  host = await startHost({ ACCESS_TOKEN_TTL_SECONDS: "2" });
});

after(async () => {
  await host.stop();
});

/** Every request the client sends, with its headers as sent. */
function recordingFetch(): { fetch: typeof fetch; sent: Request[] } {
  const sent: Request[] = [];
  return {
    sent,
    fetch: async (input, init) => {
      const request = new Request(input, init);
      sent.push(request.clone());
      return fetch(request);
    },
  };
}

async function signedUp(username: string, role: "MEMBER" | "MERCHANT", fetchWith?: typeof fetch): Promise<PointsClient> {
  const client = createPointsClient({ baseUrl: host.base, fetch: fetchWith });
  await ok(
    client.api.POST("/api/auth/register/", {
      body: { username, email: `${username}@example.com`, password: PASSWORD, role },
    }),
  );
  await client.login(username, PASSWORD);
  return client;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a member buys points through ECPay, redeems a gift and the merchant hands it over", async () => {
  const shop = await signedUp("tea_shop", "MERCHANT");
  const product = await ok(
    shop.api.POST("/api/merchants/products/", {
      body: { name: "Oolong tea 烏龍茶", points_required: 120, stock: 3 },
    }),
  );

  const recorder = recordingFetch();
  const mia = await signedUp("mia_member", "MEMBER", recorder.fetch);
  // Buy 500 points: the signed form goes to the simulator's cashier, the member pays, and ECPay's
  // notification credits the account.
  const checkout = await ok(mia.api.POST("/api/members/points/recharge/", { body: { amount: 500 } }));
  const cashier = await fetch(checkout.action_url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(checkout.fields).toString(),
  });
  assert.equal(cashier.status, 200);
  assert.equal((await host.postForm("/dev/ecpay/pay", { MerchantTradeNo: checkout.merchant_trade_no })).status, 200);
  let points = await ok(mia.api.GET("/api/members/points/"));
  for (let i = 0; points.balance !== 500 && i < 50; i++) {
    await sleep(100);
    points = await ok(mia.api.GET("/api/members/points/"));
  }
  assert.equal(points.balance, 500);

  // Browse, and redeem two at the listed price.
  const catalogue = await ok(mia.api.GET("/api/members/products/", { params: { query: { limit: 50 } } }));
  const listed = catalogue.items.find((p) => p.id === product.id);
  assert.ok(listed, "the product is in the catalogue");
  // The access token expired meanwhile: the client refreshes it once, and the member never notices.
  await sleep(3_100);
  // At the price the member saw: a changed price would be 409 price_changed, nothing charged.
  const order = await ok(
    mia.api.POST("/api/members/orders/", {
      body: { product_id: product.id, quantity: 2, points_required: listed.points_required },
    }),
  );
  assert.equal(order.points_cost, 2 * listed.points_required);
  const redeem = recorder.sent.filter((r) => r.method === "POST" && new URL(r.url).pathname === "/api/members/orders/");
  assert.ok(redeem.length >= 1 && redeem.every((r) => /^[0-9a-f-]{36}$/.test(r.headers.get("idempotency-key") ?? "")));
  if (redeem.length === 2) {
    // Sent again after the refresh: the same key, so the server can never place it twice.
    assert.equal(redeem[0]!.headers.get("idempotency-key"), redeem[1]!.headers.get("idempotency-key"));
  }
  assert.equal(
    recorder.sent.filter((r) => new URL(r.url).pathname === "/api/auth/refresh/").length,
    1,
    "one refresh",
  );
  assert.ok(
    recorder.sent.filter((r) => r.method === "GET").every((r) => !r.headers.has("idempotency-key")),
    "reads carry no key",
  );

  // Orders and the ledger.
  const orders = await ok(mia.api.GET("/api/members/orders/"));
  assert.deepEqual(
    orders.items.map((o) => [o.id, o.status]),
    [[order.id, "pending"]],
  );
  const ledger = await ok(mia.api.GET("/api/members/transactions/"));
  assert.deepEqual(ledger.items.map((row) => [row.transaction_type, row.amount]).sort(), [
    ["RECHARGE", 500],
    ["SPEND", -240],
  ]);
  assert.equal((await ok(mia.api.GET("/api/members/points/"))).balance, 260);

  // Only one unit is left: a typed error, nothing changed.
  await assert.rejects(
    ok(mia.api.POST("/api/members/orders/", { body: { product_id: product.id, quantity: 2 } })),
    (err: unknown) => err instanceof ApiError && err.status === 409 && err.code === "insufficient_stock",
  );
  // A price the member did not see is refused the same way, with nothing charged.
  await assert.rejects(
    ok(mia.api.POST("/api/members/orders/", { body: { product_id: product.id, quantity: 1, points_required: 1 } })),
    (err: unknown) => err instanceof ApiError && err.status === 409 && err.code === "price_changed",
  );
  assert.equal((await ok(mia.api.GET("/api/members/points/"))).balance, 260);

  // The merchant sees the order and hands it over against its pickup code.
  const theirs = await ok(shop.api.GET("/api/merchants/orders/"));
  assert.deepEqual(
    theirs.items.map((o) => o.id),
    [order.id],
  );
  assert.ok(order.pickup_code);
  const done = await ok(
    shop.api.POST("/api/merchants/orders/redeem-code/", { body: { code: order.pickup_code } }),
  );
  assert.equal(done.status, "completed");
  const mine = await ok(mia.api.GET("/api/members/orders/{id}/", { params: { path: { id: order.id } } }));
  assert.equal(mine.status, "completed");
});

test("bad input is a typed error naming its fields", async () => {
  const client = createPointsClient({ baseUrl: host.base });
  const refused = await client.api.POST("/api/auth/register/", {
    body: { username: "x", email: "not-an-email", password: "short", role: "MEMBER" },
  });
  assert.equal(refused.response.status, 400);
  await assert.rejects(
    ok(client.api.POST("/api/auth/register/", { body: { username: "x", email: "not-an-email", password: "short", role: "MEMBER" } })),
    (err: unknown) =>
      err instanceof ApiError && err.status === 400 && typeof err.fields["email"] === "string" && err.requestId !== null,
  );
});

test("a refresh that fails is not retried: the 401 is the answer", async () => {
  const recorder = recordingFetch();
  const ned = await signedUp("ned_member", "MEMBER", recorder.fetch);
  const pair = ned.tokens.get()!;
  await ok(ned.api.POST("/api/auth/logout/", { body: { refresh: pair.refresh } }));
  ned.tokens.set(pair); // as a stale tab would still hold it
  await sleep(3_100);
  const before = recorder.sent.length;
  await assert.rejects(
    ok(ned.api.GET("/api/members/points/")),
    (err: unknown) => err instanceof ApiError && err.status === 401 && err.code === "token_expired",
  );
  const paths = recorder.sent.slice(before).map((r) => new URL(r.url).pathname);
  assert.deepEqual(paths, ["/api/members/points/", "/api/auth/refresh/"]);
  assert.equal(ned.tokens.get(), null, "the dead pair is forgotten");
});

test("requests racing on an expired token share one refresh", async () => {
  const recorder = recordingFetch();
  const amy = await signedUp("amy_member", "MEMBER", recorder.fetch);
  await sleep(3_100);
  const before = recorder.sent.length;
  const answers = await Promise.all([
    ok(amy.api.GET("/api/members/points/")),
    ok(amy.api.GET("/api/members/orders/")),
    ok(amy.api.GET("/api/members/transactions/")),
  ]);
  assert.equal(answers.length, 3);
  const refreshes = recorder.sent.slice(before).filter((r) => new URL(r.url).pathname === "/api/auth/refresh/");
  assert.equal(refreshes.length, 1);
});
