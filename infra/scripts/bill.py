#!/usr/bin/env python3
"""The AWS bill for this stack, from measured units and durations (docs/cost.md explains each input).

    python3 infra/scripts/bill.py

Units per operation are the capacity bench's (`cargo bench -p api-tests --bench capacity`), durations
the route_latency bench's 1-client p50 under the 4 ms DynamoDB model (docs/contention.md), the memory
sizes template.yaml's. Prices are ap-northeast-1 (Tokyo), on-demand, USD, each with its source in
PRICES. Change a figure here and the tables in docs/cost.md follow by running this again.
"""

# (price, unit, source). Checked against the public pages named; see docs/cost.md for the dates and for
# which figures could not be re-read from this machine.
PRICES = {
    "lambda_gb_s_arm": (0.0000133334, "GB-second, arm64", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_request": (0.20 / 1e6, "request", "https://aws.amazon.com/lambda/pricing/"),
    "http_api_request": (1.29 / 1e6, "request (first 300M)", "https://aws.amazon.com/api-gateway/pricing/"),
    "ddb_write_unit": (0.715 / 1e6, "write request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "ddb_read_unit": (0.1425 / 1e6, "read request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "ddb_storage_gb": (0.285, "GB-month", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "ddb_pitr_gb": (0.228, "GB-month (point-in-time recovery)", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "secret_month": (0.40, "secret-month", "https://aws.amazon.com/secrets-manager/pricing/"),
    "secret_call": (0.05 / 10_000, "API call", "https://aws.amazon.com/secrets-manager/pricing/"),
    "logs_ingest_gb": (0.76, "GB ingested", "https://aws.amazon.com/cloudwatch/pricing/"),
    "logs_store_gb": (0.033, "GB-month stored", "https://aws.amazon.com/cloudwatch/pricing/"),
    "custom_metric": (0.30, "metric-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "alarm": (0.10, "standard alarm-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "dashboard": (3.00, "dashboard-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "ec2_t4g_small_h": (0.0216, "hour", "https://aws.amazon.com/ec2/pricing/on-demand/"),
    "rds_t4g_micro_h": (0.025, "hour, PostgreSQL Single-AZ", "https://aws.amazon.com/rds/postgresql/pricing/"),
    "rds_gp3_gb": (0.138, "GB-month", "https://aws.amazon.com/rds/postgresql/pricing/"),
    "ebs_gp3_gb": (0.096, "GB-month", "https://aws.amazon.com/ebs/pricing/"),
}
HOURS_PER_MONTH = 730

# Per operation: (function memory MB, billed ms, read units, write units). Units: the capacity bench
# (2026-12-06, after the waste removal); ms: route_latency's 1-client p50 (docs/contention.md), or an
# estimate marked "est." in docs/cost.md for routes that bench does not send.
OPERATIONS = {
    "sign-up": (1024, 50, 0.0, 10.0),
    "login": (1024, 55, 2.0, 6.0),
    "token refresh": (1024, 10, 1.0, 1.0),
    "catalogue page": (256, 22, 9.5, 0.0),
    "balance": (256, 12, 2.0, 0.0),
    "recharge started": (256, 18, 1.0, 8.0),
    "checkout page opened": (256, 10, 2.0, 3.0),
    "ECPay notification": (256, 17, 2.0, 12.0),
    "redemption": (256, 20, 6.0, 17.0),
    "pickup by code": (256, 30, 4.0, 9.0),
    "cancellation": (256, 20, 3.0, 10.0),
    "orders page": (256, 14, 1.5, 0.0),
    "ledger page": (256, 13, 1.5, 0.0),
    "merchant's orders page": (256, 23, 5.6, 0.0),
    "scheduled run (every 5 min)": (128, 150, 25.6, 2.05),
}

# Bytes of CloudWatch Logs per request: our JSON line (~0.7 KB), its EMF document (~0.4 KB), Lambda's
# START/END/REPORT lines (~0.35 KB) and the HTTP API's access log line (~0.5 KB). An estimate.
LOG_BYTES_PER_REQUEST = 1950
# Custom metrics a month: the capacity units by function (2 names x (none + 6 functions)) and the
# business metrics that fire (each with its two dimension sets, about 10 in a normal month).
CUSTOM_METRICS = 2 * (1 + 6) + 10
ALARMS = 32
DASHBOARDS = 1
SECRETS = 1


def price(key):
    return PRICES[key][0]


def bill(counts, stored_gb=0.0, cold_starts=0, fixed=True):
    """What `counts` (operation -> how many a month) cost, as (line, USD) rows."""
    gb_s = sum(OPERATIONS[op][0] / 1024 * OPERATIONS[op][1] / 1000 * n for op, n in counts.items())
    requests = sum(counts.values())
    api_requests = sum(n for op, n in counts.items() if not op.startswith("scheduled"))
    reads = sum(OPERATIONS[op][2] * n for op, n in counts.items())
    writes = sum(OPERATIONS[op][3] * n for op, n in counts.items())
    log_gb = requests * LOG_BYTES_PER_REQUEST / 1e9
    rows = [
        ("Lambda compute (%.0f GB-s)" % gb_s, gb_s * price("lambda_gb_s_arm")),
        ("Lambda requests (%d)" % requests, requests * price("lambda_request")),
        ("HTTP API requests (%d)" % api_requests, api_requests * price("http_api_request")),
        ("DynamoDB writes (%.0f WRU)" % writes, writes * price("ddb_write_unit")),
        ("DynamoDB reads (%.0f RRU)" % reads, reads * price("ddb_read_unit")),
        ("CloudWatch Logs (%.3f GB in)" % log_gb, log_gb * (price("logs_ingest_gb") + price("logs_store_gb"))),
    ]
    if stored_gb:
        rows.append(("DynamoDB storage + PITR (%.1f GB)" % stored_gb,
                     stored_gb * (price("ddb_storage_gb") + price("ddb_pitr_gb"))))
    if cold_starts:
        rows.append(("Secrets Manager reads (%d cold starts)" % cold_starts, cold_starts * price("secret_call")))
    if fixed:
        rows += [
            ("Secrets Manager (%d secret)" % SECRETS, SECRETS * price("secret_month")),
            ("CloudWatch custom metrics (%d)" % CUSTOM_METRICS, CUSTOM_METRICS * price("custom_metric")),
            ("CloudWatch alarms (%d)" % ALARMS, ALARMS * price("alarm")),
            ("CloudWatch dashboard (%d)" % DASHBOARDS, DASHBOARDS * price("dashboard")),
        ]
    return rows


def show(title, rows):
    print("\n%s\n" % title)
    print("| line | USD |\n| --- | ---: |")
    for line, usd in rows:
        print("| %s | %.4f |" % (line, usd))
    print("| **total** | **%.2f** |" % sum(usd for _, usd in rows))


def monthly_members(members):
    """A month of `members` active members (docs/cost.md gives the reasons for each figure)."""
    per_member = {
        "login": 4, "token refresh": 16, "catalogue page": 15, "balance": 10,
        "recharge started": 1, "checkout page opened": 1, "ECPay notification": 1,
        "redemption": 3, "pickup by code": 3, "cancellation": 0.2,
        "orders page": 5, "ledger page": 2,
    }
    counts = {op: n * members for op, n in per_member.items()}
    counts["sign-up"] = 0.1 * members
    counts["merchant's orders page"] = 3 * members
    counts["scheduled run (every 5 min)"] = 12 * 24 * 30
    return counts


def main():
    print("Prices (ap-northeast-1, USD):")
    for key, (usd, unit, source) in PRICES.items():
        print("  %-18s %.10g per %s  (%s)" % (key, usd, unit, source))
    show("10,000 redemptions (each with its pickup), variable costs only",
         bill({"redemption": 10_000, "pickup by code": 10_000}, fixed=False))
    show("10,000 monthly active members", bill(monthly_members(10_000), stored_gb=2.0, cold_starts=20_000))
    seed = [
        ("EC2 t4g.small, gunicorn (730 h)", HOURS_PER_MONTH * price("ec2_t4g_small_h")),
        ("EBS gp3 20 GB", 20 * price("ebs_gp3_gb")),
        ("RDS db.t4g.micro PostgreSQL Single-AZ (730 h)", HOURS_PER_MONTH * price("rds_t4g_micro_h")),
        ("RDS gp3 20 GB", 20 * price("rds_gp3_gb")),
    ]
    show("The seed's design, smallest pair that served the flash sale here, any month", seed)


if __name__ == "__main__":
    main()
