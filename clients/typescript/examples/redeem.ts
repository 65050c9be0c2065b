// The README's example (kept compiling by `tsc`): log in, read the balance, redeem the first
// affordable product.
import { createPointsClient, ok, ApiError } from "../src/index.js";

const client = createPointsClient({ baseUrl: "http://127.0.0.1:3000", language: "zh-TW" });
await client.login("amy", "correct horse battery staple");

const { balance } = await ok(client.api.GET("/api/members/points/"));
const page = await ok(client.api.GET("/api/members/products/", { params: { query: { limit: 20 } } }));
const tea = page.items.find((p) => p.in_stock && p.points_required <= balance);
if (tea) {
  try {
    // The Idempotency-Key is added for you; points_required guards against a price change.
    const order = await ok(client.api.POST("/api/members/orders/", {
      body: { product_id: tea.id, quantity: 1, points_required: tea.points_required },
    }));
    console.log(order.order_number, order.pickup_code);
  } catch (e) {
    if (e instanceof ApiError) console.log(e.status, e.code, e.message, e.fields);
  }
}
