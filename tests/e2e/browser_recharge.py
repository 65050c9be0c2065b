#!/usr/bin/env python3
"""A member recharges in a real browser: headless Chromium, driven over WebDriver (chromedriver).

Registers a member, starts a recharge through the API, opens the checkout_url in Chromium (which
auto-submits a freshly signed checkout attempt to the local ECPay simulator), goes back and opens the link
again (a second attempt, which ECPay must not refuse as a duplicate), clicks Pay, and checks that the
simulator's notification credited the balance once. Then a second recharge is paid with the notification
lost on purpose, and the host's reconciliation timer (QueryTradeInfo to the simulator over HTTP) must find
and credit it. Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).

    python3 tests/e2e/browser_recharge.py
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from localhost import ROOT, LocalHost, free_port

AMOUNT = 1200
LOST = 300

class WebDriver:
    """The few W3C WebDriver commands this test needs, over plain HTTP."""

    def __init__(self, chromedriver: str, chromium: str, language: str = "en-US"):
        self.port = free_port()
        self.process = subprocess.Popen(
            [chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while True:
            try:
                self._request("GET", "/status")
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("chromedriver did not start")
                time.sleep(0.1)
        profile = tempfile.mkdtemp(prefix="points-chromium-")
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"--lang={language}",
        ]
        # The browser's language: what it sends as Accept-Language and shows as navigator.languages.
        options = {"binary": chromium, "args": args, "prefs": {"intl.accept_languages": language}}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self._request("POST", "/session", caps)["value"]["sessionId"]

    def _request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def command(self, method, path, body=None):
        return self._request(method, f"/session/{self.session}{path}", body)["value"]

    def open(self, url):
        self.command("POST", "/url", {"url": url})

    def find(self, css, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                element = self.command("POST", "/element", {"using": "css selector", "value": css})
                return next(iter(element.values()))
            except urllib.error.HTTPError:
                if time.time() > deadline:
                    raise AssertionError(f"no element {css!r} on {self.command('GET', '/url')}")
                time.sleep(0.2)

    def text(self, css):
        return self.command("GET", f"/element/{self.find(css)}/text")

    def click(self, css):
        self.command("POST", f"/element/{self.find(css)}/click", {})

    def screenshot(self, path):
        import base64

        path.write_bytes(base64.b64decode(self.command("GET", "/screenshot")))

    def quit(self):
        try:
            self._request("DELETE", f"/session/{self.session}")
        finally:
            self.process.terminate()

def browser_tools():
    """(chromedriver, chromium, screenshot directory), or None with the reason printed."""
    chromedriver = shutil.which("chromedriver")
    chromium = shutil.which("chromium")
    if not chromedriver or not chromium:
        print("chromium and chromedriver are needed: apt-get install chromium chromium-driver")
        return None
    shots = ROOT / "target" / "e2e"
    shots.mkdir(parents=True, exist_ok=True)
    return chromedriver, chromium, shots


def main() -> int:
    tools = browser_tools()
    if tools is None:
        return 1
    chromedriver, chromium, shots = tools
    # Reconciliation every 2 s, for payments open longer than 1 s (defaults: 300 s and 600 s).
    with LocalHost({"RECONCILE_INTERVAL_SECONDS": "2", "RECONCILE_AFTER_SECONDS": "1"}) as host:
        token = host.sign_up("browser_member", "MEMBER")
        status, checkout = host.call("POST", "/api/members/points/recharge/", {"amount": AMOUNT}, token)
        assert status == 201, (status, checkout)
        origin = checkout["merchant_trade_no"]
        browser = WebDriver(chromedriver, chromium)
        try:
            browser.open(checkout["checkout_url"])
            # The checkout page submits itself; the simulator shows the order: the recharge's own number.
            first_attempt = browser.text("#trade-no")
            assert first_attempt == origin, (first_attempt, origin)
            assert f"NT$ {AMOUNT}" in browser.text("#amount")
            # Back to the shop and through the link again: ECPay must not see the same number twice,
            # so this opening is a fresh attempt.
            browser.open(checkout["checkout_url"])
            attempt = browser.text("#trade-no")
            assert attempt != first_attempt and len(attempt) <= 20 and attempt.isalnum(), attempt
            page = browser.command("GET", "/source")
            assert "重覆" not in page and "duplicated" not in page, page[:500]
            browser.screenshot(shots / "simulator-order.png")
            browser.click("#pay")
            result = browser.text("#result")
            answer = browser.text("#merchant-answer")
            browser.screenshot(shots / "simulator-result.png")

            # A second recharge whose notification is lost: only reconciliation can find it.
            status, lost = host.call("POST", "/api/members/points/recharge/", {"amount": LOST}, token)
            assert status == 201, (status, lost)
            browser.open(lost["checkout_url"])
            lost_attempt = browser.text("#trade-no")
            browser.click("#pay-silently")
            assert "only reconciliation" in browser.text("#merchant-answer")
        finally:
            browser.quit()
        print(f"== simulator says {result!r}; the merchant answered {answer!r}")
        assert "Paid" in result, result
        assert answer == "200 1|OK", answer
        status, points = host.call("GET", "/api/members/points/", None, token)
        assert status == 200 and points["balance"] == AMOUNT, points
        # One recharge, named by either number: paid by its second checkout, the first still open.
        status, payment = host.call("GET", f"/api/members/payments/{attempt}/", None, token)
        assert payment["status"] == "paid" and payment["merchant_trade_no"] == origin, payment
        assert [a["merchant_trade_no"] for a in payment["attempts"]] == [attempt], payment
        status, listed = host.call("GET", "/api/members/payments/", None, token)
        assert [p["merchant_trade_no"] for p in listed["items"]][-1] == origin, listed

        deadline = time.time() + 30
        while time.time() < deadline:
            status, points = host.call("GET", "/api/members/points/", None, token)
            if points["balance"] == AMOUNT + LOST:
                break
            time.sleep(0.5)
        assert points["balance"] == AMOUNT + LOST, (points, host.log_text()[-2000:])
        status, found = host.call("GET", f"/api/members/payments/{lost_attempt}/", None, token)
        assert found["status"] == "paid", found
        print(f"== reconciliation credited the lost payment {lost_attempt}")
    print(f"== browser recharge passed: balance {points['balance']}; screenshots in {shots}")
    return 0

if __name__ == "__main__":

    sys.exit(main())
