#!/usr/bin/env python3
"""A member recharges in a real browser: headless Chromium, driven over WebDriver (chromedriver).

Registers a member, starts a recharge through the API, opens the checkout_url in Chromium (which
auto-submits the signed form to the local ECPay simulator), clicks Pay, and checks that the simulator's
notification credited the balance. Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).

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

class WebDriver:
    """The few W3C WebDriver commands this test needs, over plain HTTP."""

    def __init__(self, chromedriver: str, chromium: str):
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
        ]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}}}
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

def main() -> int:
    chromedriver = shutil.which("chromedriver")
    chromium = shutil.which("chromium")
    if not chromedriver or not chromium:
        print("chromium and chromedriver are needed: apt-get install chromium chromium-driver")
        return 1
    shots = ROOT / "target" / "e2e"
    shots.mkdir(parents=True, exist_ok=True)
    with LocalHost() as host:
        token = host.sign_up("browser_member", "MEMBER")
        status, checkout = host.call("POST", "/api/members/points/recharge/", {"amount": AMOUNT}, token)
        assert status == 201, (status, checkout)
        browser = WebDriver(chromedriver, chromium)
        try:
            browser.open(checkout["checkout_url"])
            # The checkout page submits itself; the simulator shows the order.
            assert browser.text("#trade-no") == checkout["merchant_trade_no"]
            assert f"NT$ {AMOUNT}" in browser.text("#amount")
            browser.screenshot(shots / "simulator-order.png")
            browser.click("#pay")
            result = browser.text("#result")
            answer = browser.text("#merchant-answer")
            browser.screenshot(shots / "simulator-result.png")
        finally:
            browser.quit()
        print(f"== simulator says {result!r}; the merchant answered {answer!r}")
        assert "Paid" in result, result
        assert answer == "200 1|OK", answer
        status, points = host.call("GET", "/api/members/points/", None, token)
        assert status == 200 and points["balance"] == AMOUNT, points
        status, payment = host.call("GET", f"/api/members/payments/{checkout['merchant_trade_no']}/", None, token)
        assert payment["status"] == "paid", payment
    print(f"== browser recharge passed: balance {points['balance']}; screenshots in {shots}")
    return 0

if __name__ == "__main__":

    sys.exit(main())
