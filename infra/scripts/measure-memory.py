#!/usr/bin/env python3
"""Peak resident memory and CPU per invocation of each Lambda function under a realistic mix of
invocations: what `template.yaml`'s `MemorySize` values are chosen from.

Runs each built `bootstrap` (release, exactly what `sam build` zips) as Lambda does, against the
minimal Lambda Runtime API and Secrets Manager of `measure-init.py`, over the local host's embedded
DynamoDB. A Lambda instance serves one invocation at a time, so the events are fed one after another,
as a warm instance would get them. After the mix, the process's `VmHWM` (peak resident set) and its CPU
time are read from /proc, and every answer's status is counted (the mix must have done real work).

    infra/scripts/build-lambdas.sh && python3 infra/scripts/measure-memory.py

The mix, per function (a warm instance's share of a busy hour):
- fn-auth: 20 logins and 5 sign-ups (argon2id, 19 MiB each), 20 `me`, 10 refreshes;
- fn-members: 60 redemptions, 40 catalogue pages, 20 ledger pages, 10 order lists, 5 recharges;
- fn-merchants: 20 product pages, 20 order pages, 10 product reads, 5 new products;
- fn-ecpay-callback: 20 signed payment notifications (each credits a member), 10 checkout pages;
- fn-admin: 20 user searches, 20 audit pages, 10 all-orders scans, 10 adjustments;
- fn-reconcile: 3 scheduled runs (nothing is due: ECPay is not reachable from here);
- fn-front-door ($default): 10 API documents, 10 docs-page files, 40 scanners' 404s.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import re
import urllib.parse
import urllib.request
import uuid
import zipfile
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from localhost import PASSWORD, LocalHost  # noqa: E402

_spec = importlib.util.spec_from_file_location("measure_init", Path(__file__).with_name("measure-init.py"))
measure_init = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(measure_init)
RuntimeApi, SecretsManager, SECRET = measure_init.RuntimeApi, measure_init.SecretsManager, measure_init.SECRET

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# (function, MemorySize in template.yaml, timeout) is read from the template at the end for the report.
GROUPS = {
    "fn-auth": "auth",
    "fn-members": "members",
    "fn-merchants": "merchants",
    "fn-ecpay-callback": "payments",
    "fn-admin": "admin",
}


def http_event(method, path, token=None, body=None, form=None, query=None):
    """An API Gateway HTTP API (payload 2.0) event for `path` on its function's greedy route."""
    group = path.split("/")[2]
    headers = {"host": "measure.execute-api.local"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    raw_body = None
    if body is not None:
        headers["content-type"] = "application/json"
        raw_body = json.dumps(body)
    if form is not None:
        headers["content-type"] = "application/x-www-form-urlencoded"
        raw_body = urllib.parse.urlencode(form)
    route_key = f"ANY /api/{group}/{{proxy+}}"
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": urllib.parse.urlencode(query or {}),
        "headers": headers,
        "pathParameters": {"proxy": path.split(f"/api/{group}/", 1)[1]},
        "requestContext": {
            "accountId": "123456789012", "apiId": "measure", "domainName": "measure.execute-api.local",
            "domainPrefix": "measure",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "measure"},
            "requestId": str(uuid.uuid4()), "routeKey": route_key, "stage": "$default",
            "time": "29/Nov/2026:00:00:00 +0000", "timeEpoch": 1795910400000,
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if raw_body is not None:
        event["body"] = raw_body
    return event


def default_event(method, path):
    """An event on API Gateway's `$default` route (no route key of a group, no path parameters)."""
    event = http_event(method, "/api/auth/x")
    event.update({"routeKey": "$default", "rawPath": path})
    event["requestContext"].update({"routeKey": "$default"})
    event["requestContext"]["http"].update({"path": path})
    event.pop("pathParameters", None)
    return event


def check_mac_value(fields, hash_key, hash_iv):
    """ECPay's CheckMacValue (SHA256), written independently of the Rust one."""
    pairs = sorted(((k, v) for k, v in fields.items() if k != "CheckMacValue"), key=lambda kv: kv[0].lower())
    raw = f"HashKey={hash_key}&" + "&".join(f"{k}={v}" for k, v in pairs) + f"&HashIV={hash_iv}"
    encoded = urllib.parse.quote_plus(raw, safe="-_.!*()").replace("~", "%7E").lower()
    return hashlib.sha256(encoded.encode()).hexdigest().upper()


def paid_notification(checkout):
    fields = checkout["fields"]
    n = {
        "MerchantID": fields["MerchantID"], "MerchantTradeNo": fields["MerchantTradeNo"], "StoreID": "",
        "RtnCode": "1", "RtnMsg": "交易成功", "TradeNo": "2611290000000001", "TradeAmt": fields["TotalAmount"],
        "PaymentDate": "2026/11/29 10:00:00", "PaymentType": "Credit_CreditCard", "PaymentTypeChargeFee": "10",
        "TradeDate": fields["MerchantTradeDate"], "SimulatePaid": "0",
        "CustomField1": fields.get("CustomField1", ""), "CustomField2": fields.get("CustomField2", ""),
        "CustomField3": "", "CustomField4": "",
    }
    n["CheckMacValue"] = check_mac_value(n, SECRET["ECPAY_HASH_KEY"], SECRET["ECPAY_HASH_IV"])
    return n


def prepare(host):
    """Users, a product and open payments through the host's API; the mixes of events that use them."""
    member = host.sign_up("mem_member", "MEMBER")
    shop = host.sign_up("mem_shop", "MERCHANT")
    admin = host.log_in("mem_admin")
    status, me = host.call("GET", "/api/auth/me/", None, member)
    member_id = me["id"]
    status, product = host.call(
        "POST", "/api/merchants/products/",
        {"name": "Mug", "points_required": 1, "stock": 10000}, shop,
    )
    assert status == 201, (status, product)
    # Points for the redemptions, bought the real way (the host's ECPay simulator notifies it).
    status, checkout = host.call("POST", "/api/members/points/recharge/", {"amount": 5000}, member)
    assert status == 201, (status, checkout)
    for path, form in [
        ("/dev/ecpay/Cashier/AioCheckOut/V5", checkout["fields"]),
        ("/dev/ecpay/pay", {"MerchantTradeNo": checkout["merchant_trade_no"]}),
    ]:
        request = urllib.request.Request(host.base + path, data=urllib.parse.urlencode(form).encode(), method="POST")
        urllib.request.urlopen(request, timeout=30).read()
    # Open payments for the callback to credit, and checkout links to open.
    pending = []
    for _ in range(20):
        status, open_checkout = host.call("POST", "/api/members/points/recharge/", {"amount": 100}, member)
        assert status == 201, (status, open_checkout)
        pending.append(open_checkout)
    # Ten more members, each signing in twice through the function (ten refresh families to exchange:
    # within one window, a username's attempts past LOGIN_MAX_FAILURES are paced, successes included).
    refresh_tokens = []
    for i in range(10):
        host.sign_up(f"mem_login{i}", "MEMBER")
        status, pair = host.call("POST", "/api/auth/login/", {"username": f"mem_login{i}", "password": PASSWORD})
        refresh_tokens.append(pair["refresh"])
    unpaid = []
    for _ in range(10):
        status, open_checkout = host.call("POST", "/api/members/points/recharge/", {"amount": 100}, member)
        unpaid.append(open_checkout)

    pid = product["id"]
    mixes = {
        "fn-auth": (
            [http_event("POST", "/api/auth/login/", body={"username": f"mem_login{i % 10}", "password": PASSWORD}) for i in range(20)]
            + [http_event("POST", "/api/auth/register/", body={"username": f"mem_new{i}", "email": f"mem_new{i}@example.com", "password": PASSWORD, "role": "MEMBER"}) for i in range(5)]
            + [http_event("GET", "/api/auth/me/", token=member) for _ in range(20)]
            + [http_event("POST", "/api/auth/refresh/", body={"refresh": token}) for token in refresh_tokens]
        ),
        "fn-members": (
            [http_event("POST", "/api/members/orders/", token=member, body={"product_id": pid, "quantity": 1}) for _ in range(60)]
            + [http_event("GET", "/api/members/products/", token=member) for _ in range(40)]
            + [http_event("GET", "/api/members/transactions/", token=member, query={"limit": "50"}) for _ in range(20)]
            + [http_event("GET", "/api/members/orders/", token=member, query={"limit": "50"}) for _ in range(10)]
            + [http_event("POST", "/api/members/points/recharge/", token=member, body={"amount": 300}) for _ in range(5)]
        ),
        "fn-merchants": (
            [http_event("GET", "/api/merchants/products/", token=shop) for _ in range(20)]
            + [http_event("GET", "/api/merchants/orders/", token=shop, query={"limit": "50"}) for _ in range(20)]
            + [http_event("GET", f"/api/merchants/products/{pid}/", token=shop) for _ in range(10)]
            + [http_event("POST", "/api/merchants/products/", token=shop, body={"name": f"Item {i}", "points_required": 5, "stock": 50}) for i in range(5)]
        ),
        "fn-ecpay-callback": (
            [http_event("POST", "/api/payments/ecpay/callback/", form=paid_notification(c)) for c in pending]
            + [http_event("GET", urllib.parse.urlparse(c["checkout_url"]).path, query=dict(urllib.parse.parse_qsl(urllib.parse.urlparse(c["checkout_url"]).query))) for c in unpaid]
        ),
        "fn-admin": (
            [http_event("GET", "/api/admin/users/", token=admin, query={"q": "mem"}) for _ in range(20)]
            + [http_event("GET", "/api/admin/audit/", token=admin) for _ in range(20)]
            + [http_event("GET", "/api/admin/orders/", token=admin, query={"limit": "50"}) for _ in range(10)]
            + [http_event("POST", f"/api/admin/members/{member_id}/points/adjustments/", token=admin, body={"amount": 1, "reason": "measure"}) for _ in range(10)]
        ),
        "fn-reconcile": [measure_init.SCHEDULE_EVENT for _ in range(3)],
        "fn-front-door": (
            [default_event("GET", "/api/openapi.json") for _ in range(10)]
            + [default_event("GET", path) for path in ["/api/docs/", "/api/docs/swagger-ui.css", "/api/docs/swagger-ui-bundle.js", "/api/docs/swagger-initializer.js", "/api/docs/index.css"] * 2]
            + [default_event(method, path) for method, path in [("GET", "/wp-login.php"), ("GET", "/.env"), ("POST", "/xmlrpc.php"), ("GET", "/")] * 10]
        ),
    }
    return mixes


def proc_status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def cpu_seconds(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    parts = stat[stat.rindex(")") + 2:].split()
    return (int(parts[11]) + int(parts[12])) / CLOCK_TICKS


def memory_sizes():
    """MemorySize per function binary, as the template declares them."""
    sizes, current = {}, None
    for line in (ROOT / "template.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("Binary:"):
            current = stripped.split(":", 1)[1].strip()
        elif stripped.startswith("MemorySize:") and current:
            sizes[current] = int(stripped.split(":", 1)[1])
            current = None
    return sizes


def main() -> int:
    secrets = ThreadingHTTPServer(("127.0.0.1", 0), SecretsManager)
    threading.Thread(target=secrets.serve_forever, daemon=True).start()
    secrets_endpoint = f"http://127.0.0.1:{secrets.server_address[1]}"
    sizes = memory_sizes()
    rows = []
    # The host signs with the functions' secret, so tokens it issues work on both.
    # One member opens 30 recharges to feed the callback's mix: above the production cap of open
    # recharges per member (RECHARGE_MAX_OPEN_PER_MEMBER), which the mix is not measuring.
    open_cap = {"RECHARGE_MAX_OPEN_PER_MEMBER": "100"}
    with LocalHost({"JWT_SECRET": SECRET["JWT_SECRET"], **open_cap}, admins=["mem_admin"]) as host:
        time.sleep(0.3)
        endpoint = re.search(r'"dynamodb":"(http://127\.0\.0\.1:\d+)"', host.log_text()).group(1)
        mixes = prepare(host)
        for function, events in mixes.items():
            built = ROOT / "target" / "lambda" / function
            unpacked = host.workdir / function
            zipfile.ZipFile(built / "bootstrap.zip").extractall(unpacked)
            bootstrap = unpacked / "bootstrap"
            bootstrap.chmod(0o755)
            api, server = measure_init.runtime_api_for_one_process()
            env = measure_init.lambda_env(
                function, f"127.0.0.1:{server.server_address[1]}", endpoint, secrets_endpoint,
                sizes.get(function, 256),
            )
            env.update({"ECPAY_ENVIRONMENT": "stage", "PUBLIC_BASE_URL": host.base, **open_cap})
            log_path = host.workdir / f"{function}.log"
            log = open(log_path, "w")
            process = subprocess.Popen([str(bootstrap)], env=env, stdout=log, stderr=subprocess.STDOUT)
            print(f"{function}: {len(events)} invocations", flush=True)
            try:
                kind, _ = api.seen.get(timeout=30)
            except Exception:
                process.kill()
                raise SystemExit(f"{function} did not start:\n{log_path.read_text()[-3000:]}")
            after_init = proc_status(process.pid)
            cpu_at_init = cpu_seconds(process.pid)
            statuses = {}
            started = time.perf_counter()
            for event in events:
                api.events.put(event)
                try:
                    kind, _, payload = api.seen.get(timeout=60)
                    api.seen.get(timeout=60)  # its next `GET /next`
                except Exception:
                    process.kill()
                    raise SystemExit(f"{function} stopped answering:\n{log_path.read_text()[-3000:]}")
                answer = json.loads(payload)
                status = answer.get("statusCode", "job")
                statuses[status] = statuses.get(status, 0) + 1
            elapsed = time.perf_counter() - started
            peak = proc_status(process.pid)
            cpu = cpu_seconds(process.pid) - cpu_at_init
            process.kill()
            process.wait()
            server.shutdown()
            rows.append((function, len(events), statuses, int(after_init["VmRSS"].split()[0]) / 1024,
                         int(peak["VmHWM"].split()[0]) / 1024, 1000 * cpu / len(events), 1000 * elapsed / len(events),
                         sizes.get(function)))
    secrets.shutdown()
    print(f"{'function':18s} {'calls':>5s} {'RSS after init':>14s} {'peak RSS':>9s} {'CPU/call':>9s} {'wall/call':>9s} {'MemorySize':>10s}  answers")
    for function, calls, statuses, init_mb, peak_mb, cpu_ms, wall_ms, size in rows:
        print(f"{function:18s} {calls:5d} {init_mb:11.1f} MB {peak_mb:6.1f} MB {cpu_ms:6.2f} ms {wall_ms:6.2f} ms {size!s:>7s} MB  {statuses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
