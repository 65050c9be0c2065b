#!/usr/bin/env python3
"""An operator runs the platform from the admin console in a real browser (headless Chromium over
WebDriver): signs in, finds a member, disables them, adjusts their points with a reason, reconciles a
payment whose ECPay notification was lost, closes a member's refund as paid by bank transfer, closes
a period and pays a merchant's statement, reads the audit log, and (on a host issuing e-invoices)
retries an invoice ECPay refused. Every effect is checked through the API, and a screenshot of the console is
decoded (plain PNG, no imaging library) to check that each key part is on screen and drawn: the
header bar in its colour, and non-blank pixels inside the users, adjustment, payments, refunds,
statements and audit panels.

The operator is made by `local-api create-admin` before the host starts, as a newcomer would.

    python3 tests/e2e/browser_admin.py
"""

import json
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

from browser_recharge import WebDriver, browser_tools
from localhost import LocalHost

ADJUSTMENT = 250
HEADER_RGB = (0x23, 0x39, 0x5D)


def post_form(host, path, fields):
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(host.base + path, data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def decode_png(data: bytes):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous, offset = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[offset], bytearray(raw[offset + 1:offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + predictor) & 0xFF
        rows.append([tuple(line[x * channels:x * channels + 3]) for x in range(width)])
        previous = line
    return width, height, rows


def open_console(browser, host, password=None):
    """Opens the console and signs in as ops_olive."""
    from localhost import PASSWORD
    browser.command("POST", "/window/rect", {"width": 1280, "height": 1800})
    browser.open(host.base + "/api/admin/console/")
    browser.command("POST", f"/element/{browser.find('#username')}/value", {"text": "ops_olive"})
    browser.command("POST", f"/element/{browser.find('#password')}/value", {"text": password or PASSWORD})
    browser.click("#sign-in")


def check_screenshot(browser, path, key_elements):
    width, height, rows = decode_png(path.read_bytes())
    # The header bar is drawn in its colour across the top.
    top = rows[5]
    share = sum(1 for pixel in top if max(abs(a - b) for a, b in zip(pixel, HEADER_RGB)) <= 6) / width
    assert share > 0.8, f"header bar not drawn ({share:.0%} of the top row)"
    scale = width / browser.command("POST", "/execute/sync", {"script": "return window.innerWidth;", "args": []})
    for css in key_elements:
        rect = browser.command("GET", f"/element/{browser.find(css)}/rect")
        x0, y0 = int(rect["x"] * scale), int(rect["y"] * scale)
        x1, y1 = int((rect["x"] + rect["width"]) * scale), int((rect["y"] + rect["height"]) * scale)
        assert rect["width"] > 0 and rect["height"] > 0, f"{css} is not displayed"
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, f"{css} {rect} is off the {width}x{height} screenshot"
        colours = {rows[y][x] for y in range(y0, y1, 3) for x in range(x0, x1, 3)}
        assert len(colours) > 8, f"{css} is blank in the screenshot ({len(colours)} colours)"
    print(f"== screenshot {width}x{height}: header and {len(key_elements)} panels drawn")


def main() -> int:
    tools = browser_tools()
    if tools is None:
        return 1
    chromedriver, chromium, shots = tools
    # Sales are owed at once here (no hold), so a statement can be made and paid in the console.
    with LocalHost(admins=["ops_olive"], extra_env={"SETTLEMENT_HOLD_DAYS": "0"}) as host:
        member = host.sign_up("mia_member", "MEMBER")
        status, me = host.call("GET", "/api/auth/me/", None, member)
        member_id = me["id"]
        # A payment made at ECPay whose notification never arrived: stuck in pending.
        status, checkout = host.call("POST", "/api/members/points/recharge/", {"amount": 400}, member)
        assert status == 201, (status, checkout)
        assert post_form(host, "/dev/ecpay/Cashier/AioCheckOut/V5", checkout["fields"]) == 200
        trade_no = checkout["merchant_trade_no"]
        assert post_form(host, "/dev/ecpay/pay", {"MerchantTradeNo": trade_no, "notify": "0"}) == 200
        # Another member buys points (ECPay's notification arrives) and asks for 300 of them back.
        refunder = host.sign_up("ned_member", "MEMBER")
        status, checkout = host.call("POST", "/api/members/points/recharge/", {"amount": 300}, refunder)
        assert status == 201, (status, checkout)
        assert post_form(host, "/dev/ecpay/Cashier/AioCheckOut/V5", checkout["fields"]) == 200
        assert post_form(host, "/dev/ecpay/pay", {"MerchantTradeNo": checkout["merchant_trade_no"]}) == 200
        status, refund = host.call("POST", "/api/members/points/refunds/", {"points": 300}, refunder)
        assert status == 201 and refund["state"] == "requested", (status, refund)
        # A merchant hands over a gift bought with given points: a settlement line, owed at once.
        shop = host.sign_up("tea_shop", "MERCHANT")
        status, product = host.call("POST", "/api/merchants/products/", {"name": "Tea", "points_required": 200, "stock": 5}, shop)
        assert status == 201, (status, product)
        operator_api = host.log_in("ops_olive")
        status, _ = host.call("POST", f"/api/admin/members/{host.call('GET', '/api/auth/me/', None, refunder)[1]['id']}/points/adjustments/", {"amount": 200, "reason": "welcome gift"}, operator_api)
        assert status == 201
        status, order = host.call("POST", "/api/members/orders/", {"product_id": product["id"], "quantity": 1}, refunder)
        assert status == 201, (status, order)
        status, done = host.call("POST", "/api/merchants/orders/redeem-code/", {"code": order["pickup_code"]}, shop)
        assert status == 200, (status, done)

        browser = WebDriver(chromedriver, chromium)
        try:
            open_console(browser, host)
            browser.find("#users tr")
            assert "signed in as ops_olive" in browser.text("#whoami")

            # Find the member and disable them, with a reason.
            browser.command("POST", f"/element/{browser.find('#user-q')}/value", {"text": "mia"})
            browser.click("#find-users")
            browser.command("POST", f"/element/{browser.find('#action-reason')}/value", {"text": "chargeback"})
            click_in(browser, '#users tr[data-username="mia_member"]', "button.danger")
            wait_for(browser, "#message", "mia_member disabled")
            status, refused = host.call("GET", "/api/members/points/", None, member)
            assert status == 401 and refused["error"]["code"] == "account_disabled", (status, refused)

            # A member id that is not one never reaches a path: refused in the page, nothing sent.
            browser.command("POST", f"/element/{browser.find('#adjust-member')}/value", {"text": "../../users/x"})
            browser.command("POST", f"/element/{browser.find('#adjust-amount')}/value", {"text": str(ADJUSTMENT)})
            browser.command("POST", f"/element/{browser.find('#adjust-reason')}/value", {"text": "goodwill: parcel lost"})
            browser.click("#adjust")
            wait_for(browser, "#message", "must be a user id")
            browser.command("POST", f"/element/{browser.find('#adjust-member')}/clear", {})

            # Adjust the member's points with a reason, submitting twice at once (a double click):
            # the button is disabled until the answer and the form keeps one Idempotency-Key, so the
            # member is adjusted once (checked through the API below).
            browser.command("POST", f"/element/{browser.find('#adjust-member')}/value", {"text": member_id})
            browser.command("POST", "/execute/sync", {
                "script": "const f = document.getElementById('adjust-form'); f.requestSubmit(); f.requestSubmit(); return true;",
                "args": [],
            })
            wait_for(browser, "#message", f"balance now {ADJUSTMENT}")
            # The CSP in force runs the page's own script (by its hash) and no other inline script:
            # one injected into the page does not run.
            browser.command("POST", "/execute/sync", {
                "script": "const s = document.createElement('script'); s.textContent = 'window.injected = 1;'; document.body.appendChild(s); return true;",
                "args": [],
            })
            injected = browser.command("POST", "/execute/sync", {"script": "return window.injected === 1;", "args": []})
            assert injected is False, "an injected inline script ran: the console's CSP is not in force"

            # Reconcile the stuck payment now.
            browser.click("#load-payments")
            click_in(browser, f'#payments tr[data-trade-no="{trade_no}"]', "button")
            wait_for(browser, "#message", f"{trade_no}: credited (paid)")

            # The refund waits for the scheduled job; the operator pays it by bank transfer instead.
            browser.click("#load-refunds")
            click_in(browser, f'#refunds tr[data-refund="{refund["id"]}"]', "button")
            wait_for(browser, "#message", f"refund {refund['id']} is due now")
            browser.command("POST", f"/element/{browser.find('#refund-reference')}/value", {"text": "TRF-0042"})
            click_in(browser, f'#refunds tr[data-refund="{refund["id"]}"]', "button:nth-of-type(2)")
            wait_for(browser, "#message", "300 TWD by hand")
            browser.find(f'#refunds tr[data-refund="{refund["id"]}"][data-state="refunded"]')

            # Close today's period: the merchant's statement (200 points, 10% kept) is paid by transfer.
            browser.click("#close-period")
            wait_for(browser, "#message", "period closed: 1 statement(s)")
            browser.command("POST", f"/element/{browser.find('#transfer-reference')}/value", {"text": "PAYOUT-7"})
            click_in(browser, "#statements tr", "button")
            wait_for(browser, "#message", "180 TWD, PAYOUT-7")

            # The audit log shows them all, newest first.
            browser.click("#load-audit")
            for action in ["statement_paid", "refund_closed_manually", "refund_retried", "payment_reconciled", "points_adjusted", "user_disabled", "admin_created"]:
                browser.find(f'#audit tr[data-action="{action}"]')
            shot = shots / "admin-console.png"
            browser.screenshot(shot)
            check_screenshot(browser, shot, ["#users-section", "#adjust-section", "#payments-section", "#refunds-section", "#invoices-section", "#settlements-section", "#audit-section", "#message"])

            # The API's docs page renders under its own CSP (Swagger UI from its own files only).
            browser.open(host.base + "/api/docs/")
            browser.find(".swagger-ui .info .title")
            browser.find(".swagger-ui .opblock")
        finally:
            browser.quit()

        operator = host.log_in("ops_olive")
        status, found = host.call("GET", "/api/admin/users/?q=mia", None, operator)
        assert found["items"][0]["is_active"] is False, found
        status, log = host.call("GET", "/api/admin/audit/", None, operator)
        actions = [entry["action"] for entry in log["items"]]
        # The console's actions, newest first (the API's own set-up adjustment sits among them).
        console = [a for a in actions if a in ("statement_paid", "refund_closed_manually", "refund_retried", "payment_reconciled", "user_disabled")]
        assert console[:5] == ["statement_paid", "refund_closed_manually", "refund_retried", "payment_reconciled", "user_disabled"], actions
        by_action = {entry["action"]: entry for entry in reversed(log["items"])}
        assert by_action["refund_closed_manually"]["reason"] == "TRF-0042", by_action
        assert by_action["statement_paid"]["reason"] == "PAYOUT-7", by_action
        assert any(e["action"] == "points_adjusted" and e["reason"] == "goodwill: parcel lost" for e in log["items"]), log
        status, refunds = host.call("GET", "/api/members/points/refunds/", None, host.log_in("ned_member"))
        assert refunds["items"][0]["state"] == "refunded" and refunds["items"][0]["manual_reference"] == "TRF-0042", refunds
        # Enabled again through the API, the member signs in anew and holds both credits, once.
        status, _ = host.call("POST", f"/api/admin/users/{member_id}/enable/", {"reason": "cleared"}, operator)
        assert status == 200
        again = host.log_in("mia_member")
        status, points = host.call("GET", "/api/members/points/", None, again)
        assert points["balance"] == ADJUSTMENT + 400, points
        status, ledger = host.call("GET", "/api/members/transactions/", None, again)
        kinds = sorted(row["transaction_type"] for row in ledger["items"])
        assert kinds == ["ADJUSTMENT", "RECHARGE"], kinds
        console_in_chinese(chromedriver, chromium, host, shots, member_id)
    print(f"== admin console passed: balance {points['balance']}; screenshot in {shot}")
    failed_invoice_retried(chromedriver, chromium)
    return 0


# Whether CJK text is drawn as glyphs, not as the boxes a missing font leaves: four different
# characters drawn in the title's font must give four different images, none of them the image of a
# character no font has (a private-use code point).
CJK_DRAWN = """
const font = getComputedStyle(document.getElementById("title")).fontFamily;
function ink(text) {
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 64;
  const g = canvas.getContext("2d");
  g.font = "40px " + font;
  g.fillText(text, 4, 48);
  return canvas.toDataURL();
}
const box = ink("\\uE000");
const drawn = ["點", "數", "營", "運"].map(ink);
return new Set(drawn).size === 4 && drawn.every((d) => d !== box);
"""


def console_in_chinese(chromedriver, chromium, host, shots, member_id):
    """The console in a browser set to Traditional Chinese: its labels, the API's messages, people by
    username, times in Taipei time, changes as fields; the Chinese title drawn in a CJK font."""
    from localhost import PASSWORD
    browser = WebDriver(chromedriver, chromium, language="zh-TW")
    try:
        browser.command("POST", "/window/rect", {"width": 1280, "height": 1900})
        browser.open(host.base + "/api/admin/console/")
        assert browser.text("#title") == "點數兌換贈品系統 營運後台", browser.text("#title")
        # A wrong password: the API's message comes back in Chinese (the browser's Accept-Language).
        browser.command("POST", f"/element/{browser.find('#username')}/value", {"text": "ops_olive"})
        browser.command("POST", f"/element/{browser.find('#password')}/value", {"text": "not the password"})
        browser.click("#sign-in")
        wait_for(browser, "#message", "invalid_credentials: 帳號或密碼錯誤")
        browser.command("POST", f"/element/{browser.find('#password')}/clear", {})
        browser.command("POST", f"/element/{browser.find('#password')}/value", {"text": PASSWORD})
        browser.click("#sign-in")
        wait_for(browser, "#whoami", "已登入：ops_olive")
        browser.find("#audit tr")
        wait_for(browser, "#audit", "user: mia_member")
        audit = browser.text("#audit")
        assert member_id not in audit, "people are shown by username"
        assert "ops_olive" in audit and "is_active: true → false" in audit, audit
        assert "{" not in audit, "changes are fields, not JSON"
        heading = browser.text("#audit-section thead")
        assert "時間（臺北）" in heading, heading
        drawn = browser.command("POST", "/execute/sync", {"script": CJK_DRAWN, "args": []})
        assert drawn is True, "the Chinese title is drawn as boxes: no CJK font (apt-get install fonts-wqy-microhei)"
        shot = shots / "admin-console-zh.png"
        browser.screenshot(shot)
        check_screenshot(browser, shot, ["#title", "#users-section", "#audit-section"])
    finally:
        browser.quit()
    print(f"== the console in Traditional Chinese: title drawn in a CJK font; screenshot in {shot}")


def failed_invoice_retried(chromedriver, chromium):
    """Invoices issued at recharge, the scheduled job every second: ECPay refuses a member's invoice,
    the operator sees it failed in the console and retries it, and the job issues it."""
    env = {"INVOICE_MODE": "at_recharge", "RECONCILE_INTERVAL_SECONDS": "1"}
    with LocalHost(admins=["ops_olive"], extra_env=env) as host:
        assert post_form(host, "/dev/ecpay/refuse-next-invoice", {"RtnMsg": "載具號碼不存在"}) == 200
        member = host.sign_up("ivy_member", "MEMBER")
        status, checkout = host.call("POST", "/api/members/points/recharge/", {"amount": 500}, member)
        assert status == 201, (status, checkout)
        assert post_form(host, "/dev/ecpay/Cashier/AioCheckOut/V5", checkout["fields"]) == 200
        assert post_form(host, "/dev/ecpay/pay", {"MerchantTradeNo": checkout["merchant_trade_no"]}) == 200
        relate = "R" + checkout["merchant_trade_no"]
        operator = host.log_in("ops_olive")
        deadline = time.time() + 30
        while True:
            status, failed = host.call("GET", "/api/admin/invoices/failed/", None, operator)
            if failed["items"]:
                break
            assert time.time() < deadline, "the refused invoice never showed as failed"
            time.sleep(0.3)
        assert failed["items"][0]["relate_number"] == relate, failed
        browser = WebDriver(chromedriver, chromium)
        try:
            open_console(browser, host)
            assert "載具號碼不存在" in browser.text(f'#failed-invoices tr[data-relate="{relate}"]')
            click_in(browser, f'#failed-invoices tr[data-relate="{relate}"]', "button")
            wait_for(browser, "#message", f"invoice {relate} is due again")
        finally:
            browser.quit()
        deadline = time.time() + 30
        while True:
            status, mine = host.call("GET", "/api/members/invoices/", None, host.log_in("ivy_member"))
            if mine["items"][0]["state"] == "issued":
                break
            assert time.time() < deadline, mine
            time.sleep(0.5)
        status, log = host.call("GET", "/api/admin/audit/", None, operator)
        assert any(e["action"] == "invoice_retried" for e in log["items"]), log
    print(f"== failed e-invoice retried from the console: issued as {mine['items'][0]['invoice_number']}")


def click_in(browser, row_css, button_css, timeout=20):
    """Clicks `button_css` inside the row `row_css`, finding both again if the table re-rendered
    in between (a stale element is WebDriver's 404)."""
    deadline = time.time() + timeout
    while True:
        try:
            row = browser.find(row_css)
            found = browser.command("POST", f"/element/{row}/element", {"using": "css selector", "value": button_css})
            browser.command("POST", f"/element/{next(iter(found.values()))}/click", {})
            return
        except urllib.error.HTTPError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def wait_for(browser, css, expected, timeout=20):
    deadline = time.time() + timeout
    while True:
        text = browser.text(css)
        if expected in text:
            return text
        if time.time() > deadline:
            raise AssertionError(f"{css} says {text!r}, not {expected!r}")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
