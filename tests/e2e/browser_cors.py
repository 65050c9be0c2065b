#!/usr/bin/env python3
"""A frontend calls the API from a browser (headless Chromium), through the TypeScript client: a page
served from an allowed origin logs in and redeems; the same page from another origin is blocked by
the browser itself (the API answers its preflight with no CORS header), and nothing reaches the
member's account.

Needs the client built (`npm test` in clients/typescript leaves `dist/`).

    python3 tests/e2e/browser_cors.py
"""

import functools
import http.server
import json
import sys
import threading
import time
import urllib.parse

from browser_admin import post_form
from browser_recharge import WebDriver, browser_tools
from localhost import ROOT, LocalHost, free_port

CLIENT = ROOT / "clients" / "typescript"

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>frontend</title>
<script type="importmap">{"imports": {"openapi-fetch": "/node_modules/openapi-fetch/dist/index.mjs"}}</script>
</head><body><p id="result">running</p>
<script type="module">
import { createPointsClient, ok } from "/dist/src/index.js";
const query = new URLSearchParams(location.search);
const result = document.getElementById("result");
try {
  const client = createPointsClient({ baseUrl: query.get("api"), language: "zh-TW" });
  await client.login(query.get("user"), query.get("password"));
  const page = await ok(client.api.GET("/api/members/products/", { params: { query: { limit: 20 } } }));
  const product = page.items[0];
  const order = await ok(client.api.POST("/api/members/orders/", {
    body: { product_id: product.id, quantity: 1, points_required: product.points_required },
  }));
  const points = await ok(client.api.GET("/api/members/points/"));
  result.textContent = "redeemed " + order.order_number + " balance " + points.balance;
} catch (e) {
  result.textContent = "blocked " + e.name + ": " + e.message;
}
</script></body></html>
"""


def serve(directory, page):
    """A static server on a free port: `directory`'s files, and `/frontend.html`."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/frontend.html"):
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def guess_type(self, path):
            return "text/javascript" if str(path).endswith((".js", ".mjs")) else super().guess_type(path)

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{port}"


def wait_for_result(browser, timeout=20):
    deadline = time.time() + timeout
    while True:
        text = browser.text("#result")
        if text != "running":
            return text
        if time.time() > deadline:
            raise AssertionError("the page never finished")
        time.sleep(0.2)


def main() -> int:
    tools = browser_tools()
    if tools is None:
        return 1
    chromedriver, chromium, _ = tools
    assert (CLIENT / "dist" / "src" / "index.js").exists(), "build the client first: npm test in clients/typescript"
    allowed_server, allowed = serve(CLIENT, PAGE)
    other_server, other = serve(CLIENT, PAGE)
    try:
        with LocalHost(extra_env={"CORS_ALLOWED_ORIGINS": allowed}) as host:
            shop = host.sign_up("tea_shop", "MERCHANT")
            status, product = host.call("POST", "/api/merchants/products/", {"name": "Tea", "points_required": 120, "stock": 5}, shop)
            assert status == 201, (status, product)
            member = host.sign_up("mia_member", "MEMBER")
            status, checkout = host.call("POST", "/api/members/points/recharge/", {"amount": 500}, member)
            assert post_form(host, "/dev/ecpay/Cashier/AioCheckOut/V5", checkout["fields"]) == 200
            assert post_form(host, "/dev/ecpay/pay", {"MerchantTradeNo": checkout["merchant_trade_no"]}) == 200
            from localhost import PASSWORD
            query = urllib.parse.urlencode({"api": host.base, "user": "mia_member", "password": PASSWORD})
            browser = WebDriver(chromedriver, chromium)
            try:
                browser.open(f"{allowed}/frontend.html?{query}")
                done = wait_for_result(browser)
                assert done.startswith("redeemed PO") and done.endswith("balance 380"), done
                print(f"== from the allowed origin {allowed}: {done}")
                browser.open(f"{other}/frontend.html?{query}")
                blocked = wait_for_result(browser)
                assert blocked.startswith("blocked TypeError"), blocked
                print(f"== from {other} (not allowed): {blocked}")
            finally:
                browser.quit()
            status, points = host.call("GET", "/api/members/points/", None, host.log_in("mia_member"))
            assert points["balance"] == 380, points
            status, orders = host.call("GET", "/api/members/orders/", None, host.log_in("mia_member"))
            assert len(orders["items"]) == 1, orders
    finally:
        allowed_server.shutdown()
        other_server.shutdown()
    print("== browser CORS passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
